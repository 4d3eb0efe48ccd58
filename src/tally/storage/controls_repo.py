"""Accounts' spending controls (one JSON row per account) and their spend counters. Takes a connection and
never commits: the batch writer reads and advances counters inside its own write transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, bindparam, func, insert, select, update

from tally.domain.controls import Controls, CounterKey, Sweep, SweepKind, Velocity, Window
from tally.storage.tables import account_controls, matchable, spend_counters

TenantCounter = tuple[str, CounterKey]  # (tenant, counter)


def controls_json(controls: Controls) -> str:
    if controls.empty:
        return "{}"
    data = {
        "per_voucher_max": controls.per_voucher_max,
        "velocity": [_velocity_json(v) for v in controls.velocity],
        "flows": list(controls.flows),
        "counterparties": list(controls.counterparties),
        "team_velocity": [_velocity_json(v) for v in controls.team_velocity],
        "sweeps": [{"kind": s.kind.value, "trigger": s.trigger, "target": s.target,
                    "counter_account_id": s.counter_account_id} for s in controls.sweeps],
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def controls_from(text: str) -> Controls:
    data = json.loads(text)
    if not data:
        return Controls()
    return Controls(
        per_voucher_max=data["per_voucher_max"],
        velocity=tuple(_velocity_from(v) for v in data["velocity"]),
        flows=tuple(data["flows"]), counterparties=tuple(data["counterparties"]),
        team_velocity=tuple(_velocity_from(v) for v in data["team_velocity"]),
        sweeps=tuple(Sweep(SweepKind(s["kind"]), s["trigger"], s["target"], s["counter_account_id"])
                     for s in data["sweeps"]))


def _velocity_json(v: Velocity) -> dict:
    return {"window": v.window.value, "limit": v.limit, "sliding": v.sliding}


def _velocity_from(data: dict) -> Velocity:
    return Velocity(Window(data["window"]), data["limit"], data["sliding"])


def tenant_controls(conn: Connection, tenant_ids: Iterable[str]) -> dict[str, dict[str, Controls]]:
    """Every controlled account of the tenants: tenant -> account id -> its controls (cleared ones left out)."""
    query = select(account_controls.c.tenant_id, account_controls.c.account_id, account_controls.c.controls).where(
        account_controls.c.tenant_id.in_(sorted(tenant_ids)), account_controls.c.controls != "{}")
    found: dict[str, dict[str, Controls]] = {}
    for tenant_id, account_id, text in conn.execute(query):
        found.setdefault(tenant_id, {})[account_id] = controls_from(text)
    return found


def count_controlled(conn: Connection, tenant_id: str) -> int:
    return conn.execute(select(func.count()).select_from(account_controls).where(
        account_controls.c.tenant_id == tenant_id, account_controls.c.controls != "{}")).scalar_one()


def get_controls(conn: Connection, tenant_id: str, account_id: str) -> tuple[Controls, str, int] | None:
    """An account's controls with the request that last set them and when, or None if never set."""
    if not matchable(account_id):
        return None
    row = conn.execute(select(account_controls.c.controls, account_controls.c.request_id,
                              account_controls.c.updated_us).where(
        account_controls.c.tenant_id == tenant_id, account_controls.c.account_id == account_id)).first()
    return None if row is None else (controls_from(row.controls), row.request_id, row.updated_us)


def save_controls(conn: Connection, tenant_id: str, account_id: str, controls: Controls, request_id: str,
                  now_us: int, exists: bool) -> None:
    values = {"controls": controls_json(controls), "request_id": request_id, "updated_us": now_us}
    if exists:
        conn.execute(update(account_controls).where(account_controls.c.tenant_id == tenant_id,
                                                    account_controls.c.account_id == account_id).values(**values))
    else:
        conn.execute(insert(account_controls).values(tenant_id=tenant_id, account_id=account_id, **values))


def load_counters(conn: Connection, tenant_id: str, account_ids: Iterable[str],
                  since_us: int) -> dict[TenantCounter, int]:
    """The spend counters of the accounts whose buckets start at or after `since_us`."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    c = spend_counters.c
    query = select(c.account_id, c.scope, c.granularity, c.bucket_us, c.spent).where(
        c.tenant_id == tenant_id, c.account_id.in_(ids), c.bucket_us >= since_us)
    return {(tenant_id, (r.account_id, r.scope, r.granularity, r.bucket_us)): r.spent for r in conn.execute(query)}


def save_counters(conn: Connection, created: Mapping[TenantCounter, int], changed: Mapping[TenantCounter, int]) -> None:
    """`created`: counters with no row yet; `changed`: rows to set to a new total."""
    if created:
        conn.execute(insert(spend_counters), [
            {"tenant_id": t, "account_id": a, "scope": s, "granularity": g, "bucket_us": b, "spent": spent}
            for (t, (a, s, g, b)), spent in sorted(created.items())])
    if changed:
        c = spend_counters.c
        conn.execute(update(spend_counters).where(
            c.tenant_id == bindparam("k_tenant"), c.account_id == bindparam("k_account"),
            c.scope == bindparam("k_scope"), c.granularity == bindparam("k_gran"),
            c.bucket_us == bindparam("k_bucket")).values(spent=bindparam("k_spent")), [
            {"k_tenant": t, "k_account": a, "k_scope": s, "k_gran": g, "k_bucket": b, "k_spent": spent}
            for (t, (a, s, g, b)), spent in sorted(changed.items())])


def window_counters(conn: Connection, tenant_id: str, keys: Iterable[CounterKey]) -> dict[CounterKey, int]:
    """The named counters of one tenant (for reading an account's spend so far)."""
    keys = list(keys)
    if not keys:
        return {}
    found = load_counters(conn, tenant_id, {k[0] for k in keys}, min(k[3] for k in keys))
    wanted = set(keys)
    return {key: spent for (_, key), spent in found.items() if key in wanted}
