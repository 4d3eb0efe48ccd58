"""Appending events outside the batch writer (account changes), in the caller's transaction."""

from __future__ import annotations

from sqlalchemy import Connection

from tally.storage import ledger_repo
from tally.storage.ledger_repo import Event


def append_event(conn: Connection, tenant_id: str, type_: str, payload: dict, now_us: int, *,
                 account_id: str | None = None) -> None:
    head = ledger_repo.load_heads(conn, [tenant_id])[tenant_id]
    head.event_sequence += 1
    ledger_repo.insert_events(conn, [Event(tenant_id, head.event_sequence, type_, payload, now_us, account_id)])
    ledger_repo.save_heads(conn, [head])
