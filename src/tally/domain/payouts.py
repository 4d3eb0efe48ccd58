"""Payout instructions and their states, and the bank's business days. Pure: no I/O.

    requested -> batched -> sent -> settled
        |                     |        |
        +-> failed            +-> returned <-+

Money moves at request (settled -> payouts_pending), at send (the batch total leaves bank_deposit), at a
return (back to the merchant through bank_deposit) and at a failure (back from payouts_pending); batching
and settling only record what the bank did.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable

from tally.domain.errors import invalid, precondition

SETTLEMENT_DAYS_MAX = 10
PAYOUTS_PER_BATCH_MAX = 5000
REASON_CHARS_MAX = 256


class PayoutState(enum.Enum):
    REQUESTED = "requested"
    BATCHED = "batched"
    SENT = "sent"
    SETTLED = "settled"
    RETURNED = "returned"
    FAILED = "failed"


class BatchState(enum.Enum):
    BATCHED = "batched"
    SENT = "sent"
    SETTLED = "settled"


class BankAccountStatus(enum.Enum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    DISABLED = "disabled"


# Where a payout may go from each state (the money moved by the step, when any, is in the module doc).
TRANSITIONS = {
    PayoutState.REQUESTED: {PayoutState.BATCHED, PayoutState.FAILED},
    PayoutState.BATCHED: {PayoutState.SENT},  # a batch is one bank instruction: it is sent whole
    PayoutState.SENT: {PayoutState.SETTLED, PayoutState.RETURNED},
    PayoutState.SETTLED: {PayoutState.RETURNED},
    PayoutState.RETURNED: set(),
    PayoutState.FAILED: set(),
}


def check_transition(current: PayoutState, target: PayoutState, payout_id: str) -> None:
    if target not in TRANSITIONS[current]:
        raise precondition("PAYOUT_STATE_INVALID", f"payout {payout_id} is {current.value}: it cannot become "
                           f"{target.value}", payout_id=payout_id, state=current.value)


def undo_state(current: PayoutState) -> PayoutState:
    """What giving the money back makes of a payout: before the bank sent it a failure, after it a return."""
    if current in (PayoutState.REQUESTED, PayoutState.BATCHED):
        return PayoutState.FAILED
    return PayoutState.RETURNED


def check_reason(reason: str) -> str:
    if not reason or len(reason) > REASON_CHARS_MAX or "\x00" in reason:
        raise invalid("REASON_INVALID", f"give the bank's reason, 1 to {REASON_CHARS_MAX} characters",
                      field="reason")
    return reason


def parse_holidays(text: str) -> frozenset[str]:
    """`2026-12-25,2027-01-01` -> the set of ISO dates; a malformed date raises ValueError."""
    return frozenset(dt.date.fromisoformat(part.strip()).isoformat() for part in text.split(",") if part.strip())


def is_business_day(day: dt.date, holidays: Iterable[str]) -> bool:
    return day.weekday() < 5 and day.isoformat() not in holidays


def settlement_date(sent: str, days: int, holidays: frozenset[str]) -> str:
    """The date the bank is expected to settle a batch sent on `sent`: `days` business days later, skipping
    weekends and the holidays. A batch sent on a non-business day counts from the next business day."""
    if not 0 <= days <= SETTLEMENT_DAYS_MAX:
        raise ValueError(f"settlement days must be 0..{SETTLEMENT_DAYS_MAX}")
    day = dt.date.fromisoformat(sent)
    while not is_business_day(day, holidays):
        day += dt.timedelta(days=1)
    for _ in range(days):
        day += dt.timedelta(days=1)
        while not is_business_day(day, holidays):
            day += dt.timedelta(days=1)
    return day.isoformat()
