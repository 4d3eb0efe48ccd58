"""Reconciliation: an imported statement's report (counts per state, the fund proof, the open items)."""

from __future__ import annotations

from tally.console.html import el, join, table, void
from tally.console.money import when
from tally.console.request import Page, Request
from tally.console.views.common import account_ref, money


def reconciliation(req: Request) -> Page:
    account, statement_id = req.arg("account"), req.arg("statement")
    form = el("form", el("label", "Account ", void("input", name="account", value=account, required=True)),
              el("label", " Statement id ", void("input", name="statement", value=statement_id, required=True)),
              el("button", "Show", type="submit"), method="get", action="/reconciliation", class_="filter")
    if not (account and statement_id):
        return Page("Reconciliation", join([form, el("p", "Name a clearing account and the id of a statement "
                                                          "imported for it (tally recon import).", class_="hint")]))
    report = req.services.reconciliation.report(req.tenant_id, account_ref(account), statement_id)
    st, cur = report.statement, report.statement.currency
    facts = table(("", ""), [("Account", report.account_code), ("Statement", st.statement_id),
                             ("Period", f"{st.start_date} to {st.end_date}"), ("Format", st.format),
                             ("Lines", st.line_count), ("Imported", f"{when(st.created_us)} by {st.created_by}")],
                  class_="facts")
    counts = table(("State", "Items", "Ours", "Theirs", "Open"), [
        (c.state.value, c.items, money(req, c.ours, cur), money(req, c.theirs, cur), c.open_items)
        for c in report.counts], class_="recon-counts")
    proof = None
    if report.proof is not None:
        p = report.proof
        proof = join([el("h2", "Fund proof"), table(("Ledger balance", "Resolutions", "Open items", "Closing balance",
                                                     "Proven"),
                                                    [(money(req, p.ledger_balance, cur), money(req, p.resolutions, cur),
                                                      money(req, p.open_items, cur),
                                                      money(req, p.closing_balance, cur),
                                                      "yes" if p.proven else "NO")], class_="proof")])
    items = table(("#", "State", "Rule", "Ours", "Theirs", "Difference"), [
        (i.position, i.state.value, i.rule, money(req, i.ours, cur), money(req, i.theirs, cur),
         money(req, i.difference, cur)) for i in report.open_items], class_="recon-items")
    more = el("p", "More open items than shown: list them with tally recon items.", class_="hint") \
        if report.open_items_truncated else None
    return Page(f"Reconciliation {st.statement_id}", join([form, facts, el("h2", "Items by state"), counts, proof,
                                                           el("h2", "Open items"), items, more]))
