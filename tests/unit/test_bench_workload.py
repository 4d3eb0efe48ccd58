"""Pure helpers of the benchmark's load generator, set-up and report (bench/)."""

from __future__ import annotations

import argparse
import random

from bench import stats
from bench.harness import Row, Scenario, checks, split_callers, table_rows
from bench.ledger_setup import FUNDING, LINES_PER_VOUCHER_MAX, adjustment, funding_chunks
from bench.loadgen import account_code, classify, pick_pair


def test_classify_refusals_and_errors():
    assert classify("FAILED_PRECONDITION", "INSUFFICIENT_FUNDS") == ("rejection", "INSUFFICIENT_FUNDS")
    assert classify("NOT_FOUND", "") == ("rejection", "NOT_FOUND")
    assert classify("ABORTED", "RETRIES_EXHAUSTED") == ("error", "ABORTED:RETRIES_EXHAUSTED")
    assert classify("DEADLINE_EXCEEDED", "") == ("error", "DEADLINE_EXCEEDED")
    assert classify("UNAVAILABLE", "DATABASE_UNAVAILABLE") == ("error", "UNAVAILABLE:DATABASE_UNAVAILABLE")


def test_pick_pair_uniform_never_picks_the_source_and_covers_every_account():
    rng = random.Random(1)
    seen_dst = set()
    for _ in range(5000):
        src, dst = pick_pair(rng, 10, "uniform")
        assert 0 <= src < 10 and dst is not None and 0 <= dst < 10 and dst != src
        seen_dst.add(dst)
    assert seen_dst == set(range(10))


def test_pick_pair_hot_always_credits_the_merchant():
    rng = random.Random(2)
    assert all(pick_pair(rng, 10_000, "hot")[1] is None for _ in range(100))


def test_account_code():
    assert account_code("acct-", 7) == "acct-00007"
    assert account_code("acct-", 9999) == "acct-09999"


def test_funding_chunks_respect_the_line_limit():
    codes = [account_code("a", i) for i in range(10_001)]
    chunks = funding_chunks(codes)
    assert sum(len(c) for c in chunks) == 10_001
    assert all(1 + len(c) <= LINES_PER_VOUCHER_MAX for c in chunks)
    assert [x for c in chunks for x in c] == codes
    assert len(chunks) <= 1000  # one PostBatch call


def test_adjustment_is_balanced():
    request = adjustment("r1", ["a", "b", "c"], 500)
    lines = request.adjustment.lines
    assert lines[0].account.code == FUNDING and lines[0].amount == 1500
    assert sum(ln.amount for ln in lines[1:]) == lines[0].amount
    assert request.adjustment.reason


def test_split_callers():
    assert split_callers(64, 2) == [32, 32]
    assert split_callers(65, 2) == [33, 32]
    assert split_callers(1, 2) == [1]
    assert split_callers(16, 1) == [16]


def _row(name: str, kind: str, workload: str, callers: int, rate: int, p99_us: int = 1000,
         errors: dict | None = None, p50_us: int = 500) -> Row:
    return Row(Scenario(name, name, kind, workload, callers), rate=rate, p50_us=p50_us, p99_us=p99_us,
               errors=errors or {})


def test_checks_read_the_rows_they_name():
    rows = [
        _row("empty-1", "empty", "", 1, 2000, p50_us=400),
        _row("empty-64", "empty", "", 64, 1000),
        _row("baseline-uniform-1", "baseline", "uniform", 1, 1500, p50_us=600),
        _row("post-uniform-1", "post", "uniform", 1, 200, p50_us=1500),  # 1.5 x (0.6 + 0.4) ms exactly
        _row("post-hot-1", "post", "hot", 1, 200, p50_us=1501),
        _row("post-uniform-16", "post", "uniform", 16, 600, p99_us=14_999),
        _row("post-hot-16", "post", "hot", 16, 540, p99_us=15_000),
        _row("post-uniform-64", "post", "uniform", 64, 700),
        _row("post-hot-64", "post", "hot", 64, 699, errors={"ABORTED:RETRIES_EXHAUSTED": 2}),
        _row("setbased-uniform", "setbased", "uniform", 4, 30_000),
        _row("setbased-hot", "setbased", "hot", 4, 26_000),
        _row("batch1000-uniform", "batch", "uniform", 4, 15_000),
        _row("batch1000-hot", "batch", "hot", 4, 12_999),
        _row("sqlite-batch1000-uniform", "batch", "uniform", 4, 8_000),
    ]
    disk = _row("disk-uniform", "disk", "uniform", 4, 3000)
    disk.raw = {"bytes_per_voucher": 1501}
    verdicts = {c.name: c.verdict for c in checks([*rows, disk], [(0, 100), (60, 100), (70, 109)], 600)}
    assert verdicts["Post 1 uniform p50"] == stats.PASS
    assert verdicts["Post 1 hot p50"] == stats.MISS
    assert verdicts["Post 64 uniform / empty call"] == stats.PASS  # 700 / 1000
    assert verdicts["Post 64 hot / empty call"] == stats.MISS  # 699 / 1000
    assert verdicts["Post 16 uniform p99"] == stats.PASS
    assert verdicts["Post 16 hot p99"] == stats.MISS  # under 15 ms, not at it
    assert verdicts["PostBatch 1000 uniform / set-based SQL"] == stats.PASS  # 50%
    assert verdicts["PostBatch 1000 hot / set-based SQL"] == stats.MISS  # 12,999 / 26,000
    assert verdicts["SQLite PostBatch 1000"] == stats.PASS
    assert verdicts["hot / uniform, Post 64"] == stats.PASS
    assert verdicts["hot / uniform, Post 16"] == stats.PASS  # 540 / 600 = 90%
    assert verdicts["hot / uniform, PostBatch 1000"] == stats.MISS
    assert verdicts["hot: client-visible ABORTED"] == stats.MISS
    assert verdicts["server RSS growth after 60s warm-up (600s soak)"] == stats.PASS
    assert verdicts["bytes on disk per transfer voucher"] == stats.MISS


def test_checks_not_run_without_their_references():
    rows = [_row("post-uniform-1", "post", "uniform", 1, 200), _row("batch1000-uniform", "batch", "uniform", 4, 9)]
    verdicts = {c.name: c.verdict for c in checks(rows, [], 0)}
    assert verdicts["Post 1 uniform p50"] == stats.NOT_RUN  # no SQL baseline or empty call at 1
    assert verdicts["PostBatch 1000 uniform / set-based SQL"] == stats.NOT_RUN
    assert verdicts["bytes on disk per transfer voucher"] == stats.NOT_RUN
    assert not any("25,000" in c.target or "25 ms" in c.target for c in checks(rows, [], 0))


def test_scenarios_include_the_references():
    from bench.harness import parse_args, scenarios

    names = {s.name: s for s in scenarios(parse_args(["--quick"]))}
    for name in ("empty-1", "empty-64", "baseline-uniform-1", "baseline-plpgsql-1", "setbased-uniform",
                 "setbased-hot"):
        assert name in names
    assert (names["setbased-hot"].callers, names["setbased-hot"].batch) == (4, 50)
    assert "disk-uniform" not in names
    with_disk = scenarios(parse_args(["--quick", "--disk-vouchers", "5000"]))
    assert with_disk[-1].name == "disk-uniform"


def test_table_rows_print_integers_and_one_decimal_latencies():
    row = _row("post-uniform-64", "post", "uniform", 64, 1234, p99_us=25_049)
    cells = table_rows([row])[0]
    assert cells[1:5] == [64, 1234, "0.5", "25.0"]
    text = stats.format_table(["a"] * len(cells), [cells])
    assert "1234" in text


def test_parse_args_quick_defaults():
    from bench.harness import parse_args

    args = parse_args(["--quick"])
    assert isinstance(args, argparse.Namespace)
    assert (args.duration_s, args.accounts, args.soak_s) == (2.0, 1000, 0)
    args = parse_args([])
    assert (args.duration_s, args.accounts) == (10.0, 10_000)


def test_rows_survive_the_json_round_trip():
    from bench.harness import rows_from_json

    row = _row("post-hot-64", "post", "hot", 64, 881, errors={"ABORTED:RETRIES_EXHAUSTED": 1})
    row.other_cpu, row.notes = 3, "31.9 vouchers/txn"
    again = rows_from_json([row.as_json()])[0]
    assert again.scenario == row.scenario
    assert table_rows([again]) == table_rows([row])
