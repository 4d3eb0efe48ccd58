"""Hold rows. A hold changes status and captured amount; its history lives in the events."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, Row, and_, bindparam, insert, select, update

from tally.domain.holds import Hold, HoldStatus
from tally.storage.engine import locking
from tally.storage.tables import holds, matchable


def _to_hold(r: Row) -> Hold:
    return Hold(
        id=r.id, tenant_id=r.tenant_id, account_id=r.account_id, currency=r.currency, amount=r.amount,
        captured=r.captured, status=HoldStatus(r.status), expires_us=r.expires_us, request_id=r.request_id,
        created_by=r.created_by, memo=r.memo, metadata=json.loads(r.metadata), created_us=r.created_us,
        updated_us=r.updated_us, capture_voucher_ids=tuple(json.loads(r.capture_voucher_ids)),
    )


def _values(h: Hold) -> dict:
    return {
        "id": h.id, "tenant_id": h.tenant_id, "account_id": h.account_id, "currency": h.currency,
        "amount": h.amount, "captured": h.captured, "status": h.status.value, "expires_us": h.expires_us,
        "request_id": h.request_id, "created_by": h.created_by, "memo": h.memo,
        "metadata": json.dumps(h.metadata, sort_keys=True), "capture_voucher_ids": json.dumps(h.capture_voucher_ids),
        "created_us": h.created_us, "updated_us": h.updated_us,
    }


def load_holds(conn: Connection, tenant_id: str, ids: Iterable[str], *, for_update: bool = False) -> dict[str, Hold]:
    ids = sorted(i for i in set(ids) if matchable(i))
    if not ids:
        return {}
    query = select(holds).where(holds.c.tenant_id == tenant_id, holds.c.id.in_(ids)).order_by(holds.c.id)
    if for_update and locking(conn):
        query = query.with_for_update()
    return {r.id: _to_hold(r) for r in conn.execute(query)}


def insert_holds(conn: Connection, items: Sequence[Hold]) -> None:
    if items:
        conn.execute(insert(holds), [_values(h) for h in items])


def update_holds(conn: Connection, items: Sequence[Hold]) -> None:
    rows = [{"h_id": h.id, "captured": h.captured, "status": h.status.value, "updated_us": h.updated_us,
             "capture_voucher_ids": json.dumps(h.capture_voucher_ids)} for h in items]
    if rows:
        conn.execute(update(holds).where(holds.c.id == bindparam("h_id")), rows)


def list_holds(conn: Connection, tenant_id: str, *, after_id: str, limit: int, account_id: str | None = None,
               status: str | None = None) -> list[Hold]:
    if not all(matchable(v) for v in (after_id, account_id, status)):
        return []
    conditions = [holds.c.tenant_id == tenant_id, holds.c.id > after_id]
    if account_id:
        conditions.append(holds.c.account_id == account_id)
    if status:
        conditions.append(holds.c.status == status)
    rows = conn.execute(select(holds).where(and_(*conditions)).order_by(holds.c.id).limit(limit))
    return [_to_hold(r) for r in rows]


def due_holds(conn: Connection, now_us: int, limit: int) -> list[tuple[str, str]]:
    """(tenant, hold id) of active holds whose expiry has passed, oldest expiry first."""
    rows = conn.execute(select(holds.c.tenant_id, holds.c.id)
                        .where(holds.c.status == HoldStatus.ACTIVE.value, holds.c.expires_us <= now_us)
                        .order_by(holds.c.expires_us).limit(limit))
    return [(r.tenant_id, r.id) for r in rows]
