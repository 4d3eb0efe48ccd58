"""Audit: the tenant's audit log (who did what, and what was refused) and the last ledger audit's result."""

from __future__ import annotations

from tally.console.html import el, join, table, void
from tally.console.money import when
from tally.console.request import Page, Request
from tally.console.views.common import pager
from tally.service.books.auditor import list_audit_log
from tally.storage.audit_repo import AuditFilter


def audit_log(req: Request) -> Page:
    s, tenant = req.services, req.tenant_id
    where = AuditFilter(actor=req.arg("actor"), action=req.arg("action"), outcome_prefix=req.arg("outcome"))
    page = list_audit_log(s.uow, tenant, where, req.page_size(), req.arg("page"))
    findings = s.auditor.findings_by_tenant().get(tenant)
    ledger = el("p", "The ledger audit has not run in this process since it started (tally verify runs it)."
                if findings is None else f"Last ledger audit in this process: {findings} findings.",
                class_="ok" if findings == 0 else "hint" if findings is None else "bad")
    search = el("form", [el("label", f" {label} ", void("input", name=name, value=req.arg(name)))
                         for name, label in (("actor", "Actor"), ("action", "Action"), ("outcome", "Outcome"))],
                el("button", "Filter", type="submit"), method="get", action="/audit", class_="filter")
    rows = [(r.id, when(r.time_us), r.actor, r.role, r.action, r.target, r.outcome, r.peer) for r in page.rows]
    body = table(("#", "Time", "Actor", "Role", "Action", "Target", "Outcome", "Peer"), rows, class_="audit") \
        if rows else el("p", "No audit rows match.")
    return Page("Audit", join([ledger, search, body, pager(req, page.next_page_token, actor=req.arg("actor"),
                                                          action=req.arg("action"), outcome=req.arg("outcome"))]))
