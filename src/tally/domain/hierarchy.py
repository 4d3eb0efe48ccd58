"""Account hierarchies: what a parent may have under it, and a subtree's balances rolled up.

A parent and its children share a currency (checked when a child is opened); accounts opened before that
check may still mix currencies under one parent, so a roll-up is kept per currency. Each balance is summed
as it moves the root's balance: a child kept on the other normal side counts negatively, as a contra
account does against its parent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tally.domain import limits
from tally.domain.accounts import Account, Side
from tally.domain.errors import precondition
from tally.domain.money import fits_int64


@dataclass(frozen=True)
class Node:
    """One descendant's balance row, as the roll-up reads it."""

    currency: str
    normal_side: Side
    current: int
    locked: int


@dataclass(frozen=True)
class RollUp:
    """One currency of a subtree, on the root's normal side: the root's own balance, its descendants' sum,
    and both together."""

    currency: str
    own: int
    descendants: int
    own_locked: int
    descendants_locked: int
    descendant_accounts: int

    @property
    def total(self) -> int:
        return self.own + self.descendants

    @property
    def total_locked(self) -> int:
        return self.own_locked + self.descendants_locked


def check_child(parent: Account, child: Account, siblings: int) -> None:
    """A child may join `parent`, which has `siblings` children already."""
    if child.currency != parent.currency:
        raise precondition("PARENT_CURRENCY_MISMATCH", f"a {child.currency} account cannot sit under the "
                           f"{parent.currency} account {parent.code!r}: a parent and its children share a currency",
                           parent_currency=parent.currency, currency=child.currency)
    if siblings >= limits.ACCOUNT_CHILDREN_MAX:
        raise precondition("ACCOUNT_CHILDREN_TOO_MANY", f"an account has at most {limits.ACCOUNT_CHILDREN_MAX} "
                           "children", children_max=limits.ACCOUNT_CHILDREN_MAX)


def check_depth(parent_depth: int) -> None:
    """A child may join a parent that has `parent_depth` accounts in its chain, itself included."""
    if parent_depth >= limits.ACCOUNT_DEPTH_MAX:
        raise precondition("ACCOUNT_TOO_DEEP", f"account hierarchies are at most {limits.ACCOUNT_DEPTH_MAX} deep",
                           depth_max=limits.ACCOUNT_DEPTH_MAX)


def roll_up(root: Account, own_current: int, own_locked: int, descendants: Iterable[Node]) -> list[RollUp]:
    """The subtree's balances per currency, the root's own currency first."""
    sums: dict[str, list[int]] = {root.currency: [0, 0, 0]}
    for node in descendants:
        total = sums.setdefault(node.currency, [0, 0, 0])
        total[0] += node.normal_side.signed(node.current, root.normal_side)
        total[1] += node.normal_side.signed(node.locked, root.normal_side)
        total[2] += 1
    rollups = []
    for currency, (current, locked, count) in sums.items():
        own = (own_current, own_locked) if currency == root.currency else (0, 0)
        rollup = RollUp(currency, own[0], current, own[1], locked, count)
        if not all(fits_int64(v) for v in (rollup.descendants, rollup.total, rollup.descendants_locked,
                                          rollup.total_locked)):
            # Every balance fits int64; a sum of many need not, and the answer cannot carry it.
            raise precondition("ROLLUP_OUT_OF_RANGE", f"the {currency} roll-up leaves the int64 range of the answer",
                               currency=currency)
        rollups.append(rollup)
    return rollups
