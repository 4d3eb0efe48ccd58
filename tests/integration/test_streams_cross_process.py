"""Commits of another process on the same database reach this process's streams: through LISTEN/NOTIFY on
PostgreSQL (also after the listening connection was killed), through the safety poll otherwise."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from tally.streaming.pg_listener import PgListener, backoff_s, libpq_url
from tests.integration import test_streams_hub
from tests.integration.conftest import TENANT
from tests.integration.test_streams_hub import WAIT_S, Collector, _accounts, _transfers

hub_for = test_streams_hub.hub_for  # the same fixture


async def _wait(predicate, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
async def listener_for():
    made: list[PgListener] = []

    async def make(url: str, hub) -> PgListener:
        listener = PgListener(url, hub)
        await listener.start()
        made.append(listener)
        return listener

    yield make
    for listener in made:
        await listener.stop()


async def test_notify_wakes_streams_of_another_process_and_survives_a_reconnect(postgres_url, make_ledger,
                                                                                 hub_for, listener_for):
    here, there = make_ledger(postgres_url), make_ledger(postgres_url)
    here.open_internal("funding")
    hub = await hub_for(here)  # woken by `here`'s commits; the safety poll is off
    listener = await listener_for(postgres_url, hub)
    assert listener.connected.is_set() and listener.connects == 1
    await _accounts(there)
    collector = Collector(await hub.subscribe(TENANT, 0))
    await _transfers(there, 5)
    await collector.until(await hub.head(TENANT))

    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
    await _wait(lambda: listener.connects == 2 and listener.connected.is_set(), "the listener to reconnect")
    await _transfers(there, 5)
    head = await hub.head(TENANT)
    await collector.until(head)
    assert collector.sequences == list(range(1, head + 1))
    await collector.close()


async def test_without_notify_the_safety_poll_catches_up(database_url, make_ledger, hub_for):
    here, there = make_ledger(database_url), make_ledger(database_url)
    here.open_internal("funding")
    hub = await hub_for(here, stream_idle_poll_s=1)  # no listener: only the poll hears `there`
    await _accounts(there)
    collector = Collector(await hub.subscribe(TENANT, None))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await _transfers(there, 3)
    await collector.until(await hub.head(TENANT), timeout_s=30)
    assert time.monotonic() - started < 10  # a few polls, even on a busy machine; never a stall
    assert len(collector.events) == 3
    await collector.close()


def test_listener_helpers():
    url = "postgresql+psycopg://tally:s%40cret@db.example:5433/ledger?sslmode=require"
    assert libpq_url(url) == "postgresql://tally:s%40cret@db.example:5433/ledger?sslmode=require"
    for attempt in range(1, 40):
        assert 0 < backoff_s(attempt) <= 5.0
    assert backoff_s(1) <= 0.1
