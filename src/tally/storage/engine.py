"""Engines for the two supported databases and the way each begins a write transaction.

SQLite: pysqlite's own transaction handling is switched off and writers begin with BEGIN IMMEDIATE, as
the SQLAlchemy SQLite dialect notes advise; WAL lets readers run beside the one writer.
PostgreSQL: write transactions are SERIALIZABLE and first take `write_gate` in EXCLUSIVE mode. LOCK
TABLE does not fix the snapshot, so a writer that waited for the gate still sees everything committed
before it: writers queue instead of failing each other with serialization errors, and the per-tenant
sequence follows commit order. Reads run in READ ONLY REPEATABLE READ snapshots. Every transaction then
sets its tenant scope (`tally.tenants`, transaction-local), which the row-level security policies read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

SQLITE_BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Engines:
    write: Engine
    read: Engine
    dialect: str  # "sqlite" or "postgresql"

    def dispose(self) -> None:
        self.write.dispose()
        self.read.dispose()


# Weakened write isolation for the reliability suite's control run only (TALLY_UNSAFE_ISOLATION): the
# writers run at this level and take neither the gate nor row locks, so the suite can show its checker
# catches what goes wrong. Never set in production.
UNSAFE_ISOLATION_LEVELS = {"repeatable_read": "REPEATABLE READ", "read_committed": "READ COMMITTED"}
_LOCKING = "tally_locking"


def make_engines(url: str, *, pool_size: int = 8, unsafe_isolation: str = "") -> Engines:
    dialect = make_url(url).get_backend_name()
    if dialect == "sqlite":
        return Engines(_sqlite_engine(url, "BEGIN IMMEDIATE"), _sqlite_engine(url, "BEGIN"), dialect)
    if dialect == "postgresql":
        level = UNSAFE_ISOLATION_LEVELS[unsafe_isolation] if unsafe_isolation else "SERIALIZABLE"
        # No ping before each write transaction (a round trip per batch): a connection found dead fails
        # its transaction, is dropped from the pool, and the unit of work retries on a fresh one.
        write = create_engine(url, isolation_level=level, pool_size=pool_size, max_overflow=4)
        event.listen(write, "before_cursor_execute", _send_deferred_first)
        event.listen(write, "checkin", _forget_deferred)
        write = write.execution_options(**{_LOCKING: not unsafe_isolation})
        read = create_engine(url, isolation_level="REPEATABLE READ", pool_size=pool_size, max_overflow=8,
                             pool_pre_ping=True).execution_options(postgresql_readonly=True)
        return Engines(write, read, dialect)
    raise ValueError(f"unsupported database {dialect!r}: use sqlite or postgresql")


def _sqlite_engine(url: str, begin: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged voucher survives power loss
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def locking(conn: Connection) -> bool:
    """Whether writers lock: always, but in the reliability suite's weakened control run."""
    return conn.get_execution_options().get(_LOCKING, True)


def defer_write_gate(conn: Connection) -> None:
    """On PostgreSQL, sent with the transaction's first statement (see `defer`)."""
    if conn.dialect.name == "postgresql" and locking(conn):
        defer(conn, "LOCK TABLE write_gate IN EXCLUSIVE MODE")


# Connection.info key: statements waiting to go out ahead of the transaction's next one.
_DEFERRED = "tally.deferred"


def defer(conn: Connection, sql: str, params: Sequence[object] = ()) -> None:
    """PostgreSQL: sends a statement whose answer nobody reads in the same round trip as the transaction's
    next statement, ahead of it, whichever way that one goes (`driver_execute`, `fetch_together`,
    `pipelined`, or SQLAlchemy on the write engine). A write transaction thus takes the gate, sets its scope
    and reads what it needs in one round trip; under load each round trip also costs the writer thread a
    wait for the GIL."""
    conn.info.setdefault(_DEFERRED, []).append((sql, params))


def _forget_deferred(_dbapi_connection, record) -> None:
    """On return to the pool: a transaction that ended before its first statement leaves nothing behind
    for the next one (which may be an audit append, which must not take the gate)."""
    record.info.pop(_DEFERRED, None)


def _send_deferred(conn: Connection) -> None:
    for sql, params in conn.info.pop(_DEFERRED, ()):
        conn.connection.driver_connection.execute(sql, params)


def _send_deferred_first(conn: Connection, *_args) -> None:
    """Before SQLAlchemy sends a statement on the write engine: the deferred ones, in one round trip."""
    if conn.info.get(_DEFERRED):
        with pipelined(conn):  # raises SQLAlchemy's errors itself: event hooks are not wrapped
            pass


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, the statements run inside are sent without waiting for each one's answer (libpq's
    pipeline mode): the server works through them while Python goes on. SQLAlchemy may only write inside:
    it reads a result's columns as soon as it has sent the query, before the rows have come back (reads go
    through `fetch_together`). Leaving waits for every answer; a statement that failed raises there as a
    SQLAlchemy error, as it would have when sent, so the unit of work retries it when it may."""
    if conn.dialect.name != "postgresql":
        yield
        return
    driver = conn.connection.driver_connection
    try:
        with driver.pipeline() as pipeline:
            _send_deferred(conn)
            yield
            pipeline.sync()
    except psycopg.Error as error:
        raise _translated(conn, error) from error


def driver_execute(conn: Connection, sql: str, params: Sequence[object] = ()) -> None:
    """PostgreSQL: runs a statement whose rows nobody reads through the driver itself. SQLAlchemy's
    execution costs about as much Python time again as psycopg's, and the writer runs a dozen statements per
    transaction; errors are still SQLAlchemy's. Inside `pipelined` a failure raises when the block ends."""
    if conn.info.get(_DEFERRED):
        with pipelined(conn):
            conn.connection.driver_connection.execute(sql, params)
        return
    try:
        conn.connection.driver_connection.execute(sql, params)
    except psycopg.Error as error:
        raise _translated(conn, error) from error


def fetch_together(conn: Connection, queries: Sequence[tuple[str, Sequence[object]]]) -> list[list[tuple]]:
    """PostgreSQL: runs the queries in one round trip (pipeline mode, through the driver) and returns the
    rows of each, in order. A failure raises as a SQLAlchemy error, as in `pipelined`."""
    driver = conn.connection.driver_connection
    cursors = []
    with pipelined(conn):
        for sql, params in queries:
            cursor = driver.cursor()
            # Never prepared: a prepared statement may get a generic plan, which cannot know how many keys
            # an array holds and may scan a whole table for a handful of them.
            cursor.execute(sql, params, prepare=False)
            cursors.append(cursor)
    results = []
    for cursor in cursors:
        results.append(cursor.fetchall())
        cursor.close()
    return results


def _translated(conn: Connection, error: psycopg.Error) -> DBAPIError:
    """The SQLAlchemy error a driver error would have been: a lost connection is dropped from the pool and
    said to be, so the unit of work retries the transaction on a fresh one."""
    driver = conn.connection.driver_connection
    lost = conn.dialect.is_disconnect(error, driver, None)
    if lost:
        conn.invalidate(error)
    return DBAPIError.instance(None, None, error, psycopg.Error, connection_invalidated=lost)


TENANT_SCOPE_SETTING = "tally.tenants"


_SET_SCOPE = "SELECT set_config(%s, %s, true)"


def set_tenant_scope(conn: Connection, value: str) -> None:
    """On PostgreSQL, the tenants this transaction may see and write ("*": all), until it ends. A SELECT,
    so it takes the snapshot: in a write transaction it must come after the gate."""
    if conn.dialect.name == "postgresql":
        driver_execute(conn, _SET_SCOPE, (TENANT_SCOPE_SETTING, value))


def defer_tenant_scope(conn: Connection, value: str) -> None:
    """`set_tenant_scope`, sent with the transaction's next statement (see `defer`)."""
    if conn.dialect.name == "postgresql":
        defer(conn, _SET_SCOPE, (TENANT_SCOPE_SETTING, value))
