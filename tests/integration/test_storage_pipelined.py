"""`engine.pipelined`: the batch writer sends its writes without waiting for each answer (PostgreSQL's
pipeline mode). A statement that fails in there must fail the transaction exactly as it would have when
sent alone: as a SQLAlchemy error, with nothing of the transaction kept, and retried by the unit of work
when it is a serialization failure."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tally.storage import bulk
from tally.storage import tables as t
from tally.storage.engine import driver_execute, fetch_together, pipelined
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


def test_a_serialization_failure_in_a_pipeline_is_retried(postgres_url, make_ledger):
    ledger = make_ledger(postgres_url, start=False)
    attempts: list[int] = []

    def work(conn):
        attempts.append(1)
        with pipelined(conn):
            bulk.insert_rows(conn, t.events, COLUMNS, [event_row(len(attempts))])
            if len(attempts) == 1:
                conn.exec_driver_sql("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")

    ledger.uow.write({TENANT}, work)
    assert len(attempts) == 2
    assert stored_sequences(ledger) == [2]  # the first attempt's row went with its transaction


RAISE_40001 = "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$"


def test_a_statement_sent_through_the_driver_fails_as_a_sqlalchemy_error_and_is_retried(postgres_url, make_ledger):
    ledger = make_ledger(postgres_url, start=False)
    attempts: list[int] = []

    def work(conn):
        attempts.append(1)
        bulk.insert_rows(conn, t.events, COLUMNS, [event_row(len(attempts))])
        if len(attempts) == 1:
            driver_execute(conn, RAISE_40001)

    ledger.uow.write({TENANT}, work)
    assert len(attempts) == 2
    assert stored_sequences(ledger) == [2]
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
