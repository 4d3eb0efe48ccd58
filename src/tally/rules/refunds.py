"""Proportional reversal: the lines that refund `part` of a voucher worth `whole`.

Each side of each currency is scaled to floor(side_total * part / whole) and that total is spread over
the side's lines by largest remainder. Both sides of a balanced currency have the same total, so they
get the same scaled total and the reversal balances too; flooring means a refund never gives back more
than the original moved.
"""

from __future__ import annotations

from collections import defaultdict

from tally.domain.accounts import Side
from tally.domain.errors import invalid
from tally.rules.splits import allocate

Line = tuple[str, Side, int, str]  # account id, side, amount, currency


def scale_reversal(lines: list[Line], part: int, whole: int) -> list[Line]:
    if not isinstance(whole, int) or whole <= 0:
        raise ValueError(f"whole must be a positive integer, got {whole!r}")
    if not isinstance(part, int) or not 0 <= part <= whole:
        raise invalid("REFUND_AMOUNT_INVALID", f"a refund is between 0 and {whole}, got {part}")
    groups = _sides(lines)
    scaled = [0] * len(lines)
    for indexes in groups.values():
        amounts = [lines[i][2] for i in indexes]
        for i, amount in zip(indexes, allocate(sum(amounts) * part // whole, amounts), strict=True):
            scaled[i] = amount
    return [(account, side.opposite(), amount, currency)
            for (account, side, _, currency), amount in zip(lines, scaled, strict=True) if amount]


def _sides(lines: list[Line]) -> dict[tuple[str, Side], list[int]]:
    """Line indexes by (currency, side); refuses lines that could not come from a posted voucher."""
    groups: dict[tuple[str, Side], list[int]] = defaultdict(list)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i, (_, side, amount, currency) in enumerate(lines):
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ValueError(f"lines[{i}]: amounts of a posted voucher are positive integers")
        groups[(currency, side)].append(i)
        totals[currency][0 if side is Side.DEBIT else 1] += amount
    for currency, (debits, credits) in totals.items():
        if debits != credits:
            raise ValueError(f"{currency} lines do not balance ({debits} != {credits})")
    return groups
