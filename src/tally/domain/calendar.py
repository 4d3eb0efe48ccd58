"""Accounting days. A day runs from the cut-off to the next one; the cut-off is UTC midnight shifted by
a configured number of minutes added to UTC (e.g. +480 puts it at 16:00 UTC, local midnight in UTC+8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class AccountingCalendar:
    cutoff_offset_minutes: int = 0

    def date_of(self, time_us: int) -> str:
        moment = EPOCH + timedelta(microseconds=time_us, minutes=self.cutoff_offset_minutes)
        return moment.date().isoformat()


def previous_date(iso_date: str) -> str:
    return (datetime.fromisoformat(iso_date).date() - timedelta(days=1)).isoformat()
