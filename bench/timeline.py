"""Where a posting's time goes inside the server: `bench/run.py --timeline`.

The server under test loads `bench/timeline_hook/sitecustomize.py` (the harness puts that folder first on its
PYTHONPATH and names a file in TALLY_BENCH_TIMELINE); the hook wraps a few functions of the server's own code
(nothing in src/ knows about it) and notes, per call or per write transaction, when each stage ended and how
long it took, in integer nanoseconds of the shared monotonic clock:

* call: a mutating RPC, from the interceptor taking its body to its response (admission, handler, audit);
* pipeline: from the handler queueing its submissions to the writer's answer reaching it on the event loop;
* transaction: one write transaction of the unit of work, from taking a connection to giving it back;
* apply: inside it, the batch writer (`write_batch`): opening, rules applied, rows built and sent;
* commit: inside it, the round trip that carries what was deferred, the COMMIT and the gates' release.

It times one serving process (`TALLY_PROCESSES=1`, the default): with more, the signal reaches the
supervisor, which serves nothing. The harness asks for the records of the measured window only (SIGUSR1
makes the hook write and forget what it holds) and prints each stage's median and 99th percentile beside the
client's latency. What is left between stages is the time no stage names: the network and gRPC between
client and interceptor (client latency minus call), the handler's own work (call minus pipeline), the
writer's queue and the hand-overs (pipeline minus transaction, for a batch of one).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import stats

ENV = "TALLY_BENCH_TIMELINE"
HOOK_DIR = Path(__file__).resolve().parent / "timeline_hook"
STAGES = ("call", "pipeline", "transaction", "apply", "commit")
DUMP_WAIT_S = 10


def read_dump(path: Path) -> list[list]:
    """The records a dump holds: [stage, end_ns, duration_ns, items]."""
    return json.loads(path.read_text())


def summarize(records: list[list], start_ns: int, end_ns: int) -> dict:
    """Per stage, the records that ended inside [start_ns, end_ns): how many, and the p50 and p99 of their
    duration in integer microseconds; `items` is the mean submissions per write transaction, in tenths."""
    found: dict[str, list[int]] = {stage: [] for stage in STAGES}
    items = []
    for stage, end, duration, n in records:
        if start_ns <= end < end_ns and stage in found:
            found[stage].append(duration)
            if stage == "apply":
                items.append(n)
    out = {}
    for stage, durations in found.items():
        durations.sort()
        out[stage] = {"count": len(durations), "p50_us": stats.percentile(durations, 50) // 1000 if durations else None,
                      "p99_us": stats.percentile(durations, 99) // 1000 if durations else None}
    out["submissions_per_transaction_tenths"] = sum(items) * 10 // len(items) if items else None
    return out


def summary_lines(name: str, found: dict, client_p50_us: int | None) -> list[str]:
    def us(stage: str, key: str) -> str:
        value = found[stage][key]
        return "-" if value is None else f"{value:,}"

    client = f"{client_p50_us:,}" if client_p50_us is not None else "-"
    lines = [f"{name}: server timeline, p50 / p99 in us (the client's p50: {client})"]
    for stage in STAGES:
        lines.append(f"  {stage:<12} {us(stage, 'p50_us'):>9} / {us(stage, 'p99_us'):>9}   x{found[stage]['count']}")
    per_txn = found["submissions_per_transaction_tenths"]
    if per_txn is not None:
        lines.append(f"  submissions per transaction: {stats.tenths_text(per_txn)}")
    return lines
