"""Currency conversion in pure code: the voucher balances per currency, and (property) no unit is created or
lost: what the source gives is what the position and the residue take, the residue is less than one target
unit's worth, and the destination gets the rate's amount rounded down."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.domain.accounts import Side
from tally.domain.errors import LedgerError
from tally.domain.fx import RATE_TERM_MAX, FxFlow, convert
from tally.domain.vouchers import AccountRef

ALICE_USD, ALICE_EUR = AccountRef(code="alice:USD"), AccountRef(code="alice:EUR")


def flow(amount: int, numerator: int, denominator: int) -> FxFlow:
    return FxFlow(ALICE_USD, ALICE_EUR, amount, "USD", "EUR", numerator, denominator)


@settings(max_examples=300, deadline=None)
@given(amount=st.integers(1, 10**15), numerator=st.integers(1, RATE_TERM_MAX),
       denominator=st.integers(1, RATE_TERM_MAX))
def test_no_unit_is_created_or_lost(amount: int, numerator: int, denominator: int) -> None:
    c = convert(amount, numerator, denominator)
    assert c.used + c.residue == amount
    assert c.converted * denominator <= amount * numerator < (c.converted + 1) * denominator  # floor, exactly
    assert c.converted * denominator <= c.used * numerator  # the position took what it paid out is worth
    assert c.residue >= 0 and c.residue * numerator < denominator + numerator  # under one target unit's worth
    if c.converted == 0 or c.converted > 2**63 - 1:
        return
    [draft] = flow(amount, numerator, denominator).vouchers("", {}, None)
    totals: dict[tuple[str, Side], int] = defaultdict(int)
    for line in draft.lines:
        totals[(line.currency, line.side)] += line.amount
    assert totals[("USD", Side.DEBIT)] == totals[("USD", Side.CREDIT)] == amount
    assert totals[("EUR", Side.DEBIT)] == totals[("EUR", Side.CREDIT)] == c.converted


def test_the_lines_of_a_conversion() -> None:
    [draft] = flow(1_000, 9_213, 10_000).vouchers("swap", {"k": "v"}, None)  # 921.3 EUR units
    assert [(ln.account.code, ln.side, ln.amount, ln.currency) for ln in draft.lines] == [
        ("alice:USD", Side.DEBIT, 1_000, "USD"), ("fx_position:USD", Side.CREDIT, 1_000, "USD"),
        ("fx_position:EUR", Side.DEBIT, 921, "EUR"), ("alice:EUR", Side.CREDIT, 921, "EUR")]
    [draft] = flow(1_000, 1, 3).vouchers("", {}, None)  # 333 EUR units are worth 999 USD units
    assert [(ln.account.code, ln.amount) for ln in draft.lines][1:3] == [("fx_position:USD", 999),
                                                                        ("fx_gain_loss:USD", 1)]
    assert draft.metadata["fx_rate"] == "1/3"


@pytest.mark.parametrize(("args", "reason"), [
    ((1, 1, 3), "FX_AMOUNT_TOO_SMALL"), ((10, 0, 3), "FX_RATE_INVALID"), ((10, 1, 0), "FX_RATE_INVALID"),
    ((10, RATE_TERM_MAX + 1, 1), "FX_RATE_INVALID"), ((0, 1, 1), "AMOUNT_NOT_POSITIVE"),
    ((2**62, 4, 1), "FX_AMOUNT_TOO_LARGE"),
])
def test_bad_conversions_are_refused(args: tuple[int, int, int], reason: str) -> None:
    with pytest.raises(LedgerError) as caught:
        flow(*args).vouchers("", {}, None)
    assert caught.value.reason == reason
    same = FxFlow(ALICE_USD, ALICE_EUR, 10, "USD", "USD", 1, 1)
    with pytest.raises(LedgerError, match="two different currencies"):
        same.vouchers("", {}, None)
