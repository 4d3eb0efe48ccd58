"""Bytes per voucher from table sizes (bench/disk.py) and its report table (bench/harness.py)."""

from __future__ import annotations

import pytest

from bench.disk import TABLES, per_voucher
from bench.harness import disk_table


def test_per_voucher_rounds_half_up_and_sums_the_growth():
    before = {"vouchers": 8192, "voucher_lines": 16384, "events": 8192, "ledger_heads": None}
    after = {"vouchers": 8192 + 300_000, "voucher_lines": 16384 + 500_001, "events": 8192 + 250_000,
             "ledger_heads": 8192}
    per = per_voucher(before, after, 1000)
    assert per == {"vouchers": 300, "voucher_lines": 500, "events": 250, "total": 1050}
    assert per_voucher({"a": 0}, {"a": 1500}, 1000) == {"a": 2, "total": 2}  # 1.5 rounds up
    assert per_voucher({"a": 8192}, {"a": 0}, 1000)["total"] == -8  # a table that shrank counts against


def test_per_voucher_needs_vouchers():
    with pytest.raises(ValueError):
        per_voucher({}, {}, 0)


def test_disk_table_lists_every_table_and_the_total():
    before = dict.fromkeys(TABLES, 8192)
    after = dict(before, vouchers=8192 + 2000)
    raw = {"disk_vouchers": 10, "bytes_before": before, "bytes_after": after,
           "bytes_per_voucher_by_table": per_voucher(before, after, 10)}
    text = disk_table(raw, markdown=True)
    assert "| vouchers | 8192 | 10192 | 200 |" in text
    assert "| total |" in text and text.count("\n") == 2 + len(TABLES) + 1
