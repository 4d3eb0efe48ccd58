"""Tenants, API keys and the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from operator import attrgetter

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tally.domain.audit_trail import GENESIS_HASH as AUDIT_GENESIS
from tally.domain.audit_trail import HASHED_FIELDS, audit_row_hash
from tally.storage import bulk
from tally.storage.tables import api_keys, audit_heads, audit_log, tenants


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


AUDIT_COLUMNS = HASHED_FIELDS
_audit_values = attrgetter(*AUDIT_COLUMNS)


def insert_audit(conn: Connection, rows: Sequence[AuditRow]) -> None:
    """In one statement, ids in the order given (one row per call made: thousands a second), each row
    chained to its tenant's previous one. The tenants' chain heads are locked first (in tenant order), so
    two processes appending for one tenant take turns and the chain follows id order."""
    if not rows:
        return
    values = [_audit_values(r) for r in rows]
    heads = _lock_audit_heads(conn, sorted({v[0] for v in values}))
    chained = []
    for row in values:
        previous, count = heads[row[0]]
        digest = audit_row_hash(previous, row)
        chained.append((*row, previous, digest))
        heads[row[0]] = (digest, count + 1)
    bulk.insert_rows(conn, audit_log, (*AUDIT_COLUMNS, "previous_hash", "hash"), chained)
    conn.execute(update(audit_heads).where(audit_heads.c.tenant_id == bindparam("t"))
                 .values(last_hash=bindparam("h"), row_count=bindparam("n")),
                 [{"t": t, "h": h, "n": n} for t, (h, n) in heads.items()])


def _lock_audit_heads(conn: Connection, tenant_ids: list[str]) -> dict[str, tuple[str, int]]:
    insert_new = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(audit_heads)
    conn.execute(insert_new.on_conflict_do_nothing(index_elements=["tenant_id"]),
                 [{"tenant_id": t, "last_hash": AUDIT_GENESIS, "row_count": 0} for t in tenant_ids])
    query = (select(audit_heads.c.tenant_id, audit_heads.c.last_hash, audit_heads.c.row_count)
             .where(audit_heads.c.tenant_id.in_(tenant_ids)).order_by(audit_heads.c.tenant_id).with_for_update())
    return {t: (h, n) for t, h, n in conn.execute(query)}


def list_audit(conn: Connection, tenant_id: str, *, after_id: int, limit: int) -> list[tuple[int, AuditRow]]:
    query = (select(audit_log).where(audit_log.c.tenant_id == tenant_id, audit_log.c.id > after_id)
             .order_by(audit_log.c.id).limit(limit))
    return [(r.id, AuditRow(**{k: r._mapping[k] for k in AUDIT_COLUMNS})) for r in conn.execute(query)]
