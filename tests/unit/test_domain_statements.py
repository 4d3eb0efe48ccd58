"""Statement cycles: month boundaries, a configured statement day, and which cycle is issued."""

from __future__ import annotations

import pytest

from tally.domain.errors import LedgerError
from tally.domain.statements import Cycle, cycle_of, last_issued, statement_day


@pytest.mark.parametrize(("day", "on", "expected"), [
    (1, "2026-03-10", Cycle("2026-03-01", "2026-03-31")),
    (1, "2026-02-28", Cycle("2026-02-01", "2026-02-28")),
    (1, "2028-02-29", Cycle("2028-02-01", "2028-02-29")),
    (15, "2026-03-14", Cycle("2026-02-15", "2026-03-14")),
    (15, "2026-03-15", Cycle("2026-03-15", "2026-04-14")),
    (28, "2026-01-05", Cycle("2025-12-28", "2026-01-27")),
    (1, "2026-12-31", Cycle("2026-12-01", "2026-12-31")),
])
def test_the_cycle_of_a_date(day, on, expected):
    assert cycle_of(on, day) == expected


def test_cycles_follow_each_other_without_gaps():
    cycle = cycle_of("2026-06-20", 10)
    for _ in range(30):
        earlier = cycle.previous(10)
        assert cycle_of(earlier.end, 10) == earlier and earlier.end < cycle.start
        assert (cycle_of(cycle.start, 10), earlier.end) == (cycle, cycle_of(earlier.end, 10).end)
        cycle = earlier


def test_the_last_issued_cycle_ends_on_or_before_the_last_closed_day():
    assert last_issued("2026-03-31", 1) == Cycle("2026-03-01", "2026-03-31")
    assert last_issued("2026-03-30", 1) == Cycle("2026-02-01", "2026-02-28")
    assert last_issued("2026-03-14", 15) == Cycle("2026-02-15", "2026-03-14")
    assert last_issued("", 1) is None


@pytest.mark.parametrize("raw", ["0", "29", "x", "-1", "", "1.5"])
def test_an_unusable_statement_day_is_refused(raw):
    with pytest.raises(LedgerError) as refused:
        statement_day({"statement_day": raw})
    assert refused.value.reason == "STATEMENT_DAY_INVALID"


def test_the_statement_day_defaults_to_the_first():
    assert statement_day({}) == 1 and statement_day({"statement_day": "28"}) == 28
