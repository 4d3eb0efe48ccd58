"""The event hub on both backends: replay then live with no gap and no duplicate across the switch, "from
now", resuming, the bounds (slow consumer, subscriber limit), shutdown, shared reads, and the idle cost."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
import sqlalchemy as sa

from tally.domain.errors import ErrorKind, LedgerError
from tally.storage import ledger_repo
from tally.streaming.hub import EventHub, Subscription
from tests.integration.conftest import TENANT, Ledger, outcomes

WAIT_S = 20.0  # upper bound for anything the hub should deliver promptly
NO_POLL_S = 3600  # hubs that must be woken, never rescued by the safety poll


@pytest.fixture
async def hub_for():
    """Starts EventHubs on a Ledger's unit of work (woken after its commits); stops them afterwards."""
    made: list[tuple[Ledger, EventHub]] = []

    async def make(ledger: Ledger, **settings) -> EventHub:
        hub = EventHub(ledger.uow, dataclasses.replace(ledger.settings, **{"stream_idle_poll_s": NO_POLL_S,
                                                                            **settings}))
        ledger.uow.after_commit.append(hub.wake)
        await hub.start()
        made.append((ledger, hub))
        return hub

    yield make
    for ledger, hub in reversed(made):
        await hub.stop()
        ledger.uow.after_commit.remove(hub.wake)


async def _accounts(ledger: Ledger, tenant: str = TENANT) -> None:
    if tenant != TENANT:
        ledger.open_internal("funding", tenant=tenant)
    ledger.open("alice", tenant=tenant)
    ledger.open("bob", tenant=tenant)
    await ledger.fund("alice", 1_000_000, tenant=tenant)


async def _transfers(ledger: Ledger, count: int, *, tenant: str = TENANT, concurrent: int = 8) -> None:
    """`count` transfers of 1, in waves of `concurrent` (so they share batches), all acknowledged."""
    for start in range(0, count, concurrent):
        wave = [ledger.transfer("alice", "bob", 1, tenant=tenant) for _ in range(min(concurrent, count - start))]
        results = await outcomes(*wave)
        assert not [r for r in results if isinstance(r, LedgerError)], results


def _stored(ledger: Ledger, after: int, tenant: str = TENANT) -> list[ledger_repo.Event]:
    return ledger.uow.read({tenant}, lambda conn: ledger_repo.list_events(conn, tenant, after_sequence=after,
                                                                         limit=100_000))


class Collector:
    """Drains a subscription in a task; `until(sequence)` waits for it to get that far."""

    def __init__(self, sub: Subscription) -> None:
        self.sub, self.events, self.error = sub, [], None
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self.sub:
                self.events.append(event)
        except LedgerError as error:
            self.error = error

    @property
    def sequences(self) -> list[int]:
        return [e.sequence for e in self.events]

    async def until(self, sequence: int, timeout_s: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.events or self.events[-1].sequence < sequence:
            assert self.error is None, repr(self.error)
            assert time.monotonic() < deadline, f"stuck at {self.sequences[-1:]} waiting for {sequence}"
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.sub.close()


async def test_replay_then_live_has_no_gap_and_no_duplicate(ledger, hub_for):
    """Subscribers start at several points of a history while postings go on concurrently; each gets exactly
    from+1..head in order, through small replay pages, the feed's buffer and the live tail."""
    hub = await hub_for(ledger, stream_page_size=7, stream_lag_events_max=100_000)
    await _accounts(ledger)
    await _transfers(ledger, 40)
    head = await hub.head(TENANT)
    starts = [0, 1, head // 2, head - 3, head]

    async def subscribe_while_posting() -> list[Collector]:
        collectors = []
        for start in starts:
            collectors.append(Collector(await hub.subscribe(TENANT, start)))
            await asyncio.sleep(0.01)
        return collectors

    collectors, _ = await asyncio.gather(subscribe_while_posting(), _transfers(ledger, 60, concurrent=3))
    final = await hub.head(TENANT)
    assert final >= head + 60
    stored = _stored(ledger, 0)
    for start, collector in zip(starts, collectors, strict=True):
        await collector.until(final)
        assert collector.sequences == list(range(start + 1, final + 1)), f"from {start}"
        assert collector.events == stored[start:], f"from {start}: contents differ from the table"
        await collector.close()
    assert hub.subscriber_count == 0 and not hub.tenants_live


async def test_from_now_starts_after_the_current_head(ledger, hub_for):
    hub = await hub_for(ledger)
    await _accounts(ledger)
    await _transfers(ledger, 5)
    head = await hub.head(TENANT)
    sub = await hub.subscribe(TENANT, None)
    await _transfers(ledger, 4, concurrent=1)
    got = [await asyncio.wait_for(anext(sub), WAIT_S) for _ in range(4)]
    assert [e.sequence for e in got] == [head + 1, head + 2, head + 3, head + 4]
    assert all(e.type == "ledger.entry.posted" for e in got)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(sub), 0.3)
    sub.close()


async def test_resume_from_a_middle_sequence_replays_exactly_the_rest(ledger, hub_for):
    hub = await hub_for(ledger, stream_page_size=5)
    await _accounts(ledger)
    await _transfers(ledger, 23)
    head = await hub.head(TENANT)
    first = Collector(await hub.subscribe(TENANT, 0))
    await first.until(head)
    middle = first.events[head // 2 - 1].sequence
    await first.close()
    resumed = Collector(await hub.subscribe(TENANT, middle))
    await resumed.until(head)
    await asyncio.sleep(0.1)  # nothing more arrives
    assert resumed.sequences == list(range(middle + 1, head + 1))
    assert resumed.events == first.events[middle:]
    await resumed.close()


async def test_tenants_are_kept_apart(ledger, hub_for):
    hub = await hub_for(ledger)
    await _accounts(ledger)
    await _accounts(ledger, "globex")
    acme, globex = [Collector(await hub.subscribe(t, None)) for t in (TENANT, "globex")]
    await asyncio.gather(_transfers(ledger, 6), _transfers(ledger, 3, tenant="globex"))
    await acme.until(await hub.head(TENANT))
    await globex.until(await hub.head("globex"))
    assert len(acme.events) == 6 and len(globex.events) == 3
    assert {e.tenant_id for e in acme.events} == {TENANT} and {e.tenant_id for e in globex.events} == {"globex"}
    await acme.close()
    await globex.close()


async def test_a_slow_consumer_is_ended_and_told_where_to_resume(ledger, hub_for):
    hub = await hub_for(ledger, stream_lag_events_max=5, stream_page_size=5)
    await _accounts(ledger)
    slow = await hub.subscribe(TENANT, None)
    fast = Collector(await hub.subscribe(TENANT, None))
    await _transfers(ledger, 1)
    first = await asyncio.wait_for(anext(slow), WAIT_S)
    await _transfers(ledger, 12, concurrent=1)  # one event per commit; `slow` reads none of them
    head = await hub.head(TENANT)
    await fast.until(head)  # a consumer that keeps up is not affected
    with pytest.raises(LedgerError) as caught:
        await asyncio.wait_for(anext(slow), WAIT_S)
    error = caught.value
    assert (error.kind, error.reason) == (ErrorKind.RESOURCE_EXHAUSTED, "STREAM_CONSUMER_TOO_SLOW")
    assert error.metadata["last_sequence"] == str(first.sequence)
    assert not slow.live
    slow.close()
    # Resuming from the sequence it was given replays the rest.
    resumed = Collector(await hub.subscribe(TENANT, int(error.metadata["last_sequence"])))
    await resumed.until(head)
    assert resumed.sequences == list(range(first.sequence + 1, head + 1))
    await resumed.close()
    await fast.close()


async def test_subscriber_limit(ledger, hub_for):
    hub = await hub_for(ledger, stream_subscribers_max=3)
    subs = [await hub.subscribe(TENANT, None) for _ in range(3)]
    with pytest.raises(LedgerError) as caught:
        await hub.subscribe(TENANT, None)
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.RESOURCE_EXHAUSTED, "STREAM_SUBSCRIBERS_EXHAUSTED")
    subs[0].close()
    subs[0].close()  # idempotent: frees one slot, once
    subs.append(await hub.subscribe(TENANT, None))
    with pytest.raises(LedgerError):
        await hub.subscribe(TENANT, None)
    for sub in subs:
        sub.close()
    assert hub.subscriber_count == 0


@pytest.mark.parametrize("from_sequence", [-1, 10_000])
async def test_from_sequence_must_be_within_the_history(ledger, hub_for, from_sequence):
    hub = await hub_for(ledger)
    await _accounts(ledger)
    with pytest.raises(LedgerError) as caught:
        await hub.subscribe(TENANT, from_sequence)
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.INVALID_ARGUMENT, "SEQUENCE_INVALID")
    assert hub.subscriber_count == 0


async def test_stop_ends_every_subscription(ledger, hub_for):
    hub = await hub_for(ledger, stream_page_size=2)
    await _accounts(ledger)
    await _transfers(ledger, 10)
    live = [Collector(await hub.subscribe(TENANT, None)) for _ in range(3)]
    replaying = await hub.subscribe(TENANT, 0)
    await anext(replaying)  # mid-replay: two pages to go
    await asyncio.sleep(0.05)
    assert all(c.sub.live for c in live) and not replaying.live
    started = time.monotonic()
    await hub.stop()
    for collector in live:
        await asyncio.wait_for(collector.task, WAIT_S)
        assert (collector.error.kind, collector.error.reason) == (ErrorKind.UNAVAILABLE, "SERVER_SHUTTING_DOWN")
    with pytest.raises(LedgerError) as caught:
        await anext(replaying)
    assert caught.value.reason == "SERVER_SHUTTING_DOWN"
    assert time.monotonic() - started < 10  # prompt: nothing waits for a read or a client
    with pytest.raises(LedgerError) as caught:
        await hub.subscribe(TENANT, None)
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.UNAVAILABLE, "SERVER_SHUTTING_DOWN")
    assert not hub.tenants_live
    for collector in live:
        collector.sub.close()
    replaying.close()
    assert hub.subscriber_count == 0


async def test_subscribers_of_one_tenant_share_reads(ledger, hub_for):
    hub = await hub_for(ledger)
    await _accounts(ledger)
    collectors = [Collector(await hub.subscribe(TENANT, None)) for _ in range(25)]
    await asyncio.sleep(0.05)
    reads = hub.reads
    await _transfers(ledger, 10, concurrent=1)  # ten commits, ten wake-ups
    head = await hub.head(TENANT)
    for collector in collectors:
        await collector.until(head)
        assert len(collector.events) == 10
    assert hub.reads - reads <= 2 * 10 + 1, "one read per wake-up, not one per subscriber"
    for collector in collectors:
        await collector.close()


async def test_an_idle_hub_barely_queries(ledger, hub_for):
    """Nine live subscriptions on three tenants, nothing posted: the database hears at most a few
    statements per second (the hub's default poll: one head query per 5 s)."""
    hub = await hub_for(ledger, stream_idle_poll_s=5)
    tenants = [TENANT, "globex", "initech"]
    for tenant in tenants:
        await _accounts(ledger, tenant)
    collectors = [Collector(await hub.subscribe(t, None)) for t in tenants for _ in range(3)]
    await asyncio.sleep(0.2)  # attached, first feed reads done
    assert len(hub.tenants_live) == 3
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    engines = {ledger.engines.read, ledger.engines.write}
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", count)
    try:
        window_s = 3
        await asyncio.sleep(window_s)
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", count)
    assert len(statements) <= 3 * window_s, statements
    for collector in collectors:
        await collector.close()
