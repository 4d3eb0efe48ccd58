"""Tenant epochs (migration 0021): on PostgreSQL every write transaction of a tenant moves its epoch, so a
batch writer that remembers a tenant's ledger as its own last commit left it can tell, inside the
transaction that relies on that, whether anybody wrote since.

The unit of work moves the epochs of its tenants at the end of every write transaction that wrote anything
(`bump`, in the commit round trip). A batch that starts from what its writer remembers checks first that
the epochs are those its writer's last commit left (`check`); the check fails the whole transaction with
STALE_SQLSTATE when one moved. Both run under the tenants' write gates, so nothing else writes between the
check and the commit. SQLite (one embedded writer, nothing remembered) never moves them.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from tally.storage.bulk import text_array
from tally.storage.engine import defer, driver_execute

STALE_SQLSTATE = "TL409"  # raised by tally_check_epochs (migration 0021)
_CHECK = "SELECT tally_check_epochs(%s::text[], %s::bigint[])"
# Only a transaction that wrote (has a transaction id) moves them: one that wrote nothing changed nothing.
_WROTE = "pg_current_xact_id_if_assigned() IS NOT NULL"
_BUMP = f"UPDATE ledger_heads SET epoch = epoch + 1 WHERE tenant_id = ANY(%s::text[]) AND {_WROTE}"
_BUMP_ALL = f"UPDATE ledger_heads SET epoch = epoch + 1 WHERE {_WROTE}"


def check(conn: Connection, epochs: dict[str, int]) -> None:
    """Fails the transaction unless the tenants' epochs are these; sent ahead of its next statement (`defer`)."""
    tenants = sorted(epochs)
    defer(conn, _CHECK, (text_array(tenants), "{" + ",".join(str(epochs[t]) for t in tenants) + "}"))


def bump(conn: Connection, tenant_ids: Collection[str] | None) -> None:
    """Moves the epochs of the transaction's tenants (None: every tenant's) if it wrote anything."""
    if conn.dialect.name != "postgresql":
        return
    if tenant_ids is None:
        driver_execute(conn, _BUMP_ALL)
    elif tenant_ids:
        driver_execute(conn, _BUMP, (text_array(sorted(tenant_ids)),))


def is_stale(exc: BaseException) -> bool:
    """Whether a write failed because an epoch it checked had moved."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) == STALE_SQLSTATE
