"""Typed business flows and the vouchers the generic ones make. Rule-driven flows build on these."""

from __future__ import annotations

from dataclasses import dataclass

from tally.domain.accounts import Side
from tally.domain.errors import invalid
from tally.domain.facts import Facts
from tally.domain.fields import check_caller_metadata
from tally.domain.fx import FxFlow
from tally.domain.subaccounts import SubAccountTransferFlow
from tally.domain.vouchers import AccountRef, LineDraft, VoucherDraft, check_draft


@dataclass(slots=True)  # not frozen: one per request, never changed (a frozen __init__ costs 4x as much)
class TransferFlow:
    """Debit `source`, credit `destination`."""

    source: AccountRef
    destination: AccountRef
    amount: int
    currency: str
    memo: str = ""

    flow_type = "transfer"

    def vouchers(self, memo: str, metadata: dict[str, str], effective_us: int | None) -> tuple[VoucherDraft, ...]:
        if self.source == self.destination:
            raise invalid("SAME_ACCOUNT_BOTH_SIDES", "a transfer needs two different accounts")
        check_caller_metadata(metadata)
        lines = (LineDraft(self.source, Side.DEBIT, self.amount, self.currency, self.memo),
                 LineDraft(self.destination, Side.CREDIT, self.amount, self.currency, self.memo))
        draft = VoucherDraft(self.flow_type, lines, memo=memo, metadata=metadata, effective_us=effective_us)
        return (check_draft(draft),)


@dataclass(frozen=True, slots=True)
class AdjustmentFlow:
    """Any balanced set of lines, with the reason an operator gives for it."""

    lines: tuple[LineDraft, ...]
    reason: str

    flow_type = "adjustment"

    def vouchers(self, memo: str, metadata: dict[str, str], effective_us: int | None) -> tuple[VoucherDraft, ...]:
        if not self.reason.strip():
            raise invalid("REASON_MISSING", "an adjustment must give its reason")
        draft = VoucherDraft(self.flow_type, self.lines, memo=memo or self.reason,
                             metadata={**check_caller_metadata(metadata), "reason": self.reason},
                             effective_us=effective_us)
        return (check_draft(draft),)


@dataclass(frozen=True)
class RuleFlow:
    """A business flow the rule set turns into vouchers (funding, usage, acquisition, settlement, ...)."""

    facts: Facts
    hold_id: str = ""  # usage may spend from a hold on the consumer's account

    @property
    def flow_type(self) -> str:
        return self.facts.flow_type


@dataclass(frozen=True)
class RefundFlow:
    """Gives back `amount` of an earlier acquisition or usage, named by the request that posted it."""

    original_request_id: str
    amount: int
    currency: str
    reason: str = ""

    flow_type = "refund"


Flow = TransferFlow | AdjustmentFlow | RuleFlow | RefundFlow | SubAccountTransferFlow | FxFlow
