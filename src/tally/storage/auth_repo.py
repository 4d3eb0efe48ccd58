"""Tenants, API keys and the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from operator import attrgetter

from sqlalchemy import Connection, func, insert, select, update

from tally.storage import bulk
from tally.storage.tables import api_keys, audit_log, tenants


@dataclass(frozen=True)
class KeyRecord:
    id: str
    tenant_id: str
    role: str
    name: str
    salt: str
    secret_hash: str
    created_by: str
    created_us: int
    revoked_us: int | None = None


@dataclass(frozen=True)
class AuditRow:
    tenant_id: str
    actor: str
    role: str
    action: str
    target: str
    outcome: str
    request_id: str
    peer: str
    time_us: int


# What each audit column holds at most, in characters.
AUDIT_LENGTHS_MAX = {c.name: c.type.length for c in audit_log.columns if getattr(c.type, "length", None)}


def storable(row: AuditRow) -> AuditRow:
    """The row as the audit log can hold it, whatever a caller put in it: each text cut to its column,
    and NUL and lone surrogates (which PostgreSQL refuses, so the row would never be written) shown as
    U+FFFD."""
    changes = {}
    for f in fields(row):
        value = getattr(row, f.name)
        if isinstance(value, str):
            clean = _printable(value[:AUDIT_LENGTHS_MAX.get(f.name, len(value))])
            if clean != value:
                changes[f.name] = clean
    return replace(row, **changes) if changes else row


def _printable(text: str) -> str:
    if "\x00" not in text and text.isascii():
        return text
    return "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in text)


def insert_tenant(conn: Connection, tenant_id: str, name: str, now_us: int) -> None:
    conn.execute(insert(tenants).values(id=tenant_id, name=name, created_us=now_us))


def tenant_exists(conn: Connection, tenant_id: str) -> bool:
    return conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id)).first() is not None


def count_tenants(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(tenants)).scalar_one()


def list_tenants(conn: Connection) -> list[tuple[str, str, int]]:
    return [tuple(r) for r in conn.execute(select(tenants.c.id, tenants.c.name, tenants.c.created_us)
                                           .order_by(tenants.c.id))]


def insert_key(conn: Connection, key: KeyRecord) -> None:
    conn.execute(insert(api_keys).values(vars(key)))


def get_key(conn: Connection, key_id: str) -> KeyRecord | None:
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    return KeyRecord(**row._mapping) if row else None


def list_keys(conn: Connection, tenant_id: str) -> list[KeyRecord]:
    rows = conn.execute(select(api_keys).where(api_keys.c.tenant_id == tenant_id).order_by(api_keys.c.created_us))
    return [KeyRecord(**r._mapping) for r in rows]


def revoke_key(conn: Connection, tenant_id: str, key_id: str, now_us: int) -> bool:
    result = conn.execute(update(api_keys)
                          .where(api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id,
                                 api_keys.c.revoked_us.is_(None))
                          .values(revoked_us=now_us))
    return result.rowcount == 1


AUDIT_COLUMNS = ("tenant_id", "actor", "role", "action", "target", "outcome", "request_id", "peer", "time_us")
_audit_values = attrgetter(*AUDIT_COLUMNS)


def insert_audit(conn: Connection, rows: Sequence[AuditRow]) -> None:
    """In one statement, ids in the order given (one row per call made: thousands a second)."""
    bulk.insert_rows(conn, audit_log, AUDIT_COLUMNS, [_audit_values(r) for r in rows])


def list_audit(conn: Connection, tenant_id: str, *, after_id: int, limit: int) -> list[tuple[int, AuditRow]]:
    query = (select(audit_log).where(audit_log.c.tenant_id == tenant_id, audit_log.c.id > after_id)
             .order_by(audit_log.c.id).limit(limit))
    return [(r.id, AuditRow(**{k: v for k, v in r._mapping.items() if k != "id"})) for r in conn.execute(query)]
