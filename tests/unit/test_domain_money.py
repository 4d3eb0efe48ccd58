"""Unit tests for tally.domain.money: amounts, int64 bounds and the currency table."""

from __future__ import annotations

import dataclasses

import pytest

from tally.domain import limits
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.money import DEFAULT_CURRENCIES, Currency, check_amount, fits_int64, is_amount, parse_currencies

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def test_limits_are_the_signed_64_bit_range():
    assert limits.AMOUNT_MAX == INT64_MAX
    assert limits.BALANCE_MIN == INT64_MIN


# --- check_amount ---------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [1, 2, 10**6, 2**62, INT64_MAX], ids=["one", "two", "million", "2^62", "int64-max"])
def test_check_amount_accepts_positive_int64(amount):
    result = check_amount(amount)
    assert result == amount
    assert type(result) is int


class _IntSubclass(int):
    pass


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        (0, "AMOUNT_NOT_POSITIVE"),
        (-1, "AMOUNT_NOT_POSITIVE"),
        (-(2**63), "AMOUNT_NOT_POSITIVE"),
        (-(2**70), "AMOUNT_NOT_POSITIVE"),
        (2**63, "AMOUNT_TOO_LARGE"),
        (2**64, "AMOUNT_TOO_LARGE"),
        (10**30, "AMOUNT_TOO_LARGE"),
        (True, "AMOUNT_NOT_INTEGER"),
        (False, "AMOUNT_NOT_INTEGER"),
        (1.0, "AMOUNT_NOT_INTEGER"),
        (0.5, "AMOUNT_NOT_INTEGER"),
        (float("nan"), "AMOUNT_NOT_INTEGER"),
        (float("inf"), "AMOUNT_NOT_INTEGER"),
        ("1", "AMOUNT_NOT_INTEGER"),
        ("100", "AMOUNT_NOT_INTEGER"),
        (None, "AMOUNT_NOT_INTEGER"),
        (b"1", "AMOUNT_NOT_INTEGER"),
        ([1], "AMOUNT_NOT_INTEGER"),
    ],
    ids=[
        "zero", "minus-one", "int64-min", "huge-negative", "2^63", "2^64", "10^30",
        "bool-true", "bool-false", "float-one", "float-half", "nan", "inf", "str-1", "str-100", "none",
        "bytes", "list",
    ],
)
def test_check_amount_rejects_with_exact_reason(amount, reason):
    with pytest.raises(LedgerError) as info:
        check_amount(amount)
    assert info.value.reason == reason
    assert info.value.kind is ErrorKind.INVALID_ARGUMENT
    assert info.value.metadata == {"field": "amount"}


def test_check_amount_accepts_int_subclass_that_is_not_bool():
    assert check_amount(_IntSubclass(5)) == 5


@pytest.mark.parametrize("value", [1, INT64_MAX, 0, -1, INT64_MAX + 1, True, False, 1.0, "1", None])
def test_is_amount_never_accepts_what_check_amount_refuses(value):
    """The hot path skips `check_amount` when `is_amount` holds: it must hold only for accepted amounts."""
    try:
        check_amount(value)
        accepted = True
    except LedgerError:
        accepted = False
    assert is_amount(value) == accepted
    assert not is_amount(_IntSubclass(5))  # accepted by check_amount, which the hot path then calls


def test_check_amount_names_the_field_in_metadata_and_message():
    with pytest.raises(LedgerError) as info:
        check_amount(0, "lines[3].amount")
    assert info.value.metadata == {"field": "lines[3].amount"}
    assert "lines[3].amount" in info.value.message


# --- fits_int64 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fits"),
    [(0, True), (INT64_MAX, True), (INT64_MIN, True), (INT64_MAX + 1, False), (INT64_MIN - 1, False),
     (-1, True)],
    ids=["zero", "max", "min", "max+1", "min-1", "minus-one"],
)
def test_fits_int64_boundaries(value, fits):
    assert fits_int64(value) is fits


# --- Currency and parse_currencies ------------------------------------------------------------------


def test_default_currencies_parse_to_the_documented_table():
    table = parse_currencies(DEFAULT_CURRENCIES)
    assert table == {
        "USD": Currency("USD", 6, 2),
        "EUR": Currency("EUR", 6, 2),
        "GBP": Currency("GBP", 6, 2),
        "JPY": Currency("JPY", 3, 0),
    }
    assert list(table) == ["USD", "EUR", "GBP", "JPY"]  # keeps the configured order


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("USD:6:2", {"USD": Currency("USD", 6, 2)}),
        (" USD:6:2 , EUR:2:2 ", {"USD": Currency("USD", 6, 2), "EUR": Currency("EUR", 2, 2)}),
        ("USD:6:2,", {"USD": Currency("USD", 6, 2)}),
        (",,USD:6:2,,", {"USD": Currency("USD", 6, 2)}),
        ("XAU:0:0", {"XAU": Currency("XAU", 0, 0)}),
        ("BTC:18:8", {"BTC": Currency("BTC", 18, 8)}),
        ("ABC:18:18", {"ABC": Currency("ABC", 18, 18)}),
        ("USD:06:02", {"USD": Currency("USD", 6, 2)}),
    ],
    ids=["one", "spaces", "trailing-comma", "empty-items", "zero-scale", "max-scale", "bank-equals-scale",
         "leading-zeros"],
)
def test_parse_currencies_good_specs(spec, expected):
    assert parse_currencies(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message_part"),
    [
        ("", "at least one currency"),
        ("  ", "at least one currency"),
        (",,", "at least one currency"),
        ("USD", "expected CODE:SCALE:BANK_SCALE"),
        ("USD:6", "expected CODE:SCALE:BANK_SCALE"),
        ("USD:6:2:1", "expected CODE:SCALE:BANK_SCALE"),
        ("USD:x:2", "expected CODE:SCALE:BANK_SCALE"),
        ("USD:6:", "expected CODE:SCALE:BANK_SCALE"),
        ("USD:-1:0", "expected CODE:SCALE:BANK_SCALE"),
        ("USD:6:-2", "expected CODE:SCALE:BANK_SCALE"),
        ("USD:6.0:2", "expected CODE:SCALE:BANK_SCALE"),
        ("usd:6:2", "three capital letters"),
        ("US:6:2", "three capital letters"),
        ("USDX:6:2", "three capital letters"),
        ("U1D:6:2", "three capital letters"),
        (":6:2", "three capital letters"),
        ("USD:2:6", "bank_scale <= scale"),
        ("USD:19:2", "bank_scale <= scale"),
        ("USD:19:19", "bank_scale <= scale"),
        ("USD:6:2,USD:6:2", "listed twice"),
        ("USD:6:2,EUR:6:2,USD:2:2", "listed twice"),
    ],
    ids=[
        "empty", "blank", "only-commas", "code-only", "two-parts", "four-parts", "scale-not-digit",
        "bank-empty", "negative-scale", "negative-bank", "decimal-scale", "lowercase", "two-letters",
        "four-letters", "digit-in-code", "no-code", "bank-above-scale", "scale-19", "both-19", "duplicate",
        "duplicate-later",
    ],
)
def test_parse_currencies_bad_specs(spec, message_part):
    with pytest.raises(ValueError) as info:
        parse_currencies(spec)
    assert message_part in str(info.value)


def test_parse_currencies_rejects_code_with_trailing_newline():
    # "three capital letters" means exactly three: a code carrying a newline is not a currency code
    # (`^[A-Z]{3}$` with re.match would let "USD\n" through, since `$` also matches before a final newline).
    with pytest.raises(ValueError, match="three capital letters"):
        parse_currencies("USD\n:6:2")


def test_currency_is_frozen():
    currency = Currency("USD", 6, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        currency.scale = 2  # type: ignore[misc]
