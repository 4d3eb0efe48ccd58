"""Pure helpers of the scale run (bench/scale.py)."""

from __future__ import annotations

from bench.scale import parse_args, reusable, summary, timestamp_of, timestamp_us, walk


def test_walk_follows_tokens_and_keeps_the_last_full_page():
    pages = {"": ([1, 2], "t1"), "t1": ([3, 4], "t2"), "t2": ([5], "")}
    items, late, times = walk(lambda token: (pages[token][0], len(pages[token][0]), pages[token][1]), 100)
    assert items == [1, 2, 3, 4, 5]
    assert late == "t1"  # the last page has one row: the page before it is the late full page
    assert len(times) == 3 and all(t >= 0 for t in times)


def test_walk_stops_at_pages_max_and_with_one_page():
    def endless(token: str):
        return [token], 2, token + "x"

    items, late, _ = walk(endless, 3)
    assert items == ["", "x", "xx"] and late == "xx"
    assert walk(lambda token: ([7], 1, ""), 5)[:2] == ([7], "")


def test_reusable_needs_a_complete_ledger_of_the_same_shape():
    args = parse_args(["--vouchers", "20000", "--accounts", "2000"])
    shape = {"vouchers": 20_000, "accounts": 2_000, "busy_pct": 10}
    assert reusable({"complete": True, "shape": shape}, args)
    assert not reusable({"complete": False, "shape": shape}, args)
    assert not reusable({"complete": True, "shape": dict(shape, vouchers=10_000)}, args)
    assert not reusable(None, args)


def test_summary_and_timestamps_are_integers():
    s = summary([30, 10, 20] * 7)
    assert (s["n"], s["p50_us"], s["p99_us"], s["max_us"]) == (21, 20, 30, 30)
    assert summary([])["p50_us"] is None
    us = 1_767_000_000_123_456
    assert timestamp_us(timestamp_of(us)) == us
