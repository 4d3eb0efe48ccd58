"""Merged accounts: where each merged (closed) account's code now leads. Every query names the tenant."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from tally.storage.tables import account_merges, matchable


@dataclass(frozen=True, slots=True)
class MergeRow:
    tenant_id: str
    source_id: str
    target_id: str
    voucher_id: str  # "" when the source held nothing to move
    request_id: str
    merged_by: str
    merged_us: int


def insert_merges(conn: Connection, rows: Sequence[MergeRow]) -> None:
    if rows:
        conn.execute(insert(account_merges), [{
            "tenant_id": r.tenant_id, "source_id": r.source_id, "target_id": r.target_id,
            "voucher_id": r.voucher_id, "request_id": r.request_id, "merged_by": r.merged_by,
            "merged_us": r.merged_us} for r in rows])


def targets_of(conn: Connection, tenant_id: str, source_ids: Iterable[str]) -> dict[str, str]:
    """Merged account id -> the account it was merged into, for those of `source_ids` that were merged."""
    ids = sorted({i for i in source_ids if matchable(i)})
    if not ids:
        return {}
    rows = conn.execute(select(account_merges.c.source_id, account_merges.c.target_id).where(
        account_merges.c.tenant_id == tenant_id, account_merges.c.source_id.in_(ids)))
    return dict(rows.all())
