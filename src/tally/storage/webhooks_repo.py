"""Webhook subscriptions, their leases and cursors, and the delivery records. Functions take a connection
and never commit; every query names its tenant."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, or_, select, update

from tally.domain.webhooks import Delivery, Trigger, Webhook, WebhookSpec, WebhookStatus
from tally.storage.tables import accounts, events, ledger_heads, matchable, webhook_deliveries, webhooks


@dataclass(frozen=True)
class Secrets:
    """The encrypted secrets of one subscription, as stored."""

    current: str
    previous: str
    previous_expires_us: int


def _hook(row) -> Webhook:
    return Webhook(
        tenant_id=row.tenant_id, id=row.id, url=row.url, event_types=tuple(json.loads(row.event_types)),
        account_ids=tuple(json.loads(row.account_ids)), description=row.description,
        status=WebhookStatus(row.status), status_reason=row.status_reason, cursor=row.cursor,
        failures=row.failures, retry_at_us=row.retry_at_us,
        previous_secret_expires_us=row.previous_secret_expires_us, lease_owner=row.lease_owner,
        lease_expires_us=row.lease_expires_us, created_us=row.created_us, updated_us=row.updated_us)


def _delivery(row) -> Delivery:
    return Delivery(tenant_id=row.tenant_id, id=row.id, webhook_id=row.webhook_id, sequence=row.sequence,
                    event_type=row.event_type, attempt=row.attempt, trigger=Trigger(row.trigger),
                    delivered=bool(row.delivered), response_code=row.response_code, latency_us=row.latency_us,
                    error=row.error, created_us=row.created_us)


def _spec_columns(spec: WebhookSpec) -> dict:
    return {"url": spec.url, "description": spec.description, "event_types": json.dumps(list(spec.event_types)),
            "account_ids": json.dumps(list(spec.account_ids))}


# ------------------------------------------------------------------------------------------ subscriptions


def insert_webhook(conn: Connection, tenant_id: str, webhook_id: str, spec: WebhookSpec, secret: str, cursor: int,
                   request_id: str, fingerprint: str, now_us: int) -> None:
    conn.execute(insert(webhooks).values(
        id=webhook_id, tenant_id=tenant_id, **_spec_columns(spec), status=WebhookStatus.ACTIVE.value,
        status_reason="", secret=secret, previous_secret="", previous_secret_expires_us=0, cursor=cursor,
        failures=0, retry_at_us=0, lease_owner="", lease_expires_us=0, request_id=request_id,
        fingerprint=fingerprint, last_request_id="", last_fingerprint="", created_us=now_us, updated_us=now_us))


def get_webhook(conn: Connection, tenant_id: str, webhook_id: str) -> Webhook | None:
    if not matchable(webhook_id):
        return None
    row = conn.execute(select(webhooks).where(webhooks.c.tenant_id == tenant_id, webhooks.c.id == webhook_id)).first()
    return _hook(row) if row else None


def by_request(conn: Connection, tenant_id: str, request_id: str) -> tuple[Webhook, str] | None:
    """The subscription a create request made, with that request's fingerprint."""
    row = conn.execute(select(webhooks).where(webhooks.c.tenant_id == tenant_id,
                                              webhooks.c.request_id == request_id)).first()
    return (_hook(row), row.fingerprint) if row else None


def last_request(conn: Connection, tenant_id: str, webhook_id: str) -> tuple[str, str]:
    """(request id, fingerprint) of the latest change to a subscription."""
    if not matchable(webhook_id):
        return "", ""
    row = conn.execute(select(webhooks.c.last_request_id, webhooks.c.last_fingerprint).where(
        webhooks.c.tenant_id == tenant_id, webhooks.c.id == webhook_id)).first()
    return (row.last_request_id, row.last_fingerprint) if row else ("", "")


def secrets(conn: Connection, tenant_id: str, webhook_id: str) -> Secrets:
    row = conn.execute(select(webhooks.c.secret, webhooks.c.previous_secret, webhooks.c.previous_secret_expires_us)
                       .where(webhooks.c.tenant_id == tenant_id, webhooks.c.id == webhook_id)).one()
    return Secrets(row.secret, row.previous_secret, row.previous_secret_expires_us)


def active_tenants(conn: Connection) -> list[str]:
    """Tenants with an active subscription (SQLite; on PostgreSQL: system_repo.webhook_tenants)."""
    return list(conn.execute(select(webhooks.c.tenant_id).where(webhooks.c.status == WebhookStatus.ACTIVE.value)
                             .distinct().order_by(webhooks.c.tenant_id)).scalars())


def count_live(conn: Connection, tenant_id: str) -> int:
    """Subscriptions that count against the tenant's limit: all but the deleted."""
    return conn.execute(select(func.count()).select_from(webhooks).where(
        webhooks.c.tenant_id == tenant_id, webhooks.c.status != WebhookStatus.DELETED.value)).scalar_one()


def list_webhooks(conn: Connection, tenant_id: str, after_id: str, limit: int) -> list[Webhook]:
    rows = conn.execute(select(webhooks).where(
        webhooks.c.tenant_id == tenant_id, webhooks.c.status != WebhookStatus.DELETED.value,
        webhooks.c.id > after_id).order_by(webhooks.c.id).limit(limit))
    return [_hook(r) for r in rows]


def change(conn: Connection, tenant_id: str, webhook_id: str, request_id: str, fingerprint: str, now_us: int,
           **values: object) -> None:
    """Sets columns of one subscription and remembers the request that did it."""
    conn.execute(update(webhooks).where(webhooks.c.tenant_id == tenant_id, webhooks.c.id == webhook_id).values(
        **values, last_request_id=request_id, last_fingerprint=fingerprint, updated_us=now_us))


def spec_values(spec: WebhookSpec) -> dict:
    return _spec_columns(spec)


# ------------------------------------------------------------------------------------------ leases


def claimable(conn: Connection, tenant_ids: Collection[str], owner: str, now_us: int, limit: int) -> list[Webhook]:
    """Active subscriptions of these tenants that are this owner's or nobody's (lease expired)."""
    rows = conn.execute(select(webhooks).where(
        webhooks.c.tenant_id.in_(sorted(tenant_ids)), webhooks.c.status == WebhookStatus.ACTIVE.value,
        or_(webhooks.c.lease_owner == owner, webhooks.c.lease_expires_us < now_us))
        .order_by((webhooks.c.lease_owner == owner).desc(), webhooks.c.id).limit(limit))  # its own first
    return [_hook(r) for r in rows]


def take_lease(conn: Connection, hook: Webhook, owner: str, now_us: int, lease_us: int) -> bool:
    """Takes or renews the lease, unless another owner took it meanwhile (compare and set)."""
    result = conn.execute(update(webhooks).where(
        webhooks.c.tenant_id == hook.tenant_id, webhooks.c.id == hook.id,
        webhooks.c.status == WebhookStatus.ACTIVE.value,
        or_(webhooks.c.lease_owner == owner, webhooks.c.lease_expires_us < now_us))
        .values(lease_owner=owner, lease_expires_us=now_us + lease_us))
    return result.rowcount == 1


def release_lease(conn: Connection, tenant_id: str, webhook_id: str, owner: str) -> None:
    conn.execute(update(webhooks).where(webhooks.c.tenant_id == tenant_id, webhooks.c.id == webhook_id,
                                        webhooks.c.lease_owner == owner).values(lease_owner="", lease_expires_us=0))


def advance(conn: Connection, hook: Webhook, owner: str, now_us: int, **values: object) -> bool:
    """Moves a subscription's delivery state on from what `hook` read, only while `owner` holds the lease and
    nobody moved the cursor meanwhile (a replay): False tells the deliverer to read the row again."""
    result = conn.execute(update(webhooks).where(
        webhooks.c.tenant_id == hook.tenant_id, webhooks.c.id == hook.id, webhooks.c.lease_owner == owner,
        webhooks.c.lease_expires_us >= now_us, webhooks.c.cursor == hook.cursor,
        webhooks.c.status == WebhookStatus.ACTIVE.value).values(**values))
    return result.rowcount == 1


# ------------------------------------------------------------------------------------------ deliveries


def insert_delivery(conn: Connection, d: Delivery) -> None:
    conn.execute(insert(webhook_deliveries).values(
        id=d.id, tenant_id=d.tenant_id, webhook_id=d.webhook_id, sequence=d.sequence, event_type=d.event_type,
        attempt=d.attempt, trigger=d.trigger.value, delivered=int(d.delivered), response_code=d.response_code,
        latency_us=d.latency_us, error=d.error, created_us=d.created_us))


def list_deliveries(conn: Connection, tenant_id: str, webhook_id: str, after_id: str, limit: int,
                    sequence: int = 0) -> list[Delivery]:
    query = select(webhook_deliveries).where(
        webhook_deliveries.c.tenant_id == tenant_id, webhook_deliveries.c.webhook_id == webhook_id,
        webhook_deliveries.c.id > after_id)
    if sequence:
        query = query.where(webhook_deliveries.c.sequence == sequence)
    return [_delivery(r) for r in conn.execute(query.order_by(webhook_deliveries.c.id).limit(limit))]


def known_accounts(conn: Connection, tenant_id: str, account_ids: Collection[str]) -> set[str]:
    """Those of `account_ids` that are the tenant's accounts."""
    wanted = sorted(a for a in account_ids if matchable(a))
    if not wanted:
        return set()
    return set(conn.execute(select(accounts.c.id).where(accounts.c.tenant_id == tenant_id,
                                                        accounts.c.id.in_(wanted))).scalars())


# ------------------------------------------------------------------------------------------ events


def event_head(conn: Connection, tenant_id: str) -> int:
    head = conn.execute(select(ledger_heads.c.event_sequence).where(ledger_heads.c.tenant_id == tenant_id)).scalar()
    return head or 0


def sequence_before(conn: Connection, tenant_id: str, time_us: int) -> int:
    """The last event sequence stamped before `time_us` (0: none): where a replay "from a time" resumes. It
    reads the tenant's events' times (no index on them): replays are rare operator actions."""
    found = conn.execute(select(func.max(events.c.sequence)).where(events.c.tenant_id == tenant_id,
                                                                   events.c.created_us < time_us)).scalar()
    return found or 0
