"""Engines for the two supported databases and the way each begins a write transaction.

SQLite: pysqlite's own transaction handling is switched off and writers begin with BEGIN IMMEDIATE, as
the SQLAlchemy SQLite dialect notes advise; WAL lets readers run beside the one writer.
PostgreSQL: write transactions first take the gates of their tenants, then run at REPEATABLE READ
(serializable because of the gates: `_GATED_BEGIN`); writers without a gate run SERIALIZABLE. A gate is a
session-level advisory lock per tenant, taken in a transaction of its own just before the write's BEGIN
(`defer_write_gate`). The snapshot is taken after the wait, so a writer that waited for its tenant's gate
still sees everything committed before it: writers of one tenant queue instead of failing each other with
serialization errors, and the tenant's sequence follows commit order; writers of different tenants never
wait for each other. The driver runs in autocommit mode and a write sends its own BEGIN, with the gate and
the scope, ahead of its first statement. Reads run in READ ONLY REPEATABLE READ snapshots.
Every transaction then sets its tenant scope (`tally.tenants`, transaction-local), which the row-level
security policies read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import RootTransaction, make_url
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
        # Never prepared on the server (psycopg prepares a statement once it has run 5 times): a prepared
        # statement may switch to a generic plan, which cannot know how few keys an array holds (the batch
        # writer's opening reads, prepared, spent a median 7 ms per transaction in such plans).
        unprepared = {"prepare_threshold": None}
        # The driver never begins on its own (it would send BEGIN in a round trip of its own): the BEGIN
        # goes out with the transaction's first statement (`defer`), like the gate and the scope.
        write = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=pool_size, max_overflow=4,
                              connect_args=unprepared)
        event.listen(write, "begin", lambda conn: defer(conn, f"{_BEGIN} ISOLATION LEVEL {level}"))
        event.listen(write, "before_cursor_execute", _send_deferred_first)
        event.listen(write, "checkin", _release_gates)
        event.listen(write, "checkin", _forget_deferred)
        event.listen(write, "rollback", _forget_rolled_back)
        event.listen(write, "commit", _refuse_unsent)
        write = write.execution_options(**{_LOCKING: not unsafe_isolation})
        read = create_engine(url, isolation_level="REPEATABLE READ", pool_size=pool_size, max_overflow=8,
                             pool_pre_ping=True, connect_args=unprepared).execution_options(postgresql_readonly=True)
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


def locking(bind: Connection | Engine) -> bool:
    """Whether writers lock: always, but in the reliability suite's weakened control run."""
    return bind.get_execution_options().get(_LOCKING, True)


def defer_write_gate(conn: Connection, tenant_ids: Collection[str] | None) -> None:
    """On PostgreSQL, the gates of the transaction's tenants (None: every tenant), sent with its first
    statement (see `defer`) ahead of its BEGIN, in a transaction of their own: a lock statement is a SELECT,
    which would fix the transaction's snapshot before the wait. That transaction begins explicitly: a COMMIT
    ending the implicit one a multi-statement query opens would log a WARNING on the server every write.
    The locks are the session's: they outlive that COMMIT and are released with the write's own COMMIT
    (`commit`), or when the connection goes back to the pool after a failure (`_release_gates`).
    A tenant's writer shares the gate of every tenant, which a writer for all of them takes alone; keys are
    taken in order, so writers of overlapping tenants never deadlock."""
    if conn.dialect.name != "postgresql" or not locking(conn):
        return
    if tenant_ids is None:
        locks = [(_LOCK, (_ALL_TENANTS_KEY,))]
    else:
        keys = sorted({gate_key(tenant_id) for tenant_id in tenant_ids})
        locks = [(_LOCK_SHARED, (_ALL_TENANTS_KEY,)), *((_LOCK, (key,)) for key in keys)]
    deferred = conn.info.setdefault(_DEFERRED, [])
    if not deferred or not deferred[0][0].startswith(_BEGIN) or conn.info.get(_GATE_DEFERRED):
        raise RuntimeError("the write gate is taken before the transaction's first statement")
    deferred[0] = (_GATED_BEGIN, ())
    deferred[0:0] = [(_BEGIN, ()), *locks, ("COMMIT", ())]
    conn.info[_GATE_DEFERRED] = True


def gate_key(tenant_id: str) -> int:
    """A tenant's advisory lock key: 64 bits of a keyed hash, so keys of different tenants do not meet."""
    digest = hashlib.blake2b(tenant_id.encode(), digest_size=8, person=b"tally.gate").digest()
    return int.from_bytes(digest, "big", signed=True)


_ALL_TENANTS_KEY = gate_key("*")  # "*" is never a tenant id (uow.scope_setting refuses it)
# A gated write runs at REPEATABLE READ, and is still serializable: every transaction that writes a tenant's
# rows holds the tenant's gate from before its snapshot to after its commit, so the writers of one tenant
# run one after another, each seeing every earlier one whole; and a tenant's rows are only its own (row
# security), so writers of different tenants share nothing a serial order could tell apart. SERIALIZABLE
# added nothing to that but predicate locks, and those cost real conflicts: a table with one row per
# tenant (ledger_heads) fits in one page, and a page lock made two tenants' writers fail each other
# (tests/integration/test_tenants_side_by_side.py). Writers without a gate (`UnitOfWork.append`) stay
# SERIALIZABLE.
_GATED_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ"
_LOCK = "SELECT pg_advisory_lock(%s)"
_LOCK_SHARED = "SELECT pg_advisory_lock_shared(%s)"
_UNLOCK_ALL = "SELECT pg_advisory_unlock_all()"


# Connection.info keys: statements waiting to go out ahead of the transaction's next one, and whether
# `driver_execute` adds to them (`deferring`).
_DEFERRED = "tally.deferred"
_DEFERRING = "tally.deferring"
# The gate is among the deferred statements (`_GATE_DEFERRED`), or was sent and is held (`_GATED`).
_GATE_DEFERRED = "tally.gate_deferred"
_GATED = "tally.gated"
_BEGIN = "BEGIN"


def defer(conn: Connection, sql: str, params: Sequence[object] = ()) -> None:
    """PostgreSQL: sends a statement whose answer nobody reads in the same round trip as the transaction's
    next statement, ahead of it, whichever way that one goes (`driver_execute`, `fetch_together`,
    `pipelined`, SQLAlchemy on the write engine, or `commit`). A write transaction thus takes the gate, sets
    its scope and reads what it needs in one round trip; under load each round trip also costs the writer
    thread a wait for the GIL."""
    conn.info.setdefault(_DEFERRED, []).append((sql, params))


def _forget_deferred(_dbapi_connection, record) -> None:
    """On return to the pool: a transaction that ended before its first statement leaves nothing behind
    for the next one (which may be an audit append, which must not take the gate)."""
    _forget(record.info)


def _release_gates(dbapi_connection, record) -> None:
    """On return to the pool, after the rollback: gates a failed write still holds are released. Should that
    fail, the connection is closed, and the server releases a closed session's locks."""
    if record.info.pop(_GATED, False) and dbapi_connection is not None:
        try:
            dbapi_connection.execute(_UNLOCK_ALL)
        except psycopg.Error:
            dbapi_connection.close()


def _forget_rolled_back(conn: Connection) -> None:
    """A transaction rolled back before its deferred statements went out leaves none for the next one on
    the same connection. A lost connection left nothing to forget: its info went with it, and touching it
    would raise in the middle of the rollback, hiding the lost connection from the retry loop."""
    if not conn.invalidated:
        _forget(conn.info)


def _forget(info: dict) -> None:
    info.pop(_DEFERRED, None)
    info.pop(_DEFERRING, None)
    info.pop(_GATE_DEFERRED, None)


def _take_deferred(conn: Connection) -> list:
    """The deferred statements, about to be sent: a gate among them will be held from now on."""
    if conn.info.pop(_GATE_DEFERRED, False):
        conn.info[_GATED] = True
    return conn.info.pop(_DEFERRED, None) or []


def _refuse_unsent(conn: Connection) -> None:
    """Before a commit on the write engine: deferred writes go out with the COMMIT (`commit`), never
    silently stay behind while the rest of the transaction commits; the transaction is rolled back instead
    (SQLAlchemy would not roll it back after a failed commit). A transaction that sent nothing at all has
    only its BEGIN left: it never began, and there is nothing to commit."""
    deferred = conn.info.pop(_DEFERRED, None)
    if _begun_work(deferred):
        conn.connection.driver_connection.rollback()
        raise RuntimeError("commit with deferred statements unsent: commit through tally.storage.engine.commit")


def _begun_work(deferred: list | None) -> bool:
    """Whether deferred statements hold more than a lone BEGIN: a transaction that sent nothing never began."""
    return bool(deferred) and not (len(deferred) == 1 and deferred[0][0].startswith(_BEGIN))


def _driver(conn: Connection) -> psycopg.Connection:
    """The psycopg connection, for a statement of the transaction `conn` is in. The write engine's driver runs
    in autocommit mode: outside a transaction each statement would commit on its own, so that is refused."""
    if not conn.in_transaction():
        raise RuntimeError("a statement sent through the driver outside a transaction")
    return conn.connection.driver_connection


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
    driver = _driver(conn)
    try:
        with driver.pipeline() as pipeline:
            for sql, params in _take_deferred(conn):
                driver.execute(sql, params)
            yield
            pipeline.sync()
    except psycopg.Error as error:
        raise _translated(conn, error) from error


def driver_execute(conn: Connection, sql: str, params: Sequence[object] = ()) -> None:
    """PostgreSQL: runs a statement whose rows nobody reads through the driver itself. SQLAlchemy's
    execution costs about as much Python time again as psycopg's, and the writer runs a dozen statements per
    transaction; errors are still SQLAlchemy's. Inside `pipelined` a failure raises when the block ends;
    inside `deferring` the statement waits for the next one or the COMMIT."""
    if conn.info.get(_DEFERRING):
        defer(conn, sql, params)
        return
    if conn.info.get(_DEFERRED):
        with pipelined(conn):
            _driver(conn).execute(sql, params)
        return
    try:
        _driver(conn).execute(sql, params)
    except psycopg.Error as error:
        raise _translated(conn, error) from error


def fetch_together(conn: Connection, queries: Sequence[tuple[str, Sequence[object]]]) -> list[list[tuple]]:
    """PostgreSQL: runs the deferred statements and then the queries in one round trip, and returns the
    rows of each query, in order. A failure raises as a SQLAlchemy error, as in `pipelined`."""
    statements = [*_take_deferred(conn), *queries]
    return _in_one_query(conn, statements)[len(statements) - len(queries):]


@contextmanager
def deferring(conn: Connection) -> Iterator[None]:
    """PostgreSQL: the `driver_execute` statements inside are not sent but deferred (see `defer`), so they
    go out with the next statement or with the COMMIT (`commit`)."""
    conn.info[_DEFERRING] = True
    try:
        yield
    finally:
        conn.info.pop(_DEFERRING, None)


def commit(conn: Connection, transaction: RootTransaction) -> None:
    """Commits; on PostgreSQL the deferred statements, the COMMIT and the release of the gates go out as one
    query, in one round trip. A failure of any of them (the COMMIT's serialization check included) undoes the
    transaction and raises as a SQLAlchemy error; the gates are then released on return to the pool."""
    deferred = _take_deferred(conn)
    gated = conn.info.get(_GATED, False)
    if _begun_work(deferred) or gated:
        _in_one_query(conn, [*deferred, ("COMMIT", ()), *([(_UNLOCK_ALL, ())] if gated else [])])
        conn.info.pop(_GATED, None)
    transaction.commit()  # the bookkeeping: psycopg sends nothing more once the server has committed


def _in_one_query(conn: Connection, statements: Sequence[tuple[str, Sequence[object]]]) -> list[list[tuple]]:
    """Runs `statements` as one multi-statement query (the simple query protocol, values bound in the client,
    `_bound`): one send and one wait for all of them, where pipeline mode sends and waits once per statement.
    Each wait lets other threads take the GIL, and under load every one costs the writer time to get it
    back. The server stops at the first failure; the rows of each statement come back in order (an empty
    list for a statement without rows)."""
    driver = _driver(conn)
    escaping, encoding = psycopg.pq.Escaping(driver.pgconn), driver.info.encoding
    with psycopg.ClientCursor(driver) as cursor:
        try:
            # Whether a result has rows is read off libpq's status, where `description` would build a column
            # object per column of every result.
            cursor.execute(";\n".join(_bound(escaping, encoding, sql, params) for sql, params in statements))
            results = []
            while True:
                results.append(cursor.fetchall() if cursor.pgresult.status == _ROWS else [])
                if not cursor.nextset():
                    return results
        except psycopg.Error as error:
            raise _translated(conn, error) from error


_ROWS = psycopg.pq.ExecStatus.TUPLES_OK


def _bound(escaping: psycopg.pq.Escaping, encoding: str, sql: str, params: Sequence[object]) -> str:
    """`sql` with its `%s` placeholders replaced by the values as literals. The write path's values are text,
    integers and NULL: text is quoted by libpq itself (PQescapeLiteral, in the connection's encoding, which
    escapes whatever needs it), integers are their digits. psycopg's `mogrify` does the same through its
    adapters at about three times the cost, and a write transaction binds a dozen values."""
    if not params:
        return sql
    return sql % tuple(_literal(escaping, encoding, value) for value in params)


def _literal(escaping: psycopg.pq.Escaping, encoding: str, value: object) -> str:
    if value is None:
        return "NULL"
    if type(value) is str:
        return escaping.escape_literal(value.encode(encoding)).decode(encoding)
    if type(value) is int:
        # In parentheses: after a `-`, `--5` would be a comment, and `-5::bigint` casts before it negates.
        return f"({value})" if value < 0 else str(value)
    raise TypeError(f"a value of type {type(value).__name__} in a statement of the write path")


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
