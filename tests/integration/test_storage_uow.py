"""UnitOfWork on real databases: all-or-nothing writes, bounded retry of retryable failures only, and
writers of one tenant that queue at its gate instead of failing each other, and writers of different tenants
that do not wait for each other."""

from __future__ import annotations

import sqlite3
import threading
import time

import psycopg
import pytest
import sqlalchemy as sa

from tally.domain.errors import ErrorKind, LedgerError
from tally.storage import ledger_repo
from tally.storage import tables as t
from tally.storage.engine import (
    defer_write_gate,
    deferring,
    driver_execute,
    fetch_together,
    gate_key,
    make_engines,
)
from tally.storage.uow import Scope, UnitOfWork
from tests.integration.conftest import TENANT


def _head(conn: sa.Connection, tenant: str, sequence: int = 0) -> None:
    conn.execute(sa.insert(t.ledger_heads).values(tenant_id=tenant, voucher_sequence=sequence, event_sequence=0,
                                                  last_hash="0" * 64, accounting_date=""))


def _heads(uow: UnitOfWork) -> dict[str, int]:
    return dict(uow.read(Scope.SYSTEM, lambda c: c.execute(sa.select(t.ledger_heads.c.tenant_id,
                                                       t.ledger_heads.c.voucher_sequence)).all()))


def _serialization_failure() -> sa.exc.DBAPIError:
    return sa.exc.OperationalError("UPDATE ledger_heads", {}, psycopg.errors.SerializationFailure("could not "
                                                                                                "serialize access"))


def _deadlock() -> sa.exc.DBAPIError:
    return sa.exc.OperationalError("UPDATE balances", {}, psycopg.errors.DeadlockDetected("deadlock detected"))


def _sqlite_locked() -> sa.exc.DBAPIError:
    return sa.exc.OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))


def _connection_lost() -> sa.exc.DBAPIError:
    return sa.exc.OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"),
                                   connection_invalidated=True)


# (what the database raised, the error once retries are exhausted): table-driven, run in one database.
RETRYABLE = {
    "serialization-40001": (_serialization_failure, ErrorKind.ABORTED, "RETRIES_EXHAUSTED"),
    "deadlock-40P01": (_deadlock, ErrorKind.ABORTED, "RETRIES_EXHAUSTED"),
    "connection-invalidated": (_connection_lost, ErrorKind.UNAVAILABLE, "DATABASE_UNAVAILABLE"),
    "sqlite-locked": (_sqlite_locked, ErrorKind.ABORTED, "RETRIES_EXHAUSTED"),
}
NOT_RETRYABLE = {
    "ValueError": lambda: ValueError("bug"),
    "LedgerError": lambda: LedgerError(ErrorKind.NOT_FOUND, "GONE", "gone"),
    "OperationalError-disk-io": lambda: sa.exc.OperationalError("SELECT", {},
                                                                sqlite3.OperationalError("disk I/O error")),
    "OperationalError-other-sqlstate": lambda: sa.exc.OperationalError(
        "SELECT", {}, psycopg.errors.QueryCanceled("canceling statement due to statement timeout")),
}


@pytest.fixture
def uow(database_url, make_ledger) -> UnitOfWork:
    return UnitOfWork(make_ledger(database_url, start=False).engines, retries_max=3, backoff_ms=1)


def _clear(uow: UnitOfWork) -> None:
    uow.write(Scope.SYSTEM,
              lambda conn: (conn.execute(sa.delete(t.ledger_heads)), conn.execute(sa.delete(t.idempotency))))


def test_write_rolls_back_everything_when_the_work_raises(uow):
    for name, make_error in NOT_RETRYABLE.items():
        attempts = []

        def work(conn, make_error=make_error, attempts=attempts):
            attempts.append(1)
            _head(conn, "t1")
            ledger_repo.insert_records(conn, [ledger_repo.IdempotencyRecord("t1", "r1", "post", "f", {}, {}, 1)])
            conn.execute(sa.update(t.ledger_heads).values(voucher_sequence=5))
            raise make_error()

        with pytest.raises(Exception) as caught:  # noqa: PT011 - the exact type is checked below
            uow.write(Scope.SYSTEM, work)
        assert type(caught.value) is type(make_error()), name
        assert attempts == [1], f"{name} was retried"
        assert _heads(uow) == {}, f"{name}: partial state was committed"
        assert uow.read(Scope.SYSTEM,
                        lambda c: c.execute(sa.select(sa.func.count()).select_from(t.idempotency)).scalar_one()) == 0


def test_retryable_failure_is_retried_and_the_failed_attempt_leaves_nothing(uow):
    for name, (make_error, _, _) in RETRYABLE.items():
        _clear(uow)
        attempts = []

        def work(conn, make_error=make_error, attempts=attempts):
            attempts.append(1)
            _head(conn, f"attempt{len(attempts)}", sequence=len(attempts))
            if len(attempts) == 1:
                raise make_error()
            return "done"

        assert uow.write(Scope.SYSTEM, work) == "done", name
        assert len(attempts) == 2, name
        assert _heads(uow) == {"attempt2": 2}, name


def test_retries_are_bounded(database_url, make_ledger):
    retries_max = 2
    uow = UnitOfWork(make_ledger(database_url, start=False).engines, retries_max=retries_max, backoff_ms=1)
    for name, (make_error, kind, reason) in RETRYABLE.items():
        attempts = []

        def work(conn, make_error=make_error, attempts=attempts):
            attempts.append(1)
            _head(conn, f"attempt{len(attempts)}")
            raise make_error()

        with pytest.raises(LedgerError) as caught:
            uow.write(Scope.SYSTEM, work)
        assert (caught.value.kind, caught.value.reason) == (kind, reason), name
        assert len(attempts) == retries_max + 1, name  # the first attempt plus retries_max retries
        assert isinstance(caught.value.__cause__, sa.exc.DBAPIError), name
        assert _heads(uow) == {}, name


def test_non_retryable_database_error_is_raised_at_once(uow):
    """A real constraint violation is a bug or bad input, not contention: no retry, nothing stored."""
    uow.write(Scope.SYSTEM, lambda conn: _head(conn, "taken"))
    attempts = []

    def work(conn):
        attempts.append(1)
        _head(conn, "fresh")
        _head(conn, "taken")  # primary key violation

    with pytest.raises(sa.exc.IntegrityError):
        uow.write(Scope.SYSTEM, work)
    assert attempts == [1]
    assert _heads(uow) == {"taken": 0}


# --- real serialization failures on PostgreSQL: a second connection that does not take the gate ----------


def _conflicting_work(outside: sa.Engine, conflict_on: set[int], attempts: list, failures: list):
    def work(conn):
        attempts.append(1)
        seen = conn.execute(sa.select(t.ledger_heads.c.voucher_sequence)
                            .where(t.ledger_heads.c.tenant_id == TENANT)).scalar_one()  # the snapshot is fixed here
        if len(attempts) in conflict_on:
            with outside.begin() as other:  # commits a change to the row after our snapshot
                other.execute(sa.update(t.ledger_heads).values(voucher_sequence=t.ledger_heads.c.voucher_sequence
                                                               + 100))
        try:
            conn.execute(sa.update(t.ledger_heads).values(voucher_sequence=seen + 1))
        except sa.exc.DBAPIError as exc:
            failures.append(exc)
            raise
        return seen

    return work


def test_real_serialization_failure_is_retried_then_succeeds(postgres_url, make_ledger):
    uow = UnitOfWork(make_ledger(postgres_url, start=False).engines, retries_max=3, backoff_ms=1)
    uow.write(Scope.SYSTEM, lambda conn: _head(conn, TENANT))
    outside = sa.create_engine(postgres_url)
    attempts, failures = [], []
    try:
        seen = uow.write(Scope.SYSTEM, _conflicting_work(outside, {1}, attempts, failures))
    finally:
        outside.dispose()
    assert len(attempts) == 2
    assert [type(f.orig) for f in failures] == [psycopg.errors.SerializationFailure]
    assert seen == 100  # the retry saw the concurrent commit ...
    assert _heads(uow) == {TENANT: 101}  # ... and neither update was lost


@pytest.mark.parametrize("retries_max", [0, 2])
def test_real_serialization_failures_exhaust_retries(postgres_url, make_ledger, retries_max):
    uow = UnitOfWork(make_ledger(postgres_url, start=False).engines, retries_max=retries_max, backoff_ms=1)
    uow.write(Scope.SYSTEM, lambda conn: _head(conn, TENANT))
    outside = sa.create_engine(postgres_url)
    attempts, failures = [], []
    try:
        with pytest.raises(LedgerError) as caught:
            uow.write(Scope.SYSTEM, _conflicting_work(outside, set(range(1, 100)), attempts, failures))
    finally:
        outside.dispose()
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.ABORTED, "RETRIES_EXHAUSTED")
    assert len(attempts) == retries_max + 1
    assert all(isinstance(f.orig, psycopg.errors.SerializationFailure) for f in failures)
    assert _heads(uow) == {TENANT: 100 * (retries_max + 1)}  # only the outside commits landed


# --- the write gates: two "processes" queue instead of conflicting -----------------------------------------

_GATES_HELD = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()"


def test_writers_queue_at_the_gate_and_see_each_others_commits(database_url, make_ledger):
    """A writer that waits for another sees everything it committed, on its first attempt: the gate is
    taken before the snapshot is fixed (PostgreSQL) / BEGIN IMMEDIATE (SQLite)."""
    base = make_ledger(database_url, start=False)
    base.uow.write(Scope.SYSTEM, lambda conn: _head(conn, TENANT))
    second = make_engines(database_url)
    try:
        first_uow, second_uow = UnitOfWork(base.engines, backoff_ms=1), UnitOfWork(second, backoff_ms=1)
        # warm a pooled connection
        second_uow.write(Scope.SYSTEM, lambda conn: conn.execute(sa.select(t.ledger_heads)).all())
        inside, release = threading.Event(), threading.Event()
        calls: list[int] = []

        def holder(conn):
            conn.execute(sa.select(t.ledger_heads)).all()  # the gate goes out with the first statement
            inside.set()
            assert release.wait(10)
            conn.execute(sa.update(t.ledger_heads).values(voucher_sequence=t.ledger_heads.c.voucher_sequence + 1))

        def waiter(conn):
            seen = conn.execute(sa.select(t.ledger_heads.c.voucher_sequence).with_for_update()).scalar_one()
            calls.append(seen)
            conn.execute(sa.update(t.ledger_heads).values(voucher_sequence=seen + 10))

        errors: list[BaseException] = []

        def run(u, w):
            try:
                u.write(Scope.SYSTEM, w)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        a = threading.Thread(target=run, args=(first_uow, holder))
        a.start()
        assert inside.wait(10)
        b = threading.Thread(target=run, args=(second_uow, waiter))
        b.start()
        time.sleep(0.3)
        assert calls == [], "the second writer got in while the first held the write gate"
        release.set()
        a.join(10)
        b.join(10)
        assert errors == []
        assert calls == [1], f"the waiting writer ran {len(calls)} time(s) and saw {calls}"
        assert _heads(base.uow) == {TENANT: 11}
    finally:
        second.dispose()


class _Inside:
    """A write that holds its gates, inside its transaction, until released."""

    def __init__(self, uow: UnitOfWork, tenants) -> None:
        self.entered, self.release, self.errors = threading.Event(), threading.Event(), []
        self.thread = threading.Thread(target=self._run, args=(uow, tenants))
        self.thread.start()
        assert self.entered.wait(10), "the write never began"

    def _run(self, uow: UnitOfWork, tenants) -> None:
        def work(conn):
            conn.exec_driver_sql("SELECT 1")  # the gates go out with the first statement
            self.entered.set()
            assert self.release.wait(10)

        try:
            uow.write(tenants, work)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    def finish(self) -> None:
        self.release.set()
        self.thread.join(10)
        assert self.errors == []


def _written_within(uow: UnitOfWork, tenants, seconds: float) -> bool:
    """Whether a write for `tenants` commits within `seconds` (it goes on in the background otherwise)."""
    done = threading.Event()
    threading.Thread(target=lambda: (uow.write(tenants, lambda conn: conn.exec_driver_sql("SELECT 1")),
                                     done.set()), daemon=True).start()
    return done.wait(seconds)


def test_writers_of_different_tenants_run_side_by_side_and_one_tenants_queue(postgres_url, make_ledger):
    """Another process writing for tenant "a" holds up the next writer of "a", and of every tenant when it
    writes for all of them, but never a writer of "b"."""
    make_ledger(postgres_url, start=False)  # a migrated database
    holding, other = make_engines(postgres_url), make_engines(postgres_url)
    try:
        uow = UnitOfWork(other)
        inside = _Inside(UnitOfWork(holding), {"a"})
        assert _written_within(uow, {"b"}, 5), "a writer of b waited for a writer of a"
        queued = threading.Event()
        threading.Thread(target=lambda: (uow.write({"a", "b"}, lambda conn: conn.exec_driver_sql("SELECT 1")),
                                         queued.set())).start()
        assert not queued.wait(0.3), "a second writer of a got in while the first held its gate"
        inside.finish()
        assert queued.wait(10), "the writer of a never got the gate after the first let go"

        everyone = _Inside(UnitOfWork(holding), Scope.SYSTEM)
        assert not _written_within(uow, {"b"}, 0.3), "a writer of b got in beside a writer of every tenant"
        everyone.finish()
        assert _written_within(uow, {"b"}, 10)
    finally:
        holding.dispose()
        other.dispose()


@pytest.mark.parametrize("fails", ["in the work", "at the commit"])
def test_a_failed_write_lets_go_of_its_gates(postgres_url, make_ledger, fails):
    """Gates are the session's: a write that fails after taking them, in its work or at its COMMIT, must not
    leave them held by a connection sitting in the pool, or its tenants could never be written again."""
    make_ledger(postgres_url, start=False)  # a migrated database
    pooled, other = make_engines(postgres_url, pool_size=1), make_engines(postgres_url)
    try:
        def failing(conn):
            conn.exec_driver_sql("SELECT 1")
            if fails == "in the work":
                raise ValueError("a bug after the first statement")
            with deferring(conn):
                driver_execute(conn, "SELECT 1 / 0")  # goes out with the COMMIT, and fails it

        with pytest.raises((ValueError, sa.exc.DataError)):
            UnitOfWork(pooled, retries_max=0).write({TENANT}, failing)
        assert _written_within(UnitOfWork(other), {TENANT}, 5), "the failed write still holds its tenant's gate"
        assert UnitOfWork(pooled).append(Scope.SYSTEM, lambda conn: conn.exec_driver_sql(_GATES_HELD).scalar()) == 0
    finally:
        pooled.dispose()
        other.dispose()


def test_a_write_that_ends_before_its_first_statement_leaves_nothing_for_the_next_transaction(postgres_url,
                                                                                              make_ledger):
    """The gate and the scope go out with a write's first statement: when there is none, they must not go
    out with whatever runs next on that pooled connection (an audit append never takes the gate)."""
    make_ledger(postgres_url, start=False)  # a migrated database
    engines = make_engines(postgres_url, pool_size=1)  # one connection: the next transaction gets it
    try:
        uow = UnitOfWork(engines)

        def fails_at_once(conn):
            raise ValueError("before any statement")

        with pytest.raises(ValueError):
            uow.write({TENANT}, fails_at_once)
        held = uow.append(Scope.SYSTEM, lambda conn: conn.exec_driver_sql(_GATES_HELD).scalar())
        assert held == 0
        assert uow.write({TENANT}, lambda conn: conn.exec_driver_sql(_GATES_HELD).scalar()) == 2  # all, and TENANT
    finally:
        engines.dispose()


def test_every_write_runs_in_one_transaction_whichever_way_it_starts(postgres_url, make_ledger):
    """A write is one transaction whether its first statement is a read sent together (a multi-statement
    query, with the gate and the scope ahead of it), a driver statement or SQLAlchemy's: REPEATABLE READ
    under its tenants' gates (storage/engine.py, `_GATED_BEGIN`, says why that is serializable); an audit
    append, which takes no gate, is one SERIALIZABLE transaction."""
    uow = UnitOfWork(make_ledger(postgres_url, start=False).engines, retries_max=0)
    first_sql = "SELECT current_setting('transaction_isolation'), pg_current_xact_id()::text"
    starts = {
        "read together": lambda conn: fetch_together(conn, [(first_sql, ())])[0][0],
        "driver": lambda conn: (driver_execute(conn, "SELECT 1"), conn.exec_driver_sql(first_sql).one())[1],
        "SQLAlchemy": lambda conn: conn.exec_driver_sql(first_sql).one(),
    }

    def in_one_transaction(conn, first) -> tuple[str, bool]:
        isolation, xact = first(conn)
        # A second round trip: outside a transaction it would get a transaction (and an id) of its own.
        return isolation, conn.exec_driver_sql("SELECT pg_current_xact_id()::text").scalar() == xact

    for name, first in starts.items():
        assert uow.write({TENANT}, lambda conn, first=first: in_one_transaction(conn, first)) == (
            "repeatable read", True), name
    assert uow.append({TENANT}, lambda conn: in_one_transaction(conn, starts["SQLAlchemy"])) == ("serializable", True)

    def half_then_fail(conn):
        _head(conn, "t1")
        conn.exec_driver_sql("SELECT 1 / 0")

    with pytest.raises(sa.exc.DataError):
        uow.write(Scope.SYSTEM, half_then_fail)
    assert _heads(uow) == {}


def test_a_write_begins_in_the_round_trip_of_its_first_read(postgres_url, make_ledger):
    """The gates, BEGIN and the scope go out in the same query as the batch's reads: a write transaction
    costs no round trip of its own to begin (the server's `current_query()` is that whole query). The gates
    come first, in a transaction of their own, so that the snapshot is taken after them."""
    uow = UnitOfWork(make_ledger(postgres_url, start=False).engines, retries_max=0)
    query = uow.write({TENANT}, lambda conn: fetch_together(conn, [("SELECT current_query()", ())])[0][0][0])
    statements = [s.strip() for s in query.split(";")]
    assert statements[0] == "BEGIN"
    assert statements[1] == f"SELECT pg_advisory_lock_shared({gate_key('*')})"
    assert statements[2] == f"SELECT pg_advisory_lock({gate_key(TENANT)})"
    assert statements[3:5] == ["COMMIT", "BEGIN ISOLATION LEVEL REPEATABLE READ"]
    assert statements[5].startswith("SELECT set_config('tally.tenants'")
    assert statements[6] == "SELECT current_query()"


def test_a_write_leaves_no_warning_on_the_server(postgres_url, make_ledger):
    """The gates' transaction is begun explicitly: a COMMIT that ends a query's implicit transaction warns
    ("there is no transaction in progress"), which the server would log once for every write."""
    uow = UnitOfWork(make_ledger(postgres_url, start=False).engines, retries_max=0)
    notices, drivers = [], []

    def noted(diagnostic) -> None:
        notices.append(diagnostic.message_primary)

    def work(conn):
        drivers.append(conn.connection.driver_connection)
        drivers[-1].add_notice_handler(noted)
        return fetch_together(conn, [("SELECT 1", ())])

    try:
        assert uow.write({TENANT}, work) == [[(1,)]]  # the gates, BEGIN, the read, then the COMMIT's round trip
    finally:
        drivers[0].remove_notice_handler(noted)
    assert notices == []


def test_a_transaction_that_sends_nothing_commits_nothing_and_leaves_the_connection_idle(postgres_url, make_ledger):
    """A write connection begun and committed without a statement never began on the server; the BEGIN it
    deferred is dropped, not sent ahead of the next transaction on that pooled connection."""
    make_ledger(postgres_url, start=False)  # a migrated database
    engines = make_engines(postgres_url, pool_size=1)
    try:
        with engines.write.begin():
            pass
        with engines.write.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            conn.begin().commit()
            assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert UnitOfWork(engines).append({TENANT}, lambda conn: conn.exec_driver_sql(_GATES_HELD).scalar()) == 0
    finally:
        engines.dispose()


def test_a_driver_statement_outside_a_transaction_is_refused(postgres_url, make_ledger):
    """The write engine's driver runs in autocommit mode: a statement sent through it without a transaction
    would commit on its own, so it is refused before it is sent, and nothing is written."""
    make_ledger(postgres_url, start=False)  # a migrated database
    engines = make_engines(postgres_url, pool_size=1)
    insert = ("INSERT INTO ledger_heads (tenant_id, voucher_sequence, event_sequence, last_hash, accounting_date) "
              "VALUES ('t1', 0, 0, '0', '')")
    try:
        with engines.write.connect() as conn:
            with pytest.raises(RuntimeError, match="outside a transaction"):
                driver_execute(conn, insert)
            with pytest.raises(RuntimeError, match="outside a transaction"):
                fetch_together(conn, [(insert, ())])
        assert _heads(UnitOfWork(engines)) == {}
    finally:
        engines.dispose()


def test_what_a_rolled_back_transaction_deferred_does_not_go_out_with_the_next(postgres_url, make_ledger):
    """Statements deferred by a transaction that is rolled back before sending them (the gate here) are
    dropped: the next transaction on the same connection sends its own BEGIN and nothing else ahead."""
    make_ledger(postgres_url, start=False)  # a migrated database
    engines = make_engines(postgres_url, pool_size=1)
    try:
        with engines.write.connect() as conn:
            transaction = conn.begin()
            defer_write_gate(conn, {TENANT})
            transaction.rollback()
            transaction = conn.begin()
            query = fetch_together(conn, [("SELECT current_query()", ())])[0][0][0]
            transaction.rollback()
        assert [s.strip() for s in query.split(";")] == ["BEGIN ISOLATION LEVEL SERIALIZABLE", "SELECT current_query()"]
    finally:
        engines.dispose()


def test_statements_are_never_prepared_on_the_server(postgres_url, make_ledger):
    """A prepared statement may get a generic plan, which cannot know how few keys an array parameter holds
    and may scan a whole table for them: every statement is planned for its own values instead."""
    make_ledger(postgres_url, start=False)  # a migrated database
    engines = make_engines(postgres_url, pool_size=1)  # one connection each: every run lands on it
    try:
        uow = UnitOfWork(engines)
        prepared = "SELECT count(*) FROM pg_prepared_statements"
        for _ in range(8):  # psycopg would prepare from the 5th run on
            uow.write({TENANT}, lambda conn: ledger_repo.load_records(conn, [(TENANT, "r1")]))
            uow.read({TENANT}, lambda conn: ledger_repo.load_records(conn, [(TENANT, "r1")]))
        assert uow.write({TENANT}, lambda conn: conn.exec_driver_sql(prepared).scalar()) == 0
        assert uow.read({TENANT}, lambda conn: conn.exec_driver_sql(prepared).scalar()) == 0
    finally:
        engines.dispose()


def test_sqlite_connections_are_durable(sqlite_url, make_ledger):
    """An acknowledged voucher survives power loss (WAL, synchronous FULL) and references are enforced, on
    the write connections and the read ones alike."""
    make_ledger(sqlite_url, start=False)
    engines = make_engines(sqlite_url, pool_size=1)
    try:
        def pragmas(engine: sa.Engine) -> tuple:
            with engine.connect() as conn:
                return tuple(conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                             for name in ("journal_mode", "synchronous", "foreign_keys"))

        assert pragmas(engines.write) == ("wal", 2, 1)
        assert pragmas(engines.read) == ("wal", 2, 1)
    finally:
        engines.dispose()
