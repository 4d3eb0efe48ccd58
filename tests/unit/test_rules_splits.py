"""Largest-remainder allocation and share-table checks."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.facts import Share
from tally.rules.splits import allocate, check_share_table


@st.composite
def bps_weights(draw) -> list[int]:
    """1..32 positive weights summing to exactly 10_000: cuts of 1..9999."""
    count = draw(st.integers(min_value=1, max_value=32))
    cuts = sorted(draw(st.lists(st.integers(min_value=1, max_value=9_999), min_size=count - 1,
                                max_size=count - 1, unique=True)))
    bounds = [0, *cuts, 10_000]
    return [high - low for low, high in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=400)
@given(total=st.integers(min_value=0, max_value=2**62), weights=bps_weights())
def test_parts_sum_to_the_total_and_stay_within_one_of_the_exact_share(total, weights):
    parts = allocate(total, weights)
    assert sum(weights) == 10_000
    assert len(parts) == len(weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        exact = Fraction(total * weight, 10_000)  # exact rational, no float
        assert abs(part - exact) < 1
        assert part >= 0
    assert allocate(total, list(weights)) == parts  # deterministic


@given(total=st.integers(min_value=0, max_value=10**12),
       weights=st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=40))
def test_any_positive_weights(total, weights):
    parts = allocate(total, weights)
    assert sum(parts) == total
    whole = sum(weights)
    assert all(abs(part - Fraction(total * w, whole)) < 1 for part, w in zip(parts, weights, strict=True))


def test_leftover_goes_to_the_largest_remainders_then_table_order():
    assert allocate(100, [3_333, 3_333, 3_334]) == [33, 33, 34]
    assert allocate(1, [5_000, 5_000]) == [1, 0]  # tie: the earlier share
    assert allocate(2, [3_333, 3_334, 3_333]) == [1, 1, 0]  # 0.6666, 0.6668, 0.6666
    assert allocate(10, [2_500, 2_500, 2_500, 2_500]) == [3, 3, 2, 2]
    assert allocate(0, [1, 2, 3]) == [0, 0, 0]
    assert allocate(7, [10_000]) == [7]


@pytest.mark.parametrize(("total", "weights"), [(-1, [1]), (1, []), (1, [0, 1]), (1, [-1, 2])])
def test_allocate_refuses_bad_input(total, weights):
    with pytest.raises(ValueError):
        allocate(total, weights)


def test_share_table_accepts_a_valid_table():
    table = (Share("a", 2_500), Share("b", 7_500))
    assert check_share_table(table) == table
    assert check_share_table([Share(f"p{i}", 10_000 // 32 + (1 if i < 10_000 % 32 else 0)) for i in range(32)])


@pytest.mark.parametrize("shares", [
    [],
    [Share(f"p{i}", 1) for i in range(33)],
    [Share("a", 5_000), Share("b", 4_999)],
    [Share("a", 5_000), Share("b", 5_001)],
    [Share("a", 10_000), Share("b", 0)],
    [Share("a", 10_001), Share("b", -1)],
    [Share("a", 5_000), Share("a", 5_000)],
    [Share("", 10_000)],
    [Share("a:b", 10_000)],
    [Share("a", True), Share("b", 9_999)],
])
def test_share_table_refuses_bad_tables(shares):
    with pytest.raises(LedgerError) as caught:
        check_share_table(shares)
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.INVALID_ARGUMENT, "SHARES_INVALID")
