"""The event hub: every live stream of this process, fed from the committed outbox.

Correctness rests on one property of the storage layer: per tenant, event sequences are strictly increasing
in commit order (writers pass a global gate), so a reader that has seen sequence N has seen every committed
event <= N. Every subscription therefore keeps a cursor and the database is only ever asked for
"sequence > cursor". Wake-ups (after-commit callbacks of this process, NOTIFY from other processes, a slow
safety poll) only say *when* to read, never *what*: a lost or doubled wake-up costs latency, never a gap or
a duplicate.

How a subscription moves:
1. Replay: it reads bounded pages by its own cursor, at its own pace. It is not live yet, so it cannot be
   "too slow" and holds at most one page in memory.
2. Once a page comes back short (it reached the head), it attaches to the tenant's feed: one reader task
   per tenant with live subscriptions. The feed reads each new page once and appends it to every attached
   subscription's buffer, so N subscribers of one tenant cost one read per wake-up, not N.
3. The feed keeps its last page in memory, so a subscription that attaches a little behind the feed is
   served from there. Events at or below a subscription's cursor are dropped, so an overlap between replay
   and live tail is harmless; because the feed covers everything after its floor, there is no gap either.
4. A live subscription holding `stream_lag_events_max` undelivered events is ended (too slow): its client
   resumes from its last sequence, which turns it back into a bounded replay reader.

Idle cost: one poller reads the event heads of all tenants with feeds every `stream_idle_poll_s` (one query
per 1000 tenants) and wakes the feeds that are behind. That is the safety net for a missed wake-up, and the
only query an idle process makes: with the default 5 s, 0.2 queries per second whatever the subscriber count.

Reads run on two small thread pools of the hub's own (live tail, replay), so streams hold at most a few
database connections, never queue behind request handlers, and a crowd of replaying clients cannot delay
the live tail. Everything else runs on one event loop; only `wake` may be called from other threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Connection, select

from tally.config import ConfigError, Settings
from tally.domain.errors import ErrorKind, LedgerError, invalid
from tally.storage import ledger_repo
from tally.storage.ledger_repo import Event
from tally.storage.tables import ledger_heads
from tally.storage.uow import Tenants, UnitOfWork

log = logging.getLogger(__name__)

HEADS_PER_QUERY_MAX = 1000
READ_THREADS_MAX = 2  # per kind of read (live tail, replay): database connections the streams may hold
T = TypeVar("T")


def read_heads(conn: Connection, tenant_ids: Iterable[str]) -> dict[str, int]:
    """The last event sequence of each tenant (absent: the tenant has no events yet)."""
    query = select(ledger_heads.c.tenant_id, ledger_heads.c.event_sequence).where(
        ledger_heads.c.tenant_id.in_(sorted(set(tenant_ids))))
    return {row.tenant_id: row.event_sequence for row in conn.execute(query)}


def _shutting_down(cursor: int) -> LedgerError:
    return LedgerError(ErrorKind.UNAVAILABLE, "SERVER_SHUTTING_DOWN",
                       f"the server is shutting down; resume on another server from sequence {cursor}",
                       last_sequence=cursor)


def _too_slow(cursor: int, lag_events_max: int) -> LedgerError:
    return LedgerError(ErrorKind.RESOURCE_EXHAUSTED, "STREAM_CONSUMER_TOO_SLOW",
                       f"the stream fell more than {lag_events_max} events behind; resume from sequence {cursor}",
                       last_sequence=cursor, lag_events_max=lag_events_max)


def _exhausted(reason: str, message: str, **metadata: object) -> LedgerError:
    return LedgerError(ErrorKind.RESOURCE_EXHAUSTED, reason, message, **metadata)


def _read_failed(cursor: int) -> LedgerError:
    return LedgerError(ErrorKind.UNAVAILABLE, "DATABASE_UNAVAILABLE",
                       f"the stream could not read the database; resume from sequence {cursor}",
                       last_sequence=cursor)


class Subscription:
    """One stream's view of a tenant's events, in sequence order: an async iterator. `close()` it when done.

    It ends by raising a LedgerError (too slow, shutting down, read failure) whose metadata carries
    `last_sequence`, the sequence to resume from."""

    def __init__(self, hub: EventHub, tenant_id: str, owner: str = "") -> None:
        self.hub, self.tenant_id, self.owner = hub, tenant_id, owner
        self.cursor = 0  # the last sequence handed out; everything after it is still to come
        self._pending: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._feed: _Feed | None = None
        self._at_head = False  # the last replay read came back short
        self._error: LedgerError | None = None
        self._closed = False

    @property
    def live(self) -> bool:
        return self._feed is not None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            event = self._next_pending()
            if event is not None:
                return event
            if self._feed is not None:
                self._ready.clear()
                await self._ready.wait()
            elif not self.hub._try_attach(self):
                await self._replay_page()

    def _next_pending(self) -> Event | None:
        while self._pending:
            event = self._pending.popleft()
            if event.sequence > self.cursor:
                self.cursor = event.sequence
                return event
        return None

    async def _replay_page(self) -> None:
        page = await self.hub._read_page(self.tenant_id, self.cursor, live=False)
        self._pending.extend(page)
        self._at_head = len(page) < self.hub.page_size

    def offer(self, events: list[Event]) -> None:
        """Called by the feed with new events in sequence order; ends the subscription when it lags too far."""
        floor = self._pending[-1].sequence if self._pending else self.cursor
        fresh = [e for e in events if e.sequence > floor]
        if len(self._pending) + len(fresh) > self.hub.lag_events_max:
            self.end(_too_slow(self.cursor, self.hub.lag_events_max))
            return
        if fresh:
            self._pending.extend(fresh)
            self._ready.set()

    def end(self, error: LedgerError) -> None:
        """Stops the subscription: the next `__anext__` raises `error`. It still counts until closed."""
        if self._error is None and not self._closed:
            self._error = error
        self._pending.clear()
        self._detach()
        self._ready.set()

    def close(self) -> None:
        """Frees the subscription's slot; idempotent, safe from done-callbacks."""
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        self._detach()
        self.hub._subscriptions.discard(self)
        self._ready.set()

    def _detach(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.detach(self)


class _Feed:
    """One tenant's live tail: one reader, fanned out to every attached subscription."""

    def __init__(self, hub: EventHub, tenant_id: str, cursor: int) -> None:
        self.hub, self.tenant_id = hub, tenant_id
        self.cursor = cursor  # every committed event <= cursor has been read
        self.floor = cursor  # `recent` holds every event in (floor, cursor]
        self.recent: deque[Event] = deque(maxlen=hub.recent_events_max)
        self.live: set[Subscription] = set()
        self.woken = asyncio.Event()
        self.woken.set()  # events may have committed before this feed existed
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"event-feed-{tenant_id}")

    def covers(self, sequence: int) -> bool:
        return sequence >= self.floor

    def attach(self, sub: Subscription) -> None:
        sub._feed = self
        self.live.add(sub)
        sub.offer([e for e in self.recent if e.sequence > sub.cursor])

    def detach(self, sub: Subscription) -> None:
        self.live.discard(sub)
        if not self.live:
            self.hub._close_feed(self)

    async def _run(self) -> None:
        try:
            while True:
                await self.woken.wait()
                self.woken.clear()
                await self._catch_up()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the subscribers are told; they resume elsewhere or later
            log.warning("event feed of tenant %s failed", self.tenant_id, exc_info=True)
            self.hub._fail_feed(self)

    async def _catch_up(self) -> None:
        while self.live:
            page = await self.hub._read_page(self.tenant_id, self.cursor, live=True)
            self._fan_out(page)
            if len(page) < self.hub.page_size:
                return

    def _fan_out(self, page: list[Event]) -> None:
        fresh = [e for e in page if e.sequence > self.cursor]
        if not fresh:
            return
        for event in fresh:
            if len(self.recent) == self.recent.maxlen:
                self.floor = self.recent[0].sequence
            self.recent.append(event)
        self.cursor = fresh[-1].sequence
        for sub in list(self.live):
            sub.offer(fresh)


class EventHub:
    """Subscriptions to committed events, shared reads per tenant, bounded everywhere (see the module doc)."""

    def __init__(self, uow: UnitOfWork, settings: Settings) -> None:
        self.uow = uow
        self.subscribers_max = settings.stream_subscribers_max
        self.per_tenant_max = settings.stream_subscribers_per_tenant_max
        self.per_owner_max = settings.stream_subscribers_per_key_max
        self.lag_events_max = settings.stream_lag_events_max
        self.idle_poll_s = settings.stream_idle_poll_s
        self.page_size = settings.stream_page_size
        if self.lag_events_max < self.page_size:  # one page would make even a fast consumer "too slow"
            raise ConfigError(f"TALLY_STREAM_LAG_EVENTS_MAX={self.lag_events_max} must be at least "
                              f"TALLY_STREAM_PAGE_SIZE={self.page_size}")
        self.recent_events_max = self.page_size
        self.reads = 0  # database reads made so far (pages and head polls), for tests and metrics
        # Other followers of committed events (webhook delivery), woken with the feeds, on this loop.
        self.listeners: list[Callable[[Iterable[str] | None], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._feeds: dict[str, _Feed] = {}
        self._subscriptions: set[Subscription] = set()
        self._poller: asyncio.Task | None = None
        # Stream reads get threads of their own, so they never hold more than READ_THREADS_MAX database
        # connections and never queue behind request handlers; replays cannot delay the live tail either.
        self._live_reader = ThreadPoolExecutor(READ_THREADS_MAX, thread_name_prefix="tally-stream-live")
        self._replay_reader = ThreadPoolExecutor(READ_THREADS_MAX, thread_name_prefix="tally-stream-replay")

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    @property
    def tenants_live(self) -> set[str]:
        return set(self._feeds)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._poller = self._loop.create_task(self._poll(), name="event-hub-poller")

    async def stop(self) -> None:
        """Ends every subscription with UNAVAILABLE SERVER_SHUTTING_DOWN and stops every reader."""
        self._running = False
        tasks = [feed.task for feed in self._feeds.values()]
        for sub in list(self._subscriptions):
            sub.end(_shutting_down(sub.cursor))
        self._feeds.clear()
        if self._poller is not None:
            tasks.append(self._poller)
            self._poller = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for executor in (self._live_reader, self._replay_reader):
            # Reads already queued still run: their subscriptions then end with SERVER_SHUTTING_DOWN.
            executor.shutdown(wait=False)

    # -- wake-ups -------------------------------------------------------------------------------------

    def wake(self, tenant_ids: Iterable[str]) -> None:
        """New events were committed for these tenants. Thread-safe: the writer thread calls it."""
        loop = self._loop
        if loop is None or not self._running:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening any more
            loop.call_soon_threadsafe(self.wake_in_loop, frozenset(tenant_ids))

    def wake_in_loop(self, tenant_ids: Iterable[str]) -> None:
        """`wake`, for callers already on the hub's event loop."""
        tenant_ids = frozenset(tenant_ids)
        for tenant_id in tenant_ids:
            feed = self._feeds.get(tenant_id)
            if feed is not None:
                feed.woken.set()
        self._tell(tenant_ids)

    def wake_all(self) -> None:
        """Every feed reads again (after a wake-up may have been missed). On the hub's event loop."""
        for feed in self._feeds.values():
            feed.woken.set()
        self._tell(None)

    def _tell(self, tenant_ids: frozenset[str] | None) -> None:
        """Wakes the listeners: these tenants have new events (None: any may have)."""
        for listener in self.listeners:
            try:
                listener(tenant_ids)
            except Exception:  # noqa: BLE001 - a listener must not stop the feeds' wake-ups
                log.exception("event listener failed")

    # -- subscriptions --------------------------------------------------------------------------------

    async def subscribe(self, tenant_id: str, from_sequence: int | None, owner: str = "") -> Subscription:
        """Events of the tenant after `from_sequence` (None: from now), replayed and then live, for `owner`
        (the key or token subject that asks).

        Raises UNAVAILABLE SERVER_SHUTTING_DOWN, RESOURCE_EXHAUSTED STREAM_SUBSCRIBERS_EXHAUSTED (or
        _PER_TENANT_EXHAUSTED, _PER_KEY_EXHAUSTED), or INVALID_ARGUMENT SEQUENCE_INVALID (negative, or past
        the tenant's last event)."""
        if from_sequence is not None and from_sequence < 0:
            raise invalid("SEQUENCE_INVALID", "from_sequence must be 0 or more", from_sequence=from_sequence)
        if not self._running:
            raise _shutting_down(from_sequence or 0)
        self._admit(tenant_id, owner)
        sub = Subscription(self, tenant_id, owner)
        self._subscriptions.add(sub)  # holds the slot while the head is read
        try:
            head = await self.head(tenant_id)
        except BaseException:
            sub.close()
            raise
        return self._position(sub, head, from_sequence)

    def _admit(self, tenant_id: str, owner: str) -> None:
        """A slot for one more stream, within the server's, the tenant's and the key's share: one tenant or
        one key cannot hold every slot of the server."""
        if len(self._subscriptions) >= self.subscribers_max:
            raise _exhausted("STREAM_SUBSCRIBERS_EXHAUSTED", f"this server already serves {self.subscribers_max} "
                             "streams; retry later or elsewhere", subscribers_max=self.subscribers_max)
        tenant_count = sum(1 for s in self._subscriptions if s.tenant_id == tenant_id)
        if tenant_count >= self.per_tenant_max:
            raise _exhausted("STREAM_SUBSCRIBERS_PER_TENANT_EXHAUSTED", f"this tenant already has {self.per_tenant_max}"
                             " streams on this server; close one first", subscribers_per_tenant_max=self.per_tenant_max)
        owner_count = sum(1 for s in self._subscriptions if s.tenant_id == tenant_id and s.owner == owner)
        if owner_count >= self.per_owner_max:
            raise _exhausted("STREAM_SUBSCRIBERS_PER_KEY_EXHAUSTED", f"this key already has {self.per_owner_max} "
                             "streams on this server; close one first", subscribers_per_key_max=self.per_owner_max)

    def _position(self, sub: Subscription, head: int, from_sequence: int | None) -> Subscription:
        if from_sequence is not None and from_sequence > head:
            sub.close()
            raise invalid("SEQUENCE_INVALID", f"from_sequence {from_sequence} is past the tenant's last event "
                          f"({head})", from_sequence=from_sequence, last_sequence=head)
        sub.cursor = head if from_sequence is None else from_sequence
        sub._at_head = sub.cursor == head
        return sub

    async def head(self, tenant_id: str) -> int:
        """The tenant's last committed event sequence (0 when it has none)."""
        heads = await self._read(self._replay_reader, {tenant_id},
                                 functools.partial(read_heads, tenant_ids=[tenant_id]))
        return heads.get(tenant_id, 0)

    # -- feeds ----------------------------------------------------------------------------------------

    def _try_attach(self, sub: Subscription) -> bool:
        """Makes `sub` live if its tenant's feed (or a new one, when `sub` is at the head) covers its cursor."""
        feed = self._feeds.get(sub.tenant_id)
        if feed is None:
            if not sub._at_head or not self._running:
                return False
            feed = self._feeds[sub.tenant_id] = _Feed(self, sub.tenant_id, sub.cursor)
        elif not feed.covers(sub.cursor):
            return False
        feed.attach(sub)
        return True

    def _close_feed(self, feed: _Feed) -> None:
        if self._feeds.get(feed.tenant_id) is feed:
            del self._feeds[feed.tenant_id]
        feed.task.cancel()

    def _fail_feed(self, feed: _Feed) -> None:
        for sub in list(feed.live):
            sub.end(_read_failed(sub.cursor))
        self._close_feed(feed)

    async def _read_page(self, tenant_id: str, after_sequence: int, *, live: bool) -> list[Event]:
        return await self._read(self._live_reader if live else self._replay_reader, {tenant_id}, functools.partial(
            ledger_repo.list_events, tenant_id=tenant_id, after_sequence=after_sequence, limit=self.page_size))

    async def _read(self, executor: ThreadPoolExecutor, tenants: Tenants, work: Callable[[Connection], T]) -> T:
        self.reads += 1
        return await asyncio.get_running_loop().run_in_executor(executor, self.uow.read, tenants, work)

    # -- the safety poll ------------------------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.idle_poll_s)
            try:
                await self._wake_behind()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next poll tries again
                log.warning("event head poll failed", exc_info=True)

    async def _wake_behind(self) -> None:
        tenants = sorted(self._feeds)
        for start in range(0, len(tenants), HEADS_PER_QUERY_MAX):
            chunk = tenants[start:start + HEADS_PER_QUERY_MAX]
            heads = await self._read(self._live_reader, chunk, functools.partial(read_heads, tenant_ids=chunk))
            for tenant_id, head in heads.items():
                feed = self._feeds.get(tenant_id)
                if feed is not None and head > feed.cursor:
                    feed.woken.set()
