"""Interest accrual on idle balances, in integer atomic units, exact over any number of days.

A day's interest on a balance b at an annual rate of r basis points is b * r / (10_000 * year_days), with
year_days 365 (ACT/365) or 360 (ACT/360). That is rarely a whole number of atomic units, so each day posts
the whole units and carries the fraction, as a numerator over that denominator, to the next day. The sum of
the units posted over any run of days is then the floor of the exact sum: a year of daily accruals on a
constant balance at ACT/365 posts exactly the yearly amount b * r / 10_000 (rounded down once, at the end,
not 365 times), and no unit is lost or invented on the way.

Only a positive balance (on the account's normal side) earns interest; a zero or negative one accrues
nothing and keeps its carry. Pure: no I/O, integers only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, timedelta

from tally.domain.errors import invalid

BASIS_POINTS = 10_000
RATE_BP_MAX = 100_000  # 1000% a year: a bound for the arithmetic, far past any real rate


class DayCount(enum.Enum):
    ACT_365 = "act/365"
    ACT_360 = "act/360"

    @property
    def year_days(self) -> int:
        return 365 if self is DayCount.ACT_365 else 360


@dataclass(frozen=True)
class InterestPolicy:
    """Who earns interest and how: an annual rate in basis points on each day's closing balance, the day
    count, and capitalization at each month's end."""

    rate_bp: int
    day_count: DayCount = DayCount.ACT_365
    capitalize_monthly: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.rate_bp, bool) or not isinstance(self.rate_bp, int) or not 0 <= self.rate_bp <= RATE_BP_MAX:
            raise invalid("INTEREST_RATE_INVALID", f"an interest rate is 0..{RATE_BP_MAX} basis points",
                          rate_bp=self.rate_bp)

    @property
    def denominator(self) -> int:
        return BASIS_POINTS * self.day_count.year_days


@dataclass(frozen=True)
class Accrual:
    units: int  # whole atomic units to post for the day
    carry: int  # the fraction left, in 1/denominator of an atomic unit: 0 <= carry < denominator


def accrue_day(policy: InterestPolicy, balance: int, carry: int) -> Accrual:
    """One day's interest on the day's closing `balance`, with the fraction carried from the day before."""
    if not 0 <= carry < policy.denominator:
        raise invalid("INTEREST_CARRY_INVALID", "a carried fraction lies in [0, denominator)", carry=carry)
    if balance <= 0 or policy.rate_bp == 0:
        return Accrual(0, carry)
    units, rest = divmod(balance * policy.rate_bp + carry, policy.denominator)
    return Accrual(units, rest)


def accrue_days(policy: InterestPolicy, balances: list[int], carry: int = 0) -> tuple[list[int], int]:
    """Each day's units for a run of daily closing balances, and the carry after the last day."""
    units = []
    for balance in balances:
        accrual = accrue_day(policy, balance, carry)
        units.append(accrual.units)
        carry = accrual.carry
    return units, carry


def is_month_end(iso_date: str) -> bool:
    """Whether `iso_date` is the last day of its month: monthly capitalization runs at its close."""
    day = date.fromisoformat(iso_date)
    return (day + timedelta(days=1)).month != day.month
