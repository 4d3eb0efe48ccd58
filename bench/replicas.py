"""Throughput per replica count: 1, 2 and 3 `tally serve` processes on one durable PostgreSQL, the bank workload
of the reliability suite (70% transfers, the rest snapshots and resends) from several tenants whose clients
are spread over the processes. Each row also runs the checker (every count must be 0) and says where the CPU
went: the server processes together, PostgreSQL, and this load generator.

    .venv/bin/python bench/replicas.py --duration-s 20 [--out bench/replicas.json]

Not in CI: a run takes minutes. On a machine of 2 cores, every process shares them with PostgreSQL and the
generator: the table says what binds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reliability.cluster import DURABLE  # noqa: E402
from reliability.replicas import ReplicaPlan, run_replicas  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=int, default=20)
    parser.add_argument("--servers", default="1,2,3", help="process counts, comma-separated")
    parser.add_argument("--tenants", type=int, default=6)
    parser.add_argument("--clients-per-tenant", type=int, default=6)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for count in (int(c) for c in args.servers.split(",")):
        plan = ReplicaPlan(count, args.tenants, args.clients_per_tenant, args.accounts, args.duration_s)
        with tempfile.TemporaryDirectory(prefix="tally-replicas-") as tmp:
            rows.append(run_replicas(plan, Path(tmp), seed=count, pg_settings=DURABLE))
        print(json.dumps({k: rows[-1][k] for k in ("plan", "transfers_per_s", "cpu_cores_busy", "checker")}),
              flush=True)
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(not any(r["checker"].values()) for r in rows) else 1


def table(rows: list[dict]) -> str:
    lines = ["| Processes | Transfers acknowledged /s | Cores busy: servers / PostgreSQL / generator | Checker |",
             "| --- | --- | --- | --- |"]
    for r in rows:
        busy = r["cpu_cores_busy"]
        lines.append(f"| {r['plan']['servers']} | {r['transfers_per_s']:,} | {busy['servers']} / {busy['postgres']} / "
                     f"{busy['load_generator']} | {sum(r['checker'].values())} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
