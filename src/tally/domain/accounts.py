"""Accounts and their balances. Balances are signed on the account's normal side."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from tally.domain import limits
from tally.domain.errors import invalid, precondition
from tally.domain.fields import check_code, check_metadata, check_text
from tally.domain.money import fits_int64


class AccountType(enum.Enum):
    DEPOSIT = "deposit"
    CREDIT = "credit"
    SECURITY_DEPOSIT = "security_deposit"
    INTERNAL = "internal"


class Side(enum.Enum):
    DEBIT = "debit"
    CREDIT = "credit"

    def opposite(self) -> Side:
        return Side.CREDIT if self is Side.DEBIT else Side.DEBIT

    def signed(self, amount: int, normal_side: Side) -> int:
        """A line of `amount` on this side, as it moves a balance kept on `normal_side`."""
        return amount if self is normal_side else -amount


class AccountStatus(enum.Enum):
    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"
    # Set by the ledger audit when the account's balance row disagrees with its journal: accepts no postings
    # (ACCOUNT_INCONSISTENT) until an operator sets it active again.
    INCONSISTENT = "inconsistent"


# Why an account that is not active refuses a posting or a hold: the FAILED_PRECONDITION reason.
NOT_POSTABLE_REASONS = {
    AccountStatus.FROZEN: "ACCOUNT_FROZEN",
    AccountStatus.CLOSED: "ACCOUNT_CLOSED",
    AccountStatus.INCONSISTENT: "ACCOUNT_INCONSISTENT",
}


class FloorPolicy(enum.Enum):
    NON_NEGATIVE = "non_negative"  # available (current - locked + credit limit) stays >= 0
    UNBOUNDED = "unbounded"


CUSTOMER_TYPES = frozenset({AccountType.DEPOSIT, AccountType.CREDIT, AccountType.SECURITY_DEPOSIT})


# Not frozen: a batch reads an account for every line it names, where a frozen class's __init__ (one
# object.__setattr__ per field) cost five times as much. Changes make a new Account (`change_account`).
@dataclass(slots=True)
class Account:
    id: str
    tenant_id: str
    code: str
    type: AccountType
    normal_side: Side
    currency: str
    status: AccountStatus = AccountStatus.ACTIVE
    name: str = ""
    parent_id: str | None = None
    credit_limit: int = 0
    floor_policy: FloorPolicy = FloorPolicy.NON_NEGATIVE
    metadata: dict[str, str] = field(default_factory=dict)
    created_us: int = 0
    updated_us: int = 0


@dataclass(frozen=True)
class NewAccount:
    """What a caller asks for; `open_account` checks it and fills the defaults of its type."""

    code: str
    type: AccountType
    currency: str
    normal_side: Side | None = None
    name: str = ""
    parent_id: str | None = None
    credit_limit: int = 0
    floor_policy: FloorPolicy | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def open_account(spec: NewAccount, *, account_id: str, tenant_id: str, now_us: int,
                 currencies: frozenset[str]) -> Account:
    check_code(spec.code)
    check_text(spec.name, "name", limits.ACCOUNT_NAME_LENGTH_MAX)
    check_metadata(spec.metadata)
    if spec.currency not in currencies:
        raise invalid("CURRENCY_UNKNOWN", f"currency {spec.currency!r} is not configured", currency=spec.currency)
    normal_side, floor = _side_and_floor(spec)
    _check_credit_limit(spec.type, spec.credit_limit)
    return Account(
        id=account_id, tenant_id=tenant_id, code=spec.code, type=spec.type, normal_side=normal_side,
        currency=spec.currency, name=spec.name, parent_id=spec.parent_id, credit_limit=spec.credit_limit,
        floor_policy=floor, metadata=dict(spec.metadata), created_us=now_us, updated_us=now_us,
    )


def _side_and_floor(spec: NewAccount) -> tuple[Side, FloorPolicy]:
    if spec.type in CUSTOMER_TYPES:
        # Money held for customers is a liability of the platform: credit-normal, never below its floor.
        if spec.normal_side not in (None, Side.CREDIT):
            raise invalid("NORMAL_SIDE_INVALID", f"{spec.type.value} accounts are credit-normal")
        if spec.floor_policy not in (None, FloorPolicy.NON_NEGATIVE):
            raise invalid("FLOOR_POLICY_INVALID", f"{spec.type.value} accounts never go below their floor")
        return Side.CREDIT, FloorPolicy.NON_NEGATIVE
    if spec.normal_side is None:
        raise invalid("NORMAL_SIDE_REQUIRED", "internal accounts must name their normal side")
    return spec.normal_side, spec.floor_policy or FloorPolicy.UNBOUNDED


def _check_credit_limit(account_type: AccountType, credit_limit: int) -> None:
    if credit_limit < 0:
        raise invalid("CREDIT_LIMIT_INVALID", "credit_limit must not be negative")
    if credit_limit > limits.CREDIT_LIMIT_MAX:
        raise invalid("CREDIT_LIMIT_TOO_LARGE", f"credit_limit must be at most {limits.CREDIT_LIMIT_MAX}, so that "
                      "available (current - locked + credit_limit) stays within int64",
                      credit_limit_max=limits.CREDIT_LIMIT_MAX)
    if credit_limit and account_type is not AccountType.CREDIT:
        raise invalid("CREDIT_LIMIT_NOT_ALLOWED", "only credit accounts have a credit limit")


@dataclass(frozen=True)
class AccountChange:
    """A partial update: None leaves the field as it is."""

    status: AccountStatus | None = None
    credit_limit: int | None = None
    name: str | None = None
    metadata: dict[str, str] | None = None


def change_account(account: Account, change: AccountChange, balance: BalanceState, now_us: int) -> Account:
    if account.status is AccountStatus.CLOSED:
        raise precondition("ACCOUNT_CLOSED", "a closed account cannot be changed", account_id=account.id)
    updated = account
    if change.name is not None:
        updated = replace(updated, name=check_text(change.name, "name", limits.ACCOUNT_NAME_LENGTH_MAX))
    if change.metadata is not None:
        updated = replace(updated, metadata=check_metadata(change.metadata))
    if change.credit_limit is not None:
        _check_credit_limit(account.type, change.credit_limit)
        if not fits_int64(balance.available(change.credit_limit)):
            raise invalid("CREDIT_LIMIT_INVALID", "the available balance would leave the int64 range")
        updated = replace(updated, credit_limit=change.credit_limit)
    if change.status is not None:
        _check_status_change(account, change.status, balance)
        updated = replace(updated, status=change.status)
    return replace(updated, updated_us=now_us)


def _check_status_change(account: Account, status: AccountStatus, balance: BalanceState) -> None:
    if status is AccountStatus.INCONSISTENT and account.status is not AccountStatus.INCONSISTENT:
        raise invalid("ACCOUNT_STATUS_RESERVED", "only the ledger audit marks an account inconsistent",
                      account_id=account.id)
    if status is AccountStatus.CLOSED and (balance.current != 0 or balance.locked != 0):
        raise precondition(
            "ACCOUNT_BALANCE_NOT_ZERO", "only an account with zero current and locked balance can close",
            account_id=account.id,
        )


@dataclass(slots=True)
class BalanceState:
    """One account's balance row as the posting arithmetic sees it.

    `previous_day` is the balance at the end of the day before `last_date` (dual balance): the first
    posting of a new accounting day copies `current` into it before changing `current`.
    """

    account_id: str
    current: int = 0
    locked: int = 0
    previous_day: int = 0
    last_date: str = ""
    entry_count: int = 0

    def available(self, credit_limit: int) -> int:
        return self.current - self.locked + credit_limit

    def previous_day_as_of(self, accounting_date: str) -> int:
        """The balance at the end of the day before `accounting_date`."""
        if self.last_date and self.last_date < accounting_date:
            return self.current
        return self.previous_day
