"""A business flow as the rule engine sees it: named integer values, named parties and tags, and an
optional share table. The API maps each typed flow message onto this."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tally.domain.errors import invalid
from tally.domain.money import check_amount

BPS_WHOLE = 10_000


@dataclass(frozen=True)
class Share:
    party: str
    share_bps: int  # basis points of the amount being split; a table sums to 10_000


@dataclass(frozen=True)
class Facts:
    flow_type: str
    currency: str
    values: dict[str, int] = field(default_factory=dict)  # amounts, rates: always integers
    parties: dict[str, str] = field(default_factory=dict)  # consumer, merchant, channel, ...; "" = absent
    tags: dict[str, str] = field(default_factory=dict)  # enumerations such as kind or coupon issuer
    shares: tuple[Share, ...] = ()


def check_facts(facts: Facts) -> Facts:
    """What every flow's numbers must be before any rule sees them: a positive amount, no negative
    value, rates within 0..10_000 basis points."""
    check_amount(facts.values.get("amount"), "amount")
    for name, value in facts.values.items():
        if value:
            check_amount(value, name)
        if name.endswith("_bps") and value > BPS_WHOLE:
            raise invalid("RATE_INVALID", f"{name} is at most {BPS_WHOLE} basis points", field=name)
    if not facts.currency:
        raise invalid("CURRENCY_MISSING", "the flow names no currency", field="currency")
    return facts


class LedgerView(Protocol):
    """What a rule may read of the ledger while it is evaluated inside the write transaction."""

    def available(self, code: str) -> int | None:
        """Available balance of the account with this code, None when there is none."""

    def metadata(self, code: str) -> dict[str, str] | None:
        """Metadata of the account with this code, None when there is none."""
