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
from tally.service.batch import Opener, Outcome, Submission, no_templates, write_batch
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
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((sub, future))
        except asyncio.QueueFull:
            raise LedgerError(ErrorKind.RESOURCE_EXHAUSTED, "POSTING_QUEUE_FULL",
                              "the posting queue is full; retry with the same request_id") from None
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await self._fill(batch)
            try:
                outcomes = await asyncio.get_running_loop().run_in_executor(
                    self._writer, self._write, [sub for sub, _ in batch])
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
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
        deadline = time.monotonic() + self.limits.linger_ms / 1000
        while len(batch) < self.limits.batch_size_max:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                return

    def _write(self, subs: list[Submission]) -> list[Outcome]:
        try:
            outcomes = self.uow.write(lambda conn: write_batch(conn, subs, self.clock(), self.calendar, self.opener))
        except LedgerError as error:
            return [error] * len(subs)
        except Exception:
            if len(subs) == 1:
                raise
            # Something no check foresaw failed the batch: write each submission alone, so it fails
            # only the one that causes it.
            log.exception("batch of %d failed; writing its submissions one by one", len(subs))
            return [self._write_one(sub) for sub in subs]
        self.batches_written += 1
        return outcomes

    def _write_one(self, sub: Submission) -> Outcome:
        try:
            return self.uow.write(lambda conn: write_batch(conn, [sub], self.clock(), self.calendar, self.opener))[0]
        except LedgerError as error:
            return error
        except Exception:
            log.exception("submission %s/%s failed", sub.tenant_id, sub.request_id)
            return LedgerError(ErrorKind.UNAVAILABLE, "WRITE_FAILED",
                               "the voucher could not be written; retry with the same request_id")
