"""Closing an accounting day: its state, what the close stores, and the checks a close must pass.

A day is open while postings may still carry its date, `closing` once the ledger head has moved past it
(its last voucher sequence is then fixed), and `closed` once its totals are stored. Nothing here reads a
database: the storage layer sums the day's lines, and this module checks and shapes what it found.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from tally.domain.errors import ErrorKind, LedgerError, invalid

DAY_CLOSED = "day.closed"
DAYS_PER_CLOSE_MAX = 31  # earlier open days one close may take along before the day asked for


class DayState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True)
class CurrencyTotal:
    """The day's postings in one currency: debits and credits are equal in balanced books."""

    currency: str
    debit_total: int
    credit_total: int
    line_count: int


@dataclass(frozen=True)
class FlowTotal:
    """The day's vouchers of one flow type in one currency; `amount_total` sums their debit lines."""

    flow_type: str
    currency: str
    voucher_count: int
    amount_total: int
    summarized: bool = False  # the rule set summarizes this flow: it has a summary voucher
    summary_accounts: tuple[str, ...] = ()  # account code prefixes summarized; () = every account


@dataclass(frozen=True)
class SummaryLine:
    """A line of a summary voucher (one per summarized flow and currency of a day): the exact sum of the
    detail lines of one account and side."""

    flow_type: str
    currency: str
    account_id: str
    side: str
    amount: int
    line_count: int


@dataclass(frozen=True)
class ClosingBalance:
    """An account's balance at the end of the day (the previous-day balance of the next), for each account
    the day moved; an account the day did not move keeps its last closing balance."""

    account_id: str
    currency: str
    balance: int
    entry_count: int  # the account's last entry number of the day


@dataclass(frozen=True)
class DayTotals:
    currencies: tuple[CurrencyTotal, ...]
    flows: tuple[FlowTotal, ...]
    closing: tuple[ClosingBalance, ...]
    voucher_count: int
    summary_lines: tuple[SummaryLine, ...] = ()


@dataclass(frozen=True)
class AccountingDay:
    tenant_id: str
    date: str
    state: DayState
    after_sequence: int  # the day's vouchers are those after this sequence, through last_sequence
    last_sequence: int
    voucher_count: int = 0
    started_us: int = 0  # when the close fixed the day's last sequence
    closed_us: int = 0
    event_sequence: int = 0  # the day.closed event
    currencies: tuple[CurrencyTotal, ...] = ()
    flows: tuple[FlowTotal, ...] = ()
    accounts_closed: int = 0


def parse_date(text: str, field: str = "accounting_date") -> str:
    """An ISO date (YYYY-MM-DD) as the canonical text the ledger stores."""
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise invalid("ACCOUNTING_DATE_INVALID", f"{field} must be a date as YYYY-MM-DD",
                      **{field: text[:32]}) from None


def next_date(iso_date: str) -> str:
    day = date.fromisoformat(iso_date)
    if day == date.max:
        raise invalid("ACCOUNTING_DATE_INVALID", "the last representable date has no next day")
    return (day + timedelta(days=1)).isoformat()


# flow type -> the account code prefixes whose lines are summarized; () = every account of the flow
SummaryScope = Mapping[str, tuple[str, ...]]


def summary_scope(flows: SummaryScope | Iterable[str]) -> dict[str, tuple[str, ...]]:
    """A scope from a mapping, or from flow types whose every account is summarized."""
    return dict(flows) if isinstance(flows, Mapping) else {flow: () for flow in flows}


def check_summaries(date_text: str, lines: tuple[SummaryLine, ...], scope: SummaryScope) -> None:
    """A summary of every account of a flow balances, as its detail does; raised, never stored otherwise. (A
    summary of some accounts only does not: the export carries the flow's other lines as detail.)"""
    net: dict[tuple[str, str], int] = {}
    for line in (ln for ln in lines if not scope.get(ln.flow_type)):
        key = (line.flow_type, line.currency)
        net[key] = net.get(key, 0) + (line.amount if line.side == "debit" else -line.amount)
    off = sorted(f"{flow}/{currency}" for (flow, currency), total in net.items() if total != 0)
    if off:
        raise LedgerError(ErrorKind.INTERNAL, "SUMMARY_NOT_BALANCED",
                          f"the summaries of {date_text} do not balance: {', '.join(off)}", accounting_date=date_text)


def check_balanced(date_text: str, currencies: tuple[CurrencyTotal, ...]) -> None:
    """A day's postings balance per currency: a close that found otherwise stores nothing. Raised, not
    asserted: `python -O` strips asserts."""
    off = [c.currency for c in currencies if c.debit_total != c.credit_total]
    if off:
        raise LedgerError(ErrorKind.INTERNAL, "DAY_NOT_BALANCED",
                          f"the postings of {date_text} do not balance in {', '.join(off)}: run `tally verify`",
                          accounting_date=date_text, currencies=",".join(off))


def closed_payload(day: AccountingDay) -> dict:
    """The `day.closed` event: what the close stored, apart from each account's closing balance."""
    return {
        "accounting_date": day.date,
        "after_sequence": day.after_sequence,
        "last_sequence": day.last_sequence,
        "voucher_count": day.voucher_count,
        "accounts_closed": day.accounts_closed,
        "trial_balance": [{"currency": c.currency, "debit_total": c.debit_total, "credit_total": c.credit_total,
                           "line_count": c.line_count} for c in day.currencies],
        "flows": [{"flow_type": f.flow_type, "currency": f.currency, "voucher_count": f.voucher_count,
                   "amount_total": f.amount_total, "summarized": f.summarized,
                   "summary_accounts": list(f.summary_accounts)} for f in day.flows],
    }
