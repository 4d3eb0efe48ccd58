"""Interest accrual at day close on SQLite and PostgreSQL: accrual vouchers from the closing balance, monthly
capitalization, idle days made up for, and a run that fails halfway and is run again posting nothing twice."""

from __future__ import annotations

from fractions import Fraction

import pytest
import sqlalchemy as sa

from tally.domain.accounts import AccountStatus, AccountType
from tally.domain.interest import DayCount, InterestPolicy
from tally.domain.vouchers import AccountRef
from tally.rules.interest import InterestRule
from tally.service.books.days import DayBook
from tally.service.books.interest import InterestBook
from tally.storage import tables as t
from tests.integration.conftest import FUNDING, TENANT, check_ledger
from tests.integration.test_days_close import Clock

RATE_BP = 500  # 5% a year
PRINCIPAL = 365_000_000  # earns exactly 50,000 a day at ACT/365


@pytest.fixture
async def books(database_url, make_ledger):
    clock = Clock("2026-01-30T09:00:00")
    ledger = make_ledger(database_url, clock=clock)
    ledger.open_internal(FUNDING)
    ledger.open("alice")
    ledger.open("carol")  # covered, but never funded: accrues nothing
    rules = (InterestRule(InterestPolicy(RATE_BP, DayCount.ACT_365), account_type=AccountType.DEPOSIT),)
    interest = InterestBook(ledger.uow, ledger.posting, rules, ledger.currencies, clock)
    return ledger, DayBook(ledger.uow, ledger.calendar, clock, interest=interest), clock


def vouchers(url: str, prefix: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(t.vouchers).where(t.vouchers.c.request_id.like(f"{prefix}%"))
                                .order_by(t.vouchers.c.sequence)).all()
    finally:
        engine.dispose()


def accruals(url: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(t.interest_accruals).order_by(t.interest_accruals.c.accounting_date,
                                                                        t.interest_accruals.c.account_id)).all()
    finally:
        engine.dispose()


async def test_daily_accrual_monthly_capitalization_and_idle_days(books, database_url):
    ledger, days, clock = books
    await ledger.fund("alice", PRINCIPAL)
    clock.set("2026-02-01T00:30:00")
    await days.close_day(TENANT, "2026-01-30")
    await days.close_day(TENANT, "2026-01-31")  # a month end: the month's interest goes to alice
    alice_id = ledger.queries.get_account(TENANT, AccountRef(code="alice"))[0].id
    assert ledger.balance(f"interest_accrued:{alice_id}") == 0  # all of it capitalized
    assert ledger.balance("alice") == PRINCIPAL + 100_000
    assert ledger.balance("interest_expense:USD") == 100_000  # debit-normal: what the platform paid

    clock.set("2026-02-06T00:30:00")
    await days.close_day(TENANT, "2026-02-05")  # 02-01..02-05: no posting, one close, every day earns
    rows = [r for r in accruals(database_url) if r.units or r.balance]
    assert [(r.accounting_date, r.days, r.units, r.capitalized) for r in rows] == [
        ("2026-01-30", 1, 50_000, 0), ("2026-01-31", 1, 50_000, 100_000), ("2026-02-05", 5, 250_068, 0)]
    # Exact: every unit owed on the daily balances, the fraction carried, nothing lost or invented.
    owed = Fraction(PRINCIPAL * RATE_BP * 2 + (PRINCIPAL + 100_000) * RATE_BP * 5, 10_000 * 365)
    assert Fraction(sum(r.units for r in rows)) + Fraction(rows[-1].carry, rows[-1].denominator) == owed
    posted = vouchers(database_url, "interest")
    assert [(v.request_id.split(":")[0], v.accounting_date) for v in posted] == [
        ("interest", "2026-02-01"), ("interest", "2026-02-01"), ("interest-capitalized", "2026-02-01"),
        ("interest", "2026-02-06")]  # booked on the open day; metadata accrued_for names the day
    assert '"accrued_for": "2026-01-31"' in posted[2].metadata
    check_ledger(database_url)


async def test_an_accrual_that_fails_halfway_posts_each_voucher_once_when_run_again(books, database_url,
                                                                                    monkeypatch):
    ledger, days, clock = books
    await ledger.fund("alice", PRINCIPAL)
    await ledger.fund("carol", 3_650_000)  # 500 a day
    clock.set("2026-02-01T00:30:00")
    interest = days.interest
    real, calls = interest.posting, []

    class Failing:  # the second voucher's submission fails, as a process dying there would leave it
        async def post(self, cmd):
            calls.append(cmd.request_id)
            if len(calls) == 2:
                raise RuntimeError("crashed between two vouchers")
            return await real.post(cmd)

    monkeypatch.setattr(interest, "posting", Failing())
    with pytest.raises(RuntimeError):
        await days.close_day(TENANT, "2026-01-31")
    assert len(vouchers(database_url, "interest")) == 3
    monkeypatch.setattr(interest, "posting", real)
    await days.close_day(TENANT, "2026-01-31")  # closed already: only what is left is posted
    await days.close_day(TENANT, "2026-01-31")
    posted = vouchers(database_url, "interest")
    assert len(posted) == len({v.request_id for v in posted}) == 4  # two accruals, two capitalizations
    # Closing 01-31 closed 01-30 too; an account's first accrual is for the day closed, 01-31.
    assert (ledger.balance("alice"), ledger.balance("carol")) == (PRINCIPAL + 50_000, 3_650_000 + 500)
    assert len(accruals(database_url)) == 2  # one row per covered account, stored once
    check_ledger(database_url)



async def test_a_refused_capitalization_is_counted_and_the_interest_stays_accrued(books, database_url):
    ledger, days, clock = books
    await ledger.fund("alice", PRINCIPAL)
    ledger.set_status("alice", AccountStatus.FROZEN)
    clock.set("2026-02-01T00:30:00")
    await days.close_day(TENANT, "2026-01-31")  # month end: the capitalization into frozen alice is refused
    alice_id = ledger.queries.get_account(TENANT, AccountRef(code="alice"))[0].id
    assert ledger.balance("alice") == PRINCIPAL
    assert ledger.balance(f"interest_accrued:{alice_id}") == 50_000
    assert [v.request_id.split(":")[0] for v in vouchers(database_url, "interest")] == ["interest"]
    check_ledger(database_url)
