"""Summary vouchers and the general-ledger export on SQLite and PostgreSQL: for every day of a generated month,
each summary line is the exact sum of its detail lines, the summary lists exactly its detail vouchers, and
the export is the summarized journal (summaries of the summarized flow, every line of the others)."""

from __future__ import annotations

import contextlib
import random
from collections import Counter, defaultdict
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from tally.domain.errors import LedgerError
from tally.service.books.days import DayBook
from tally.service.books.summaries import SummaryBook, summary_id
from tally.storage import tables as t
from tests.integration.conftest import FUNDING, TENANT, check_ledger
from tests.integration.test_days_close import Clock

MONTH = [(date(2026, 4, 1) + timedelta(days=i)).isoformat() for i in range(30)]
PEOPLE = ("alice", "bob", "carol")


def journal(url: str) -> list:
    """Every line with its voucher's date, flow, sequence and id, straight from the tables."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            v, ln = t.vouchers.c, t.voucher_lines.c
            return conn.execute(sa.select(v.accounting_date, v.flow_type, v.sequence, v.id, ln.line_no,
                                          ln.account_id, ln.side, ln.amount, ln.currency)
                                .select_from(t.voucher_lines.join(t.vouchers, ln.voucher_id == v.id))
                                .order_by(v.sequence, ln.line_no)).all()
    finally:
        engine.dispose()


def all_pages(call, *args) -> list:
    items, token = call(*args, 7, "")
    while token:
        more, token = call(*args, 7, token)
        items += more
    return items


@pytest.fixture
async def month(database_url, make_ledger):
    clock = Clock(f"{MONTH[0]}T08:00:00")
    ledger = make_ledger(database_url, clock=clock)
    ledger.open_internal(FUNDING)
    for person in PEOPLE:
        ledger.open(person)
    days = DayBook(ledger.uow, ledger.calendar, clock, summarize=frozenset({"transfer"}))
    rng = random.Random(20)
    for i, day in enumerate(MONTH):
        clock.set(f"{day}T08:00:00")
        if i:
            days.close(TENANT, MONTH[i - 1])  # each morning, yesterday closes
        await ledger.fund(rng.choice(PEOPLE), rng.randint(1_000, 9_999))
        for _ in range(rng.randint(0, 5)):
            source, destination = rng.sample(PEOPLE, 2)
            with contextlib.suppress(LedgerError):  # insufficient funds: refused, nothing written
                await ledger.transfer(source, destination, rng.randint(1, 999))
    clock.set("2026-05-01T00:05:00")
    days.close(TENANT, MONTH[-1])
    return ledger, SummaryBook(ledger.uow)


async def test_every_summary_of_a_month_is_the_sum_of_its_detail(month, database_url):
    ledger, summaries = month
    lines = journal(database_url)
    checked = 0
    for day in MONTH:
        transfers = [ln for ln in lines if ln.accounting_date == day and ln.flow_type == "transfer"]
        expected = defaultdict(int)
        for ln in transfers:
            expected[ln.account_id, ln.side] += ln.amount
        found = all_pages(summaries.summaries, TENANT, day)
        if not transfers:
            assert found == []
            continue
        [summary] = found
        assert summary.id == summary_id(day, "transfer", "USD")
        assert {(s.account_id, s.side): s.amount for s in summary.lines} == dict(expected)
        assert sum(s.line_count for s in summary.lines) == len(transfers)
        detail_ids = list(dict.fromkeys(ln.id for ln in transfers))  # in sequence order
        assert summary.voucher_count == len(detail_ids)
        listed = all_pages(summaries.detail, TENANT, day, "transfer", "USD")
        assert [v.id for v in listed] == detail_ids and all(v.accounting_date == day for v in listed)
        checked += 1
    assert checked >= 20  # the generated month has transfers on most days

    for day in MONTH:
        rows = all_pages(summaries.export, TENANT, day)
        detail = [ln for ln in lines if ln.accounting_date == day and ln.flow_type != "transfer"]
        assert [(r.voucher_id, r.line_no, r.amount) for r in rows if r.kind == "detail"] == [
            (ln.id, ln.line_no, ln.amount) for ln in detail]
        summary_rows = [r for r in rows if r.kind == "summary"]
        assert sum(r.line_count for r in summary_rows) == len(
            [ln for ln in lines if ln.accounting_date == day and ln.flow_type == "transfer"])
        net = Counter()
        for r in rows:
            net[r.currency] += r.amount if r.side == "debit" else -r.amount
        assert all(v == 0 for v in net.values())  # the export balances, as the day did
        assert all(r.account_code for r in rows)
    check_ledger(database_url)


async def test_summaries_and_export_need_a_closed_day(database_url, make_ledger):
    clock = Clock(f"{MONTH[0]}T08:00:00")
    ledger = make_ledger(database_url, clock=clock)
    summaries = SummaryBook(ledger.uow)
    for call, args in ((summaries.summaries, (MONTH[0],)), (summaries.export, (MONTH[0], 0, "")),
                       (summaries.detail, (MONTH[0], "transfer", "USD", 0, ""))):
        with pytest.raises(LedgerError) as refused:
            call(TENANT, *args)
        assert refused.value.reason == "DAY_NOT_CLOSED"
    DayBook(ledger.uow, ledger.calendar, clock, summarize=frozenset({"transfer"})).close(TENANT, MONTH[0], early=True)
    assert summaries.summaries(TENANT, MONTH[0]) == ([], "")
    assert summaries.detail(TENANT, MONTH[0], "adjustment", "USD", 0, "") == ([], "")  # not summarized


async def test_a_summary_of_some_accounts_leaves_the_others_in_the_export_as_detail(database_url, make_ledger):
    clock = Clock(f"{MONTH[0]}T08:00:00")
    ledger = make_ledger(database_url, clock=clock)
    ledger.open_internal(FUNDING)
    for person in PEOPLE:
        ledger.open(person)
    await ledger.fund("alice", 5_000)
    await ledger.fund("bob", 5_000)
    for source, destination, amount in (("alice", "bob", 10), ("bob", "carol", 20), ("alice", "carol", 30)):
        await ledger.transfer(source, destination, amount)
    days = DayBook(ledger.uow, ledger.calendar, clock, summarize={"transfer": ("alice",)})
    days.close(TENANT, MONTH[0], early=True)
    summaries = SummaryBook(ledger.uow)
    [summary] = summaries.summaries(TENANT, MONTH[0])[0]
    assert [(ln.side, ln.amount, ln.line_count) for ln in summary.lines] == [("debit", 40, 2)]  # alice's only
    rows = all_pages(summaries.export, TENANT, MONTH[0])
    detail = [(r.flow_type, r.account_code, r.side, r.amount) for r in rows if r.kind == "detail"]
    assert sorted(d for d in detail if d[0] == "transfer") == sorted([
        ("transfer", "bob", "credit", 10), ("transfer", "bob", "debit", 20), ("transfer", "carol", "credit", 20),
        ("transfer", "carol", "credit", 30)])
    net = sum(r.amount if r.side == "debit" else -r.amount for r in rows)
    assert net == 0 and sum(r.line_count for r in rows) == 2 * 5  # every line once: summarized or in detail
