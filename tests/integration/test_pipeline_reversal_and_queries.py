"""Reversals, statements, historic balances and the previous-day balance, on real databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tally.domain.accounts import AccountStatus, Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.vouchers import AccountRef
from tally.service.posting.batch import Posted
from tally.storage import ledger_repo
from tests.integration.conftest import FUNDING, TENANT, check_ledger, outcome, outcomes


def us(iso: str) -> int:
    """Microseconds since the epoch of a UTC ISO time."""
    moment = datetime.fromisoformat(iso).replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


class Clock:
    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


# --- reversals ---------------------------------------------------------------------------------------------


async def test_reversal_swaps_the_lines_and_links_both_ways(ledger):
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 100)
    original = (await ledger.transfer("alice", "bob", 30, line_memo="rent")).vouchers[0]
    reversal = (await ledger.reverse(original.id, reason="wrong payee")).vouchers[0]

    assert reversal.flow_type == "reversal"
    assert reversal.reverses_id == original.id
    assert reversal.memo == "wrong payee"
    assert reversal.sequence == original.sequence + 1
    assert [(ln.account_id, ln.side, ln.amount, ln.currency, ln.memo) for ln in reversal.lines] == [
        (ln.account_id, ln.side.opposite(), ln.amount, ln.currency, ln.memo) for ln in original.lines]
    assert [ln.balance_after for ln in reversal.lines] == [100, 0]
    assert ledger.balance("alice") == 100 and ledger.balance("bob") == 0

    stored_original = ledger.queries.get_voucher(TENANT, original.id)
    stored_reversal = ledger.queries.get_voucher(TENANT, reversal.id)
    assert stored_original.reversed_by_id == reversal.id
    assert stored_reversal.reverses_id == original.id and stored_reversal.reversed_by_id is None
    listed = {v.id: v for v in ledger.queries.list_vouchers(TENANT, page_size=10, page_token="").items}
    assert listed[original.id].reversed_by_id == reversal.id
    assert [v.id for v in ledger.queries.list_vouchers(TENANT, page_size=10, page_token="",
                                                        flow_type="reversal").items] == [reversal.id]
    events = ledger.uow.read({TENANT}, lambda c: ledger_repo.list_events(c, TENANT, after_sequence=0, limit=100))
    reversed_events = [e for e in events if e.type == "voucher.reversed"]
    assert [(e.voucher_id, e.payload) for e in reversed_events] == [
        (original.id, {"voucher_id": original.id, "reversal_id": reversal.id})]
    check_ledger(ledger.url)


async def test_a_voucher_is_reversed_at_most_once(ledger):
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 100)
    first = (await ledger.transfer("alice", "bob", 10)).vouchers[0]
    second = (await ledger.transfer("alice", "bob", 20)).vouchers[0]

    reversal = await ledger.reverse(first.id, request_id="rev-first")
    again = await outcome(ledger.reverse(first.id, request_id="rev-first-again"))
    assert (again.kind, again.reason) == (ErrorKind.FAILED_PRECONDITION, "VOUCHER_ALREADY_REVERSED")
    assert again.metadata["voucher_id"] == first.id
    replay = await ledger.reverse(first.id, request_id="rev-first")  # the same request again: replayed
    assert replay.replayed and replay.vouchers[0].id == reversal.vouchers[0].id

    # Two different requests racing in one batch: exactly one reversal is written.
    racing = await outcomes(*(ledger.reverse(second.id, request_id=f"race-{i}") for i in range(4)))
    posted = [r for r in racing if isinstance(r, Posted)]
    assert len(posted) == 1
    assert [r.reason for r in racing if isinstance(r, LedgerError)] == ["VOUCHER_ALREADY_REVERSED"] * 3
    assert ledger.balance("alice") == 100 and ledger.balance("bob") == 0
    facts = check_ledger(ledger.url)
    assert [v.reverses_id for v in facts.vouchers[TENANT]].count(second.id) == 1


async def test_reversing_a_reversal_is_refused(ledger):
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 100)
    original = (await ledger.transfer("alice", "bob", 10)).vouchers[0]
    reversal = (await ledger.reverse(original.id)).vouchers[0]
    refused = await outcome(ledger.reverse(reversal.id))
    assert (refused.kind, refused.reason) == (ErrorKind.FAILED_PRECONDITION, "VOUCHER_IS_REVERSAL")
    missing = await outcome(ledger.reverse("01a1fcb1-0000-7000-8000-000000000000"))
    assert (missing.kind, missing.reason) == (ErrorKind.PERMISSION_DENIED, "VOUCHER_NOT_ACCESSIBLE")
    assert len(check_ledger(ledger.url).vouchers[TENANT]) == 3


# What happens to bob before the alice->bob transfer is reversed, and the refusal that follows.
BLOCKED_REVERSALS = [
    pytest.param("spent", (ErrorKind.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS"), id="spent"),
    pytest.param("frozen", (ErrorKind.FAILED_PRECONDITION, "ACCOUNT_FROZEN"), id="frozen"),
]


@pytest.mark.parametrize(("what", "expected"), BLOCKED_REVERSALS)
async def test_a_reversal_that_cannot_post_is_refused_and_changes_nothing(ledger, what, expected):
    for code in ("alice", "bob", "carol"):
        ledger.open(code)
    await ledger.fund("alice", 100)
    original = (await ledger.transfer("alice", "bob", 100)).vouchers[0]
    if what == "spent":
        await ledger.transfer("bob", "carol", 60)
    else:
        ledger.set_status("bob", AccountStatus.FROZEN)
    before = check_ledger(ledger.url)

    refused = await outcome(ledger.reverse(original.id, request_id="blocked"))
    assert (refused.kind, refused.reason) == expected
    after = check_ledger(ledger.url)
    assert after.balances == before.balances
    assert after.vouchers == before.vouchers
    assert ledger.queries.get_voucher(TENANT, original.id).reversed_by_id is None

    # Once the obstacle is gone, the refused request_id still answers its refusal; a new one posts.
    if what == "spent":
        await ledger.transfer("carol", "bob", 60)
    else:
        ledger.set_status("bob", AccountStatus.ACTIVE)
    again = await outcome(ledger.reverse(original.id, request_id="blocked"))
    assert (again.kind, again.reason) == expected
    reversal = await ledger.reverse(original.id, request_id="unblocked")
    assert not reversal.replayed
    assert ledger.balance("alice") == 100 and ledger.balance("bob") == 0
    check_ledger(ledger.url)


# --- statements --------------------------------------------------------------------------------------------


ENTRIES = 22


async def _busy_account(ledger, clock: Clock | None = None, days: tuple[str, ...] = ()) -> list[int]:
    """Gives "acct" 22 entries (some vouchers touch it twice) and returns the expected running balances."""
    ledger.open("acct")
    ledger.open("peer")
    await ledger.fund("peer", 10_000)
    running, balance = [], 0
    for i in range(9):
        if clock is not None and days:
            clock.now = us(days[i * len(days) // 9])
        await ledger.transfer("peer", "acct", 100 + i)
        balance += 100 + i
        running.append(balance)
        if i % 3 == 2:
            await ledger.transfer("acct", "peer", 7)
            balance -= 7
            running.append(balance)
        if i % 2 == 0:  # the account twice in one voucher, same side: two consecutive entries
            await ledger.adjust([(FUNDING, Side.DEBIT, 12), ("acct", Side.CREDIT, 5), ("acct", Side.CREDIT, 7)])
            running += [balance + 5, balance + 12]
            balance += 12
    assert len(running) == ENTRIES
    return running


async def test_statement_pages_walk_every_entry_once_with_opening_balances(ledger):
    running = await _busy_account(ledger)
    for page_size in (1, 7, 11, 22, 23, 500):
        _walk_statement(ledger, running, page_size)


def _walk_statement(ledger, running: list[int], page_size: int) -> None:
    seen, token, pages = [], "", 0
    while True:
        page = ledger.queries.list_entries(TENANT, AccountRef(code="acct"), page_size=page_size, page_token=token)
        pages += 1
        assert len(page.items) <= page_size
        if page.items:
            first = page.items[0].entry_number
            assert page.opening_balance == (running[first - 2] if first > 1 else 0), (page_size, first)
        seen += page.items
        token = page.next_page_token
        if not token:
            break
        assert pages <= ENTRIES, "pagination does not end"
    assert [e.entry_number for e in seen] == list(range(1, ENTRIES + 1)), page_size
    assert [e.balance_after for e in seen] == running, page_size
    assert pages == -(-ENTRIES // page_size), page_size  # no empty trailing page
    assert all(type(e.amount) is int and type(e.balance_after) is int for e in seen)


async def test_a_page_token_is_bound_to_its_query(ledger):
    await _busy_account(ledger)
    page = ledger.queries.list_entries(TENANT, AccountRef(code="acct"), page_size=5, page_token="")
    for call in (lambda: ledger.queries.list_entries(TENANT, AccountRef(code="peer"), page_size=5,
                                                     page_token=page.next_page_token),
                 lambda: ledger.queries.list_vouchers(TENANT, page_size=5, page_token=page.next_page_token),
                 lambda: ledger.queries.list_entries(TENANT, AccountRef(code="acct"), page_size=5,
                                                     page_token="not-a-token")):
        with pytest.raises(LedgerError) as caught:
            call()
        assert (caught.value.kind, caught.value.reason) == (ErrorKind.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")


async def test_statement_date_range_has_the_right_opening_balance(database_url, make_ledger):
    clock = Clock(us("2026-03-01T10:00:00"))
    ledger = make_ledger(database_url, clock=clock)
    ledger.open_internal(FUNDING)
    running = await _busy_account(ledger, clock, ("2026-03-01T10:00:00", "2026-03-02T10:00:00",
                                                  "2026-03-03T10:00:00"))
    everything = ledger.queries.list_entries(TENANT, AccountRef(code="acct"), page_size=500, page_token="").items
    day2 = [e for e in everything if e.accounting_date == "2026-03-02"]
    assert day2 and len({e.accounting_date for e in everything}) == 3
    seen, token = [], ""
    while True:
        page = ledger.queries.list_entries(TENANT, AccountRef(code="acct"), page_size=2, page_token=token,
                                           start_date="2026-03-02", end_date="2026-03-02")
        if page.items:
            assert page.opening_balance == running[page.items[0].entry_number - 2]
        seen += page.items
        token = page.next_page_token
        if not token:
            break
    assert seen == day2


# --- historic and previous-day balances --------------------------------------------------------------------


async def test_get_balance_as_of_a_time_or_a_date_is_historic(database_url, make_ledger):
    clock = Clock(us("2026-05-10T08:00:00"))
    ledger = make_ledger(database_url, clock=clock)
    ledger.open_internal(FUNDING)
    ledger.open("acct")
    times = ["2026-05-10T09:00:00", "2026-05-10T23:59:59.999999", "2026-05-11T00:00:00", "2026-05-13T12:00:00"]
    amounts = [100, 20, 3, 4000]
    for at, amount in zip(times, amounts, strict=True):
        clock.now = us(at)
        await ledger.fund("acct", amount)
    clock.now = us("2026-05-20T00:00:00")

    def at_time(iso):
        return ledger.queries.get_balance(TENANT, AccountRef(code="acct"), as_of_us=us(iso))

    def on_day(day):
        return ledger.queries.get_balance(TENANT, AccountRef(code="acct"), as_of_date=day)

    cases = [  # (view, current, entry_count, previous_day, previous_day_date)
        (at_time("2026-05-10T08:59:59.999999"), 0, 0, 0, "2026-05-09"),
        (at_time("2026-05-10T09:00:00"), 100, 1, 0, "2026-05-09"),
        (at_time("2026-05-10T23:59:59.999999"), 120, 2, 0, "2026-05-09"),
        (at_time("2026-05-11T00:00:00"), 123, 3, 120, "2026-05-10"),
        (at_time("2026-05-12T00:00:00"), 123, 3, 123, "2026-05-11"),
        (at_time("2026-06-01T00:00:00"), 4123, 4, 4123, "2026-05-31"),
        (on_day("2026-05-09"), 0, 0, 0, "2026-05-08"),
        (on_day("2026-05-10"), 120, 2, 0, "2026-05-09"),
        (on_day("2026-05-11"), 123, 3, 120, "2026-05-10"),
        (on_day("2026-05-12"), 123, 3, 123, "2026-05-11"),
        (on_day("2026-05-13"), 4123, 4, 123, "2026-05-12"),
    ]
    got = [(v.current, v.entry_count, v.previous_day, v.previous_day_date) for v, *_ in cases]
    assert got == [tuple(expected) for _, *expected in cases]
    live = ledger.queries.get_balance(TENANT, AccountRef(code="acct"))
    assert (live.current, live.entry_count) == (4123, 4)


async def test_previous_day_balance_rolls_over_at_the_day_boundary(database_url, make_ledger):
    clock = Clock(us("2026-07-01T12:00:00"))
    ledger = make_ledger(database_url, clock=clock)
    ledger.open_internal(FUNDING)
    ledger.open("acct")
    ledger.open("other")

    def live():
        view = ledger.queries.get_balance(TENANT, AccountRef(code="acct"))
        return view.current, view.previous_day, view.previous_day_date, view.accounting_date

    day1 = await ledger.fund("acct", 500)
    await ledger.transfer("acct", "other", 50)
    assert day1.vouchers[0].accounting_date == "2026-07-01"
    assert live() == (450, 0, "2026-06-30", "2026-07-01")

    clock.now = us("2026-07-02T00:00:01")
    assert live() == (450, 450, "2026-07-01", "2026-07-02")  # a new day, nothing posted yet
    day2 = await ledger.fund("acct", 25)
    await ledger.transfer("acct", "other", 5)
    assert day2.vouchers[0].accounting_date == "2026-07-02"
    assert live() == (470, 450, "2026-07-01", "2026-07-02")
    other = ledger.queries.get_balance(TENANT, AccountRef(code="other"))
    assert (other.current, other.previous_day) == (55, 50)

    clock.now = us("2026-07-04T09:00:00")  # two days later, nothing posted on the 3rd
    assert live() == (470, 470, "2026-07-03", "2026-07-04")
    await ledger.transfer("acct", "other", 70)
    assert live() == (400, 470, "2026-07-03", "2026-07-04")
    check_ledger(ledger.url)


async def test_the_accounting_day_follows_the_configured_cutoff(database_url, make_ledger):
    """With the cut-off at 16:00 UTC (local midnight in UTC+8), 17:00 UTC already belongs to the next day."""
    clock = Clock(us("2026-09-01T15:59:59"))
    ledger = make_ledger(database_url, clock=clock, day_cutoff_offset_minutes=480)
    ledger.open_internal(FUNDING)
    ledger.open("acct")
    before = await ledger.fund("acct", 10)
    clock.now = us("2026-09-01T16:00:00")
    after = await ledger.fund("acct", 20)
    assert (before.vouchers[0].accounting_date, after.vouchers[0].accounting_date) == ("2026-09-01", "2026-09-02")
    view = ledger.queries.get_balance(TENANT, AccountRef(code="acct"))
    assert (view.current, view.previous_day, view.accounting_date) == (30, 10, "2026-09-02")
    assert ledger.queries.get_balance(TENANT, AccountRef(code="acct"), as_of_date="2026-09-01").current == 10


YEAR_1_US = -62_135_596_800 * 1_000_000  # 0001-01-01T00:00:00Z, the first instant a protobuf Timestamp allows


@pytest.mark.parametrize(("as_of", "balance_then"), [
    pytest.param({"as_of_us": us("9999-12-31T23:59:59") + 1_000_000}, 10, id="as_of_us-year-10000"),
    pytest.param({"as_of_us": YEAR_1_US}, 0, id="as_of_us-0001-01-01"),
    pytest.param({"as_of_date": "0001-01-01"}, 0, id="as_of_date-0001-01-01"),
])
async def test_get_balance_at_the_edges_of_the_calendar_answers_or_refuses_cleanly(ledger, as_of, balance_then):
    """GetBalance for an instant or day at (or past) the edge of the calendar must either answer (nothing was
    posted then: 0) or refuse with INVALID_ARGUMENT. It must not crash with OverflowError, which the API turns
    into UNAVAILABLE INTERNAL_ERROR ("retry"). 0001-01-01 is a valid ISO date and a valid protobuf Timestamp;
    the API passes as_of_time seconds*1e6 through without a range check."""
    ledger.open("acct")
    await ledger.fund("acct", 10)
    try:
        view = ledger.queries.get_balance(TENANT, AccountRef(code="acct"), **as_of)
    except LedgerError as error:
        assert error.kind is ErrorKind.INVALID_ARGUMENT, repr(error)
    else:
        assert view.current == balance_then
