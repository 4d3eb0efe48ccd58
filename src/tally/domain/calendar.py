"""Accounting days. A day runs from the cut-off to the next one; the cut-off is UTC midnight shifted by
a configured number of minutes added to UTC (e.g. +480 puts it at 16:00 UTC, local midnight in UTC+8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from tally.domain.errors import invalid

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class AccountingCalendar:
    cutoff_offset_minutes: int = 0

    def date_of(self, time_us: int) -> str:
        try:
            moment = EPOCH + timedelta(microseconds=time_us, minutes=self.cutoff_offset_minutes)
        except OverflowError:
            raise invalid("TIMESTAMP_INVALID", "the time falls outside the years 1..9999") from None
        return moment.date().isoformat()


# Sorts before every real ISO date, so "balance at the end of the day before 0001-01-01" is simply 0.
BEFORE_ALL_DATES = "0000-12-31"


def previous_date(iso_date: str) -> str:
    day = date.fromisoformat(iso_date)
    return BEFORE_ALL_DATES if day == date.min else (day - timedelta(days=1)).isoformat()
