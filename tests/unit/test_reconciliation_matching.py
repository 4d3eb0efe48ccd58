"""Matching statement lines to entries (pure): each shape, the order of the passes, and the fund proof."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.domain.errors import LedgerError
from tally.domain.reconciliation import (
    FundProof,
    ItemState,
    LedgerEntry,
    Resolution,
    StatementLine,
    match,
    open_amount,
    resolution_for,
)

DAY = "2026-12-07"


def line(no: int, amount: int, ref: str = "", day: str = DAY) -> StatementLine:
    return StatementLine(no, ref, amount, day)


def entry(key: str, amount: int, *refs: str, day: str = DAY) -> LedgerEntry:
    return LedgerEntry(key, key.split(":")[0], amount, day, frozenset({key.split(":")[0], *refs}))


def shapes(items) -> list[tuple[str, tuple[int, ...], tuple[str, ...], str]]:
    return [(i.state.value, i.line_nos, i.entry_keys, i.rule) for i in items]


def test_one_to_one_one_to_many_many_to_one_by_reference():
    items = match([line(1, 500, "A"), line(2, 250, "BATCH"), line(3, 400, "G"), line(4, 200, "G")],
                  [entry("a:1", 500, "A"), entry("d:1", 100, "BATCH"), entry("e:1", 150, "BATCH"),
                   entry("g:1", 600, "G")])
    assert shapes(items) == [("matched", (1,), ("a:1",), "reference"),
                             ("matched", (2,), ("d:1", "e:1"), "reference"),
                             ("matched", (3, 4), ("g:1",), "reference")]


def test_a_reference_with_other_amounts_is_a_difference():
    (item,) = match([line(1, 299, "B")], [entry("b:1", 300, "B")])
    assert (item.state, item.difference) == (ItemState.DIFFERENCE, 1)


def test_the_voucher_id_and_request_id_are_references_too():
    (item,) = match([line(1, 10, "v9")], [LedgerEntry("v9:2", "v9", 10, DAY, frozenset({"v9", "req-9"}))])
    assert item.rule == "reference"


def test_amount_and_date_window_closest_date_first_then_unmatched():
    lines = [line(1, 400, day="2026-12-07"), line(2, 400, day="2026-12-20"), line(3, 999)]
    entries = [entry("x:1", 400, day="2026-12-03"), entry("y:1", 400, day="2026-12-06"), entry("z:1", 5)]
    items = match(lines, entries, window_days=3)
    assert shapes(items) == [("matched", (1,), ("y:1",), "amount_date"),
                             ("unmatched_theirs", (2,), (), ""), ("unmatched_theirs", (3,), (), ""),
                             ("unmatched_ours", (), ("x:1",), ""), ("unmatched_ours", (), ("z:1",), "")]
    assert shapes(match(lines[:1], entries[:1], window_days=4))[0][0] == "matched"


def test_the_date_window_is_bounded():
    with pytest.raises(LedgerError) as caught:
        match([], [], window_days=32)
    assert caught.value.reason == "DATE_WINDOW_INVALID"


@given(st.lists(st.tuples(st.integers(-10**6, 10**6), st.sampled_from(["", "A", "B", "C"])), max_size=12),
       st.lists(st.tuples(st.integers(-10**6, 10**6), st.sampled_from(["", "A", "B", "D"])), max_size=12))
def test_every_line_and_entry_is_in_exactly_one_item_and_the_proof_holds(raw_lines, raw_entries):
    lines = [line(i + 1, amount, ref) for i, (amount, ref) in enumerate(raw_lines)]
    entries = [entry(f"v{i}:1", amount, *([ref] if ref else [])) for i, (amount, ref) in enumerate(raw_entries)]
    items = match(lines, entries)
    assert sorted(n for i in items for n in i.line_nos) == [ln.line_no for ln in lines]
    assert sorted(k for i in items for k in i.entry_keys) == sorted(e.key for e in entries)
    ours, theirs = sum(e.amount for e in entries), sum(ln.amount for ln in lines)
    open_items = sum(open_amount(i.state, i.ours, i.theirs, Resolution.NONE) for i in items)
    assert FundProof(ours, 0, theirs, open_items).proven
    for i in items:
        assert (i.state is ItemState.MATCHED) == (i.ours == i.theirs and bool(i.line_nos) and bool(i.entry_keys))


@pytest.mark.parametrize("state, difference, asked, reason", [
    (ItemState.MATCHED, 0, Resolution.SHORT_FALL, "ITEM_ALREADY_MATCHED"),
    (ItemState.DIFFERENCE, 5, Resolution.LONG_FALL, "RESOLUTION_MISMATCH"),
    (ItemState.DIFFERENCE, -5, Resolution.SHORT_FALL, "RESOLUTION_MISMATCH"),
    (ItemState.UNMATCHED_OURS, 5, Resolution.SUPPLEMENTARY, "RESOLUTION_MISMATCH"),
    (ItemState.UNMATCHED_THEIRS, 5, Resolution.SUPPLEMENTARY, "RESOLUTION_MISMATCH"),  # money we paid out
])
def test_a_resolution_must_fit_the_item(state, difference, asked, reason):
    with pytest.raises(LedgerError) as caught:
        resolution_for(state, difference, asked)
    assert caught.value.reason == reason


@pytest.mark.parametrize("state, difference, asked", [
    (ItemState.DIFFERENCE, 5, Resolution.SHORT_FALL), (ItemState.DIFFERENCE, -5, Resolution.LONG_FALL),
    (ItemState.UNMATCHED_OURS, 5, Resolution.SHORT_FALL), (ItemState.UNMATCHED_THEIRS, -5, Resolution.LONG_FALL),
    (ItemState.UNMATCHED_THEIRS, -5, Resolution.SUPPLEMENTARY)])
def test_resolutions_that_fit(state, difference, asked):
    assert resolution_for(state, difference, asked) is asked
