"""Vouchers: balanced sets of lines. Drafts are checked when built and again right before writing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import orjson

from tally.domain import limits
from tally.domain.accounts import Side
from tally.domain.errors import invalid
from tally.domain.fields import check_code, check_text, check_voucher_metadata
from tally.domain.money import check_amount, is_amount


@dataclass(frozen=True, slots=True)
class AccountRef:
    """An account named by id or by its per-tenant code; exactly one is set."""

    id: str = ""
    code: str = ""

    def __post_init__(self) -> None:
        if bool(self.id) == bool(self.code):
            raise invalid("ACCOUNT_REF_INVALID", "name an account by exactly one of id or code")
        if self.code:
            check_code(self.code, "account.code")

    def __str__(self) -> str:
        return self.id or f"code:{self.code}"


# Drafts are not frozen, as PostedLine and Voucher below: each request builds a voucher's worth of them, and
# nothing changes one once built (rules and handlers make new drafts instead).
@dataclass(slots=True)
class LineDraft:
    account: AccountRef
    side: Side
    amount: int
    currency: str
    memo: str = ""


@dataclass(slots=True)
class VoucherDraft:
    """A voucher as the rules built it, before accounts are resolved and balances checked."""

    flow_type: str
    lines: tuple[LineDraft, ...]
    memo: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    effective_us: int | None = None
    reverses_id: str | None = None
    rule_id: str = ""
    rule_set_version: str = ""


@dataclass(frozen=True, slots=True)
class EffectiveWindow:
    """How far before and after now a voucher's effective time may lie (a backdated correction, a value date)."""

    past_max_s: int = 400 * 86_400
    future_max_s: int = 7 * 86_400

    def check(self, effective_us: int, now_us: int) -> None:
        earliest, latest = now_us - self.past_max_s * 1_000_000, now_us + self.future_max_s * 1_000_000
        if not earliest <= effective_us <= latest:
            raise invalid("EFFECTIVE_TIME_OUT_OF_RANGE",
                          f"effective_time must lie between {self.past_max_s} s before and {self.future_max_s} s "
                          "after now", past_max_s=self.past_max_s, future_max_s=self.future_max_s)


def check_draft(draft: VoucherDraft) -> VoucherDraft:
    """The invariants a voucher must hold before it goes anywhere near storage."""
    check_text(draft.memo, "memo", limits.MEMO_LENGTH_MAX)
    check_voucher_metadata(draft.metadata)
    if len(draft.lines) < 2:
        raise invalid("VOUCHER_TOO_FEW_LINES", "a voucher needs at least one debit and one credit line")
    if len(draft.lines) > limits.LINES_PER_VOUCHER_MAX:
        raise invalid("VOUCHER_TOO_MANY_LINES", f"a voucher has at most {limits.LINES_PER_VOUCHER_MAX} lines")
    for i, line in enumerate(draft.lines):
        _check_line(i, line)
    check_balanced(draft.lines)
    _check_no_account_on_both_sides(draft.lines)
    return draft


def _check_line(i: int, line: LineDraft) -> None:
    # The field names are formatted only for a line that fails: every voucher is checked twice.
    if not is_amount(line.amount):
        check_amount(line.amount, f"lines[{i}].amount")
    if line.memo:
        check_text(line.memo, f"lines[{i}].memo", limits.MEMO_LENGTH_MAX)
    if not line.currency:
        raise invalid("CURRENCY_MISSING", f"lines[{i}] has no currency", field=f"lines[{i}].currency")


def check_balanced(lines: tuple[LineDraft, ...] | list) -> None:
    totals: dict[str, list[int]] = {}
    for line in lines:
        total = totals.get(line.currency)
        if total is None:
            total = totals[line.currency] = [0, 0]
        total[0 if line.side is Side.DEBIT else 1] += line.amount
    # Sorted so that the first currency to fail is the same one every time; most vouchers have one.
    for currency, (debits, credits) in sorted(totals.items()) if len(totals) > 1 else totals.items():
        if debits > limits.AMOUNT_MAX or credits > limits.AMOUNT_MAX:
            raise invalid("AMOUNT_TOO_LARGE", f"{currency} total exceeds {limits.AMOUNT_MAX}", currency=currency)
        if debits != credits:
            raise invalid(
                "VOUCHER_UNBALANCED", f"{currency} debits {debits} != credits {credits}",
                currency=currency, debits=debits, credits=credits,
            )


def _check_no_account_on_both_sides(lines: tuple[LineDraft, ...]) -> None:
    # Keyed by the reference's fields, as its equality is: a tuple hashes without a Python-level __hash__.
    sides: dict[tuple[str, str], Side] = {}
    for line in lines:
        seen = sides.setdefault((line.account.id, line.account.code), line.side)
        if seen is not line.side:
            raise invalid(
                "SAME_ACCOUNT_BOTH_SIDES", f"account {line.account} is on both sides of the voucher",
                account=str(line.account),
            )


# PostedLine and Voucher are not frozen: the batch writer builds two lines and a voucher per posting, where a
# frozen class's __init__ (object.__setattr__ per field) cost five times as much. Nothing changes one once it
# is sealed; the writer seals the voucher it built (`seal`) before anyone else sees it.
@dataclass(slots=True)
class PostedLine:
    line_no: int
    account_id: str
    account_code: str
    side: Side
    amount: int
    currency: str
    memo: str
    entry_number: int  # position in the account's statement
    balance_after: int


@dataclass(slots=True)
class Voucher:
    id: str
    tenant_id: str
    sequence: int
    flow_type: str
    request_id: str
    accounting_date: str
    effective_us: int
    posted_us: int
    lines: tuple[PostedLine, ...]
    memo: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    reverses_id: str | None = None
    reversed_by_id: str | None = None
    rule_id: str = ""
    rule_set_version: str = ""
    previous_hash: str = ""
    hash: str = ""


GENESIS_HASH = "0" * 64
# Made once: `json.dumps` with options builds a new encoder on every call.
_HASHED_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def hashed_json(content: dict) -> bytes:
    """The hashed text of a voucher's content, UTF-8: sorted keys, no spaces, non-ASCII as it is. orjson
    writes the same bytes as the standard library's encoder above (a property test holds them equal) about
    ten times faster; what it refuses (integers past 64 bits, lone surrogates) goes the standard way, which
    writes the first and refuses the second as it always did."""
    try:
        return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _HASHED_JSON.encode(content).encode()


def voucher_hash(voucher: Voucher, previous_hash: str) -> str:
    """SHA-256 over the previous voucher's hash and this voucher's content, so an edit anywhere in a
    tenant's history breaks every later link."""
    return _hash(voucher, voucher.sequence, previous_hash)


def chained(voucher: Voucher, sequence: int, previous_hash: str) -> Voucher:
    """The voucher numbered and chained after the voucher whose hash is `previous_hash` (one copy).
    Built field by field: `dataclasses.replace` costs twice as much (6 µs against 2.7), per posted voucher."""
    v = voucher
    return Voucher(v.id, v.tenant_id, sequence, v.flow_type, v.request_id, v.accounting_date, v.effective_us,
                   v.posted_us, v.lines, v.memo, v.metadata, v.reverses_id, v.reversed_by_id, v.rule_id,
                   v.rule_set_version, previous_hash, _hash(v, sequence, previous_hash))


def seal(voucher: Voucher, sequence: int, previous_hash: str) -> Voucher:
    """Numbers and chains, in place, a voucher its builder has not shared yet (`chained` makes a copy)."""
    voucher.sequence, voucher.previous_hash = sequence, previous_hash
    voucher.hash = _hash(voucher, sequence, previous_hash)
    return voucher


def _hash(voucher: Voucher, sequence: int, previous_hash: str) -> str:
    return content_hash(
        previous_hash, voucher.id, voucher.tenant_id, sequence, voucher.flow_type, voucher.request_id,
        voucher.accounting_date, voucher.effective_us, voucher.posted_us, voucher.memo, voucher.metadata,
        voucher.reverses_id, voucher.rule_id, voucher.rule_set_version,
        [[ln.line_no, ln.account_id, _SIDE_TEXT[ln.side], ln.amount, ln.currency, ln.memo, ln.entry_number,
          ln.balance_after] for ln in voucher.lines])


_SIDE_TEXT = {side: side.value for side in Side}  # an enum's `.value` is a Python-level property


def content_hash(previous_hash: str, id_: str, tenant_id: str, sequence: int, flow_type: str, request_id: str,
                 accounting_date: str, effective_us: int, posted_us: int, memo: str, metadata: dict,
                 reverses_id: str | None, rule_id: str, rule_set_version: str, lines: list[list]) -> str:
    """The voucher hash from its fields as stored; each line is [line_no, account_id, side, amount, currency,
    memo, entry_number, balance_after]. The ledger audit recomputes stored vouchers' hashes with it."""
    content = {
        "id": id_, "tenant_id": tenant_id, "sequence": sequence, "flow_type": flow_type, "request_id": request_id,
        "accounting_date": accounting_date, "effective_us": effective_us, "posted_us": posted_us, "memo": memo,
        "metadata": metadata, "reverses_id": reverses_id, "rule_id": rule_id, "rule_set_version": rule_set_version,
        "lines": lines,
    }
    return hashlib.sha256(previous_hash.encode() + hashed_json(content)).hexdigest()


def reversal_lines(original: Voucher) -> tuple[LineDraft, ...]:
    return tuple(
        LineDraft(AccountRef(id=ln.account_id), ln.side.opposite(), ln.amount, ln.currency, ln.memo)
        for ln in original.lines
    )
