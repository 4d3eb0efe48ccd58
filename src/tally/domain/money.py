"""Money is an integer count of a currency's atomic unit. No float anywhere."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tally.domain.errors import invalid
from tally.domain.limits import AMOUNT_MAX, BALANCE_MIN

_CODE = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class Currency:
    """A currency as this ledger counts it: `scale` decimal places of atomic unit, and the coarser
    `bank_scale` a bank transfer settles in (USD counted in millionths, paid out in cents)."""

    code: str
    scale: int
    bank_scale: int

    def __post_init__(self) -> None:
        if not _CODE.fullmatch(self.code):
            raise ValueError(f"currency code must be three capital letters: {self.code!r}")
        if not 0 <= self.bank_scale <= self.scale <= 18:
            raise ValueError(f"{self.code}: need 0 <= bank_scale <= scale <= 18")


DEFAULT_CURRENCIES = "USD:6:2,EUR:6:2,GBP:6:2,JPY:3:0"


def parse_currencies(spec: str) -> dict[str, Currency]:
    """Parses `CODE:SCALE:BANK_SCALE,...` (the TALLY_CURRENCIES setting)."""
    table: dict[str, Currency] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        parts = item.split(":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            raise ValueError(f"currency {item!r}: expected CODE:SCALE:BANK_SCALE, e.g. USD:6:2")
        currency = Currency(parts[0], int(parts[1]), int(parts[2]))
        if currency.code in table:
            raise ValueError(f"currency {currency.code} is listed twice")
        table[currency.code] = currency
    if not table:
        raise ValueError("at least one currency is needed")
    return table


def is_amount(value: object) -> bool:
    """Whether `value` is a plain int line amount `check_amount` accepts: the quick test for a hot path,
    which calls `check_amount` (for the reason) only when it fails."""
    return type(value) is int and 0 < value <= AMOUNT_MAX


def check_amount(amount: object, field: str = "amount") -> int:
    """A line amount: a positive integer that fits a signed 64-bit column."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise invalid("AMOUNT_NOT_INTEGER", f"{field} must be an integer count of atomic units", field=field)
    if amount <= 0:
        raise invalid("AMOUNT_NOT_POSITIVE", f"{field} must be positive, got {amount}", field=field)
    if amount > AMOUNT_MAX:
        raise invalid("AMOUNT_TOO_LARGE", f"{field} exceeds {AMOUNT_MAX}", field=field)
    return amount


def fits_int64(value: int) -> bool:
    return BALANCE_MIN <= value <= AMOUNT_MAX
