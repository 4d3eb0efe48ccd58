"""Tamper evidence: recomputes a tenant's voucher hash chain from what is stored.

Each voucher's hash covers the previous voucher's hash and its own content (lines included), so an edit
anywhere breaks the chain at the edited voucher (its content no longer matches its hash) or right after
it (when the edit also rewrote the hash, the next voucher's link no longer matches).
"""

from __future__ import annotations

from dataclasses import dataclass

from tally.domain.fields import check_tenant
from tally.domain.vouchers import GENESIS_HASH, voucher_hash
from tally.storage import journal_repo, ledger_repo
from tally.storage.uow import UnitOfWork

PAGE_SIZE = 500
CONTENT = "its content does not match its hash"


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    checked: int
    head_hash: str
    broken_voucher_id: str = ""
    broken_sequence: int = 0
    problem: str = ""


def verify_chain(uow: UnitOfWork, tenant_id: str) -> ChainReport:
    check_tenant(tenant_id)
    scope = {tenant_id}
    head = uow.read(scope, lambda conn: ledger_repo.load_heads_readonly(conn, tenant_id))
    previous, sequence, checked = GENESIS_HASH, 0, 0
    while True:
        page, stray = uow.read(scope, lambda conn, after=sequence: _page(conn, tenant_id, after))
        for voucher in page:
            problem = _problem(voucher, previous, sequence + 1) or (CONTENT if voucher.id in stray else "")
            if problem:
                return ChainReport(False, checked, head.last_hash if head else "", voucher.id, voucher.sequence,
                                   problem)
            previous, sequence, checked = voucher.hash, voucher.sequence, checked + 1
        if len(page) < PAGE_SIZE:
            break
    if head is not None and (head.voucher_sequence != sequence or head.last_hash != previous):
        return ChainReport(False, checked, head.last_hash, problem=(
            f"the head records voucher {head.voucher_sequence} with hash {head.last_hash[:12]}..., the chain ends "
            f"at {sequence} with {previous[:12]}..."))
    return ChainReport(True, checked, previous)


def _page(conn, tenant_id: str, after: int):
    page = journal_repo.list_vouchers(conn, tenant_id, after_sequence=after, limit=PAGE_SIZE)
    if not page:
        return page, set()
    return page, journal_repo.vouchers_with_stray_lines(conn, tenant_id, page[0].sequence, page[-1].sequence)


def _problem(voucher, previous: str, expected_sequence: int) -> str:
    if voucher.sequence != expected_sequence:
        return f"sequence {voucher.sequence} where {expected_sequence} was expected"
    if voucher.previous_hash != previous:
        return "its link to the previous voucher does not match that voucher's hash"
    if voucher_hash(voucher, previous) != voucher.hash:
        return CONTENT
    return ""
