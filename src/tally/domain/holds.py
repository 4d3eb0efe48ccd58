"""Holds: reservations of available balance. Pure transitions; the batch writer applies them under the
same locks as postings, so a capture, a release and an expiry of one hold can never both win."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from tally.domain import limits
from tally.domain.accounts import NOT_POSTABLE_REASONS, Account, AccountStatus, BalanceState
from tally.domain.errors import invalid, not_accessible, precondition
from tally.domain.fields import check_metadata, check_text
from tally.domain.money import check_amount


class HoldStatus(enum.Enum):
    ACTIVE = "active"
    CAPTURED = "captured"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Hold:
    id: str
    tenant_id: str
    account_id: str
    currency: str
    amount: int
    captured: int = 0
    status: HoldStatus = HoldStatus.ACTIVE
    expires_us: int | None = None
    request_id: str = ""
    created_by: str = ""
    memo: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    created_us: int = 0
    updated_us: int = 0
    capture_voucher_ids: tuple[str, ...] = ()

    @property
    def remaining(self) -> int:
        """What the hold still reserves."""
        return self.amount - self.captured if self.status is HoldStatus.ACTIVE else 0


def check_new_hold(amount: int, currency: str, memo: str, metadata: dict[str, str],
                   expires_us: int | None, now_us: int) -> None:
    check_amount(amount)
    check_text(memo, "memo", limits.MEMO_LENGTH_MAX)
    check_metadata(metadata)
    if not currency:
        raise invalid("CURRENCY_MISSING", "a hold names its currency")
    if expires_us is not None and expires_us <= now_us:
        raise invalid("HOLD_EXPIRY_PAST", "expire_time must lie in the future")


def open_hold(hold: Hold, account: Account, state: BalanceState) -> BalanceState:
    """The balance after reserving the hold's amount; refuses what available funds cannot cover."""
    if account.status is not AccountStatus.ACTIVE:
        reason = NOT_POSTABLE_REASONS[account.status]
        raise precondition(reason, f"account {account.code} is {account.status.value}", account_id=account.id)
    if hold.currency != account.currency:
        raise precondition("CURRENCY_MISMATCH", f"account {account.code} holds {account.currency}",
                           account_id=account.id, account_currency=account.currency, line_currency=hold.currency)
    available = state.available(account.credit_limit)
    if hold.amount > available:
        raise precondition("INSUFFICIENT_FUNDS", f"account {account.code} has {available} available, "
                           f"needs {hold.amount}", account_id=account.id, available=available,
                           required=hold.amount)
    return replace(state, locked=state.locked + hold.amount)


def require_open(hold: Hold | None, hold_id: str) -> Hold:
    """The hold, when it exists and is still active (whatever its expiry)."""
    if hold is None:
        raise not_accessible("hold", hold_id)
    if hold.status is not HoldStatus.ACTIVE:
        raise precondition(f"HOLD_{hold.status.name}", f"hold {hold.id} is {hold.status.value}", hold_id=hold.id)
    return hold


def require_active(hold: Hold | None, hold_id: str, now_us: int) -> Hold:
    """The hold, when it may still be captured or released: open and not past its expiry."""
    hold = require_open(hold, hold_id)
    if hold.expires_us is not None and hold.expires_us <= now_us:
        # Past its expiry the hold is as good as expired, even before the expirer releases it.
        raise precondition("HOLD_EXPIRED", f"hold {hold.id} has expired", hold_id=hold.id)
    return hold


def capture(hold: Hold, amount: int, final: bool, now_us: int) -> tuple[Hold, int]:
    """The hold after capturing `amount`, and how much its account's locked balance falls."""
    check_amount(amount)
    if amount > hold.remaining:
        raise precondition("HOLD_AMOUNT_EXCEEDED", f"hold {hold.id} has {hold.remaining} remaining, "
                           f"capture asks {amount}", hold_id=hold.id, remaining=hold.remaining, requested=amount)
    captured = hold.captured + amount
    closes = final or captured == hold.amount
    unlocked = hold.remaining if closes else amount
    status = HoldStatus.CAPTURED if closes else HoldStatus.ACTIVE
    return replace(hold, captured=captured, status=status, updated_us=now_us), unlocked


def release(hold: Hold, now_us: int, *, expired: bool = False) -> tuple[Hold, int]:
    """The hold once released (or expired), and how much its account's locked balance falls."""
    status = HoldStatus.EXPIRED if expired else HoldStatus.RELEASED
    return replace(hold, status=status, updated_us=now_us), hold.remaining
