"""Credit accounts and the security deposits that secure them. Every query names the tenant."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Row, func, insert, or_, select, update

from tally.domain.security import Security
from tally.storage.tables import account_securities, matchable

_T = account_securities


def _to_security(row: Row) -> Security:
    return Security(row.tenant_id, row.credit_id, row.deposit_id, row.ratio_bps, bool(row.bound), row.request_id,
                    row.updated_us)


def _values(s: Security) -> dict:
    return {"tenant_id": s.tenant_id, "credit_id": s.credit_id, "deposit_id": s.deposit_id, "ratio_bps": s.ratio_bps,
            "bound": int(s.bound), "request_id": s.request_id, "updated_us": s.updated_us}


def save_security(conn: Connection, security: Security, *, exists: bool) -> None:
    if exists:
        values = _values(security)
        del values["tenant_id"], values["credit_id"]
        conn.execute(update(_T).where(_T.c.tenant_id == security.tenant_id, _T.c.credit_id == security.credit_id)
                     .values(values))
    else:
        conn.execute(insert(_T).values(_values(security)))


def touching(conn: Connection, tenant_id: str, account_ids: Iterable[str], limit: int) -> list[Security]:
    """The securities whose credit or deposit account is among `account_ids`, at most `limit`."""
    ids = sorted({i for i in account_ids if matchable(i)})
    if not ids:
        return []
    rows = conn.execute(select(_T).where(_T.c.tenant_id == tenant_id,
                                         or_(_T.c.credit_id.in_(ids), _T.c.deposit_id.in_(ids)))
                        .order_by(_T.c.credit_id).limit(limit))
    return [_to_security(r) for r in rows]


def count_secured(conn: Connection, tenant_id: str, deposit_id: str) -> int:
    return conn.execute(select(func.count()).select_from(_T).where(
        _T.c.tenant_id == tenant_id, _T.c.deposit_id == deposit_id)).scalar_one()
