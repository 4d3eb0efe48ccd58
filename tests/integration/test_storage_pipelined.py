"""`engine.pipelined` and `engine.deferring`: the batch writer sends its writes without waiting for each
answer (PostgreSQL's pipeline mode), or defers them to go out with the COMMIT in one query. A statement
that fails in there must fail the transaction exactly as it would have when sent alone: as a SQLAlchemy
error, with nothing of the transaction kept, and retried by the unit of work when it is a serialization
failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import psycopg
import pytest
import sqlalchemy as sa

from tally.storage import bulk, ledger_repo
from tally.storage import tables as t
from tally.storage.engine import deferring, driver_execute, fetch_together, pipelined
from tally.storage.ledger_repo import Event
from tests.integration.conftest import TENANT

COLUMNS = tuple(t.events.c.keys())


def event_row(sequence: int) -> tuple:
    return (TENANT, sequence, "test.event", None, None, None, "{}", 1)


def stored_sequences(ledger) -> list[int]:
    return ledger.uow.read({TENANT}, lambda conn: conn.execute(
        sa.select(t.events.c.sequence).where(t.events.c.tenant_id == TENANT).order_by(t.events.c.sequence)
    ).scalars().all())


def test_writes_sent_in_a_pipeline_are_all_kept(database_url, make_ledger):
    ledger = make_ledger(database_url, start=False)

    def work(conn):
        with pipelined(conn):
            for chunk in ([1, 2], [3], [4, 5, 6]):
                bulk.insert_rows(conn, t.events, COLUMNS, [event_row(n) for n in chunk])

    ledger.uow.write({TENANT}, work)
    assert stored_sequences(ledger) == [1, 2, 3, 4, 5, 6]


def test_a_failed_write_raises_as_sqlalchemy_error_and_keeps_nothing(database_url, make_ledger):
    ledger = make_ledger(database_url, start=False)

    def work(conn):
        with pipelined(conn):
            bulk.insert_rows(conn, t.events, COLUMNS, [event_row(1)])
            bulk.insert_rows(conn, t.events, COLUMNS, [event_row(1)])  # the same (tenant, sequence) again
            bulk.insert_rows(conn, t.events, COLUMNS, [event_row(2)])

    with pytest.raises(sa.exc.IntegrityError):
        ledger.uow.write({TENANT}, work)
    assert stored_sequences(ledger) == []


RAISE_40001 = "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$"


def assert_retried_after_a_conflict(ledger, around: Callable[[sa.Connection], AbstractContextManager],
                                    conflict: Callable[[sa.Connection], object]) -> None:
    """A write whose first attempt meets a serialization failure (`conflict`, inside `around`) is retried
    whole: only the second attempt's row is kept, the first's went with its transaction."""
    attempts: list[int] = []

    def work(conn):
        attempts.append(1)
        with around(conn):
            bulk.insert_rows(conn, t.events, COLUMNS, [event_row(len(attempts))])
            if len(attempts) == 1:
                conflict(conn)

    ledger.uow.write({TENANT}, work)
    assert len(attempts) == 2
    assert stored_sequences(ledger) == [2]


def test_a_serialization_failure_in_a_pipeline_is_retried(postgres_url, make_ledger):
    ledger = make_ledger(postgres_url, start=False)
    assert_retried_after_a_conflict(ledger, pipelined, lambda conn: conn.exec_driver_sql(RAISE_40001))


def test_a_statement_sent_through_the_driver_fails_as_a_sqlalchemy_error_and_is_retried(postgres_url, make_ledger):
    ledger = make_ledger(postgres_url, start=False)
    assert_retried_after_a_conflict(ledger, lambda _conn: nullcontext(),
                                    lambda conn: driver_execute(conn, RAISE_40001))
    with pytest.raises(sa.exc.DataError):
        ledger.uow.write({TENANT}, lambda conn: driver_execute(conn, "SELECT 1 / 0"))


def test_reads_sent_together_answer_each_in_order_and_fail_as_one(postgres_url, make_ledger):
    ledger = make_ledger(postgres_url, start=False)
    ledger.uow.write({TENANT}, lambda conn: bulk.insert_rows(conn, t.events, COLUMNS, [event_row(7)]))
    queries = [("SELECT sequence FROM events WHERE tenant_id = %s", (TENANT,)), ("SELECT 1, 2", ()),
               ("SELECT sequence FROM events WHERE tenant_id = %s AND sequence > 7", (TENANT,))]
    assert ledger.uow.write({TENANT}, lambda conn: fetch_together(conn, queries)) == [[(7,)], [(1, 2)], []]
    attempts: list[int] = []

    def work(conn):
        attempts.append(1)
        failing = ("SELECT 1", ()) if len(attempts) > 1 else (RAISE_40001, ())
        return fetch_together(conn, [queries[1], failing, queries[0]])

    assert ledger.uow.write({TENANT}, work) == [[(1, 2)], [(1,)], [(7,)]]
    assert len(attempts) == 2


@pytest.fixture
def commit_probe(postgres_url):
    """A table whose rows are checked at COMMIT (a deferred constraint trigger): n = 1 fails the commit
    with a serialization failure, n < 0 with a check violation."""
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE commit_probe (n integer)")
        conn.exec_driver_sql("""CREATE FUNCTION commit_probe_check() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.n = 1 THEN RAISE EXCEPTION 'conflict at commit' USING ERRCODE = '40001'; END IF;
              IF NEW.n < 0 THEN RAISE EXCEPTION 'refused at commit' USING ERRCODE = '23514'; END IF;
              RETURN NULL;
            END $$""")
        conn.exec_driver_sql("CREATE CONSTRAINT TRIGGER commit_probe_check AFTER INSERT ON commit_probe "
                             "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION commit_probe_check()")
    yield
    engine.dispose()


def test_a_commit_that_fails_to_serialize_is_retried_and_keeps_nothing(postgres_url, make_ledger, commit_probe):
    ledger = make_ledger(postgres_url, start=False)
    attempts: list[int] = []
    told: list[set[str]] = []
    ledger.uow.after_commit.append(told.append)

    def work(conn):
        attempts.append(1)
        ledger_repo.insert_events(conn, [Event(TENANT, len(attempts), "test.event", {}, 1)])
        driver_execute(conn, "INSERT INTO commit_probe VALUES (%s)", (len(attempts),))

    ledger.uow.write({TENANT}, work)
    assert len(attempts) == 2
    assert stored_sequences(ledger) == [2]
    assert told == [{TENANT}]  # listeners hear of the commit that happened, once


def test_a_commit_refused_raises_and_keeps_nothing(postgres_url, make_ledger, commit_probe):
    ledger = make_ledger(postgres_url, start=False)
    told: list[set[str]] = []
    ledger.uow.after_commit.append(told.append)

    def work(conn):
        ledger_repo.insert_events(conn, [Event(TENANT, 1, "test.event", {}, 1)])
        driver_execute(conn, "INSERT INTO commit_probe VALUES (-1)")

    with pytest.raises(sa.exc.IntegrityError):
        ledger.uow.write({TENANT}, work)
    assert stored_sequences(ledger) == []
    assert told == []


def test_deferred_writes_go_out_with_the_commit_and_fail_it_as_one(postgres_url, make_ledger):
    """`deferring`: the statements are sent with the COMMIT; one that fails undoes them all, and a
    serialization failure among them is retried like any other."""
    ledger = make_ledger(postgres_url, start=False)

    def duplicate(conn):
        with deferring(conn):
            bulk.insert_rows(conn, t.events, COLUMNS, [event_row(1)])
            bulk.insert_rows(conn, t.events, COLUMNS, [event_row(1)])

    with pytest.raises(sa.exc.IntegrityError):
        ledger.uow.write({TENANT}, duplicate)
    assert stored_sequences(ledger) == []
    assert_retried_after_a_conflict(ledger, deferring, lambda conn: driver_execute(conn, RAISE_40001))


AWKWARD_TEXT = "it's 100% \\ \"quoted\"; DROP TABLE events; -- $$ \u00e9\u20ac\U0001f4b8 %s %(x)s"


def test_values_bound_in_the_client_arrive_exactly(postgres_url, make_ledger):
    """Deferred writes and reads sent together are bound in the client: quotes, backslashes, percent signs,
    semicolons and non-ASCII text must arrive as they were, never as SQL."""
    ledger = make_ledger(postgres_url, start=False)
    payload = {"memo": AWKWARD_TEXT}

    def work(conn):
        with deferring(conn):
            ledger_repo.insert_events(conn, [Event(TENANT, 1, "test.event", payload, 1)])

    ledger.uow.write({TENANT}, work)
    query = ("SELECT payload, %s FROM events WHERE tenant_id = %s", (AWKWARD_TEXT, TENANT))
    [[(stored, echoed)]] = ledger.uow.write({TENANT}, lambda conn: fetch_together(conn, [query]))
    assert json.loads(stored) == payload
    assert echoed == AWKWARD_TEXT
    assert stored_sequences(ledger) == [1]


def test_integers_and_null_bound_in_the_client_arrive_exactly(postgres_url, make_ledger):
    """A negative integer right after a minus must not turn into a comment (`1 --5`); NULL is NULL."""
    ledger = make_ledger(postgres_url, start=False)
    query = ("SELECT %s::bigint, 1 -%s, %s::text IS NULL", (-9_223_372_036_854_775_808, -5, None))
    [[row]] = ledger.uow.write({TENANT}, lambda conn: fetch_together(conn, [query]))
    assert row == (-9_223_372_036_854_775_808, 6, True)


@pytest.mark.parametrize("value", [1.5, True, b"bytes", ["a"]])
def test_a_value_the_write_path_never_binds_is_refused_before_sending(postgres_url, make_ledger, value):
    ledger = make_ledger(postgres_url, start=False)
    with pytest.raises(TypeError, match="write path"):
        ledger.uow.write({TENANT}, lambda conn: fetch_together(conn, [("SELECT %s", (value,))]))


def test_a_commit_that_would_leave_deferred_writes_unsent_is_refused(postgres_url, make_ledger):
    """Deferred writes go out with the COMMIT that `engine.commit` sends; a commit made any other way
    would commit the transaction without them, so it is refused and nothing is kept."""
    ledger = make_ledger(postgres_url, start=False)
    with ledger.engines.write.connect() as conn:
        transaction = conn.begin()
        driver_execute(conn, "SELECT 1")  # the transaction has begun on the server
        with deferring(conn):
            bulk.insert_rows(conn, t.events, COLUMNS, [event_row(1)])
        with pytest.raises(RuntimeError, match="deferred"):
            transaction.commit()
        # Rolled back, not left open on a connection that goes back to the pool.
        assert conn.connection.driver_connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert stored_sequences(ledger) == []
