"""bench/writer_profile.py keeps working: a tiny run on SQLite posts and refuses what it should and prints
integer microseconds."""

from __future__ import annotations

import re

from bench import writer_profile


def test_a_tiny_profile_run_on_sqlite(capsys):
    writer_profile.main(["--backend", "sqlite", "--accounts", "40", "--batch-size", "30", "--batches", "2",
                         "--refusals-pct", "20", "--profile", "5"])
    out = capsys.readouterr().out
    assert "cProfile: sqlite uniform" in out and "cProfile: sqlite hot" in out
    rows = [line for line in out.splitlines() if line.startswith("| sqlite |")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        posted, refused, *timings = cells[2:]
        assert int(posted) + int(refused) == 60 and int(refused) > 0
        assert all(re.fullmatch(r"\d+", t) for t in timings), row
