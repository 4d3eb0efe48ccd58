"""The posting pipeline: gathers submissions from many callers into batches for one writer thread.

Callers await their own outcome, which is only set after the batch's transaction has committed. While
the writer commits one batch the next one fills up, so batches grow with load without a fixed linger;
`linger_ms` can add a short wait when the queue runs dry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tally.domain.calendar import AccountingCalendar
from tally.domain.errors import ErrorKind, LedgerError
from tally.service.batch import Opener, Outcome, Submission, no_templates, runs, write_batch
from tally.storage.uow import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineLimits:
    batch_size_max: int = 1000
    linger_ms: int = 0
    queue_depth_max: int = 20_000


def now_us() -> int:
    return time.time_ns() // 1000


class PostingPipeline:
    def __init__(self, uow: UnitOfWork, calendar: AccountingCalendar, limits: PipelineLimits,
                 clock=now_us, opener: Opener = no_templates) -> None:
        self.uow, self.calendar, self.limits, self.clock, self.opener = uow, calendar, limits, clock, opener
        self._queue: asyncio.Queue[tuple[Submission, asyncio.Future]] = asyncio.Queue(limits.queue_depth_max)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tally-writer")
        self._task: asyncio.Task | None = None
        self._carry: tuple[list[Submission], asyncio.Future] | None = None
        self.batches_written = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="posting-pipeline")

    async def stop(self) -> None:
        """Finishes every submission already queued, then stops the writer."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._writer.shutdown(wait=True)

    async def submit(self, sub: Submission) -> Outcome:
        return (await self.submit_many([sub]))[0]

    async def submit_many(self, subs: list[Submission]) -> list[Outcome]:
        """Queues submissions together (an atomic group stays in one batch); answers after commit."""
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((subs, future))
        except asyncio.QueueFull:
            raise LedgerError(ErrorKind.RESOURCE_EXHAUSTED, "POSTING_QUEUE_FULL",
                              "the posting queue is full; retry with the same request_id") from None
        return await future

    async def _run(self) -> None:
        while True:
            batch = [self._carry or await self._queue.get()]
            self._carry = None
            await self._fill(batch)
            subs = [sub for entry_subs, _ in batch for sub in entry_subs]
            try:
                outcomes = await asyncio.get_running_loop().run_in_executor(self._writer, self._write, subs)
                for entry_subs, future in batch:
                    answer, outcomes = outcomes[:len(entry_subs)], outcomes[len(entry_subs):]
                    if not future.done():
                        future.set_result(answer)
            except BaseException as exc:  # noqa: BLE001 - every caller must get an answer
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _fill(self, batch: list) -> None:
        """Adds queued entries while they fit; one that does not waits in `_carry` for the next batch."""
        size = len(batch[0][0])
        deadline = time.monotonic() + self.limits.linger_ms / 1000
        while size < self.limits.batch_size_max:
            if self._queue.empty():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    entry = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    return
            else:
                entry = self._queue.get_nowait()
            if size + len(entry[0]) > self.limits.batch_size_max:
                self._carry = entry
                return
            batch.append(entry)
            size += len(entry[0])

    def _write(self, subs: list[Submission]) -> list[Outcome]:
        try:
            outcomes = self._transaction(subs)
        except LedgerError as error:
            return [error] * len(subs)
        except Exception:
            if len(runs(subs)) == 1:
                raise
            # Something no check foresaw failed the batch: write each submission (or atomic group) alone,
            # so it fails only the one that causes it.
            log.exception("batch of %d failed; writing its parts one by one", len(subs))
            return [outcome for run in runs(subs) for outcome in self._write_alone(run)]
        self.batches_written += 1
        return outcomes

    def _transaction(self, subs: list[Submission]) -> list[Outcome]:
        tenants = {sub.tenant_id for sub in subs}  # a batch spans the tenants of its submissions
        return self.uow.write(tenants, lambda conn: write_batch(conn, subs, self.clock(), self.calendar, self.opener))

    def _write_alone(self, run: list[Submission]) -> list[Outcome]:
        try:
            return self._transaction(run)
        except LedgerError as error:
            return [error] * len(run)
        except Exception:
            log.exception("submission %s/%s failed", run[0].tenant_id, run[0].request_id)
            return [LedgerError(ErrorKind.UNAVAILABLE, "WRITE_FAILED",
                                "the voucher could not be written; retry with the same request_id")] * len(run)
