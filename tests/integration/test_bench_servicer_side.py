"""bench/writer_profile.py times the servicer's side too: a tiny run on SQLite prints a row of integer
microseconds per voucher for PostBatch and Post, request and response sides, every transfer posted."""

from __future__ import annotations

import re

from bench import writer_profile


def test_a_tiny_run_prints_the_servicer_side(capsys):
    writer_profile.main(["--backend", "sqlite", "--accounts", "20", "--batch-size", "12", "--batches", "2",
                         "--warmup-batches", "0", "--workloads", "hot"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| servicer |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[:4] == ["servicer", "sqlite", "hot", "24"]  # 2 batches of 12, each posted both ways
    assert all(re.fullmatch(r"\d+", c) for c in cells[4:]) and len(cells[4:]) == 4


def test_no_servicer_leaves_it_out(capsys):
    writer_profile.main(["--backend", "sqlite", "--accounts", "20", "--batch-size", "5", "--batches", "1",
                         "--warmup-batches", "0", "--workloads", "uniform", "--no-servicer"])
    out = capsys.readouterr().out
    assert "| servicer |" not in out and "| sqlite | uniform |" in out
