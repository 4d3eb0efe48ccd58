"""Vouchers: the list, and one voucher with its lines drawn as money moving between accounts."""

from __future__ import annotations

from tally.console.html import el, href, join, link, table, void
from tally.console.money import amount, when
from tally.console.request import Page, Request
from tally.console.svg import voucher_svg
from tally.console.views.common import account_ref, money, pager, short
from tally.domain.accounts import Side


def listing(req: Request) -> Page:
    s, tenant = req.services, req.tenant_id
    account_id = ""
    if req.arg("account"):
        account_id = s.queries.get_account(tenant, account_ref(req.arg("account")))[0].id
    page = s.queries.list_vouchers(tenant, page_size=req.page_size(), page_token=req.arg("page"),
                                   account_id=account_id, flow_type=req.arg("flow"))
    rows = [(v.sequence, link(f"/vouchers/{v.id}", short(v.id), class_="voucher"), v.accounting_date,
             when(v.posted_us), v.flow_type, len(v.lines), _totals(req, v), v.memo) for v in page.items]
    search = el("form", el("label", "Account ", void("input", name="account", value=req.arg("account"))),
                el("label", " Flow ", void("input", name="flow", value=req.arg("flow"))),
                el("button", "Filter", type="submit"), method="get", action="/vouchers", class_="filter")
    found = table(("Seq", "Voucher", "Date", "Posted", "Flow", "Lines", "Amount", "Memo"), rows,
                  class_="vouchers") if rows else el("p", "No vouchers.")
    return Page("Vouchers", join([search, found, pager(req, page.next_page_token, account=req.arg("account"),
                                                       flow=req.arg("flow"))]))


def _totals(req: Request, voucher) -> str:
    """The debit total per currency: what the voucher moved."""
    totals: dict[str, int] = {}
    for line in voucher.lines:
        if line.side is Side.DEBIT:
            totals[line.currency] = totals.get(line.currency, 0) + line.amount
    return ", ".join(amount(t, c, req.services.settings.currencies) for c, t in sorted(totals.items()))


def detail(req: Request, voucher_id: str) -> Page:
    voucher = req.services.queries.get_voucher(req.tenant_id, voucher_id)
    currencies = req.services.settings.currencies
    facts = table(("", ""), [
        ("Id", el("code", voucher.id)), ("Sequence", voucher.sequence), ("Flow", voucher.flow_type),
        ("Accounting date", voucher.accounting_date), ("Effective", when(voucher.effective_us)),
        ("Posted", when(voucher.posted_us)), ("Request id", voucher.request_id), ("Memo", voucher.memo),
        ("Rule", f"{voucher.rule_id} (rule set {voucher.rule_set_version})" if voucher.rule_id else "none"),
        ("Reverses", link(f"/vouchers/{voucher.reverses_id}", voucher.reverses_id) if voucher.reverses_id else ""),
        ("Reversed by", link(f"/vouchers/{voucher.reversed_by_id}", voucher.reversed_by_id)
         if voucher.reversed_by_id else ""),
        ("Hash", el("code", voucher.hash))], class_="facts")
    lines = table(("#", "Account", "Debit", "Credit", "Memo", "Balance after"), [
        (ln.line_no, link(f"/accounts/{ln.account_id}", ln.account_code or ln.account_id, class_="account"),
         money(req, ln.amount, ln.currency) if ln.side is Side.DEBIT else "",
         money(req, ln.amount, ln.currency) if ln.side is Side.CREDIT else "", ln.memo,
         money(req, ln.balance_after, ln.currency)) for ln in voucher.lines], class_="lines")
    metadata = table(("Key", "Value"), sorted(voucher.metadata.items()), class_="metadata") \
        if voucher.metadata else None
    drawing = voucher_svg(voucher, lambda units, code: amount(units, code, currencies))
    return Page(f"Voucher {short(voucher.id)}", join([
        el("figure", drawing, el("figcaption", "Money moves from the debited accounts (left) to the credited "
                                 "accounts (right); a path's width follows its amount.")),
        facts, el("h2", "Lines"), lines, metadata,
        el("p", link(href("/vouchers", account=voucher.lines[0].account_id), "Other vouchers of its first account"))
        if voucher.lines else None]))


