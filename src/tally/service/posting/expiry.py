"""Releases holds whose expiry has passed, within seconds, exactly once.

Every process runs one; each expiry goes through the posting pipeline as a submission with the request
id `expire:<hold id>`, so when two processes race for the same hold the second is answered from the
idempotency record of the first, and a capture or release that won first makes the expiry a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tally.domain.errors import LedgerError
from tally.service.posting.batch import Submission
from tally.service.posting.hold_book import HoldAction, HoldOp
from tally.service.posting.pipeline import PostingPipeline
from tally.storage import system_repo
from tally.storage.uow import Scope, UnitOfWork

log = logging.getLogger(__name__)


class HoldExpirer:
    def __init__(self, uow: UnitOfWork, pipeline: PostingPipeline, clock: Callable[[], int], *,
                 interval_s: float = 1.0, batch_size_max: int = 500) -> None:
        self.uow, self.pipeline, self.clock = uow, pipeline, clock
        self.interval_s, self.batch_size_max = interval_s, batch_size_max
        self._task: asyncio.Task | None = None
        self.expired = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="hold-expirer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.expire_due()
            except Exception:
                log.exception("expiring holds failed; trying again in %ss", self.interval_s)
            await asyncio.sleep(self.interval_s)

    def _due(self, conn) -> list[tuple[str, str]]:
        return system_repo.due_holds(conn, self.clock(), self.batch_size_max)

    async def expire_due(self) -> int:
        """Expires every hold due now (in rounds of at most batch_size_max); returns how many."""
        count = 0
        while True:
            # The scan crosses tenants (the system path); each expiry is then written in a transaction scoped
            # to its tenant.
            due = await asyncio.to_thread(self.uow.read, Scope.SYSTEM, self._due)
            if not due:
                return count
            outcomes = await self.pipeline.submit_many([_expiry(tenant, hold) for tenant, hold in due])
            done = sum(1 for o in outcomes if not isinstance(o, LedgerError))
            count += done
            self.expired += done
            if len(due) < self.batch_size_max or done == 0:  # refused ones would come back: wait a round
                return count


EXPIRER_ACTOR = "system:hold-expiry"


def _expiry(tenant_id: str, hold_id: str) -> Submission:
    return Submission(tenant_id, f"expire:{hold_id}", "expire_hold", {"hold_id": hold_id},
                      hold_ops=(HoldOp(HoldAction.EXPIRE, hold_id),), actor=EXPIRER_ACTOR)
