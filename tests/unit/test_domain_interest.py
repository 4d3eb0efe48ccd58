"""Interest accrual: a year of daily accruals equals the yearly amount to the unit, and over any run of days
the units posted plus the carried fraction are exactly the interest owed (no unit lost or invented)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.domain.errors import LedgerError
from tally.domain.interest import DayCount, InterestPolicy, accrue_day, accrue_days, is_month_end

RATES = [1, 7, 125, 250, 399, 500, 1_234, 10_000]
BALANCES = [1, 99, 12_345, 1_000_000, 123_456_789, 10**15, 2**62]


@pytest.mark.parametrize("rate_bp", RATES)
@pytest.mark.parametrize("balance", BALANCES)
def test_365_daily_accruals_at_act_365_are_the_yearly_amount_to_the_unit(rate_bp, balance):
    policy = InterestPolicy(rate_bp, DayCount.ACT_365)
    units, carry = accrue_days(policy, [balance] * 365)
    assert sum(units) == balance * rate_bp // 10_000  # rounded down once, for the year
    assert Fraction(sum(units)) + Fraction(carry, policy.denominator) == Fraction(balance * rate_bp, 10_000)
    assert all(isinstance(u, int) and u >= 0 for u in units)


@pytest.mark.parametrize("rate_bp", RATES)
def test_360_daily_accruals_at_act_360_are_the_yearly_amount(rate_bp):
    policy = InterestPolicy(rate_bp, DayCount.ACT_360)
    units, _ = accrue_days(policy, [1_000_000_007] * 360)
    assert sum(units) == 1_000_000_007 * rate_bp // 10_000


@settings(max_examples=200, deadline=None)
@given(rate_bp=st.integers(0, 100_000), day_count=st.sampled_from(list(DayCount)),
       balances=st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=400),
       carry_seed=st.integers(0, 10**9))
def test_units_and_carry_are_exactly_the_interest_owed(rate_bp, day_count, balances, carry_seed):
    policy = InterestPolicy(rate_bp, day_count)
    carry = carry_seed % policy.denominator
    units, final = accrue_days(policy, balances, carry)
    owed = Fraction(sum(b * rate_bp for b in balances if b > 0) + carry, policy.denominator)
    assert Fraction(sum(units)) + Fraction(final, policy.denominator) == owed  # nothing lost, nothing invented
    assert 0 <= final < policy.denominator
    assert sum(units) == owed.numerator // owed.denominator  # the floor of the exact sum, not 365 floors


def test_idle_or_negative_balances_accrue_nothing_and_keep_their_carry():
    policy = InterestPolicy(500)
    assert accrue_day(policy, 0, 17) == accrue_day(policy, -5_000, 17)
    assert accrue_day(policy, 0, 17).units == 0 and accrue_day(policy, 0, 17).carry == 17
    assert accrue_day(policy, 365_000_000, 0).units == 50_000  # 5% a year of 365 million is 50,000 a day


@pytest.mark.parametrize("rate_bp", [-1, 100_001, True, 1.5])
def test_rates_out_of_range_are_refused(rate_bp):
    with pytest.raises(LedgerError) as refused:
        InterestPolicy(rate_bp)
    assert refused.value.reason == "INTEREST_RATE_INVALID"


def test_a_carry_out_of_range_is_refused():
    policy = InterestPolicy(100)
    for carry in (-1, policy.denominator):
        with pytest.raises(LedgerError):
            accrue_day(policy, 10, carry)


def test_month_ends():
    assert [is_month_end(d) for d in ("2026-01-31", "2026-02-28", "2028-02-28", "2028-02-29", "2026-12-31",
                                      "2026-04-30", "2026-04-29")] == [True, True, False, True, True, True, False]
