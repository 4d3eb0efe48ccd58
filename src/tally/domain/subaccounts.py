"""Sub-accounts per business line: a main account owns named sub-accounts (a merchant's `settled`,
`pending`, `guarantee`, `marketing`), each an account of its own (its own balance and floor), coded
`MAIN/NAME` and opened as a child of the main account, so the main account's roll-up sums them. Flows and
rules name them by that code; `SubAccountTransferFlow` moves money between two of one main account's
sub-accounts as one flow."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tally.domain.accounts import Side
from tally.domain.errors import invalid
from tally.domain.fields import check_caller_metadata, check_code
from tally.domain.vouchers import AccountRef, LineDraft, VoucherDraft, check_draft

SEPARATOR = "/"
SUB_NAME_LENGTH_MAX = 64
_SUB_NAME = re.compile(r"[A-Za-z0-9_.@-]+")  # an account code's characters but the separator and ':'


def main_code_of(code: str) -> str | None:
    """The main account's code a sub-account code names (`merchant_1/settled` -> `merchant_1`), if any."""
    main, separator, name = code.rpartition(SEPARATOR)
    return main if separator and main and name else None


def sub_code(main_code: str, name: str, field: str = "sub_account") -> str:
    if not name or len(name) > SUB_NAME_LENGTH_MAX or not _SUB_NAME.fullmatch(name):
        raise invalid("SUB_ACCOUNT_NAME_INVALID", f"{field} must be 1..{SUB_NAME_LENGTH_MAX} letters, digits or "
                      "_.@-", field=field)
    return check_code(f"{main_code}{SEPARATOR}{name}", field)


@dataclass(frozen=True, slots=True)
class SubAccountTransferFlow:
    """Debit the main account's sub-account `source`, credit its sub-account `destination`."""

    main_code: str
    source: str
    destination: str
    amount: int
    currency: str
    memo: str = ""

    flow_type = "sub_account_transfer"

    def vouchers(self, memo: str, metadata: dict[str, str], effective_us: int | None) -> tuple[VoucherDraft, ...]:
        check_code(self.main_code, "sub_account_transfer.account")
        debit = sub_code(self.main_code, self.source, "sub_account_transfer.from_sub")
        credit = sub_code(self.main_code, self.destination, "sub_account_transfer.to_sub")
        if debit == credit:
            raise invalid("SAME_ACCOUNT_BOTH_SIDES", "a sub-account transfer needs two different sub-accounts")
        check_caller_metadata(metadata)
        lines = (LineDraft(AccountRef(code=debit), Side.DEBIT, self.amount, self.currency, self.memo),
                 LineDraft(AccountRef(code=credit), Side.CREDIT, self.amount, self.currency, self.memo))
        draft = VoucherDraft(self.flow_type, lines, memo=memo, metadata={**metadata, "main_account": self.main_code},
                             effective_us=effective_us)
        return (check_draft(draft),)
