"""The benchmark's server timeline (bench/timeline.py and its hook): the window's records summarized, and a
hook that still finds every function it wraps in the server's code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench import timeline

ROOT = Path(__file__).resolve().parents[2]


def test_only_the_window_is_summarized_per_stage():
    records = [["commit", 999, 7_000_000, 1]]  # ended before the window
    records += [["commit", 1000 + i, (i + 1) * 1000, 1] for i in range(100)]  # 1..100 us
    records += [["apply", 1500, 2_000, 3], ["apply", 1600, 4_000, 4], ["call", 5000, 9_000, 1]]  # the last: after
    found = timeline.summarize(records, 1000, 2000)
    assert found["commit"] == {"count": 100, "p50_us": 50, "p99_us": 99}
    assert found["apply"] == {"count": 2, "p50_us": 2, "p99_us": 4}
    assert found["call"] == {"count": 0, "p50_us": None, "p99_us": None}
    assert found["submissions_per_transaction_tenths"] == 35
    lines = timeline.summary_lines("post-1", found, 3_012)
    assert lines[0] == "post-1: server timeline, p50 / p99 in us (the client's p50: 3,012)"
    assert any(line.split()[:4] == ["commit", "50", "/", "99"] for line in lines)
    assert lines[-1].endswith("submissions per transaction: 3.5")


_CHECK = """
import json, os, signal, sys, time
from bench.timeline_hook.stages import install
install(sys.argv[1])
from tally.api.auth_interceptor import AuthInterceptor
from tally.service.posting import pipeline
from tally.storage import uow
wrapped = [pipeline.PostingPipeline.submit_many, pipeline.write_batch, uow.UnitOfWork.write, uow.commit]
wrapped.append(AuthInterceptor._unary(AuthInterceptor.__new__(AuthInterceptor), "/m", None, None))
assert all(hasattr(f, "__wrapped__") for f in wrapped), wrapped
try:
    uow.commit(None, None)  # fails: the wrapper notes the call all the same
except AttributeError:
    pass
os.kill(os.getpid(), signal.SIGUSR1)
time.sleep(0.1)
print(json.dumps(sorted({r[0] for r in json.load(open(sys.argv[1]))})))
"""


def test_the_hook_wraps_the_server_functions_it_names(tmp_path):
    """In a process of its own (it patches classes for good): every name the hook wraps still exists, and a
    SIGUSR1 writes what was noted."""
    out = tmp_path / "timeline.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", _CHECK, str(out)], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["commit"]
