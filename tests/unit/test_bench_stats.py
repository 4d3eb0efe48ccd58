"""Pure helpers of the benchmark (bench/): percentiles, rates, targets, tables, /proc parsing."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from bench import stats
from bench.procs import TICKS_PER_S, parse_cpu_line, parse_stat, parse_status_kib, tree_cpu_ticks

# -- percentiles and rates --------------------------------------------------------------------------------

def test_percentile_nearest_rank_on_1_to_100():
    values = list(range(1, 101))
    assert stats.percentile(values, 50) == 50
    assert stats.percentile(values, 99) == 99
    assert stats.percentile(values, 100) == 100
    assert stats.percentile(values, 1) == 1


def test_percentile_small_sets():
    assert stats.percentile([7], 50) == 7
    assert stats.percentile([7], 99) == 7
    assert stats.percentile([1, 2], 50) == 1
    assert stats.percentile([1, 2], 51) == 2
    assert stats.percentile([10, 20, 30, 40], 99) == 40
    assert stats.percentile([], 50) is None


def test_percentile_of_a_tail():
    # 990 fast calls and 10 slow ones: p99 is still fast, p99.x would not be.
    values = sorted([1000] * 990 + [50_000] * 10)
    assert stats.percentile(values, 99) == 1000
    values = sorted([1000] * 989 + [50_000] * 11)
    assert stats.percentile(values, 99) == 50_000


def test_percentile_rejects_out_of_range():
    with pytest.raises(ValueError):
        stats.percentile([1, 2, 3], 0)
    with pytest.raises(ValueError):
        stats.percentile([1, 2, 3], 101)


def test_percentile_matches_a_brute_force_definition():
    rng = random.Random(7)
    for _ in range(200):
        values = sorted(rng.randrange(100_000) for _ in range(rng.randrange(1, 300)))
        for pct in (50, 90, 99):
            got = stats.percentile(values, pct)
            # smallest value v with at least pct% of the values <= v
            expected = next(v for v in values if sum(x <= v for x in values) * 100 >= pct * len(values))
            assert got == expected


def test_rate_per_s_is_an_integer_rounded_half_up():
    assert stats.rate_per_s(1000, 1_000_000_000) == 1000
    assert stats.rate_per_s(25_000, 10_000_000_000) == 2500
    assert stats.rate_per_s(1, 3_000_000_000) == 0  # 0.33/s
    assert stats.rate_per_s(2, 3_000_000_000) == 1  # 0.67/s
    assert stats.rate_per_s(1, 2_000_000_000) == 1  # 0.5/s rounds up
    assert stats.rate_per_s(5, 0) == 0
    assert isinstance(stats.rate_per_s(7, 3_000_000_000), int)


def test_ms_text_one_decimal():
    assert stats.ms_text(24_949) == "24.9"
    assert stats.ms_text(24_950) == "25.0"
    assert stats.ms_text(999) == "1.0"
    assert stats.ms_text(0) == "0.0"
    assert stats.ms_text(None) == "-"


def test_pct_text():
    assert stats.pct_text(7, 10) == "70.0%"
    assert stats.pct_text(1, 3) == "33.3%"
    assert stats.pct_text(2, 3) == "66.7%"
    assert stats.pct_text(-1, 3) == "-33.3%"
    assert stats.pct_text(5, 0) == "-"


def test_cpu_pct():
    assert stats.cpu_pct(100, 100, 1_000_000_000) == 100
    assert stats.cpu_pct(150, 100, 2_000_000_000) == 75
    assert stats.cpu_pct(5, 100, 0) is None


def test_merge_counts_and_text():
    merged = stats.merge_counts([{"A": 1, "B": 2}, {"B": 3}, {}])
    assert merged == {"A": 1, "B": 5}
    assert stats.counts_text(merged) == "A=1, B=5"
    assert stats.counts_text({}) == "-"


# -- targets ----------------------------------------------------------------------------------------------

def test_at_least_pct_boundary_is_exact():
    assert stats.at_least_pct("r", 700, 1000, 70).verdict == stats.PASS
    assert stats.at_least_pct("r", 699, 1000, 70).verdict == stats.MISS
    # 7/10 exactly is 70%, which float arithmetic (0.7 * 10 vs 7) could get wrong
    assert stats.at_least_pct("r", 7, 10, 70).verdict == stats.PASS
    assert stats.at_least_pct("r", None, 10, 70).verdict == stats.NOT_RUN
    assert stats.at_least_pct("r", 10, None, 70).verdict == stats.NOT_RUN
    assert stats.at_least_pct("r", 10, 0, 70).verdict == stats.MISS
    assert "70.0%" in stats.at_least_pct("r", 7, 10, 70).measured


def test_at_least_and_below_and_zero():
    assert stats.at_least("b", 25_000, 25_000, "vouchers/s").verdict == stats.PASS
    assert stats.at_least("b", 24_999, 25_000, "vouchers/s").verdict == stats.MISS
    assert stats.at_least("b", None, 25_000, "vouchers/s").verdict == stats.NOT_RUN
    assert stats.below_ms("p", 24_999, 25).verdict == stats.PASS
    assert stats.below_ms("p", 25_000, 25).verdict == stats.MISS
    assert stats.below_ms("p", None, 25).verdict == stats.NOT_RUN
    assert stats.equals_zero("z", 0, "x").verdict == stats.PASS
    assert stats.equals_zero("z", 1, "x").verdict == stats.MISS
    assert stats.equals_zero("z", None, "x").verdict == stats.NOT_RUN


def test_memory_growth_takes_the_last_sample_of_the_warmup_and_the_peak_after():
    samples = [(0, 100), (10, 150), (20, 200), (30, 210), (40, 205), (50, 220)]
    assert stats.memory_growth(samples, 20) == (200, 220)
    assert stats.memory_growth(samples, 60) == (None, None)  # nothing after the warm-up
    assert stats.memory_growth([], 20) == (None, None)


def test_growth_at_most_pct():
    assert stats.growth_at_most_pct("m", 1000, 1100, 10).verdict == stats.PASS
    assert stats.growth_at_most_pct("m", 1000, 1101, 10).verdict == stats.MISS
    assert stats.growth_at_most_pct("m", 1000, 900, 10).verdict == stats.PASS  # shrinking is fine
    assert stats.growth_at_most_pct("m", None, None, 10).verdict == stats.NOT_RUN


# -- tables -----------------------------------------------------------------------------------------------

def test_plain_table_pads_and_aligns():
    text = stats.format_table(["name", "n"], [["a", 1], ["bbb", 1000], ["c", None]], right=[False, True])
    lines = text.splitlines()
    assert lines[0] == "name     n"
    assert lines[1] == "----  ----"
    assert lines[2] == "a        1"
    assert lines[3] == "bbb   1000"
    assert lines[4] == "c        -"


def test_markdown_table():
    text = stats.format_table(["name", "n"], [["a|b", 1]], markdown=True, right=[False, True])
    assert text.splitlines() == ["| name | n |", "|---|---:|", "| a\\|b | 1 |"]


def test_table_rejects_ragged_rows():
    with pytest.raises(ValueError):
        stats.format_table(["a", "b"], [[1]])


def test_checks_table_lists_verdicts():
    text = stats.checks_table([stats.at_least("PostBatch", 30_000, 25_000, "vouchers/s")])
    assert "PostBatch" in text and "30,000 vouchers/s" in text and "PASS" in text


# -- /proc parsing ----------------------------------------------------------------------------------------

def test_parse_status_kib():
    text = "Name:\tpython\nVmPeak:\t  500 kB\nVmHWM:\t  1234 kB\nVmRSS:\t   1000 kB\nThreads:\t4\n"
    assert parse_status_kib(text) == {"VmHWM": 1234, "VmRSS": 1000}


def test_parse_stat_with_spaces_and_parens_in_the_name():
    fields = ["S", "42"] + ["0"] * 9 + ["150", "25", "300", "60"] + ["0"] * 30
    text = "1234 (tally (serve) x) " + " ".join(fields)
    st = parse_stat(text)
    assert (st.pid, st.ppid, st.cpu_ticks, st.reaped_ticks) == (1234, 42, 175, 360)


_BURN_S = 0.5
_PARENT = f"""
import subprocess, sys, time
subprocess.run([sys.executable, "-c", "import time\\nwhile time.process_time() < {_BURN_S}: pass"], check=True)
print("reaped", flush=True)
time.sleep(60)
"""


def test_tree_cpu_counts_children_that_have_exited():
    """PostgreSQL backends come and go inside a window: one that has exited must not take its CPU along."""
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline() == "reaped\n"
        assert tree_cpu_ticks(parent.pid) >= int(_BURN_S * TICKS_PER_S) * 4 // 5  # ticks are rounded down
    finally:
        parent.kill()
        parent.wait(10)


def test_parse_cpu_line():
    text = "cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
    busy, total = parse_cpu_line(text)
    assert total == 100 + 5 + 50 + 1000 + 20 + 3 + 2 + 7
    assert busy == total - 1000 - 20


def test_host_cpu_pct_is_in_units_of_one_core():
    assert stats.host_cpu_pct(50, 100, 2) == 100  # half of 2 cores = one core
    assert stats.host_cpu_pct(100, 100, 2) == 200
    assert stats.host_cpu_pct(0, 100, 2) == 0
    assert stats.host_cpu_pct(5, 0, 2) is None


def test_tenths_text():
    assert stats.tenths_text(14) == "1.4"
    assert stats.tenths_text(0) == "0.0"
    assert stats.tenths_text(1234) == "123.4"


def test_p50_at_most_times_sum_decides_in_integers():
    refs = {"sql": 700, "empty": 500}
    assert stats.p50_at_most_times_sum("p", 1800, refs, 15).verdict == stats.PASS  # 1.5 x 1.2 ms
    assert stats.p50_at_most_times_sum("p", 1801, refs, 15).verdict == stats.MISS
    check = stats.p50_at_most_times_sum("p", 1800, refs, 15)
    assert check.target == "<= 1.5 x (sql + empty)" and check.measured == "1.8 ms vs 1.2 ms (0.7 + 0.5)"
    assert stats.p50_at_most_times_sum("p", 1800, {"sql": None, "empty": 500}, 15).verdict == stats.NOT_RUN


def test_at_most():
    assert stats.at_most("disk", 1500, 1500, "B").verdict == stats.PASS
    assert stats.at_most("disk", 1501, 1500, "B").verdict == stats.MISS
    assert stats.at_most("disk", None, 1500, "B").verdict == stats.NOT_RUN
