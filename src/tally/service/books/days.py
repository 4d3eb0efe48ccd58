"""Closing accounting days, on request and on a schedule.

A close of day D runs in three steps, none of which holds postings up for long:

1. Cut (a write transaction, so under the posting gate): every posting transaction before it has committed,
   none runs during it. It moves the tenant's ledger head past D (a later batch takes max(today, head),
   so nothing can carry D or an earlier date afterwards, whatever a replica's clock says), fixes the day's
   last voucher sequence, and records D as `closing`. An earlier day still open is cut first.
2. Sum (a read-only snapshot, no gate): the day's journal, by its sequence range, which no longer changes.
3. Store (a write transaction): the trial balance per currency, the totals per flow type, each moved
   account's closing balance, the `day.closed` event; D becomes `closed`.

A close that stops between the steps (a crash, a lost connection) leaves D `closing` with its range fixed:
the next close of D (or of a later day) picks it up and finishes it; step 3 is one transaction, so a
failure inside it stores nothing. Closing a closed day answers what was stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace

from sqlalchemy import Connection

from tally.domain.calendar import AccountingCalendar, previous_date
from tally.domain.days import (
    DAY_CLOSED,
    AccountingDay,
    ClosingBalance,
    DayState,
    DayTotals,
    SummaryScope,
    check_balanced,
    check_summaries,
    closed_payload,
    next_date,
    parse_date,
    summary_scope,
)
from tally.domain.errors import precondition
from tally.service import paging
from tally.service.books.interest import InterestBook
from tally.storage import days_repo, ledger_repo, system_repo
from tally.storage.ledger_repo import Event
from tally.storage.uow import Scope, UnitOfWork

log = logging.getLogger("tally.days")
DAYS_PER_CLOSE_MAX = 366  # open days one close may take along (earliest first) before the day asked for
DAY_CLOSE_ACTOR = "system:day-close"


class DayBook:
    def __init__(self, uow: UnitOfWork, calendar: AccountingCalendar, clock: Callable[[], int], *,
                 auto: bool = False, grace_s: int = 300, interval_s: int = 60,
                 interest: InterestBook | None = None, summarize: SummaryScope | Iterable[str] = (),
                 sweeps: Callable[[str, str], Awaitable[int]] | None = None) -> None:
        self.uow, self.calendar, self.clock, self.interest = uow, calendar, clock, interest
        self.sweeps = sweeps  # the spending controls' day-close sweeps (service/sweeps.py)
        self.summarize = summary_scope(summarize)  # the flows (and accounts) whose days get summary vouchers
        self.auto, self.grace_s, self.interval_s = auto, grace_s, interval_s
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------------------------------ closing

    async def close_day(self, tenant_id: str, date_text: str, *, early: bool = False) -> AccountingDay:
        """`close`, then the day's interest accrual (posted through the pipeline, so not in a thread). Run
        again after a failure, it finishes what is left and posts nothing twice."""
        day = await asyncio.to_thread(self.close, tenant_id, date_text, early=early)
        if self.interest is not None and self.interest.enabled:
            rows = await asyncio.to_thread(self.interest.accrue, tenant_id, day.date)
            await self.interest.post(tenant_id, rows)
        if self.sweeps is not None:
            await self.sweeps(tenant_id, day.date)
        return day

    def close(self, tenant_id: str, date_text: str, *, early: bool = False) -> AccountingDay:
        """Closes `date` (and every open day before it, earliest first) and returns its record. `early`
        closes the current day before its cut-off (an operator's end of day): later postings get the next
        date from then on."""
        date = parse_date(date_text)
        for _ in range(DAYS_PER_CLOSE_MAX + 1):
            day = self.uow.write([tenant_id], lambda conn: self._cut(conn, tenant_id, date, early))
            if day.state is DayState.CLOSING:
                day = self._finish(day)
            if day.date == date:
                return day
        raise precondition("TOO_MANY_OPEN_DAYS", f"more than {DAYS_PER_CLOSE_MAX} days before {date} are open: "
                           "close an earlier day first", accounting_date=date)

    def _cut(self, conn: Connection, tenant_id: str, date: str, early: bool) -> AccountingDay:
        """Step 1: the day to work on next, `date` or an earlier one; cut (recorded as closing) if needed."""
        found = days_repo.get_day(conn, tenant_id, date)
        if found is not None:
            return found
        last = days_repo.last_day(conn, tenant_id)
        if last is not None and (last.state is DayState.CLOSING or last.date > date):
            return last if last.state is DayState.CLOSING else _quiet(conn, tenant_id, date)
        head = ledger_repo.load_heads(conn, [tenant_id])[tenant_id]
        _check_over(date, max(self.calendar.date_of(self.clock()), head.accounting_date), early)
        if head.accounting_date <= date:  # "" on a tenant's first write sorts first
            head.accounting_date = next_date(date)
            ledger_repo.save_heads(conn, [head])
        after = last.last_sequence if last else 0
        earliest, last_sequence = days_repo.unclosed_range(conn, tenant_id, after, date)
        if earliest is not None and earliest < date:
            date = earliest
            _, last_sequence = days_repo.unclosed_range(conn, tenant_id, after, date)
        day = AccountingDay(tenant_id, date, DayState.CLOSING, after, last_sequence, started_us=self.clock())
        days_repo.insert_day(conn, day)
        return day

    def _finish(self, day: AccountingDay) -> AccountingDay:
        """Steps 2 and 3."""
        tenant_id = day.tenant_id
        totals = self.uow.read([tenant_id], lambda conn: days_repo.sum_day(
            conn, tenant_id, day.after_sequence, day.last_sequence, self.summarize))
        check_balanced(day.date, totals.currencies)
        check_summaries(day.date, totals.summary_lines, self.summarize)
        closed = self.uow.write([tenant_id], lambda conn: self._store(conn, day, totals))
        log.info("closed %s for tenant %s: %d vouchers, %d accounts", closed.date, tenant_id,
                 closed.voucher_count, closed.accounts_closed)
        return closed

    def _store(self, conn: Connection, day: AccountingDay, totals: DayTotals) -> AccountingDay:
        current = days_repo.get_day(conn, day.tenant_id, day.date)
        if current is None or current.state is DayState.CLOSED:
            return current or day  # another close finished it first
        head = ledger_repo.load_heads(conn, [day.tenant_id])[day.tenant_id]
        head.event_sequence += 1
        now = self.clock()
        closed = replace(current, state=DayState.CLOSED, voucher_count=totals.voucher_count, closed_us=now,
                         event_sequence=head.event_sequence, currencies=totals.currencies, flows=totals.flows,
                         accounts_closed=len(totals.closing))
        days_repo.store_closed(conn, closed, totals)
        ledger_repo.insert_events(conn, [Event(day.tenant_id, head.event_sequence, DAY_CLOSED,
                                               closed_payload(closed), now)])
        ledger_repo.save_heads(conn, [head])
        return closed

    # ------------------------------------------------------------------------------------------ reading

    def get(self, tenant_id: str, date_text: str) -> AccountingDay:
        date = parse_date(date_text)
        return self.uow.read([tenant_id], lambda conn: self._get(conn, tenant_id, date))

    def _get(self, conn: Connection, tenant_id: str, date: str) -> AccountingDay:
        found = days_repo.get_day(conn, tenant_id, date)
        if found is not None:
            return found
        last = days_repo.last_day(conn, tenant_id)
        if last is not None and last.date > date:
            return _quiet(conn, tenant_id, date)
        after = last.last_sequence if last else 0
        return AccountingDay(tenant_id, date, DayState.OPEN, after, after)

    def list(self, tenant_id: str, page_size: int, page_token: str) -> tuple[list[AccountingDay], str]:
        """Recorded days, newest first."""
        limit = paging.page_size(page_size)
        query = {"list": "days"}
        before = paging.decode(page_token, query, "9999-12-32")
        days = self.uow.read([tenant_id], lambda conn: days_repo.list_days(conn, tenant_id, before_date=before,
                                                                           limit=limit + 1))
        more = len(days) > limit
        days = days[:limit]
        return days, paging.encode(days[-1].date, query) if more else ""

    def closing_balances(self, tenant_id: str, date_text: str, page_size: int,
                         page_token: str) -> tuple[list[ClosingBalance], str]:
        """The closing balances a closed day stored (the accounts it moved), by account id."""
        date = parse_date(date_text)
        limit = paging.page_size(page_size)
        query = {"list": "closing_balances", "date": date}
        after = paging.decode(page_token, query, "")
        rows = self.uow.read([tenant_id], lambda conn: days_repo.closing_balances(
            conn, tenant_id, date, after_account=after, limit=limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, paging.encode(rows[-1].account_id, query) if more else ""

    # ------------------------------------------------------------------------------------------ schedule

    def due_date(self) -> str:
        """The last day whose cut-off lies at least `grace_s` in the past."""
        return previous_date(self.calendar.date_of(self.clock() - self.grace_s * 1_000_000))

    async def close_due(self) -> int:
        """Closes the due day of every tenant (and their open days before it); returns how many tenants."""
        date = self.due_date()
        closed = 0
        for tenant_id in await asyncio.to_thread(self.uow.read, Scope.SYSTEM, system_repo.tenant_ids):
            try:
                await self.close_day(tenant_id, date)
                closed += 1
            except Exception:
                log.exception("closing %s for tenant %s failed; trying again next round", date, tenant_id)
        return closed

    def start(self) -> None:
        if self.auto:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="day-close")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.close_due()
            except Exception:
                log.exception("the scheduled day close failed; trying again in %ss", self.interval_s)
            await asyncio.sleep(self.interval_s)


def _check_over(date: str, today: str, early: bool) -> None:
    """`today` is the tenant's accounting day now: the calendar's, or a later one after an early close."""
    if date > today or (date == today and not early):
        raise precondition("DAY_NOT_OVER", f"{date} is not over: the accounting day now is {today}",
                           accounting_date=date, today=today)


def _quiet(conn: Connection, tenant_id: str, date: str) -> AccountingDay:
    """A day without vouchers between closed days: closed by the close of a later day, nothing stored."""
    earlier = days_repo.list_days(conn, tenant_id, before_date=date, limit=1)
    at = earlier[0].last_sequence if earlier else 0
    return AccountingDay(tenant_id, date, DayState.CLOSED, at, at)
