"""The audit log writer: every mutating and every refused call leaves a row.

Rows are queued and written in batches by one task, in transactions of their own, scoped to the batch's
tenants, that do not take the posting gate, so auditing costs the posting path one queue put per call. The
queue is bounded: when it is full, callers wait rather than lose evidence. Vouchers themselves keep their
request_id, so the rows of the last moments before a crash can be matched to what was posted.
"""

from __future__ import annotations

import asyncio
import logging

from tally.storage import auth_repo
from tally.storage.auth_repo import AuditRow
from tally.storage.uow import UnitOfWork, refuses_content

log = logging.getLogger(__name__)


class AuditLog:
    def __init__(self, uow: UnitOfWork, *, queue_depth_max: int = 100_000, batch_size_max: int = 1000,
                 flush_ms: int = 50) -> None:
        self.uow = uow
        self.batch_size_max, self.flush_ms = batch_size_max, flush_ms
        self._queue: asyncio.Queue[AuditRow] = asyncio.Queue(queue_depth_max)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-log")

    async def stop(self) -> None:
        """Writes every queued row, then stops."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def record(self, row: AuditRow) -> None:
        await self._queue.put(auth_repo.storable(row))

    async def flush(self) -> None:
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            rows = [await self._queue.get()]
            await asyncio.sleep(self.flush_ms / 1000)  # let a batch gather
            while len(rows) < self.batch_size_max and not self._queue.empty():
                rows.append(self._queue.get_nowait())
            await self._write(rows)
            for _ in rows:
                self._queue.task_done()

    async def _write(self, rows: list[AuditRow]) -> None:
        """Writes a batch, retrying while the database is away: evidence is not dropped. A row the database
        refuses for what it holds is found by writing the batch row by row, and kept in the log instead,
        so that it cannot stop every later row."""
        delay_s = 0.1
        while True:
            try:
                await asyncio.to_thread(self.uow.append, {row.tenant_id for row in rows},  # "" included
                                        lambda conn: auth_repo.insert_audit(conn, rows))
                return
            except Exception as exc:
                if refuses_content(exc):
                    break
                log.exception("writing %d audit rows failed; retrying in %.1fs", len(rows), delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)
        if len(rows) == 1:
            log.error("the database refused an audit row, kept here instead: %r", rows[0])
            return
        for row in rows:
            await self._write([row])
