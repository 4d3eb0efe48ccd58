"""Merging accounts (architecture seed, section 5): which merges are allowed, and the voucher that moves
a source's balance to the target. Pure: the service loads the accounts and posts what this builds."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tally.domain.accounts import NOT_POSTABLE_REASONS, Account, AccountStatus, BalanceState
from tally.domain.errors import invalid, precondition
from tally.domain.holds import Hold
from tally.domain.vouchers import AccountRef, LineDraft, VoucherDraft

MERGE_SOURCES_MAX = 50  # sources per request: one voucher and one balance row lock each
MERGE_HOLDS_MAX = 1000  # active holds moved by one request
MERGE_FLOW = "merge"
# Accounts of one owner carry the same `owner` metadata; accounts without it belong to nobody in particular.
OWNER_KEY = "owner"


class HoldPolicy(enum.Enum):
    MOVE = "move"  # each active hold of a source is released there and opened again on the target
    REFUSE = "refuse"  # a source with an active hold refuses the merge


@dataclass(frozen=True, slots=True)
class MovedHold:
    source_hold_id: str
    target_hold_id: str
    amount: int  # what the hold still reserved


@dataclass(frozen=True, slots=True)
class SourceMove:
    source_id: str
    voucher_id: str  # "" when the source's balance was zero
    amount: int  # signed on the accounts' normal side: what the target received
    holds: tuple[MovedHold, ...] = ()


def check_request(source_refs: list[AccountRef], target_ref: AccountRef) -> None:
    if not source_refs:
        raise invalid("MERGE_SOURCES_REQUIRED", "name at least one account to merge", field="sources")
    if len(source_refs) > MERGE_SOURCES_MAX:
        raise invalid("MERGE_SOURCES_TOO_MANY", f"at most {MERGE_SOURCES_MAX} accounts merge in one request",
                      field="sources", sources_max=MERGE_SOURCES_MAX)
    if target_ref in source_refs:
        raise invalid("MERGE_SOURCE_IS_TARGET", "an account cannot be merged into itself", field="sources")
    if len(set(source_refs)) != len(source_refs):
        raise invalid("MERGE_SOURCE_DUPLICATE", "each account to merge is named once", field="sources")


def check_merge(sources: list[Account], target: Account, children: dict[str, int]) -> None:
    """Refuses merges across currencies, account types or owners, of accounts that cannot take postings,
    and of sources that still have children. Accounts of other tenants are never found (NOT_FOUND)."""
    if target.status is not AccountStatus.ACTIVE:
        raise precondition(NOT_POSTABLE_REASONS[target.status], "the target account takes no postings",
                           account_id=target.id, field="target")
    seen = {target.id}
    for source in sources:
        if source.id in seen:  # one account named by id and by code
            raise invalid("MERGE_SOURCE_DUPLICATE", "each account to merge is named once", account_id=source.id)
        seen.add(source.id)
        _check_source(source, target, children.get(source.id, 0))


def _check_source(source: Account, target: Account, children: int) -> None:
    if source.status is not AccountStatus.ACTIVE:
        raise precondition(NOT_POSTABLE_REASONS[source.status], "a source account must be active to merge",
                           account_id=source.id, field="sources")
    if source.currency != target.currency:
        raise precondition("MERGE_CURRENCY_MISMATCH", f"{source.code} holds {source.currency}, the target "
                           f"{target.currency}", account_id=source.id)
    if (source.type, source.normal_side) != (target.type, target.normal_side):
        raise precondition("MERGE_TYPE_MISMATCH", f"{source.code} is a {source.type.value} account, the target "
                           f"a {target.type.value} account", account_id=source.id)
    if source.metadata.get(OWNER_KEY, "") != target.metadata.get(OWNER_KEY, ""):
        raise precondition("MERGE_OWNER_MISMATCH", f"{source.code} and the target belong to different owners",
                           account_id=source.id)
    if children:
        raise precondition("MERGE_SOURCE_HAS_CHILDREN", f"{source.code} has {children} child accounts: merge or "
                           "move them first", account_id=source.id)


def check_holds(policy: HoldPolicy, holds: list[Hold]) -> None:
    if holds and policy is HoldPolicy.REFUSE:
        ids = sorted(h.id for h in holds)
        raise precondition("MERGE_SOURCE_HAS_HOLDS", f"active holds on the sources: {', '.join(ids[:10])}; "
                           "release or capture them, or merge with hold_policy MOVE", hold_ids=",".join(ids[:10]),
                           hold_count=len(ids))
    if len(holds) > MERGE_HOLDS_MAX:
        raise precondition("MERGE_HOLDS_TOO_MANY", f"the sources have {len(holds)} active holds; a merge moves at "
                           f"most {MERGE_HOLDS_MAX}", hold_count=len(holds), holds_max=MERGE_HOLDS_MAX)


def move_draft(source: Account, target: Account, balance: BalanceState, memo: str) -> VoucherDraft | None:
    """The voucher that brings the source's current balance to zero and adds it to the target (same side:
    merged accounts share type and normal side). None when there is nothing to move."""
    if balance.current == 0:
        return None
    amount = abs(balance.current)
    # A positive balance leaves the source on the side opposite its normal side; a negative one (a drawn
    # credit line) the other way round.
    out_side = source.normal_side.opposite() if balance.current > 0 else source.normal_side
    return VoucherDraft(
        flow_type=MERGE_FLOW, memo=memo, metadata={"merged_from": source.id, "merged_into": target.id},
        lines=(LineDraft(AccountRef(id=source.id), out_side, amount, source.currency),
               LineDraft(AccountRef(id=target.id), out_side.opposite(), amount, target.currency)))
