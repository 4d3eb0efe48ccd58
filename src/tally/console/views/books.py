"""The books: the live trial balance, the accounting days with the trial balance each close stored, one day."""

from __future__ import annotations

from tally.console.html import el, join, link, table, void
from tally.console.money import when
from tally.console.request import Page, Request
from tally.console.views.common import account_link, account_ref, money, pager
from tally.service.lookups import account_codes


def trial_balance(req: Request) -> Page:
    s, tenant, subtree = req.services, req.tenant_id, req.arg("subtree")
    totals = (s.hierarchy.trial_balance(tenant, account_ref(subtree)) if subtree
              else s.queries.trial_balance(tenant))
    rows = [(t.currency, money(req, t.debit_total, t.currency), money(req, t.credit_total, t.currency),
             money(req, t.difference, t.currency), t.account_count, _verdict(t.difference == 0)) for t in totals]
    scope = el("form", el("label", "Subtree of account ", void("input", name="subtree", value=subtree)),
               el("button", "Show", type="submit"), method="get", action="/trial-balance", class_="filter")
    body = table(("Currency", "Debit total", "Credit total", "Difference", "Accounts", ""), rows,
                 class_="trial-balance") if rows else el("p", "No balances yet.")
    return Page("Trial balance", join([scope, el("p", "Live balances, now. Each closed day's trial balance is on ",
                                                 link("/days", "Days"), ".", class_="hint"), body]))


def days(req: Request) -> Page:
    found, token = req.services.days.list(req.tenant_id, req.page_size(), req.arg("page"))
    rows = []
    for day in found:
        for i, c in enumerate(day.currencies or (None,)):
            first = i == 0
            rows.append((link(f"/days/{day.date}", day.date) if first else "", day.state.value if first else "",
                         day.voucher_count if first else "",
                         c.currency if c else "", money(req, c.debit_total, c.currency) if c else "",
                         money(req, c.credit_total, c.currency) if c else "",
                         _verdict(c.debit_total == c.credit_total) if c else "", when(day.closed_us) if first else ""))
    body = table(("Date", "State", "Vouchers", "Currency", "Debits", "Credits", "Trial balance", "Closed"), rows,
                 class_="days") if rows else el("p", "No day has been closed yet.")
    return Page("Accounting days", join([body, pager(req, token)]))


def day(req: Request, date: str) -> Page:
    s, tenant = req.services, req.tenant_id
    found = s.days.get(tenant, date)
    closing, token = s.days.closing_balances(tenant, date, req.page_size(), req.arg("page"))
    codes = account_codes(s.uow, tenant, {b.account_id for b in closing})
    facts = table(("", ""), [("State", found.state.value), ("Vouchers", found.voucher_count),
                             ("Sequences", f"{found.after_sequence + 1} to {found.last_sequence}"),
                             ("Close started", when(found.started_us)), ("Closed", when(found.closed_us)),
                             ("Accounts closed", found.accounts_closed)], class_="facts")
    currencies = table(("Currency", "Debits", "Credits", "Lines", "Trial balance"), [
        (c.currency, money(req, c.debit_total, c.currency), money(req, c.credit_total, c.currency), c.line_count,
         _verdict(c.debit_total == c.credit_total)) for c in found.currencies], class_="day-totals")
    flows = table(("Flow", "Currency", "Vouchers", "Amount"), [
        (f.flow_type, f.currency, f.voucher_count, money(req, f.amount_total, f.currency)) for f in found.flows],
        class_="day-flows")
    balances = table(("Account", "Closing balance", "Last entry"), [
        (account_link(b.account_id, codes), money(req, b.balance, b.currency), b.entry_count) for b in closing],
        class_="closing")
    return Page(f"Day {found.date}", join([facts, el("h2", "Trial balance"), currencies, el("h2", "Flows"), flows,
                                           el("h2", "Closing balances"), balances, pager(req, token)]))


def _verdict(balanced: bool):
    return el("span", "balanced", class_="ok") if balanced else el("span", "NOT balanced", class_="bad")
