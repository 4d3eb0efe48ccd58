"""Amounts as people read them: `12.345678 USD`, from integer atomic units with integer arithmetic only."""

from __future__ import annotations

import datetime

from tally.domain.money import Currency


def amount(units: int, currency: str, currencies: dict[str, Currency]) -> str:
    """`units` atomic units of `currency` in its decimal scale, with the code; a currency this server does
    not know is shown in atomic units."""
    known = currencies.get(currency)
    if known is None or known.scale == 0:
        return f"{units} {currency}"
    whole, fraction = divmod(abs(units), 10 ** known.scale)
    sign = "-" if units < 0 else ""
    return f"{sign}{whole}.{fraction:0{known.scale}d} {currency}"


def when(time_us: int | None) -> str:
    """A microsecond UNIX time as UTC, to the second; empty for none."""
    if not time_us:
        return ""
    moment = datetime.datetime.fromtimestamp(time_us // 1_000_000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
