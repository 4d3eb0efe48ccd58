"""The writer thread takes what is queued itself: a batch that arrives while another is being written starts
as soon as that one has committed, even while the event loop is busy; submissions arriving in one turn of
the event loop share a batch; stopping finishes what is queued and refuses what comes after."""

from __future__ import annotations

import asyncio
import threading
import time

from tally.domain.errors import ErrorKind, LedgerError
from tally.service.posting import pipeline as pipeline_module
from tally.service.posting.batch import Posted
from tests.integration.conftest import outcomes

SLOW_WRITE_S = 0.3
WRITER_WAIT_S = 30.0  # the longest the event loop is kept busy while the writer works alone


async def _alice_and_bob(ledger):
    ledger.open_internal("funding")
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 1_000)
    return ledger


async def test_the_next_batch_is_written_while_the_event_loop_is_busy(database_url, make_ledger, monkeypatch):
    ledger = await _alice_and_bob(make_ledger(database_url))
    real = pipeline_module.write_batch
    writing = threading.Event()

    def slow_first(conn, subs, *args):
        if not writing.is_set():
            writing.set()
            time.sleep(SLOW_WRITE_S)
        return real(conn, subs, *args)

    monkeypatch.setattr(pipeline_module, "write_batch", slow_first)
    before = ledger.pipeline.batches_written
    first = asyncio.ensure_future(ledger.transfer("alice", "bob", 1, request_id="first"))
    while not writing.is_set():
        await asyncio.sleep(0.001)
    second = asyncio.ensure_future(ledger.transfer("alice", "bob", 2, request_id="second"))
    for _ in range(5):  # the second reaches the writer's queue while the first is being written
        await asyncio.sleep(0)
    # The event loop stays busy (no await): only the writer thread can start the second batch.
    deadline = time.monotonic() + WRITER_WAIT_S
    while ledger.pipeline.batches_written - before < 2:
        assert time.monotonic() < deadline, "the writer waited for the event loop to start the next batch"
        time.sleep(0.01)
    results = await outcomes(first, second)
    assert all(isinstance(r, Posted) for r in results)
    assert ledger.balance("bob") == 3


async def test_submissions_of_one_turn_of_the_event_loop_share_a_batch(database_url, make_ledger):
    ledger = await _alice_and_bob(make_ledger(database_url))
    before = ledger.pipeline.batches_written
    results = await outcomes(*(ledger.transfer("alice", "bob", 1, request_id=f"turn-{i}") for i in range(12)))
    assert all(isinstance(r, Posted) for r in results)
    assert ledger.pipeline.batches_written - before == 1


async def test_stopping_finishes_what_is_queued_and_refuses_what_comes_after(database_url, make_ledger):
    ledger = await _alice_and_bob(make_ledger(database_url))
    queued = [asyncio.ensure_future(ledger.transfer("alice", "bob", 1, request_id=f"q-{i}")) for i in range(5)]
    await asyncio.sleep(0)  # queued in this turn, not yet handed to the writer
    await ledger.pipeline.stop()
    assert all(isinstance(r, Posted) for r in await outcomes(*queued))
    [late] = await outcomes(ledger.transfer("alice", "bob", 1, request_id="late"))
    assert isinstance(late, LedgerError)
    assert (late.kind, late.reason) == (ErrorKind.UNAVAILABLE, "POSTING_STOPPED")
    assert ledger.balance("bob") == 5
