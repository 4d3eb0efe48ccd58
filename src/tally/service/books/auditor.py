"""Runs the ledger audit for callers and on a schedule, and makes its results seen.

- `run` audits one tenant in a worker thread. When the awaiting task is cancelled (the gRPC caller went
  away, its deadline passed, the server stops), the thread is told to stop and does so at its next page:
  no audit keeps reading for a client that gave up.
- `start` audits every tenant every `interval_s` seconds (TALLY_AUDIT_INTERVAL_S; 0 = never), routine runs
  from each tenant's checkpoint.
- Each result is logged (ERROR on any finding, with the first findings and the accounts marked
  inconsistent), kept per tenant for the `tally.ledger_audit.findings` gauge, and every account marked
  inconsistent gets an audit-log row (actor system:ledger-audit).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tally import metrics
from tally.domain.fields import check_tenant
from tally.service import paging
from tally.service.auth.audit import AuditLog
from tally.service.books.ledger_audit import AUDIT_ACTOR, AuditCancelled, AuditReport, LedgerAudit, Progress
from tally.storage import audit_repo, system_repo
from tally.storage.audit_repo import AuditFilter
from tally.storage.auth_repo import AuditRow
from tally.storage.uow import Scope, UnitOfWork

log = logging.getLogger("tally.audit")
LOGGED_FINDINGS_MAX = 5


@dataclass(frozen=True)
class LastRun:
    findings: int
    finished_us: int
    full: bool
    through_sequence: int


class Auditor:
    def __init__(self, uow: UnitOfWork, clock: Callable[[], int], audit_log: AuditLog, *, interval_s: int = 0) -> None:
        self.uow, self.clock, self.audit_log = uow, clock, audit_log
        self.audit = LedgerAudit(uow, clock)
        self.interval_s = interval_s
        self.last: dict[str, LastRun] = {}  # tenant -> its last finished run
        self.running = 0  # runs whose thread has not returned yet
        self.cancelled = 0  # runs that stopped early because their caller went away
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------------------------------ one run

    async def run(self, tenant_id: str, *, full: bool = False,
                  progress: Callable[[Progress], None] | None = None) -> AuditReport:
        """Audits the tenant; `progress` is called on the event loop after every page."""
        stop = threading.Event()
        loop = asyncio.get_running_loop()

        def on_page(p: Progress) -> None:
            if progress is not None:
                loop.call_soon_threadsafe(progress, p)

        def should_stop() -> bool:
            return stop.is_set() or self._stopping.is_set()

        try:
            report = await asyncio.to_thread(self._run_counted, tenant_id, full, should_stop, on_page)
        except asyncio.CancelledError:
            stop.set()  # the thread sees it at its next page and gives up
            raise
        await self._publish(report)
        return report

    def _run_counted(self, tenant_id: str, full: bool, should_stop, on_page) -> AuditReport:
        with self._lock:
            self.running += 1
        try:
            return self.audit.run(tenant_id, full=full, should_stop=should_stop, progress=on_page)
        except AuditCancelled:
            with self._lock:
                self.cancelled += 1
            log.info("ledger audit of tenant %r stopped: its caller went away", tenant_id)
            raise
        finally:
            with self._lock:
                self.running -= 1

    async def _publish(self, report: AuditReport) -> None:
        now = self.clock()
        metrics.audit_finished(report.intact)
        for account_id in report.marked_inconsistent:
            finding = next((f for f in report.findings if f.account_id == account_id), None)
            await self.audit_log.record(AuditRow(
                report.tenant_id, AUDIT_ACTOR, "system", "LedgerAudit", f"account:{account_id}",
                f"marked:inconsistent:{finding.kind.name if finding else ''}"[:96], "", "", now))
        if report.intact:
            log.info("ledger audit of tenant %r: intact (%s, vouchers %d..%d, %d read in %d ms)", report.tenant_id,
                     "full" if report.full else "routine", report.from_sequence, report.through_sequence,
                     report.vouchers_read, report.duration_ms)
        else:
            shown = "; ".join(f"{f.kind.name}: {f.message}" for f in report.findings[:LOGGED_FINDINGS_MAX])
            log.error("ledger audit of tenant %r: %d finding(s); accounts marked inconsistent: %s; first: %s",
                      report.tenant_id, report.finding_count, ", ".join(report.marked_inconsistent) or "none", shown)
        # Last: whoever sees the run's result (the findings gauge) finds its log line and audit rows already there.
        self.last[report.tenant_id] = LastRun(report.finding_count, now, report.full, report.through_sequence)

    def findings_by_tenant(self) -> dict[str, int]:
        return {tenant: last.findings for tenant, last in self.last.items()}

    # ------------------------------------------------------------------------------------------ the schedule

    def start(self) -> None:
        if self.interval_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._schedule(), name="ledger-audit")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _schedule(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.audit_all()

    async def audit_all(self) -> None:
        """One routine run for every tenant; a failure is logged and the next tenant audited."""
        try:
            tenants = await asyncio.to_thread(self.uow.read, Scope.SYSTEM, system_repo.tenant_ids)
        except Exception:
            log.exception("ledger audit: listing the tenants failed; trying again in %ss", self.interval_s)
            return
        for tenant_id in tenants:
            try:
                await self.run(tenant_id)
            except AuditCancelled:
                return
            except Exception:
                log.exception("ledger audit of tenant %r failed; trying again in %ss", tenant_id, self.interval_s)


# ---------------------------------------------------------------------------------------------- reading the log


@dataclass(frozen=True)
class AuditPage:
    rows: list
    next_page_token: str


def list_audit_log(uow: UnitOfWork, tenant_id: str, where: AuditFilter, page_size_requested: int,
                   page_token: str) -> AuditPage:
    """One page of the tenant's audit log (AIP-158): oldest first, filtered, resumable by an opaque token
    bound to the filter."""
    check_tenant(tenant_id)
    size = paging.page_size(page_size_requested)
    query = {"tenant": tenant_id, **vars(where)}
    after = paging.decode(page_token, query, 0)
    rows = uow.read({tenant_id}, lambda conn: audit_repo.list_audit_log(conn, tenant_id, where, after_id=after,
                                                                        limit=size + 1))
    more = len(rows) > size
    rows = rows[:size]
    return AuditPage(rows, paging.encode(rows[-1].id, query) if more else "")
