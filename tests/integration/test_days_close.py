"""Closing accounting days on SQLite and PostgreSQL: what a close stores, postings racing the cut-off, a close
that fails halfway and is run again, and several open days closed in order."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from tally.domain.accounts import Side
from tally.domain.days import DAY_CLOSED, DayState
from tally.domain.errors import LedgerError
from tally.service.books.days import DayBook
from tally.service.books.ledger_audit import LedgerAudit
from tally.storage import days_repo
from tally.storage import tables as t
from tests.integration.conftest import FUNDING, TENANT, check_ledger, outcomes

D, D1, D2 = "2026-03-10", "2026-03-11", "2026-03-12"


def at(iso: str) -> int:
    """Microseconds since the epoch of a UTC time written as ISO text."""
    moment = datetime.fromisoformat(iso).replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // datetime.resolution


class Clock:
    def __init__(self, iso: str) -> None:
        self.now = at(iso)

    def __call__(self) -> int:
        return self.now

    def set(self, iso: str) -> None:
        self.now = at(iso)


@pytest.fixture
def clock() -> Clock:
    return Clock(f"{D}T10:00:00")


@pytest.fixture
async def books(database_url, make_ledger, clock):
    ledger = make_ledger(database_url, clock=clock)
    ledger.open_internal(FUNDING)
    for code in ("alice", "bob", "carol"):
        ledger.open(code)
    return ledger, DayBook(ledger.uow, ledger.calendar, clock)


def stored(url: str, table: sa.Table, **where) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(table).where(*(table.c[k] == v for k, v in where.items()))).all()
    finally:
        engine.dispose()


def dates_by_sequence(url: str) -> dict[int, str]:
    return {r.sequence: r.accounting_date for r in stored(url, t.vouchers, tenant_id=TENANT)}


async def test_a_close_stores_trial_balance_flow_totals_closing_balances_and_one_event(books, clock, database_url):
    ledger, days = books
    await ledger.fund("alice", 1_000)
    await ledger.fund("bob", 500)
    await ledger.transfer("alice", "bob", 300)
    with pytest.raises(LedgerError) as refused:
        days.close(TENANT, D)
    assert refused.value.reason == "DAY_NOT_OVER"
    assert days.get(TENANT, D).state is DayState.OPEN

    clock.set(f"{D1}T00:00:01")
    day = days.close(TENANT, D)
    assert (day.state, day.voucher_count, day.after_sequence, day.last_sequence) == (DayState.CLOSED, 3, 0, 3)
    [usd] = day.currencies
    assert (usd.currency, usd.debit_total, usd.credit_total, usd.line_count) == ("USD", 1_800, 1_800, 6)
    flows = {(f.flow_type, f.currency): (f.voucher_count, f.amount_total) for f in day.flows}
    assert flows == {("adjustment", "USD"): (2, 1_500), ("transfer", "USD"): (1, 300)}
    closing = {b.account_id: b.balance for b in days.closing_balances(TENANT, D, 0, "")[0]}
    codes = {r.id: r.code for r in stored(database_url, t.accounts, tenant_id=TENANT)}
    assert {codes[a]: v for a, v in closing.items()} == {FUNDING: 1_500, "alice": 700, "bob": 800}

    # Idempotent: the same answer, no second event.
    assert days.close(TENANT, D) == day
    assert days.get(TENANT, D) == day
    events = [e for e in stored(database_url, t.events, tenant_id=TENANT) if e.type == DAY_CLOSED]
    assert len(events) == 1 and events[0].sequence == day.event_sequence
    payload = json.loads(events[0].payload)
    assert payload["trial_balance"] == [{"currency": "USD", "debit_total": 1_800, "credit_total": 1_800,
                                         "line_count": 6}]
    assert payload["voucher_count"] == 3

    # A posting after the close gets the next day, even from a clock still on the closed day.
    clock.set(f"{D}T23:59:59")
    posted = await ledger.transfer("bob", "alice", 1)
    assert posted.vouchers[0].accounting_date == D1
    assert days.get(TENANT, D) == day  # a closed day never changes
    check_ledger(database_url)
    report = LedgerAudit(ledger.uow, clock).run(TENANT, full=True)  # the event and the head check out
    assert report.intact, report.findings


async def test_postings_racing_the_cut_off_land_in_one_day_or_the_next_never_lost(books, clock, database_url):
    ledger, days = books
    await ledger.fund("alice", 1_000_000)
    clock.set(f"{D}T23:59:59.900000")

    async def post_many(count: int):
        return await outcomes(*(ledger.transfer("alice", "bob", 1 + i % 7) for i in range(count)))

    results = []
    for _ in range(3):
        results += await post_many(30)  # in D
    in_flight = asyncio.ensure_future(post_many(60))  # queued on D's clock, written around the cut
    await asyncio.sleep(0)
    clock.set(f"{D1}T00:00:00.000001")
    closing = asyncio.ensure_future(asyncio.to_thread(days.close, TENANT, D))
    results += await post_many(60)
    results += await in_flight
    day = await closing
    clock.set(f"{D}T23:59:59")  # a replica whose clock lags: still never the closed day
    results += await post_many(20)

    assert all(not isinstance(r, LedgerError) for r in results)
    acknowledged = {v.id for r in results for v in r.vouchers}
    stored_ids = {r.id for r in stored(database_url, t.vouchers, tenant_id=TENANT)}
    assert acknowledged <= stored_ids  # none lost
    dates = dates_by_sequence(database_url)
    in_day = sorted(s for s, d in dates.items() if d == D)
    assert in_day == list(range(day.after_sequence + 1, day.last_sequence + 1))  # the whole day, nothing else
    assert all(d > D for s, d in dates.items() if s > day.last_sequence)
    assert day.voucher_count == len(in_day)
    assert len(in_day) >= 91 and any(d > D for d in dates.values())
    sums = defaultdict(int)
    for line in stored(database_url, t.voucher_lines, tenant_id=TENANT):
        if line.accounting_date == D:
            sums[line.side] += line.amount
    [usd] = days.get(TENANT, D).currencies
    assert (usd.debit_total, usd.credit_total) == (sums["debit"], sums["credit"])
    # Each closing balance is the journal's balance at the end of D.
    for row in stored(database_url, t.day_closing_balances, tenant_id=TENANT, accounting_date=D):
        last = max((ln for ln in stored(database_url, t.voucher_lines, account_id=row.account_id)
                    if ln.accounting_date <= D), key=lambda ln: ln.entry_number)
        assert row.balance == last.balance_after
    check_ledger(database_url)


@pytest.mark.parametrize("failing", ["sum_day", "store_closed"])
async def test_a_close_that_fails_halfway_stores_nothing_and_the_next_run_finishes_it(books, clock, database_url,
                                                                                      monkeypatch, failing):
    ledger, days = books
    await ledger.fund("alice", 900)
    await ledger.transfer("alice", "carol", 400)
    clock.set(f"{D1}T08:00:00")
    real = getattr(days_repo, failing)

    def crash(conn, *args):
        real(conn, *args)  # the work is done (inside its transaction), then the process "dies"
        raise RuntimeError("crashed halfway")

    monkeypatch.setattr(days_repo, failing, crash)
    with pytest.raises(RuntimeError, match="crashed halfway"):
        days.close(TENANT, D)
    half = days.get(TENANT, D)
    assert half.state is DayState.CLOSING and half.last_sequence == 2
    assert stored(database_url, t.day_currency_totals, tenant_id=TENANT) == []
    assert stored(database_url, t.day_closing_balances, tenant_id=TENANT) == []
    assert [e for e in stored(database_url, t.events, tenant_id=TENANT) if e.type == DAY_CLOSED] == []
    # Postings go on meanwhile, into the next day.
    assert (await ledger.transfer("carol", "bob", 50)).vouchers[0].accounting_date == D1

    monkeypatch.setattr(days_repo, failing, real)
    day = days.close(TENANT, D)
    assert (day.state, day.voucher_count, day.last_sequence) == (DayState.CLOSED, 2, 2)
    assert [(c.debit_total, c.credit_total) for c in day.currencies] == [(1_300, 1_300)]
    assert len([e for e in stored(database_url, t.events, tenant_id=TENANT) if e.type == DAY_CLOSED]) == 1
    check_ledger(database_url)


async def test_closing_a_later_day_closes_the_open_days_before_it_in_order(books, clock, database_url):
    ledger, days = books
    await ledger.fund("alice", 100)
    clock.set(f"{D2}T09:00:00")  # D1 passes without a posting
    await ledger.fund("alice", 10)
    clock.set(f"{D2}T23:00:00")
    await ledger.transfer("alice", "bob", 5)
    clock.set("2026-03-13T00:10:00")
    last = days.close(TENANT, D2)
    listed, token = days.list(TENANT, 0, "")
    assert token == "" and [(d.date, d.state, d.voucher_count) for d in listed] == [
        (D2, DayState.CLOSED, 2), (D, DayState.CLOSED, 1)]
    quiet = days.get(TENANT, D1)  # no vouchers: closed along with D2, nothing stored
    assert (quiet.state, quiet.voucher_count, quiet.after_sequence, quiet.last_sequence) == (DayState.CLOSED, 0, 1, 1)
    assert (last.after_sequence, last.last_sequence) == (1, 3)
    page, token = days.list(TENANT, 1, "")
    assert [d.date for d in page] == [D2] and token
    assert [d.date for d in days.list(TENANT, 1, token)[0]] == [D]
    for bad in ("2026-3-10", "yesterday", ""):
        with pytest.raises(LedgerError) as refused:
            days.close(TENANT, bad)
        assert refused.value.reason == "ACCOUNTING_DATE_INVALID"
    events = [json.loads(e.payload)["accounting_date"] for e in stored(database_url, t.events, tenant_id=TENANT)
              if e.type == DAY_CLOSED]
    assert events == [D, D2]
    assert Side.DEBIT  # the funding account is debit-normal: its closing balance is positive
    funding = [r for r in stored(database_url, t.day_closing_balances, tenant_id=TENANT, accounting_date=D2)]
    assert sorted(r.balance for r in funding) == [5, 105, 110]
