"""A business flow as the rule engine sees it: named integer values, named parties and tags, and an
optional share table. The API maps each typed flow message onto this."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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


class LedgerView(Protocol):
    """What a rule may read of the ledger while it is evaluated inside the write transaction."""

    def available(self, code: str) -> int | None:
        """Available balance of the account with this code, None when there is none."""

    def metadata(self, code: str) -> dict[str, str] | None:
        """Metadata of the account with this code, None when there is none."""
