"""The posting pipeline: gathers submissions from many callers into batches for its writer threads.

A tenant's submissions always go to the same writer, so they are written in the order they came; writers of
different tenants write side by side (each transaction holds only its own tenants' gates).

Callers await their own outcome, which is only set after the batch's transaction has committed. While
the writer commits one batch the next one fills up, so batches grow with load without a fixed linger;
`linger_ms` can add a short wait when the queue runs dry. The writer thread takes each batch from the
queue itself and hands the answers back to the event loop: a busy event loop never holds up the next
transaction (it did when the loop handed out batches: 2 ms median between transactions at 16 callers).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass

from tally import metrics
from tally.domain.calendar import AccountingCalendar
from tally.domain.errors import ErrorKind, LedgerError
from tally.service.controls import ControlBook
from tally.service.faults import unexpected
from tally.service.posting.batch import Opener, Outcome, Submission, no_templates, runs, write_batch
from tally.service.posting.memory import WriterMemory
from tally.storage.epochs import is_stale
from tally.storage.uow import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineLimits:
    batch_size_max: int = 1000
    linger_ms: int = 0
    queue_depth_max: int = 20_000  # queue entries (a Post, or a PostBatch whole)
    # Submissions of one tenant queued or being written: one busy tenant cannot take the whole queue.
    tenant_submissions_max: int = 10_000
    writers: int = 1  # writer threads, each with its own queue and connection
    # Accounts each writer remembers from its commits (service/posting/memory.py): 0, none.
    memory_accounts_max: int = 20_000


def now_us() -> int:
    return time.time_ns() // 1000


class PostingPipeline:
    def __init__(self, uow: UnitOfWork, calendar: AccountingCalendar, limits: PipelineLimits,
                 clock=now_us, opener: Opener = no_templates, controls: ControlBook | None = None) -> None:
        self.uow, self.calendar, self.limits, self.clock, self.opener = uow, calendar, limits, clock, opener
        self.controls = controls  # spending controls, checked in the write transaction
        self._queues = [_Queue(limits) for _ in range(limits.writers)]
        self._arrived: list[_Entry] = []  # queued in this turn of the event loop, handed over at its end
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._stopped: list[asyncio.Future] = []
        self._tenant_submissions: Counter[str] = Counter()  # queued or being written; event-loop thread only
        self._batches_written = [0] * limits.writers  # each writer counts its own
        # Remembering is sound only where writers take gates (or SQLite's one write lock).
        remember = limits.memory_accounts_max > 0 and uow.locking
        self._memories = [WriterMemory(limits.memory_accounts_max) if remember else None for _ in self._queues]
        self._openings = [Counter() for _ in self._queues]  # each writer counts its own
        self._rewrite_causes = [Counter() for _ in self._queues]

    @property
    def memories(self) -> tuple[WriterMemory, ...]:
        """Each writer's memory (none when switched off)."""
        return tuple(m for m in self._memories if m is not None)

    @property
    def openings(self) -> Counter[str]:
        """Batches by where their transaction started: remembered, read, or rewritten (metrics.write_opened)."""
        return sum(self._openings, Counter())

    @property
    def rewrite_causes(self) -> Counter[str]:
        """Rewritten batches by why what was remembered failed: stale (an epoch moved) or other."""
        return sum(self._rewrite_causes, Counter())

    @property
    def batches_written(self) -> int:
        return sum(self._batches_written)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = [self._loop.create_future() for _ in self._queues]
        self._threads = [threading.Thread(target=self._run, args=(i,), name=f"tally-writer-{i}", daemon=True)
                         for i in range(len(self._queues))]
        for thread in self._threads:
            thread.start()

    async def stop(self) -> None:
        """Finishes every submission already queued, then stops the writers."""
        if self._threads:
            self._hand_over()
            for queue in self._queues:
                queue.close()
            await asyncio.gather(*self._stopped)
            self._threads = []

    async def submit(self, sub: Submission) -> Outcome:
        return (await self.submit_many([sub]))[0]

    async def submit_many(self, subs: list[Submission]) -> list[Outcome]:
        """Queues submissions together (an atomic group stays in one batch); answers after commit."""
        if not subs:  # an empty entry would fail the hand-over, and with it the turn's other submissions
            return []
        if self._queues[0].closed:
            raise LedgerError(ErrorKind.UNAVAILABLE, "POSTING_STOPPED",
                              "the server is shutting down; retry with the same request_id")
        if self.queue_depth() + len(self._arrived) >= self.limits.queue_depth_max:
            raise LedgerError(ErrorKind.RESOURCE_EXHAUSTED, "POSTING_QUEUE_FULL",
                              "the posting queue is full; retry with the same request_id")
        per_tenant = Counter(sub.tenant_id for sub in subs)
        for tenant_id, n in per_tenant.items():
            if self._tenant_submissions[tenant_id] + n > self.limits.tenant_submissions_max:
                raise LedgerError(ErrorKind.RESOURCE_EXHAUSTED, "POSTING_QUEUE_TENANT_FULL",
                                  "this tenant's share of the posting queue is full; retry with the same request_id",
                                  queued=str(self._tenant_submissions[tenant_id]))
        self._tenant_submissions.update(per_tenant)
        loop = asyncio.get_running_loop()
        if not self._arrived:
            loop.call_soon(self._hand_over)
        future = loop.create_future()
        self._arrived.append((subs, future))
        return await future

    def _hand_over(self) -> None:
        """Submissions that arrived in the same turn of the event loop reach their writers together, so that
        callers answered together, who come back together, share a batch."""
        arrived, self._arrived = self._arrived, []
        routed: list[list[_Entry]] = [[] for _ in self._queues]
        for entry in arrived:
            routed[self._writer_of(entry[0][0].tenant_id)].append(entry)
        for queue, entries in zip(self._queues, routed, strict=True):
            if entries:
                queue.put(entries)

    def _writer_of(self, tenant_id: str) -> int:
        return zlib.crc32(tenant_id.encode()) % len(self._queues)

    def _run(self, writer: int) -> None:
        """A writer thread: takes what is queued as soon as the previous batch has committed, without
        waiting for the event loop to come round, and hands the answers back to it."""
        try:
            while (batch := self._queues[writer].take()) is not None:
                subs = [sub for entry_subs, _ in batch for sub in entry_subs]
                try:
                    answer: list[Outcome] | BaseException = self._write(subs, writer)
                except BaseException as exc:  # noqa: BLE001 - every caller must get an answer
                    answer = exc
                self._answer(self._deliver, batch, answer)
        finally:
            self._answer(_set_done, self._stopped[writer])

    def _answer(self, callback, *args) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the event loop is closed: nobody is waiting any more
            log.warning("posting pipeline: event loop closed, %s not delivered", callback.__name__)

    def _deliver(self, batch: list[_Entry], answer: list[Outcome] | BaseException) -> None:
        """In the event loop: the batch's tenants' shares are free again, and each caller gets its outcomes."""
        self._tenant_submissions.subtract(sub.tenant_id for subs, _ in batch for sub in subs)
        self._tenant_submissions = +self._tenant_submissions  # drops the tenants with nothing left
        _deliver(batch, answer)

    def _write(self, subs: list[Submission], writer: int) -> list[Outcome]:
        try:
            outcomes = self._transaction(subs, writer)
        except LedgerError as error:
            return [error] * len(subs)
        except Exception:
            if len(runs(subs)) == 1:
                raise
            # Something no check foresaw failed the batch: write each submission (or atomic group) alone,
            # so it fails only the one that causes it.
            log.exception("batch of %d failed; writing its parts one by one", len(subs))
            return [outcome for run in runs(subs) for outcome in self._write_alone(run, writer)]
        self._batches_written[writer] += 1
        return outcomes

    def queue_depth(self) -> int:
        return sum(queue.depth() for queue in self._queues)

    def _transaction(self, subs: list[Submission], writer: int) -> list[Outcome]:
        tenants = {sub.tenant_id for sub in subs}  # a batch spans the tenants of its submissions
        memory = self._memories[writer]
        started = time.perf_counter()
        try:
            try:
                outcomes = self._transaction_once(tenants, subs, memory)
            except Exception as exc:
                if memory is None or not memory.relied:
                    raise
                # What was remembered may be what failed (a tenant written by another process since, or a
                # request seen before, which memory does not know): once more, from fresh reads.
                self._opened(writer, "rewritten", "stale" if is_stale(exc) else "other")
                if is_stale(exc):
                    memory.cool(tenants)  # forgotten already, as after every failure
                outcomes = self._transaction_once(tenants, subs, memory)
            if memory is not None:
                memory.settle()
            self._opened(writer, "remembered" if memory is not None and memory.relied else "read")
            return outcomes
        finally:
            metrics.batch_written(len(subs), time.perf_counter() - started)

    def _opened(self, writer: int, opening: str, cause: str = "") -> None:
        self._openings[writer][opening] += 1
        if cause:
            self._rewrite_causes[writer][cause] += 1
        metrics.write_opened(opening, cause)

    def _transaction_once(self, tenants: set[str], subs: list[Submission],
                          memory: WriterMemory | None) -> list[Outcome]:
        if memory is not None:
            memory.relied = False
        try:
            return self.uow.write(tenants, lambda conn: write_batch(
                conn, subs, self.clock(), self.calendar, self.opener, self.controls, memory))
        except BaseException:
            if memory is not None:
                memory.forget(tenants)
            raise

    def _write_alone(self, run: list[Submission], writer: int) -> list[Outcome]:
        try:
            return self._transaction(run, writer)
        except LedgerError as error:
            return [error] * len(run)
        except Exception as exc:  # noqa: BLE001 - every caller gets an answer
            log.warning("submission %s/%s failed", run[0].tenant_id, run[0].request_id)
            return [unexpected(exc)] * len(run)  # UNAVAILABLE only when it may pass, else INTERNAL


_Entry = tuple[list[Submission], asyncio.Future]


class _Queue:
    """Entries waiting for the writer thread, at most `queue_depth_max`; the writer takes up to
    `batch_size_max` submissions at a time (an entry is never split; one larger than that goes alone)."""

    def __init__(self, limits: PipelineLimits) -> None:
        self.limits = limits
        self._entries: deque[_Entry] = deque()
        self._ready = threading.Condition()
        self.closed = False

    def depth(self) -> int:
        return len(self._entries)

    def put(self, entries: list[_Entry]) -> None:
        with self._ready:
            self._entries.extend(entries)
            self._ready.notify()

    def close(self) -> None:
        """The writer finishes what is queued, then `take` returns None."""
        with self._ready:
            self.closed = True
            self._ready.notify()

    def take(self) -> list[_Entry] | None:
        """The next batch, waiting for one; None once closed and empty."""
        with self._ready:
            while not self._entries:
                if self.closed:
                    return None
                self._ready.wait()
            batch = [self._entries.popleft()]
            self._fill(batch)
            return batch

    def _fill(self, batch: list[_Entry]) -> None:
        """Adds entries while they fit, lingering up to `linger_ms` for more; the lock is held."""
        size = len(batch[0][0])
        deadline = time.monotonic() + self.limits.linger_ms / 1000
        while size < self.limits.batch_size_max:
            if not self._entries:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed or not self._ready.wait(remaining):
                    return
                continue
            if size + len(self._entries[0][0]) > self.limits.batch_size_max:
                return  # it waits at the head for the next batch
            batch.append(self._entries.popleft())
            size += len(batch[-1][0])


def _deliver(batch: list[_Entry], answer: list[Outcome] | BaseException) -> None:
    """In the event loop: each caller's outcomes, or the exception that failed the whole batch."""
    start = 0
    for entry_subs, future in batch:
        end = start + len(entry_subs)
        if not future.done():  # done: the caller gave up waiting
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer[start:end])
        start = end


def _set_done(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
