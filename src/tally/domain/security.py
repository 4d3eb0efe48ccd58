"""Credit accounts secured by a security deposit (the accounts seed's examples).

A credit account names the security-deposit account that secures it; a deposit secures at most
`DEPOSIT_CREDITS_MAX` credit accounts. The deposit keeps what secures their outstanding credit,
ceil(outstanding x 10,000 / ratio_bps), and cannot be withdrawn (or held) below it. A bound credit
account's limit is the deposit's balance x ratio_bps / 10,000 (rounded down), at most the account's own
credit limit, computed when a posting is checked, so it follows the deposit as it moves. Pure arithmetic
on balances: the batch writer calls it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tally.domain import limits
from tally.domain.accounts import Account, AccountStatus, AccountType, BalanceState, FloorPolicy
from tally.domain.errors import invalid, precondition

RATIO_BPS_WHOLE = 10_000
DEPOSIT_CREDITS_MAX = 100  # credit accounts one deposit secures


@dataclass(frozen=True, slots=True)
class Security:
    tenant_id: str
    credit_id: str
    deposit_id: str
    ratio_bps: int
    bound: bool  # the credit limit follows the deposit
    request_id: str = ""
    updated_us: int = 0


def outstanding(credit: BalanceState) -> int:
    """What a credit account has drawn beyond its own funds (held amounts included)."""
    return max(0, credit.locked - credit.current)


def required_deposit(security: Security, credit: BalanceState) -> int:
    """The deposit this credit account needs kept, rounded up: the deposit never secures less."""
    return -(-outstanding(credit) * RATIO_BPS_WHOLE // security.ratio_bps)


def bound_limit(security: Security, deposit: BalanceState) -> int:
    """The credit limit a deposit balance carries, rounded down: the credit never exceeds its cover."""
    return min(max(0, deposit.current) * security.ratio_bps // RATIO_BPS_WHOLE, limits.CREDIT_LIMIT_MAX)


def effective_limit(security: Security, credit: Account, deposit: BalanceState) -> int:
    """The limit a posting is checked against. Bound, the deposit's cover within the account's own limit: the
    stored limit stays the ceiling, so every stored balance keeps within it (the ledger audit's floor)."""
    return min(credit.credit_limit, bound_limit(security, deposit)) if security.bound else credit.credit_limit


def check_link(credit: Account, deposit: Account, ratio_bps: int, secured_count: int) -> None:
    if not 1 <= ratio_bps <= RATIO_BPS_WHOLE:
        raise invalid("RATIO_BPS_INVALID", f"ratio_bps must lie in 1..{RATIO_BPS_WHOLE}", field="ratio_bps")
    if credit.type is not AccountType.CREDIT:
        raise precondition("ACCOUNT_NOT_CREDIT", f"{credit.code} is a {credit.type.value} account, not a credit "
                           "account", account_id=credit.id, field="credit_account")
    if deposit.type is not AccountType.SECURITY_DEPOSIT:
        raise precondition("ACCOUNT_NOT_SECURITY_DEPOSIT", f"{deposit.code} is a {deposit.type.value} account, not "
                           "a security deposit", account_id=deposit.id, field="deposit_account")
    if credit.currency != deposit.currency:
        raise precondition("CURRENCY_MISMATCH", f"the credit account holds {credit.currency}, the deposit "
                           f"{deposit.currency}", account_id=deposit.id)
    for account in (credit, deposit):
        if account.status is AccountStatus.CLOSED:
            raise precondition("ACCOUNT_CLOSED", f"{account.code} is closed", account_id=account.id)
    if secured_count >= DEPOSIT_CREDITS_MAX:
        raise precondition("DEPOSIT_SECURES_TOO_MANY", f"a deposit secures at most {DEPOSIT_CREDITS_MAX} credit "
                           "accounts", account_id=deposit.id, credits_max=DEPOSIT_CREDITS_MAX)


def check_deposit(deposit: Account, state: BalanceState, required: int) -> None:
    """A deposit whose available balance fell below what it secures."""
    if state.current - state.locked < required:
        raise precondition("DEPOSIT_SECURES_CREDIT", f"{deposit.code} must keep {required} to secure outstanding "
                           f"credit; it would have {state.current - state.locked}", account_id=deposit.id,
                           required=required, available=state.current - state.locked)


def check_credit(credit: Account, state: BalanceState, limit: int) -> None:
    """A bound credit account drawn past the limit its deposit carries now."""
    if state.available(limit) < 0:
        raise precondition("CREDIT_LIMIT_EXCEEDED", f"{credit.code} would draw past its deposit-bound limit "
                           f"{limit}", account_id=credit.id, credit_limit=limit, available=state.available(limit))


def linked_room(account: Account, balances: Mapping[str, BalanceState], credit: Security | None,
                secured: Iterable[Security]) -> int | None:
    """`lowering_room` of an account with its links: the credit limit its deposit binds (`account` carries
    its own limit) and what it must keep for the credit accounts it secures."""
    limit = account.credit_limit
    if credit is not None and credit.bound:
        limit = effective_limit(credit, account, balances[credit.deposit_id])
    required = sum(required_deposit(s, balances[s.credit_id]) for s in secured)
    return lowering_room(account, balances[account.id], limit, required)


def lowering_room(account: Account, state: BalanceState, limit: int, required: int) -> int | None:
    """How far a voucher may lower the account's balance now without a check refusing it: its floor (the
    available balance against `limit`, the credit limit in force) and, for a deposit, what it must keep to
    secure credit (`required`). None: nothing bounds it. What a sweep moves at most."""
    room = max(0, state.available(limit)) if account.floor_policy is FloorPolicy.NON_NEGATIVE else None
    if required:
        keep = max(0, state.current - state.locked - required)
        room = keep if room is None else min(room, keep)
    return room
