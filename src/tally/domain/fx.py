"""Currency conversion (`fx`): a party's money in one currency becomes money in another at a rate the caller
gives as an integer fraction of atomic units (target units per source unit: numerator / denominator).

One voucher, balanced per currency:
    Dr source (from)  amount           Cr fx_position:{FROM}   used
                                       Cr fx_gain_loss:{FROM}  residue   (when not 0)
    Dr fx_position:{TO} converted      Cr destination (to)      converted
where converted = floor(amount * n / d), used = ceil(converted * d / n) (the source units the converted
amount is worth at the rate) and residue = amount - used: what rounding to whole target units left over,
less than one target unit's worth. No unit is created or lost: used + residue == amount.
"""

from __future__ import annotations

from dataclasses import dataclass

from tally.domain.accounts import Side
from tally.domain.errors import invalid
from tally.domain.fields import check_caller_metadata
from tally.domain.limits import AMOUNT_MAX
from tally.domain.vouchers import AccountRef, LineDraft, VoucherDraft, check_draft

RATE_TERM_MAX = 10**12  # numerator and denominator: amount * numerator stays exact and small
FX_FLOW = "fx"


def position_code(currency: str) -> str:
    return f"fx_position:{currency}"


def gain_loss_code(currency: str) -> str:
    return f"fx_gain_loss:{currency}"


@dataclass(frozen=True, slots=True)
class Conversion:
    converted: int  # target units the destination receives
    used: int  # source units they are worth at the rate
    residue: int  # source units rounding left over: amount - used


def convert(amount: int, numerator: int, denominator: int) -> Conversion:
    converted = amount * numerator // denominator
    used = -(-converted * denominator // numerator)  # ceiling division, in integers
    return Conversion(converted, used, amount - used)


@dataclass(frozen=True, slots=True)
class FxFlow:
    source: AccountRef
    destination: AccountRef
    amount: int
    from_currency: str
    to_currency: str
    rate_numerator: int
    rate_denominator: int
    memo: str = ""

    flow_type = FX_FLOW

    def codes(self) -> dict[str, str]:
        """The platform's accounts it names (opened from the rule set's templates on first use)."""
        return {position_code(self.from_currency): self.from_currency,
                gain_loss_code(self.from_currency): self.from_currency,
                position_code(self.to_currency): self.to_currency}

    def vouchers(self, memo: str, metadata: dict[str, str], effective_us: int | None) -> tuple[VoucherDraft, ...]:
        self._check()
        check_caller_metadata(metadata)
        c = convert(self.amount, self.rate_numerator, self.rate_denominator)
        if c.converted <= 0:
            raise invalid("FX_AMOUNT_TOO_SMALL", f"{self.amount} {self.from_currency} converts to less than one unit "
                          f"of {self.to_currency} at this rate", field="fx.amount")
        source, target = self.from_currency, self.to_currency
        lines = [LineDraft(self.source, Side.DEBIT, self.amount, source, self.memo),
                 LineDraft(AccountRef(code=position_code(source)), Side.CREDIT, c.used, source)]
        if c.residue:
            lines.append(LineDraft(AccountRef(code=gain_loss_code(source)), Side.CREDIT, c.residue, source))
        lines += [LineDraft(AccountRef(code=position_code(target)), Side.DEBIT, c.converted, target),
                  LineDraft(self.destination, Side.CREDIT, c.converted, target, self.memo)]
        rate = f"{self.rate_numerator}/{self.rate_denominator}"
        draft = VoucherDraft(self.flow_type, tuple(lines), memo=memo,
                             metadata={**metadata, "fx_rate": rate}, effective_us=effective_us)
        return (check_draft(draft),)

    def _check(self) -> None:
        if self.from_currency == self.to_currency:
            raise invalid("FX_SAME_CURRENCY", "a conversion needs two different currencies", field="fx.to_currency")
        for name, term in (("rate_numerator", self.rate_numerator), ("rate_denominator", self.rate_denominator)):
            if not 0 < term <= RATE_TERM_MAX:
                raise invalid("FX_RATE_INVALID", f"fx.{name} must lie in 1..{RATE_TERM_MAX}", field=f"fx.{name}")
        if not 0 < self.amount <= AMOUNT_MAX:
            raise invalid("AMOUNT_NOT_POSITIVE", "fx.amount must be a positive amount", field="fx.amount")
        if self.amount * self.rate_numerator // self.rate_denominator > AMOUNT_MAX:
            raise invalid("FX_AMOUNT_TOO_LARGE", "the converted amount would leave the int64 range", field="fx.amount")
