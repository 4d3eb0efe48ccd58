"""Statement cycles: an account's statements run from its statement day of one month to the day before it
the next month (the calendar month with the default day 1). Pure: dates as ISO text, integers only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from tally.domain.errors import precondition

STATEMENT_DAY_KEY = "statement_day"  # account metadata: the day of month a cycle starts (1..28)
STATEMENT_DAY_DEFAULT = 1
STATEMENT_DAY_MAX = 28  # every month has it


@dataclass(frozen=True)
class Cycle:
    start: str  # first accounting date of the cycle
    end: str  # last accounting date

    def previous(self, day: int) -> Cycle:
        return cycle_of((date.fromisoformat(self.start) - timedelta(days=1)).isoformat(), day)


@dataclass(frozen=True)
class Statement:
    account_id: str
    currency: str
    cycle: Cycle
    opening_balance: int  # the previous statement's closing balance
    closing_balance: int
    debit_total: int
    credit_total: int
    entry_count: int
    issued: bool = True  # the cycle's last day is closed: the statement is final


def statement_day(metadata: dict[str, str]) -> int:
    """The account's statement day from its metadata; an unusable value is refused rather than guessed."""
    raw = metadata.get(STATEMENT_DAY_KEY)
    if raw is None:
        return STATEMENT_DAY_DEFAULT
    if not raw.isdigit() or not 1 <= int(raw) <= STATEMENT_DAY_MAX:
        raise precondition("STATEMENT_DAY_INVALID", f"account metadata {STATEMENT_DAY_KEY} must be a day 1.."
                           f"{STATEMENT_DAY_MAX}, found {raw[:16]!r}", statement_day=raw[:16])
    return int(raw)


def cycle_of(iso_date: str, day: int) -> Cycle:
    """The statement cycle that holds `iso_date`."""
    d = date.fromisoformat(iso_date)
    year, month = (d.year, d.month) if d.day >= day else _shift(d.year, d.month, -1)
    start = date(year, month, day)
    next_year, next_month = _shift(year, month, 1)
    end = date(next_year, next_month, day) - timedelta(days=1)
    return Cycle(start.isoformat(), end.isoformat())


def last_issued(through_date: str, day: int) -> Cycle | None:
    """The latest cycle that ends on or before `through_date` (the last closed day): its statement is final."""
    if not through_date:
        return None
    current = cycle_of(through_date, day)
    return current if current.end == through_date else current.previous(day)


def _shift(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1
