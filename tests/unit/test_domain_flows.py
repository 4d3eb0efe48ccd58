"""Unit tests for tally.domain.flows: the vouchers the generic transfer and adjustment flows make."""

from __future__ import annotations

import pytest

from tally.domain import limits
from tally.domain.accounts import Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.fields import SERVER_METADATA_KEYS
from tally.domain.flows import AdjustmentFlow, TransferFlow
from tally.domain.vouchers import AccountRef, EffectiveWindow, LineDraft, VoucherDraft

D, C = Side.DEBIT, Side.CREDIT
A, B = AccountRef(id="a"), AccountRef(code="wallet.b")


def _error(flow, memo="", metadata=None, effective_us=None) -> LedgerError:
    with pytest.raises(LedgerError) as info:
        flow.vouchers(memo, metadata or {}, effective_us)
    return info.value


# --- TransferFlow -----------------------------------------------------------------------------------


def test_transfer_debits_source_and_credits_destination():
    flow = TransferFlow(A, B, 250, "USD", memo="rent")
    (draft,) = flow.vouchers("March", {"k": "v"}, 1_700_000_000_000_000)
    assert draft == VoucherDraft(
        "transfer",
        (LineDraft(A, D, 250, "USD", "rent"), LineDraft(B, C, 250, "USD", "rent")),
        memo="March", metadata={"k": "v"}, effective_us=1_700_000_000_000_000,
    )
    assert TransferFlow.flow_type == "transfer"


def test_transfer_of_the_largest_amount():
    (draft,) = TransferFlow(A, B, limits.AMOUNT_MAX, "USD").vouchers("", {}, None)
    assert [ln.amount for ln in draft.lines] == [limits.AMOUNT_MAX] * 2
    assert draft.effective_us is None


@pytest.mark.parametrize(
    ("flow", "reason"),
    [
        (TransferFlow(A, A, 10, "USD"), "SAME_ACCOUNT_BOTH_SIDES"),
        (TransferFlow(AccountRef(code="x"), AccountRef(code="x"), 10, "USD"), "SAME_ACCOUNT_BOTH_SIDES"),
        (TransferFlow(A, B, 0, "USD"), "AMOUNT_NOT_POSITIVE"),
        (TransferFlow(A, B, -10, "USD"), "AMOUNT_NOT_POSITIVE"),
        (TransferFlow(A, B, limits.AMOUNT_MAX + 1, "USD"), "AMOUNT_TOO_LARGE"),
        (TransferFlow(A, B, True, "USD"), "AMOUNT_NOT_INTEGER"),
        (TransferFlow(A, B, 10.0, "USD"), "AMOUNT_NOT_INTEGER"),
        (TransferFlow(A, B, 10, ""), "CURRENCY_MISSING"),
        (TransferFlow(A, B, 10, "USD", memo="m" * (limits.MEMO_LENGTH_MAX + 1)), "TEXT_TOO_LONG"),
    ],
    ids=["same-id", "same-code", "zero", "negative", "over-int64", "bool", "float", "no-currency",
         "line-memo-too-long"],
)
def test_transfer_rejects(flow, reason):
    error = _error(flow)
    assert (error.reason, error.kind) == (reason, ErrorKind.INVALID_ARGUMENT)


def test_transfer_same_account_is_refused_before_the_amount():
    assert _error(TransferFlow(A, A, 0, "USD")).reason == "SAME_ACCOUNT_BOTH_SIDES"


@pytest.mark.parametrize(
    ("memo", "metadata", "reason"),
    [("m" * (limits.MEMO_LENGTH_MAX + 1), {}, "TEXT_TOO_LONG"), ("", {"bad key": "v"}, "METADATA_INVALID")],
    ids=["memo-too-long", "bad-metadata"],
)
def test_transfer_checks_voucher_fields(memo, metadata, reason):
    assert _error(TransferFlow(A, B, 1, "USD"), memo, metadata).reason == reason


# --- AdjustmentFlow ---------------------------------------------------------------------------------


LINES = (LineDraft(A, D, 40, "EUR"), LineDraft(AccountRef(id="c"), D, 60, "EUR"), LineDraft(B, C, 100, "EUR"))


def test_adjustment_keeps_its_lines_and_records_the_reason():
    (draft,) = AdjustmentFlow(LINES, "fix duplicate fee").vouchers("", {"ticket": "T-1"}, 5)
    assert draft == VoucherDraft("adjustment", LINES, memo="fix duplicate fee",
                                 metadata={"ticket": "T-1", "reason": "fix duplicate fee"}, effective_us=5)
    assert AdjustmentFlow.flow_type == "adjustment"


def test_adjustment_memo_wins_over_reason():
    (draft,) = AdjustmentFlow(LINES, "why").vouchers("memo", {}, None)
    assert draft.memo == "memo"
    assert draft.metadata == {"reason": "why"}


@pytest.mark.parametrize("key", sorted(SERVER_METADATA_KEYS))
def test_a_callers_metadata_may_not_take_a_server_key(key):
    """The adjustment's reason (and every other server key) cannot be overwritten by the caller's metadata."""
    for flow in (AdjustmentFlow(LINES, "why"), TransferFlow(A, B, 5, "EUR")):
        error = _error(flow, metadata={key: "caller's"})
        assert (error.kind, error.reason, error.metadata) == (ErrorKind.INVALID_ARGUMENT, "METADATA_KEY_RESERVED",
                                                              {"key": key})


def test_the_server_keys_do_not_count_against_the_callers_limits():
    full = {f"k{i:02d}": "v" * 100 for i in range(limits.METADATA_ENTRIES_MAX)}  # 32 entries, 3.5 KiB
    (draft,) = AdjustmentFlow(LINES, "r" * limits.METADATA_VALUE_LENGTH_MAX).vouchers("", full, None)
    assert len(draft.metadata) == limits.METADATA_ENTRIES_MAX + 1
    error = _error(TransferFlow(A, B, 5, "EUR"), metadata={**full, "k32": "v"})
    assert (error.reason, error.kind) == ("METADATA_TOO_LARGE", ErrorKind.INVALID_ARGUMENT)


def test_adjustment_does_not_change_the_callers_metadata():
    metadata = {"ticket": "T-1"}
    AdjustmentFlow(LINES, "why").vouchers("", metadata, None)
    assert metadata == {"ticket": "T-1"}


@pytest.mark.parametrize(
    ("flow", "reason"),
    [
        (AdjustmentFlow(LINES, ""), "REASON_MISSING"),
        (AdjustmentFlow(LINES, "   "), "REASON_MISSING"),
        (AdjustmentFlow(LINES, "\t\n"), "REASON_MISSING"),
        (AdjustmentFlow((LineDraft(A, D, 10, "EUR"), LineDraft(B, C, 9, "EUR")), "why"), "VOUCHER_UNBALANCED"),
        (AdjustmentFlow((LineDraft(A, D, 10, "EUR"),), "why"), "VOUCHER_TOO_FEW_LINES"),
        (AdjustmentFlow((LineDraft(A, D, 10, "EUR"), LineDraft(A, C, 10, "EUR")), "why"),
         "SAME_ACCOUNT_BOTH_SIDES"),
        (AdjustmentFlow(LINES, "r" * (limits.MEMO_LENGTH_MAX + 1)), "TEXT_TOO_LONG"),
    ],
    ids=["empty-reason", "blank-reason", "whitespace-reason", "unbalanced", "one-line", "same-account",
         "reason-too-long-for-memo"],
)
def test_adjustment_rejects(flow, reason):
    error = _error(flow)
    assert (error.reason, error.kind) == (reason, ErrorKind.INVALID_ARGUMENT)


def test_adjustment_reason_too_long_for_metadata_even_with_a_memo():
    flow = AdjustmentFlow(LINES, "r" * (limits.METADATA_VALUE_LENGTH_MAX + 1))
    assert _error(flow, memo="short").reason == "METADATA_TOO_LARGE"


# --- effective time ---------------------------------------------------------------------------------


NOW_US = 1_800_000_000 * 1_000_000


@pytest.mark.parametrize(("offset_s", "accepted"), [
    (0, True), (-400 * 86_400, True), (7 * 86_400, True),  # the defaults' edges are inside
    (-400 * 86_400 - 1, False), (7 * 86_400 + 1, False),
])
def test_an_effective_time_must_lie_in_the_window_around_now(offset_s: int, accepted: bool) -> None:
    window = EffectiveWindow()
    effective_us = NOW_US + offset_s * 1_000_000
    if accepted:
        window.check(effective_us, NOW_US)
        return
    with pytest.raises(LedgerError) as info:
        window.check(effective_us, NOW_US)
    assert (info.value.kind, info.value.reason) == (ErrorKind.INVALID_ARGUMENT, "EFFECTIVE_TIME_OUT_OF_RANGE")
    assert info.value.metadata == {"past_max_s": str(400 * 86_400), "future_max_s": str(7 * 86_400)}


def test_a_window_of_zero_admits_only_now() -> None:
    EffectiveWindow(0, 0).check(NOW_US, NOW_US)
    with pytest.raises(LedgerError):
        EffectiveWindow(0, 0).check(NOW_US + 1, NOW_US)
