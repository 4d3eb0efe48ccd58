"""The accounts as a tree with roll-up balances, and one account's balances and statement."""

from __future__ import annotations

from collections import defaultdict

from tally.console.html import Html, el, join, link, table
from tally.console.money import when
from tally.console.request import Page, Request
from tally.console.views.common import account_ref, money, pager, short
from tally.domain.accounts import Account, Side
from tally.domain.errors import LedgerError
from tally.domain.hierarchy import RollUp
from tally.domain.vouchers import AccountRef
from tally.service.queries import BalanceView


def tree(req: Request) -> Page:
    s, tenant = req.services, req.tenant_id
    page = s.queries.list_accounts(tenant, page_size=req.page_size(), page_token=req.arg("page"), type_=None,
                                   status=None, currency="", parent_id="")
    accounts: list[Account] = page.items
    if not accounts:
        return Page("Accounts", el("p", "No accounts yet."))
    balances = {b.account_id: b for b in s.queries.get_balances(
        tenant, [AccountRef(id=a.id) for a in accounts]).balances}
    children: dict[str | None, list[Account]] = defaultdict(list)
    ids = {a.id for a in accounts}
    for account in accounts:
        children[account.parent_id if account.parent_id in ids else None].append(account)
    rollups = _rollups(req, accounts)
    if None in rollups.values():  # the page's subtrees are too large together: those drawn here, then
        rollups = _rollups(req, [a for a in accounts if a.id in children])
    body = el("ul", [_node(req, a, children, balances, rollups) for a in children[None]], class_="tree")
    return Page("Accounts", join([el("p", f"{len(accounts)} accounts on this page; a parent shows its own "
                                          "balance and, in bold, the roll-up of everything under it (on this "
                                          "page or not).",
                                     class_="hint"), body, pager(req, page.next_page_token)]))


def _rollups(req: Request, accounts: list[Account]) -> dict[str, list[RollUp] | None]:
    """Each account's roll-ups (an account without descendants has one of none), or None for each when their
    subtrees together are too large to read in one request."""
    if not accounts:
        return {}
    try:
        found = req.services.hierarchy.get_rollups(req.tenant_id, [AccountRef(id=a.id) for a in accounts])
    except LedgerError as error:
        if error.reason != "SUBTREE_TOO_LARGE":
            raise
        return dict.fromkeys((a.id for a in accounts), None)
    return {a.balance.account_id: a.rollups for a in found.accounts}


def _node(req: Request, account: Account, children, balances: dict[str, BalanceView],
          rollups: dict[str, list[RollUp] | None]) -> Html:
    balance = balances[account.id]
    label = el("span", link(f"/accounts/{account.id}", account.code, class_="account"),
               el("span", account.name, class_="name") if account.name else None,
               el("span", f"{account.type.value} · {account.normal_side.value}", class_="kind"),
               el("span", account.status.value, class_=f"status {account.status.value}"),
               money(req, balance.current, account.currency), class_="node")
    kids = children.get(account.id, [])
    found = rollups.get(account.id, [])
    if found is not None and not any(r.descendant_accounts for r in found):
        return el("li", label, el("ul", [_node(req, k, children, balances, rollups) for k in kids]) if kids else None)
    total = (el("span", "roll-up too large to show", class_="hint") if found is None else
             el("span", join(el("strong", money(req, r.total, r.currency), title=f"{r.descendant_accounts} under it")
                             for r in found), class_="rollup"))
    return el("li", label, total,
              el("ul", [_node(req, k, children, balances, rollups) for k in kids]) if kids else None)


def detail(req: Request, ref_text: str) -> Page:
    s, tenant, ref = req.services, req.tenant_id, account_ref(ref_text)
    account, balance = s.queries.get_account(tenant, ref)
    entries = s.queries.list_entries(tenant, AccountRef(id=account.id), page_size=req.page_size(),
                                     page_token=req.arg("page"))
    rollups = _rollups(req, [account]).get(account.id)
    facts = table(("", ""), [
        ("Code", account.code), ("Name", account.name), ("Id", el("code", account.id)),
        ("Type", account.type.value), ("Normal side", account.normal_side.value),
        ("Status", account.status.value), ("Currency", account.currency),
        ("Parent", link(f"/accounts/{account.parent_id}", "parent") if account.parent_id else "none")],
        class_="facts")
    return Page(f"Account {account.code}", join([
        facts, el("h2", "Balances"), _balances(req, balance), _rollup_table(req, rollups),
        el("h2", "Statement"), _statement(req, account, entries), pager(req, entries.next_page_token)]))


def _balances(req: Request, b: BalanceView) -> Html:
    return table(("Current", "Locked (held)", "Available", "Credit limit", f"Previous day ({b.previous_day_date})",
                  "Entries"),
                 [(money(req, b.current, b.currency), money(req, b.locked, b.currency),
                   money(req, b.available, b.currency), money(req, b.credit_limit, b.currency),
                   money(req, b.previous_day, b.currency), b.entry_count)], class_="balances")


def _rollup_table(req: Request, rollups: list[RollUp] | None) -> Html | None:
    if rollups is None:
        return el("p", "Too many accounts under it to roll up here.", class_="hint")
    if not any(r.descendant_accounts for r in rollups):
        return None
    return join([el("h2", "Roll-up of the accounts under it"), table(
        ("Currency", "Own", "Descendants", "Total", "Accounts under it"),
        [(r.currency, money(req, r.own, r.currency), money(req, r.descendants, r.currency),
          el("strong", money(req, r.total, r.currency)), r.descendant_accounts) for r in rollups],
        class_="rollups")])


def _statement(req: Request, account: Account, page) -> Html:
    if not page.items:
        return el("p", "No entries.")
    opening = el("p", "Opening balance of this page: ", money(req, page.opening_balance, account.currency))
    rows = [(e.entry_number, e.accounting_date, when(e.posted_us), e.flow_type,
             link(f"/vouchers/{e.voucher_id}", short(e.voucher_id), class_="voucher"), e.memo,
             money(req, e.amount, e.currency) if e.side == Side.DEBIT.value else "",
             money(req, e.amount, e.currency) if e.side == Side.CREDIT.value else "",
             money(req, e.balance_after, e.currency)) for e in page.items]
    return join([opening, table(("#", "Date", "Posted", "Flow", "Voucher", "Memo", "Debit", "Credit",
                                 "Balance after"), rows, class_="statement")])
