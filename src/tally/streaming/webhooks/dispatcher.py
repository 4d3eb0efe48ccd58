"""Webhook delivery: committed events, in sequence order per subscription, at least once.

Each subscription keeps a cursor in its row: the last sequence its receiver acknowledged (or the filter
passed over). Its deliverer reads "sequence > cursor" in bounded pages after commit, like the streams do,
sends each wanted event until the receiver answers 2xx, and moves the cursor in the same transaction that
records the attempts. Acknowledgements are written together (up to ACKS_EVENTS_MAX events or ACKS_WAIT_MS,
and at the end of each page), so a busy subscription costs one write per batch, not per event. A crash
between the receiver's answer and that commit sends those events again (same `webhook-id`: the receiver
deduplicates), and nothing is ever skipped.

Several processes: a subscription is delivered by the process holding its lease (`lease_owner` until
`lease_expires_us`), taken by compare-and-set and renewed every tick. Every cursor move is conditional on
holding the lease and on the cursor being where the deliverer read it, so a process that lost its lease
(paused, killed, cut off) cannot move it; a replay that moved it makes the deliverer read the row again. A
process that dies leaves its leases to expire; another takes them and goes on from the cursor.

Failures: retried with exponential backoff and jitter (the schedule is in the row, so a process that takes
over keeps to it), at most `webhook_attempts_max` times per event; then the subscription is paused with the
reason, for an operator to see (ListWebhooks), fix and resume (UpdateWebhook status active, or a replay).

Wake-ups: after-commit callbacks of this process and NOTIFY from others (through the hub) wake the tenant's
deliverers (not one waiting out a backoff); a change made through this process's API wakes them and the
lease tick; a tick every `webhook_poll_ms` renews leases, takes free ones and is the safety net. An idle
tick reads twice: the tenants with active subscriptions (a system function on PostgreSQL) and their
subscriptions that are free or this process's; leases are written only when new or past half their life.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from tally.config import Settings
from tally.domain.errors import invalid, not_accessible
from tally.domain.ids import new_id
from tally.domain.webhooks import (
    Delivery,
    RetryPolicy,
    Trigger,
    Webhook,
    WebhookStatus,
    clip,
    event_accounts,
    message_body,
    message_id,
    wants,
)
from tally.storage import ledger_repo, system_repo
from tally.storage import webhooks_repo as repo
from tally.storage.ledger_repo import Event
from tally.storage.uow import Scope, Tenants, UnitOfWork
from tally.streaming.waits import woken_within
from tally.streaming.webhooks.sender import Sender

log = logging.getLogger(__name__)
T = TypeVar("T")
PAGE_EVENTS_MAX = 100
TENANTS_PER_QUERY_MAX = 1000
DB_THREADS_MAX = 2  # database connections the deliverers of one process hold at most
ACKS_EVENTS_MAX = 50
ACKS_WAIT_MS = 100


def owner_name() -> str:
    """This process, as a lease owner: host, pid and a random part (a restarted pid is another owner)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{new_id()[-12:]}"


@dataclass
class _Worker:
    hook: Webhook
    task: asyncio.Task | None = None
    woken: asyncio.Event = field(default_factory=asyncio.Event)  # new events, or a change
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # a change to the subscription only

    async def nap(self, seconds: float, *, changes_only: bool = False) -> bool:
        """Sleeps up to `seconds`; True when woken earlier. A backoff waits for changes only: new events
        cannot shorten it."""
        try:
            return await woken_within(self.changed if changes_only else self.woken, seconds)
        finally:
            self.woken.clear()
            self.changed.clear()


class _Acks:
    """Acknowledged attempts not written yet, and the cursor they move to. Written every
    `ACKS_EVENTS_MAX` events or `ACKS_WAIT_MS`, at the end of a page, and before any failure or wait: a
    crash sends at most those again (at least once; receivers deduplicate by webhook-id)."""

    def __init__(self, cursor: int) -> None:
        self.cursor = cursor
        self.records: list[Delivery] = []
        self.since_ns = 0

    def add(self, record: Delivery) -> None:
        if not self.records:
            self.since_ns = time.monotonic_ns()
        self.records.append(record)
        self.cursor = record.sequence

    def due(self) -> bool:
        return len(self.records) >= ACKS_EVENTS_MAX or (
            bool(self.records) and time.monotonic_ns() - self.since_ns >= ACKS_WAIT_MS * 1_000_000)


class WebhookDispatcher:
    def __init__(self, uow: UnitOfWork, settings: Settings, clock: Callable[[], int], sender: Sender,
                 open_secret: Callable[[str], str], owner: str = "") -> None:
        self.uow, self.clock, self.sender, self.open_secret = uow, clock, sender, open_secret
        self.owner = owner or owner_name()
        self.policy = RetryPolicy(settings.webhook_attempts_max, settings.webhook_backoff_ms,
                                  settings.webhook_backoff_max_ms)
        self.lease_us = settings.webhook_lease_s * 1_000_000
        self.tick_s = min(settings.webhook_poll_ms / 1000, settings.webhook_lease_s / 3)
        self.leases_max = settings.webhook_leases_max
        self.payload_bytes_max = settings.webhook_payload_bytes_max
        in_flight_max = settings.webhook_deliveries_in_flight_per_tenant_max
        self._in_flight: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(in_flight_max))
        self._workers: dict[str, _Worker] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._woken: asyncio.Event | None = None
        self._db = ThreadPoolExecutor(DB_THREADS_MAX, thread_name_prefix="tally-webhooks")

    @property
    def delivering(self) -> set[str]:
        """Ids of the subscriptions this process holds the lease of."""
        return set(self._workers)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._woken = asyncio.Event()
        self._task = self._loop.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self) -> None:
        """Stops delivering and hands the leases back, so another process goes on at once."""
        held = list(self._workers.values())
        tasks = [t for t in (self._task, *(w.task for w in held)) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers, self._task = {}, None
        for worker in held:
            with contextlib.suppress(Exception):
                await self._write({worker.hook.tenant_id}, functools.partial(
                    repo.release_lease, tenant_id=worker.hook.tenant_id, webhook_id=worker.hook.id,
                    owner=self.owner))
        await self.sender.close()
        self._db.shutdown(wait=False)

    def wake_in_loop(self, tenant_ids: Iterable[str] | None) -> None:
        """New events for these tenants (None: any may have some, after a missed notification). On the loop."""
        tenants = None if tenant_ids is None else set(tenant_ids)
        for worker in self._workers.values():
            if tenants is None or worker.hook.tenant_id in tenants:
                worker.woken.set()

    def changed(self, tenant_ids: Iterable[str]) -> None:
        """Subscriptions of these tenants were made or changed: their deliverers read them again, and the
        next lease tick comes now. Thread-safe."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._changed_in_loop, frozenset(tenant_ids))

    def _changed_in_loop(self, tenant_ids: frozenset[str]) -> None:
        for worker in self._workers.values():
            if worker.hook.tenant_id in tenant_ids:
                worker.changed.set()
                worker.woken.set()
        if self._woken is not None:
            self._woken.set()

    # -- leases ---------------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._woken is not None
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except DBAPIError as exc:  # an outage: the next tick tries again; leases expire meanwhile at worst
                log.warning("webhook lease tick failed: %s", type(exc.orig).__name__)
            except Exception:  # noqa: BLE001 - a bug: logged whole, and the next tick tries again
                log.exception("webhook lease tick failed")
            await woken_within(self._woken, self.tick_s)
            self._woken.clear()

    async def _tick(self) -> None:
        held: dict[str, Webhook] = {}
        tenants = await self._read(Scope.SYSTEM, system_repo.webhook_tenants)
        for start in range(0, len(tenants), TENANTS_PER_QUERY_MAX):
            chunk = tenants[start:start + TENANTS_PER_QUERY_MAX]
            room = self.leases_max - sum(1 for w in self._workers.values() if w.hook.tenant_id not in chunk)
            now_us = self.clock()
            found = await self._read(chunk, functools.partial(
                repo.claimable, tenant_ids=chunk, owner=self.owner, now_us=now_us, limit=max(room, 0)))
            fresh = {h.id: h for h in found if h.lease_owner == self.owner
                     and h.lease_expires_us - now_us > self.lease_us // 2}
            stale = [h for h in found if h.id not in fresh]
            if stale:
                fresh |= {h.id: h for h in await self._write(chunk, functools.partial(self._claim, hooks=stale))}
            held |= fresh
        for webhook_id in set(self._workers) - set(held):  # lost: paused, deleted, or taken by another
            worker = self._workers.pop(webhook_id)
            if worker.task is not None:
                worker.task.cancel()
        for webhook_id, hook in held.items():
            if webhook_id not in self._workers:
                self._start_worker(hook)

    def _claim(self, conn: Connection, hooks: list[Webhook]) -> list[Webhook]:
        """Takes or renews these leases; those another process took meanwhile are left out."""
        now_us = self.clock()
        return [h for h in hooks if repo.take_lease(conn, h, self.owner, now_us, self.lease_us)]

    def _start_worker(self, hook: Webhook) -> None:
        worker = _Worker(hook)
        worker.woken.set()
        worker.task = asyncio.get_running_loop().create_task(self._deliver_loop(worker), name=f"webhook-{hook.id}")
        worker.task.add_done_callback(functools.partial(self._worker_done, worker))
        self._workers[hook.id] = worker

    def _worker_done(self, worker: _Worker, task: asyncio.Task) -> None:
        if self._workers.get(worker.hook.id) is worker:
            del self._workers[worker.hook.id]
        error = None if task.cancelled() else task.exception()
        if isinstance(error, DBAPIError):
            log.warning("webhook %s: deliverer stopped (%s); it resumes at the next tick", worker.hook.id,
                        type(error.orig).__name__)
        elif error is not None:
            log.error("webhook %s: deliverer failed; it resumes at the next tick", worker.hook.id, exc_info=error)

    # -- delivery -------------------------------------------------------------------------------------

    async def _deliver_loop(self, worker: _Worker) -> None:
        tenant_id, webhook_id = worker.hook.tenant_id, worker.hook.id
        while True:
            hook, stored, page = await self._read({tenant_id}, functools.partial(
                _state, tenant_id=tenant_id, webhook_id=webhook_id))
            if hook is None or hook.status is not WebhookStatus.ACTIVE or hook.lease_owner != self.owner:
                return
            worker.hook = hook
            if not page:
                await worker.nap(self.tick_s * 5)
                continue
            await self._deliver_page(worker, hook, stored, page)

    async def _deliver_page(self, worker: _Worker, hook: Webhook, stored: repo.Secrets, page: list[Event]) -> None:
        """Sends the page's wanted events in order; returns early when the row must be read again.
        Acknowledged attempts are written together (`_Acks`), a failed one at once with its schedule."""
        acks = _Acks(hook.cursor)
        for event in page:
            if not wants(hook, event.type, event_accounts(event.account_id, event.payload)):
                acks.cursor = event.sequence  # passed over: moves with the next write
                continue
            moved = await self._deliver_event(worker, hook, stored, event, acks)
            if moved is None:
                return
            hook = moved
            if acks.due() and (hook := await self._flush(hook, acks)) is None:
                return
        await self._flush(hook, acks)

    async def _deliver_event(self, worker: _Worker, hook: Webhook, stored: repo.Secrets, event: Event,
                             acks: _Acks) -> Webhook | None:
        """Attempts `event` until the receiver acknowledges it (added to `acks`), or None: paused, or the row
        changed (lease lost, replay, update) and must be read again."""
        while True:
            wait_s = (hook.retry_at_us - self.clock()) / 1_000_000
            if wait_s > 0:
                if (hook := await self._flush(hook, acks)) is None:
                    return None
                if await worker.nap(wait_s, changes_only=True):
                    return None  # the subscription changed during the backoff: read it again
            outcome = await self.attempt(hook, event, stored)
            record = Delivery(hook.tenant_id, new_id(), hook.id, event.sequence, event.type, hook.failures + 1,
                              Trigger.LIVE, outcome.delivered, outcome.response_code, outcome.latency_us,
                              outcome.error, self.clock())
            if outcome.delivered:
                acks.add(record)
                return replace(hook, failures=0, retry_at_us=0)
            if (hook := await self._flush(hook, acks)) is None:
                return None
            values = self._after_failure(event, outcome, hook.failures + 1, record.created_us)
            if not await self._write({hook.tenant_id}, functools.partial(self._record, hook=hook, records=[record],
                                                                         values=values)):
                return None
            if values.get("status") == WebhookStatus.PAUSED.value:
                log.warning("webhook %s paused: %s", hook.id, values["status_reason"])
                return None
            hook = replace(hook, failures=values["failures"], retry_at_us=values["retry_at_us"])

    async def _flush(self, hook: Webhook, acks: _Acks) -> Webhook | None:
        """Writes the acknowledged attempts and moves the cursor past them (and past what the filters passed
        over): the subscription as it now is, or None when the row changed under it."""
        if acks.cursor == hook.cursor and not acks.records:
            return hook
        values = {"cursor": acks.cursor, "failures": 0, "retry_at_us": 0}
        records, acks.records = acks.records, []
        if not await self._write({hook.tenant_id}, functools.partial(self._record, hook=hook, records=records,
                                                                     values=values)):
            return None
        return replace(hook, cursor=acks.cursor, failures=0, retry_at_us=0)

    def _after_failure(self, event: Event, outcome, failures: int, now_us: int) -> dict:
        if self.policy.exhausted(failures):
            reason = clip(f"event {event.sequence} failed {failures} times; last: "
                          f"{outcome.error or outcome.response_code}")
            return {"failures": failures, "status": WebhookStatus.PAUSED.value, "status_reason": reason,
                    "lease_owner": "", "lease_expires_us": 0}
        return {"failures": failures, "retry_at_us": now_us + self.policy.delay_ms(failures) * 1000}

    def _record(self, conn: Connection, hook: Webhook, records: list[Delivery], values: dict) -> bool:
        for record in records:  # the attempts happened, whoever holds the lease now
            repo.insert_delivery(conn, record)
        now_us = self.clock()
        return repo.advance(conn, hook, self.owner, now_us, **values, updated_us=now_us)

    async def attempt(self, hook: Webhook, event: Event, stored: repo.Secrets):
        """One signed POST of `event` to the subscription's URL, within the tenant's in-flight limit."""
        secrets = [self.open_secret(stored.current)]
        if stored.previous and stored.previous_expires_us > self.clock():
            secrets.append(self.open_secret(stored.previous))
        body = message_body(hook.tenant_id, event.sequence, event.type, event.created_us,
                            {"account_id": event.account_id, "voucher_id": event.voucher_id,
                             "hold_id": event.hold_id}, event.payload, self.payload_bytes_max)
        async with self._in_flight[hook.tenant_id]:
            return await self.sender.send(hook.url, message_id(event.sequence), body, secrets)

    # -- redelivery -----------------------------------------------------------------------------------

    async def redeliver(self, tenant_id: str, webhook_id: str, sequence: int) -> Delivery:
        """Sends one event again now, whatever the subscription's cursor (which it does not move), and
        records the attempt."""
        if sequence <= 0:
            raise invalid("SEQUENCE_INVALID", "sequence must be 1 or more")
        hook, stored, found = await self._read({tenant_id}, functools.partial(
            _state, tenant_id=tenant_id, webhook_id=webhook_id, after_sequence=sequence - 1, limit=1))
        if hook is None or hook.status is WebhookStatus.DELETED:
            raise not_accessible("webhook", webhook_id)
        if not found or found[0].sequence != sequence:
            raise invalid("SEQUENCE_INVALID", f"the tenant has no event {sequence}", sequence=sequence)
        outcome = await self.attempt(hook, found[0], stored)
        record = Delivery(tenant_id, new_id(), webhook_id, sequence, found[0].type, 1, Trigger.REDELIVER,
                          outcome.delivered, outcome.response_code, outcome.latency_us, outcome.error, self.clock())
        await self._write({tenant_id}, functools.partial(repo.insert_delivery, d=record))
        return record

    # -- database -------------------------------------------------------------------------------------

    async def _read(self, tenants: Tenants, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, self.uow.read, tenants, work)

    async def _write(self, tenants: Tenants, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, self.uow.append, tenants, work)


def _state(conn: Connection, tenant_id: str, webhook_id: str, after_sequence: int | None = None,
           limit: int = PAGE_EVENTS_MAX) -> tuple[Webhook | None, repo.Secrets | None, list[Event]]:
    """A subscription, its secrets and the events after its cursor (or after `after_sequence`), in one
    snapshot."""
    hook = repo.get_webhook(conn, tenant_id, webhook_id)
    if hook is None:
        return None, None, []
    after = hook.cursor if after_sequence is None else after_sequence
    return hook, repo.secrets(conn, tenant_id, webhook_id), ledger_repo.list_events(
        conn, tenant_id, after_sequence=after, limit=limit)
