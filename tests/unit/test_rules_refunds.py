"""Proportional reversal for refunds: balanced per currency, never more than the original, sides swapped."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.domain.accounts import Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.rules.refunds import scale_reversal

D, C = Side.DEBIT, Side.CREDIT


@st.composite
def side_amounts(draw, total: int) -> list[int]:
    """`total` cut into 1..5 positive amounts."""
    count = draw(st.integers(min_value=1, max_value=min(5, total)))
    cuts = sorted(draw(st.lists(st.integers(min_value=1, max_value=total - 1), min_size=count - 1,
                                max_size=count - 1, unique=True))) if total > 1 else []
    bounds = [0, *cuts, total]
    return [high - low for low, high in zip(bounds, bounds[1:], strict=False)]


@st.composite
def voucher_lines(draw) -> list[tuple[str, Side, int, str]]:
    lines = []
    for currency in draw(st.lists(st.sampled_from(["USD", "EUR", "JPY"]), min_size=1, max_size=3, unique=True)):
        total = draw(st.integers(min_value=1, max_value=10**15))
        for side in (D, C):
            for i, amount in enumerate(draw(side_amounts(total))):
                lines.append((f"{currency}-{side.value}-{i}", side, amount, currency))
    return draw(st.permutations(lines))


def totals(lines) -> dict[tuple[str, Side], int]:
    out: dict[tuple[str, Side], int] = defaultdict(int)
    for _, side, amount, currency in lines:
        out[(currency, side)] += amount
    return out


@settings(max_examples=300)
@given(lines=voucher_lines(), data=st.data())
def test_scaled_reversal_properties(lines, data):
    whole = data.draw(st.integers(min_value=1, max_value=10**15))
    part = data.draw(st.integers(min_value=0, max_value=whole))
    reversed_lines = scale_reversal(lines, part, whole)
    original = {account: (side, amount, currency) for account, side, amount, currency in lines}
    out_totals = totals(reversed_lines)
    for (currency, side), total in totals(lines).items():
        # Each side of each currency is floor(total * part / whole), on the opposite side.
        assert out_totals.get((currency, side.opposite()), 0) == total * part // whole
    for currency in {line[3] for line in lines}:
        assert out_totals.get((currency, D), 0) == out_totals.get((currency, C), 0)
    for account, side, amount, currency in reversed_lines:
        original_side, original_amount, original_currency = original[account]
        assert side is original_side.opposite() and currency == original_currency
        assert 0 < amount <= original_amount
    assert scale_reversal(lines, part, whole) == reversed_lines  # deterministic


@given(lines=voucher_lines())
def test_full_part_is_the_exact_reversal(lines):
    assert scale_reversal(lines, 7, 7) == [(a, s.opposite(), amount, c) for a, s, amount, c in lines]
    assert scale_reversal(lines, 0, 7) == []


def test_a_half_refund_example():
    lines = [("consumer", D, 1_001, "USD"), ("fee", C, 25, "USD"), ("merchant", C, 976, "USD")]
    assert scale_reversal(lines, 1, 2) == [("consumer", C, 500, "USD"), ("fee", D, 12, "USD"),
                                           ("merchant", D, 488, "USD")]


def test_bad_input():
    lines = [("a", D, 10, "USD"), ("b", C, 10, "USD")]
    for part in (-1, 11):
        with pytest.raises(LedgerError) as caught:
            scale_reversal(lines, part, 10)
        assert (caught.value.kind, caught.value.reason) == (ErrorKind.INVALID_ARGUMENT, "REFUND_AMOUNT_INVALID")
    with pytest.raises(ValueError):
        scale_reversal(lines, 0, 0)
    with pytest.raises(ValueError):
        scale_reversal([("a", D, 10, "USD"), ("b", C, 9, "USD")], 1, 2)
    with pytest.raises(ValueError):
        scale_reversal([("a", D, 0, "USD"), ("b", C, 0, "USD")], 1, 2)
