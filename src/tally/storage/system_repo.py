"""The system path: the few reads that cross tenants (API-key verification, counting and listing tenants,
the due holds, the tenants with webhooks to deliver). On PostgreSQL each is a SECURITY DEFINER function of
migration 0010 (0013 for webhooks), the service role's
only way across tenants: row security shows it no tenant under '*'. On SQLite (no roles, no row security)
the same query runs directly. Run them in a `Scope.SYSTEM` transaction (on SQLite it changes nothing; the
functions set '*' for their one query and put the caller's scope back). Repository functions never commit."""

from __future__ import annotations

from sqlalchemy import Connection, text

from tally.storage import auth_repo, holds_repo, webhooks_repo
from tally.storage.auth_repo import KeyRecord

_KEY = text("SELECT * FROM tally_api_key(:key_id)")
_TENANT_COUNT = text("SELECT * FROM tally_tenant_count()")
_TENANT_IDS = text("SELECT * FROM tally_tenant_ids()")
_DUE_HOLDS = text("SELECT tenant_id, hold_id FROM tally_due_holds(:now_us, :limit)")
_WEBHOOK_TENANTS = text("SELECT * FROM tally_webhook_tenants()")


def _definer(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def api_key(conn: Connection, key_id: str) -> KeyRecord | None:
    """The key with this id, whatever its tenant."""
    if not _definer(conn):
        return auth_repo.get_key(conn, key_id)
    row = conn.execute(_KEY, {"key_id": key_id}).first()
    return KeyRecord(**row._mapping) if row else None


def tenant_count(conn: Connection) -> int:
    if not _definer(conn):
        return auth_repo.count_tenants(conn)
    return conn.execute(_TENANT_COUNT).scalar_one()


def tenant_ids(conn: Connection) -> list[str]:
    """Every tenant's id, in order."""
    if not _definer(conn):
        return [tenant_id for tenant_id, _name, _created in auth_repo.list_tenants(conn)]
    return list(conn.execute(_TENANT_IDS).scalars())


def due_holds(conn: Connection, now_us: int, limit: int) -> list[tuple[str, str]]:
    """(tenant, hold id) of active holds whose expiry has passed, oldest expiry first."""
    if not _definer(conn):
        return holds_repo.due_holds(conn, now_us, limit)
    return [(tenant_id, hold_id) for tenant_id, hold_id in conn.execute(_DUE_HOLDS, {"now_us": now_us,
                                                                                    "limit": limit})]


def webhook_tenants(conn: Connection) -> list[str]:
    """The tenants that have an active webhook subscription, in order."""
    if not _definer(conn):
        return webhooks_repo.active_tenants(conn)
    return list(conn.execute(_WEBHOOK_TENANTS).scalars())
