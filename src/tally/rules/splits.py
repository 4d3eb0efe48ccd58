"""Largest-remainder allocation: an integer total split in proportion to integer weights.

Every part is the floor of its exact proportional share; the units those floors leave over go one each
to the parts with the largest fractional remainders, ties to the earlier part. So the parts always sum
to the total, each is within one unit of its exact share, and the result depends only on the inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

from tally.domain.errors import invalid
from tally.domain.facts import Share
from tally.rules import limits
from tally.rules.patterns import PLACEHOLDER_VALUE

SHARE_BPS_TOTAL = 10_000


def allocate(total: int, weights: list[int]) -> list[int]:
    if total < 0:
        raise ValueError(f"cannot allocate a negative total ({total})")
    if not weights or any(not isinstance(w, int) or w <= 0 for w in weights):
        raise ValueError("weights must be one or more positive integers")
    whole = sum(weights)
    parts = [total * weight // whole for weight in weights]
    leftover = total - sum(parts)  # fewer than len(weights), since each floor lost less than one unit
    # sorted() is stable, so among equal remainders the earlier weight comes first.
    order = sorted(range(len(weights)), key=lambda i: -(total * weights[i] % whole))
    for i in order[:leftover]:
        parts[i] += 1
    return parts


def check_share_table(shares: Sequence[Share]) -> tuple[Share, ...]:
    """A flow's share table: 1..SHARES_MAX distinct parties with positive basis points summing to 10_000."""
    if not 1 <= len(shares) <= limits.SHARES_MAX:
        raise _shares_invalid(f"a share table has 1 to {limits.SHARES_MAX} entries, got {len(shares)}")
    seen: set[str] = set()
    for i, share in enumerate(shares):
        if not isinstance(share.share_bps, int) or isinstance(share.share_bps, bool) or share.share_bps <= 0:
            raise _shares_invalid(f"shares[{i}].share_bps must be a positive integer")
        if not PLACEHOLDER_VALUE.fullmatch(share.party or ""):
            raise _shares_invalid(f"shares[{i}].party must be letters, digits and _.@/- only")
        if share.party in seen:
            raise _shares_invalid(f"shares[{i}].party {share.party!r} appears twice")
        seen.add(share.party)
    total = sum(share.share_bps for share in shares)
    if total != SHARE_BPS_TOTAL:
        raise _shares_invalid(f"share_bps must sum to {SHARE_BPS_TOTAL}, got {total}")
    return tuple(shares)


def _shares_invalid(message: str):
    return invalid("SHARES_INVALID", message)
