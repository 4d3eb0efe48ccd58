"""Tenant epochs (migration 0021): every write transaction of a tenant moves its epoch, so a batch writer that
remembers a tenant's ledger as its own last commit left it can tell, inside the transaction that relies on
that, whether anybody wrote since.

The unit of work moves the epochs of its tenants at the end of every write transaction that wrote anything
(`bump`, in the commit round trip). A batch that starts from what its writer remembers checks first that
the epochs are those its writer's last commit left (`check`); the check fails the whole transaction with
STALE_SQLSTATE when one moved. Both run under the tenants' write gates (on SQLite, the database's one write
lock, taken by BEGIN IMMEDIATE), so nothing else writes between the check and the commit.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, update
from sqlalchemy.exc import DBAPIError

from tally.storage import ledger_repo
from tally.storage.bulk import text_array
from tally.storage.engine import defer, driver_execute
from tally.storage.tables import ledger_heads

STALE_SQLSTATE = "TL409"  # raised by tally_check_epochs (migration 0021)
_CHECK = "SELECT tally_check_epochs(%s::text[], %s::bigint[])"
# Only a transaction that wrote (has a transaction id) moves them: one that wrote nothing changed nothing.
_WROTE = "pg_current_xact_id_if_assigned() IS NOT NULL"
_BUMP = f"UPDATE ledger_heads SET epoch = epoch + 1 WHERE tenant_id = ANY(%s::text[]) AND {_WROTE}"
_BUMP_ALL = f"UPDATE ledger_heads SET epoch = epoch + 1 WHERE {_WROTE}"
_CHANGES_AT_BEGIN = "tally_changes_at_begin"


class StaleEpochs(Exception):
    """SQLite: a tenant was written since this writer last committed (PostgreSQL raises STALE_SQLSTATE)."""


def check(conn: Connection, epochs: dict[str, int]) -> None:
    """Fails the transaction unless the tenants' epochs are these; on PostgreSQL sent ahead of its next
    statement (`defer`), on SQLite (no round trip to save) at once."""
    tenants = sorted(epochs)
    if conn.dialect.name == "postgresql":
        defer(conn, _CHECK, (text_array(tenants), "{" + ",".join(str(epochs[t]) for t in tenants) + "}"))
        return
    if ledger_repo.load_heads_with_epochs(conn, tenants)[1] != epochs:
        raise StaleEpochs("a tenant was written since this writer last committed")


def begun(conn: Connection) -> None:
    """SQLite: notes where the connection's count of changed rows stands as a write transaction begins, so
    that `bump` can tell whether it wrote (PostgreSQL asks for the transaction's id instead)."""
    if conn.dialect.name == "sqlite":
        conn.info[_CHANGES_AT_BEGIN] = conn.connection.driver_connection.total_changes


def bump(conn: Connection, tenant_ids: Collection[str] | None) -> None:
    """Moves the epochs of the transaction's tenants (None: every tenant's) if it wrote anything."""
    if conn.dialect.name != "postgresql":
        _bump_sqlite(conn, tenant_ids)
    elif tenant_ids is None:
        driver_execute(conn, _BUMP_ALL)
    elif tenant_ids:
        driver_execute(conn, _BUMP, (text_array(sorted(tenant_ids)),))


def _bump_sqlite(conn: Connection, tenant_ids: Collection[str] | None) -> None:
    if conn.connection.driver_connection.total_changes == conn.info.pop(_CHANGES_AT_BEGIN):
        return  # wrote nothing
    moved = update(ledger_heads).values(epoch=ledger_heads.c.epoch + 1)
    if tenant_ids is not None:
        moved = moved.where(ledger_heads.c.tenant_id.in_(sorted(tenant_ids)))
    conn.execute(moved)


def is_stale(exc: BaseException) -> bool:
    """Whether a write failed because an epoch it checked had moved."""
    if isinstance(exc, StaleEpochs):
        return True
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) == STALE_SQLSTATE
