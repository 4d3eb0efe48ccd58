"""Reconciliation of a counterparty's statement against one account's entries (the transaction layer),
and the proof that the account's balance equals the statement's closing balance plus the open items (the
fund layer). Pure: the statement is parsed and the entries are read elsewhere.

Amounts are signed on the reconciled account's normal side: a statement line of +5.00 on a channel's
statement matches a debit entry of 5_000_000 in `channel_clearing:...` (debit-normal), a payout line of
-13.50 the credit entry of the channel's settlement.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tally.domain.errors import invalid

# Where a voucher keeps the references a counterparty quotes (the caller's metadata on the posting).
REFERENCE_KEYS = ("channel_ref", "order_ref", "batch_ref", "reference", "end_to_end_id")
DATE_WINDOW_DAYS_DEFAULT = 3
DATE_WINDOW_DAYS_MAX = 31


class ItemState(enum.Enum):
    MATCHED = "matched"
    DIFFERENCE = "difference"  # matched, but the amounts differ
    UNMATCHED_OURS = "unmatched_ours"  # an entry here that the statement does not have
    UNMATCHED_THEIRS = "unmatched_theirs"  # a statement line with no entry here


class Resolution(enum.Enum):
    NONE = ""
    SHORT_FALL = "short_fall"  # less arrived than was booked: the rest goes to shortfall
    LONG_FALL = "long_fall"  # more arrived than was booked: the excess comes from longfall
    SUPPLEMENTARY = "supplementary"  # the missing flow is posted here (the platform's supplementary order)


@dataclass(frozen=True, slots=True)
class StatementLine:
    line_no: int  # 1-based position in the file (the data line, for CSV the file line)
    reference: str
    amount: int  # signed, atomic units, on the reconciled account's normal side
    value_date: str  # ISO date
    line_id: str = ""  # the counterparty's own id of the line, when it has one
    description: str = ""


@dataclass(frozen=True, slots=True)
class Statement:
    statement_id: str
    currency: str
    lines: tuple[StatementLine, ...]
    closing_balance: int | None = None
    opening_balance: int | None = None
    start_date: str = ""
    end_date: str = ""

    def period(self) -> tuple[str, str]:
        """The statement's dates: as it states them, else those of its lines."""
        dates = [line.value_date for line in self.lines]
        return (self.start_date or min(dates, default=""), self.end_date or max(dates, default=""))


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    key: str  # "voucher_id:line_no"
    voucher_id: str
    amount: int  # signed on the account's normal side
    date: str  # accounting date
    references: frozenset[str]


@dataclass(frozen=True, slots=True)
class Match:
    state: ItemState
    line_nos: tuple[int, ...]
    entry_keys: tuple[str, ...]
    ours: int  # what the entries add up to
    theirs: int  # what the lines add up to
    rule: str  # "reference", "amount_date" or "" (unmatched)

    @property
    def difference(self) -> int:
        """Ours less theirs: positive is a short fall (less arrived than booked), negative a long fall."""
        return self.ours - self.theirs


def match(lines: Sequence[StatementLine], entries: Sequence[LedgerEntry],
          window_days: int = DATE_WINDOW_DAYS_DEFAULT) -> list[Match]:
    """Every line and every entry in exactly one item: first by reference (all lines and all entries that
    share a reference form one item, so one-to-one, one-to-many and many-to-one), then what is left by
    equal amount within `window_days` (one-to-one, the closest date first), then the rest unmatched."""
    if not 0 <= window_days <= DATE_WINDOW_DAYS_MAX:
        raise invalid("DATE_WINDOW_INVALID", f"the date window is 0 to {DATE_WINDOW_DAYS_MAX} days",
                      date_window_days_max=DATE_WINDOW_DAYS_MAX)
    items, free_lines, free_entries = _by_reference(lines, entries)
    more, free_lines, free_entries = _by_amount_and_date(free_lines, free_entries, window_days)
    items += more
    items += [Match(ItemState.UNMATCHED_THEIRS, (ln.line_no,), (), 0, ln.amount, "") for ln in free_lines]
    items += [Match(ItemState.UNMATCHED_OURS, (), (e.key,), e.amount, 0, "") for e in free_entries]
    return items


def _by_reference(lines: Sequence[StatementLine], entries: Sequence[LedgerEntry]):
    entries_by_ref: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        for ref in entry.references:
            entries_by_ref[ref].append(entry)
    lines_by_ref: dict[str, list[StatementLine]] = defaultdict(list)
    for line in lines:
        if line.reference and line.reference in entries_by_ref:
            lines_by_ref[line.reference].append(line)
    used: set[str] = set()
    items: list[Match] = []
    for ref, its_lines in lines_by_ref.items():  # in the order of each reference's first line
        its_entries = [e for e in entries_by_ref[ref] if e.key not in used]
        if not its_entries:
            continue
        used.update(e.key for e in its_entries)
        items.append(_matched(its_lines, its_entries, "reference"))
    matched_lines = {n for item in items for n in item.line_nos}
    return (items, [ln for ln in lines if ln.line_no not in matched_lines],
            [e for e in entries if e.key not in used])


def _by_amount_and_date(lines: Sequence[StatementLine], entries: Sequence[LedgerEntry], window_days: int):
    by_amount: dict[int, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        by_amount[entry.amount].append(entry)
    used: set[str] = set()
    items: list[Match] = []
    free_lines: list[StatementLine] = []
    for line in lines:
        candidates = [(abs(_days_between(line.value_date, e.date)), i, e)
                      for i, e in enumerate(by_amount.get(line.amount, ())) if e.key not in used]
        candidates = [c for c in candidates if c[0] <= window_days]
        if not candidates:
            free_lines.append(line)
            continue
        entry = min(candidates, key=lambda c: (c[0], c[1]))[2]
        used.add(entry.key)
        items.append(_matched([line], [entry], "amount_date"))
    return items, free_lines, [e for e in entries if e.key not in used]


def _matched(lines: Iterable[StatementLine], entries: Iterable[LedgerEntry], rule: str) -> Match:
    lines, entries = list(lines), list(entries)
    ours, theirs = sum(e.amount for e in entries), sum(ln.amount for ln in lines)
    state = ItemState.MATCHED if ours == theirs else ItemState.DIFFERENCE
    return Match(state, tuple(ln.line_no for ln in lines), tuple(e.key for e in entries), ours, theirs, rule)


def _days_between(a: str, b: str) -> int:
    return (dt.date.fromisoformat(a) - dt.date.fromisoformat(b)).days


def open_amount(state: ItemState, ours: int, theirs: int, resolution: Resolution) -> int:
    """What an item still leaves between the account and the statement (ours less theirs), 0 once it is
    matched exactly or resolved."""
    if state is ItemState.MATCHED or resolution is not Resolution.NONE:
        return 0
    return ours - theirs


def resolution_for(state: ItemState, difference: int, asked: Resolution) -> Resolution:
    """Checks an operator's resolution against the item: a short fall settles a positive difference
    (booked more than arrived), a long fall a negative one, a supplementary posting a statement line that
    has no entry here. Anything else is refused, never adjusted silently."""
    if state is ItemState.MATCHED:
        raise invalid("ITEM_ALREADY_MATCHED", "the item is matched: there is nothing to resolve")
    if asked is Resolution.SUPPLEMENTARY:
        if state is not ItemState.UNMATCHED_THEIRS or difference >= 0:
            raise invalid("RESOLUTION_MISMATCH", "a supplementary posting resolves a statement line of money "
                          "received that has no entry here", state=state.value)
        return asked
    if asked is Resolution.SHORT_FALL and difference > 0 or asked is Resolution.LONG_FALL and difference < 0:
        return asked
    raise invalid("RESOLUTION_MISMATCH", f"the item's difference is {difference} (ours less theirs): a short fall "
                  "resolves a positive difference, a long fall a negative one", difference=str(difference))


@dataclass(frozen=True, slots=True)
class FundProof:
    """The fund layer: the account's balance (at import, plus what resolutions posted since) equals the
    statement's closing balance plus the items still open."""

    ledger_balance: int  # the account's balance after the last entry of the period, at import
    resolutions: int  # what resolution vouchers moved the account since, signed on its normal side
    closing_balance: int
    open_items: int  # the open items' ours less theirs

    @property
    def expected(self) -> int:
        return self.closing_balance + self.open_items

    @property
    def proven(self) -> bool:
        return self.ledger_balance + self.resolutions == self.expected
