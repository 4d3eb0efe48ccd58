"""Reads of an account's history by time and by day: the binary search over its entry numbers
(journal_repo.last_entry_where) answers exactly what reading every line would, posting times never go back
within a tenant even when the clock does, and statements by date read only their own range."""

from __future__ import annotations

import random

import sqlalchemy as sa

from tally.domain.accounts import Side
from tally.domain.vouchers import AccountRef
from tally.storage import journal_repo
from tally.storage.tables import voucher_lines
from tests.integration.conftest import FUNDING, TENANT

DAY_US = 86_400 * 1_000_000
START_US = 1_780_000_000 * 1_000_000  # 2026-05-28


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _lines(ledger, account_id: str) -> list[sa.Row]:
    return ledger.uow.read({TENANT}, lambda conn: conn.execute(
        sa.select(voucher_lines.c.entry_number, voucher_lines.c.posted_us, voucher_lines.c.accounting_date,
                  voucher_lines.c.balance_after)
        .where(voucher_lines.c.account_id == account_id).order_by(voucher_lines.c.entry_number)).all())


async def test_the_search_finds_what_reading_every_line_finds(database_url, make_ledger):
    clock = Clock(START_US)
    ledger = make_ledger(database_url, clock=clock)
    ledger.open_internal(FUNDING)
    account = ledger.open("acct")
    rng = random.Random(7)
    for _ in range(60):  # several entries per time and per day, days with none in between
        clock.now += rng.choice((0, 0, 1, 3_600_000_000, DAY_US, 3 * DAY_US))
        await ledger.adjust([(FUNDING, Side.DEBIT, 10), ("acct", Side.CREDIT, 10)])
    lines = _lines(ledger, account.id)
    assert len(lines) == 60

    def last_by_reading(column: str, bound, inclusive: bool = True) -> int:
        fits = [ln.entry_number for ln in lines if (getattr(ln, column) <= bound if inclusive
                                                    else getattr(ln, column) < bound)]
        return max(fits, default=0)

    times = sorted({ln.posted_us for ln in lines})
    days = sorted({ln.accounting_date for ln in lines})
    bounds = ([(t + d, "posted_us") for t in times for d in (-1, 0, 1)] + [(0, "posted_us"), (2**62, "posted_us")]
              + [(day, "accounting_date") for day in days] + [("2000-01-01", "accounting_date"),
                                                              ("2999-12-31", "accounting_date")])
    for bound, column in bounds:
        for inclusive in (True, False):
            found = ledger.uow.read({TENANT}, lambda conn, b=bound, c=column, i=inclusive: (
                journal_repo.last_entry_where(conn, account.id, voucher_lines.c[c], b, inclusive=i)))
            assert found == last_by_reading(column, bound, inclusive), (column, bound, inclusive)
    for t in times[::7]:
        entry = last_by_reading("posted_us", t)
        view = ledger.queries.get_balance(TENANT, AccountRef(code="acct"), as_of_us=t)
        assert view.current == lines[entry - 1].balance_after == 10 * entry


async def test_posting_times_never_go_back_within_a_tenant(database_url, make_ledger):
    clock = Clock(START_US)
    ledger = make_ledger(database_url, clock=clock)
    ledger.open_internal(FUNDING)
    ledger.open("acct")
    first = (await ledger.fund("acct", 5)).vouchers[0]
    clock.now -= 3_600_000_000  # the clock steps back an hour
    second = (await ledger.fund("acct", 7)).vouchers[0]
    assert second.posted_us == first.posted_us
    assert ledger.queries.get_balance(TENANT, AccountRef(code="acct"), as_of_us=first.posted_us - 1).current == 0
    assert ledger.queries.get_balance(TENANT, AccountRef(code="acct"), as_of_us=first.posted_us).current == 12


async def test_a_statement_by_dates_starts_and_ends_at_the_right_entries(database_url, make_ledger):
    clock = Clock(START_US)
    ledger = make_ledger(database_url, clock=clock)
    ledger.open_internal(FUNDING)
    account = ledger.open("acct")
    for day in range(6):
        for _ in range(day % 3 + 1):
            await ledger.fund("acct", 1)
        clock.now += DAY_US
    lines = _lines(ledger, account.id)
    days = sorted({ln.accounting_date for ln in lines})
    for start, end in ((days[1], days[3]), (days[0], days[0]), (days[4], days[5]), (days[2], days[1])):
        expected = [ln.entry_number for ln in lines if start <= ln.accounting_date <= end]
        got, token = [], ""
        while True:
            page = ledger.queries.list_entries(TENANT, AccountRef(code="acct"), page_size=2, page_token=token,
                                               start_date=start, end_date=end)
            got += [e.entry_number for e in page.items]
            if expected and page.items:
                assert page.opening_balance == lines[page.items[0].entry_number - 1].balance_after - 1
            token = page.next_page_token
            if not token:
                break
        assert got == expected, (start, end)
