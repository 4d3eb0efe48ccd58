"""Tamper evidence: the voucher hash chain of a tenant, as the ledger audit recomputes it.

Each voucher's hash covers the previous voucher's hash and its own content (lines included), so an edit
anywhere breaks the chain at the edited voucher (its content no longer matches its hash) or right after
it (when the edit also rewrote the hash, the next voucher's link no longer matches). `verify_chain` is the
chain part of a full ledger audit (tally.service.books.ledger_audit) that neither marks accounts nor moves the
checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from tally.service.books.ledger_audit import CONTENT, LINK, AuditReport, LedgerAudit
from tally.storage.uow import UnitOfWork

__all__ = ["CONTENT", "LINK", "ChainReport", "chain_report", "verify_chain"]


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    checked: int
    head_hash: str
    broken_voucher_id: str = ""
    broken_sequence: int = 0
    problem: str = ""


def chain_report(report: AuditReport) -> ChainReport:
    intact = not report.broken_voucher_id and not report.problem
    return ChainReport(intact, report.vouchers_checked, report.head_hash, report.broken_voucher_id,
                       report.broken_sequence, report.problem)


def verify_chain(uow: UnitOfWork, tenant_id: str) -> ChainReport:
    report = LedgerAudit(uow, lambda: 0).run(tenant_id, full=True, mark=False, save=False)
    return chain_report(report)
