"""Unit tests for tally.domain.calendar: accounting dates with a shifted cut-off, and previous_date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tally.domain.calendar import EPOCH, AccountingCalendar, previous_date
from tally.domain.errors import ErrorKind, LedgerError


def us(iso: str) -> int:
    """Microseconds since the epoch of a UTC timestamp."""
    moment = datetime.fromisoformat(iso).replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def test_us_helper():
    assert us("1970-01-01T00:00:00") == 0
    assert us("1970-01-01T00:00:01") == 1_000_000
    assert us("2024-03-01T12:00:00") == 1_709_294_400_000_000


@pytest.mark.parametrize(
    ("moment", "date"),
    [
        ("1970-01-01T00:00:00", "1970-01-01"),
        ("2024-02-29T23:59:59.999999", "2024-02-29"),
        ("2024-03-01T00:00:00", "2024-03-01"),
        ("2024-12-31T23:59:59.999999", "2024-12-31"),
        ("2025-01-01T00:00:00", "2025-01-01"),
    ],
    ids=["epoch", "leap-day-last-us", "next-midnight", "year-end", "new-year"],
)
def test_no_offset_is_the_utc_date(moment, date):
    assert AccountingCalendar().date_of(us(moment)) == date
    assert AccountingCalendar(0).date_of(us(moment)) == date


def test_date_before_the_epoch():
    assert AccountingCalendar().date_of(-1) == "1969-12-31"


# The README defines TALLY_DAY_CUTOFF_OFFSET_MINUTES as "accounting-day cut-off as minutes added to UTC":
# the accounting date is the calendar date of UTC + offset, so +480 makes the day of UTC+8 (cut-off at
# 16:00 UTC) and -480 the day of UTC-8 (cut-off at 08:00 UTC). (The calendar module's docstring gives the
# opposite sign for its example, "-480 puts it at 16:00 UTC"; the code and the README agree with these tests.)
@pytest.mark.parametrize(
    ("offset", "moment", "date"),
    [
        (480, "2024-03-01T15:59:59.999999", "2024-03-01"),
        (480, "2024-03-01T16:00:00", "2024-03-02"),
        (480, "2024-03-01T23:59:59", "2024-03-02"),
        (480, "2024-03-02T08:00:00", "2024-03-02"),
        (480, "2024-02-28T16:00:00", "2024-02-29"),
        (480, "2024-12-31T16:00:00", "2025-01-01"),
        (-480, "2024-03-02T07:59:59.999999", "2024-03-01"),
        (-480, "2024-03-02T08:00:00", "2024-03-02"),
        (-480, "2024-03-01T00:00:00", "2024-02-29"),
        (-480, "1970-01-01T07:59:59", "1969-12-31"),
        (1, "2024-03-01T23:59:00", "2024-03-02"),
        (1, "2024-03-01T23:58:59.999999", "2024-03-01"),
        (-1, "2024-03-02T00:00:59.999999", "2024-03-01"),
        (-1, "2024-03-02T00:01:00", "2024-03-02"),
        (1439, "2024-03-01T00:01:00", "2024-03-02"),
        (-1439, "2024-03-01T23:58:59", "2024-02-29"),
    ],
    ids=["utc8-before-cutoff", "utc8-at-cutoff", "utc8-late-evening", "utc8-morning", "utc8-into-leap-day",
         "utc8-new-year", "utc-8-before-cutoff", "utc-8-at-cutoff", "utc-8-utc-midnight-is-previous-day",
         "utc-8-before-the-epoch", "plus-one-minute-at-cutoff", "plus-one-minute-before-cutoff",
         "minus-one-minute-before-cutoff", "minus-one-minute-at-cutoff", "max-offset", "min-offset"],
)
def test_cutoff_offset_moves_the_date_across_midnight(offset, moment, date):
    assert AccountingCalendar(offset).date_of(us(moment)) == date


DAY_US = 86_400_000_000
MINUTE_US = 60_000_000


@pytest.mark.parametrize("offset", [-1439, -480, -60, 0, 330, 480, 1439], ids=lambda o: f"offset{o}")
def test_each_date_lasts_exactly_24_hours(offset):
    calendar = AccountingCalendar(offset)
    start = us("2024-03-10T00:00:00")
    changes = [t for t in range(start, start + 3 * DAY_US, MINUTE_US)
               if calendar.date_of(t - 1) != calendar.date_of(t)]
    assert len(changes) == 3
    assert changes[1] - changes[0] == changes[2] - changes[1] == DAY_US
    dates = [calendar.date_of(t) for t in changes]
    assert [previous_date(d) for d in dates[1:]] == dates[:-1]


@pytest.mark.parametrize("offset", [-1439, -480, -60, 330, 480, 1439], ids=lambda o: f"offset{o}")
def test_date_changes_at_utc_midnight_minus_the_offset(offset):
    calendar = AccountingCalendar(offset)
    cutoff = us("2024-03-10T00:00:00") - offset * MINUTE_US
    assert calendar.date_of(cutoff - 1) != calendar.date_of(cutoff) == "2024-03-10"
    assert calendar.date_of(cutoff + DAY_US - 1) == "2024-03-10"
    assert calendar.date_of(cutoff + DAY_US) == "2024-03-11"


@pytest.mark.parametrize(
    ("date", "previous"),
    [
        ("2024-03-02", "2024-03-01"),
        ("2024-03-01", "2024-02-29"),
        ("2023-03-01", "2023-02-28"),
        ("2025-01-01", "2024-12-31"),
        ("1970-01-01", "1969-12-31"),
        ("2000-03-01", "2000-02-29"),
        ("1900-03-01", "1900-02-28"),
    ],
    ids=["plain", "leap-year", "non-leap-year", "new-year", "epoch", "leap-2000", "non-leap-1900"],
)
def test_previous_date(date, previous):
    assert previous_date(date) == previous


def test_previous_date_rejects_garbage():
    with pytest.raises(ValueError):
        previous_date("not-a-date")


def test_previous_date_of_the_first_date_sorts_before_every_date():
    before = previous_date("0001-01-01")
    assert before < "0001-01-01" and before < "1970-01-01"


@pytest.mark.parametrize("offset", [1439, 60])
def test_date_of_past_year_9999_is_refused(offset):
    last_second_us = 253_402_300_799 * 1_000_000
    with pytest.raises(LedgerError) as caught:
        AccountingCalendar(offset).date_of(last_second_us)
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.INVALID_ARGUMENT, "TIMESTAMP_INVALID")
