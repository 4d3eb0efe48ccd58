"""Per-tenant ledger heads, the outbox of events, and idempotency records."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache

import orjson
from sqlalchemy import Connection, Select, bindparam, insert, select, tuple_, update

from tally.domain.posted_events import POSTED, is_whole, posted_payload
from tally.domain.vouchers import GENESIS_HASH
from tally.storage import accounts_repo, bulk, journal_repo
from tally.storage.compact import digest_bytes, digest_text, pack, unpack
from tally.storage.engine import driver_execute
from tally.storage.tables import events, flow_caps, idempotency, ledger_heads, matchable


@dataclass
class LedgerHead:
    tenant_id: str
    voucher_sequence: int
    event_sequence: int
    last_hash: str
    accounting_date: str
    posted_us: int = 0  # the last posting time: a batch never posts earlier


# The batch writer's statements are built once: building one and its cache key costs as much Python time
# as running it.
HEAD_COLUMNS = ("tenant_id", "voucher_sequence", "event_sequence", "last_hash", "accounting_date",  # LedgerHead's
                "posted_us")
_HEADS_OF = (select(*(ledger_heads.c[name] for name in HEAD_COLUMNS))
             .where(ledger_heads.c.tenant_id.in_(bindparam("ids", expanding=True))))


_HEADS_WITH_EPOCHS_OF = _HEADS_OF.add_columns(ledger_heads.c.epoch)


def load_heads_with_epochs(conn: Connection, tenant_ids: list[str]) -> tuple[dict[str, LedgerHead], dict[str, int]]:
    """The heads these tenants have, and their epochs (storage/epochs.py)."""
    return heads_and_epochs(conn.execute(_HEADS_WITH_EPOCHS_OF, {"ids": tenant_ids}).all())


def heads_and_epochs(rows: Sequence[Sequence]) -> tuple[dict[str, LedgerHead], dict[str, int]]:
    """Rows of `HEAD_COLUMNS` then the epoch, as heads and epochs by tenant."""
    return {row[0]: LedgerHead(*row[:-1]) for row in rows}, {row[0]: row[-1] for row in rows}


def load_heads(conn: Connection, tenant_ids: Iterable[str]) -> dict[str, LedgerHead]:
    """The heads of these tenants, created on a tenant's first write."""
    ids = sorted(set(tenant_ids))
    heads = {row[0]: LedgerHead(*row) for row in conn.execute(_HEADS_OF, {"ids": ids})}
    heads.update(create_heads(conn, [t for t in ids if t not in heads]))
    return heads


def create_heads(conn: Connection, tenant_ids: Sequence[str]) -> dict[str, LedgerHead]:
    """The heads of tenants that have none yet: nothing written, at the start of the chain."""
    fresh = {t: LedgerHead(t, 0, 0, GENESIS_HASH, "") for t in tenant_ids}
    if fresh:
        conn.execute(insert(ledger_heads), [vars(h) for h in fresh.values()])
    return fresh


def load_heads_readonly(conn: Connection, tenant_id: str) -> LedgerHead | None:
    row = conn.execute(select(ledger_heads).where(ledger_heads.c.tenant_id == tenant_id)).first()
    return LedgerHead(*(row._mapping[name] for name in HEAD_COLUMNS)) if row else None


def save_heads(conn: Connection, heads: Iterable[LedgerHead]) -> None:
    bulk.update_rows(conn, ledger_heads, "tenant_id", HEAD_COLUMNS[1:], head_rows(heads))


def head_rows(heads: Iterable[LedgerHead]) -> list[tuple]:
    """Each head's `HEAD_COLUMNS`: its key first."""
    return [(h.tenant_id, h.voucher_sequence, h.event_sequence, h.last_hash, h.accounting_date, h.posted_us)
            for h in heads]


# Event and IdempotencyRecord are not frozen: the batch writer makes one of each per voucher, where a frozen
# class's __init__ cost five times as much; nothing changes one once made.
@dataclass(slots=True)
class Event:
    tenant_id: str
    sequence: int
    type: str
    payload: dict
    created_us: int
    account_id: str | None = None
    voucher_id: str | None = None
    hold_id: str | None = None



def _sorted_json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()

EVENT_TENANTS = "tally.event_tenants"  # Connection.info key: tenants this transaction wrote events for
EVENTS_CHANNEL = "tally_events"
EVENT_COLUMNS = ("tenant_id", "sequence", "type", "account_id", "voucher_id", "hold_id", "payload", "created_us")


def insert_events(conn: Connection, items: Sequence[Event]) -> None:
    if items:
        bulk.insert_rows(conn, events, EVENT_COLUMNS, event_rows(conn, items))


def event_rows(conn: Connection, items: Sequence[Event]) -> list[tuple]:
    """Each event's `EVENT_COLUMNS`; the transaction on `conn` then notifies their tenants' streams when it
    commits (`take_event_tenants`)."""
    conn.info.setdefault(EVENT_TENANTS, set()).update(e.tenant_id for e in items)
    return [(e.tenant_id, e.sequence, e.type, e.account_id, e.voucher_id, e.hold_id, _sorted_json(e.payload),
             e.created_us) for e in items]


def list_events(conn: Connection, tenant_id: str, *, after_sequence: int, limit: int) -> list[Event]:
    """Events in sequence order, each with its whole payload: a `ledger.entry.posted` row keeps only what
    the journal does not, and its payload is rebuilt here from the voucher (see `domain.posted_events`)."""
    rows = conn.execute(select(events).where(events.c.tenant_id == tenant_id,
                                             events.c.sequence > after_sequence)
                        .order_by(events.c.sequence).limit(limit)).all()
    found = [Event(r.tenant_id, r.sequence, r.type, json.loads(r.payload), r.created_us, r.account_id,
                   r.voucher_id, r.hold_id) for r in rows]
    slim = [e for e in found if e.type == POSTED and not is_whole(e.payload)]
    if not slim:
        return found
    posted = {v.id: v for v in journal_repo.get_vouchers(conn, tenant_id, [e.voucher_id for e in slim])}
    sides = accounts_repo.normal_sides(conn, {ln.account_id for v in posted.values() for ln in v.lines})
    whole = {e.sequence: posted_payload(posted[e.voucher_id], sides, e.payload) for e in slim}
    return [replace(e, payload=whole[e.sequence]) if e.sequence in whole else e for e in found]


@dataclass(slots=True)
class IdempotencyRecord:
    tenant_id: str
    request_id: str
    operation: str
    fingerprint: str
    body: dict
    result: dict
    created_us: int
    body_json: str = ""  # `body` as canonical JSON when the caller has it already (written as it is)
    actor: str = ""  # who asked; written, never read back by the service (it is evidence, not state)


RECORD_COLUMNS = ("tenant_id", "request_id", "operation", "fingerprint", "body", "result", "created_us")
INSERTED_RECORD_COLUMNS = (*RECORD_COLUMNS, "actor")


def to_record(row: Sequence) -> IdempotencyRecord:
    """A record from its `RECORD_COLUMNS`, in that order."""
    tenant_id, request_id, operation, fingerprint, body, result, created_us = row
    return IdempotencyRecord(tenant_id, request_id, operation, digest_text(fingerprint), json.loads(unpack(body)),
                             json.loads(unpack(result)), created_us)


def request_ids_by_tenant(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(tenant, request_id) keys as each tenant's distinct request ids, both sorted; ids no stored text can
    match are left out."""
    by_tenant: dict[str, set[str]] = defaultdict(set)
    for tenant_id, request_id in keys:
        if matchable(request_id):
            by_tenant[tenant_id].add(request_id)
    return {tenant_id: sorted(ids) for tenant_id, ids in sorted(by_tenant.items())}


def load_records(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], IdempotencyRecord]:
    found = {}
    dialect = conn.dialect.name
    for tenant_id, request_ids in request_ids_by_tenant(keys).items():
        rows = conn.execute(_records_of(dialect), {"tenant_id": tenant_id,
                                                   "keys": bulk.keys_value(dialect, request_ids)})
        found.update({(r.tenant_id, r.request_id): to_record(r) for r in rows})
    return found


@cache
def _records_of(dialect: str) -> Select:
    return (select(*(idempotency.c[name] for name in RECORD_COLUMNS))
            .where(idempotency.c.tenant_id == bindparam("tenant_id"),
                   bulk.one_of(dialect, idempotency.c.request_id, "keys")))


def insert_records(conn: Connection, records: Sequence[IdempotencyRecord]) -> None:
    bulk.insert_rows(conn, idempotency, INSERTED_RECORD_COLUMNS, record_rows(records))


def record_rows(records: Iterable[IdempotencyRecord]) -> list[tuple]:
    """Each record's `INSERTED_RECORD_COLUMNS`, in that order."""
    return [(r.tenant_id, r.request_id, r.operation, digest_bytes(r.fingerprint),
             pack(r.body_json or _sorted_json(r.body)), pack(_sorted_json(r.result)), r.created_us, r.actor)
            for r in records]


def load_caps(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """How much of each (tenant, cap key) is used; absent keys are unused."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    query = select(flow_caps).where(tuple_(flow_caps.c.tenant_id, flow_caps.c.cap_key).in_(keys))
    return {(r.tenant_id, r.cap_key): r.used for r in conn.execute(query)}


def save_caps(conn: Connection, created: dict[tuple[str, str], tuple[int, int]],
              changed: dict[tuple[str, str], int]) -> None:
    """`created`: key -> (used, limit) for new rows; `changed`: key -> used for existing rows."""
    if created:
        conn.execute(insert(flow_caps), [{"tenant_id": t, "cap_key": k, "used": used, "cap_limit": limit}
                                         for (t, k), (used, limit) in sorted(created.items())])
    if changed:
        conn.execute(update(flow_caps).where(flow_caps.c.tenant_id == bindparam("c_tenant"),
                                             flow_caps.c.cap_key == bindparam("c_key")),
                     [{"c_tenant": t, "c_key": k, "used": used} for (t, k), used in sorted(changed.items())])


def take_event_tenants(conn: Connection) -> set[str]:
    """The tenants this transaction wrote events for (and forgets them: the connection is pooled)."""
    return conn.info.pop(EVENT_TENANTS, None) or set()


def notify_events(conn: Connection, tenant_ids: set[str]) -> None:
    """On PostgreSQL, wakes other processes' streams: NOTIFY is delivered at commit, in commit order."""
    if conn.dialect.name == "postgresql":
        for tenant_id in sorted(tenant_ids):
            driver_execute(conn, "SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, tenant_id))
