"""Runs the bank workload under faults and checks its history.

    python -m reliability.run --mode short            # CI: a few minutes, every fault kind at least once
    python -m reliability.run --mode long --duration-s 1200
    python -m reliability.run --mode control          # weakened isolation: the checker must catch it
    python -m reliability.run --mode failover         # primary killed under load (reliability/failover.py)

Prints a JSON report (operations, faults by kind, the checker's counts) and exits 1 when a count that must
be zero is not (or, for the control, when the checker caught nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grpc

from reliability.bank import Bank, Client, Stubs, open_bank, post, snapshot, transfer_request
from reliability.checker import Final, check
from reliability.cluster import Cluster
from reliability.consumer import Consumer
from reliability.failover import FAILOVER_MODES, FailoverPlan, run_failover_plan
from reliability.failover import verdict as failover_verdict
from reliability.faults import KINDS, Faults, Schedule
from reliability.history import SERVER_ERRORS, History, Op
from tally.v1 import accounting_service_pb2 as post_pb

RESOLVE_TRIES_MAX = 60
RESOLVE_PAUSE_S = 0.5
CONSUMER_CATCH_UP_S = 60
PAGE_SIZE = 500


@dataclass(frozen=True)
class Plan:
    accounts: int
    clients: int
    duration_s: int
    fault_gap_s: float
    weaken: str = ""  # control runs: the writers' weakened isolation level
    unprotect: bool = False  # control runs: also drop the unique constraints on voucher and event numbers
    consumers: int = 2


MODES = {
    "short": [Plan(8, 8, 50, 1.0), Plan(1000, 8, 30, 1.0)],
    "long": [Plan(8, 12, 600, 3.0), Plan(1000, 12, 600, 3.0)],
    "control": [Plan(8, 8, 30, 0.0, weaken="repeatable_read"),
                Plan(8, 8, 20, 0.0, weaken="read_committed", unprotect=True)],
}


def run_plan(plan: Plan, workdir: Path, seed: int) -> dict:
    cluster = Cluster(workdir, weaken=plan.weaken).start()
    try:
        if plan.unprotect:
            cluster.unprotect()
        return _run(cluster, plan, seed)
    finally:
        cluster.stop()


def _run(cluster: Cluster, plan: Plan, seed: int) -> dict:
    targets, metadata = [s.target for s in cluster.servers], cluster.metadata()
    bank = Bank(plan.accounts, 1_000_000 if plan.accounts <= 100 else 100_000)
    setup = Stubs(targets, 0, metadata)
    open_bank(setup, bank)
    history, stop, errors = History(), threading.Event(), []
    clients = [Client(i, bank, history, targets, metadata, stop, seed * 1000 + i) for i in range(plan.clients)]
    consumers = [Consumer(i, targets, metadata, stop) for i in range(plan.consumers)]
    faults = Faults(cluster, seed)
    schedule = Schedule(faults, stop, plan.fault_gap_s, errors.append) if plan.fault_gap_s else None
    for thread in (*clients, *consumers, *([schedule] if schedule else [])):
        thread.start()
    time.sleep(plan.duration_s)
    stop.set()
    for thread in (*clients, *([schedule] if schedule else [])):
        thread.join()
    if errors:
        raise RuntimeError(f"a fault could not be injected: {errors[0]!r}") from errors[0]
    cluster.heal()
    _resolve(setup, bank, history)
    try:
        final = _final(setup, bank)
    except RuntimeError as error:  # what the servers said, so that a failed run can be told apart from a flake
        logs = "\n".join(f"--- {s.name}, alive {s.alive()}:\n{s.log_tail()}" for s in cluster.servers)
        raise RuntimeError(f"{error}\n{logs}") from error
    for consumer in consumers:
        consumer.until = final.event_sequence
    for consumer in consumers:
        consumer.join(CONSUMER_CATCH_UP_S)
    setup.close()
    counts = check(bank, history.ops, final, [c.seen for c in consumers])
    return _report(plan, history.ops, faults, counts, final, consumers)


def _resolve(stubs: Stubs, bank: Bank, history: History) -> None:
    """Resends every operation whose outcome is unknown with its request_id until the answer is known."""
    for op in history.of("transfer", "changed"):
        tries = 0
        while op.outcome == "unknown" and tries < RESOLVE_TRIES_MAX:
            tries += 1
            post(stubs, op, transfer_request(bank, op.request_id, op.body))
            op.resolved = True
            if op.outcome == "unknown":
                time.sleep(RESOLVE_PAUSE_S)


def _final(stubs: Stubs, bank: Bank) -> Final:
    last = None
    for _ in range(RESOLVE_TRIES_MAX):
        try:
            got = snapshot(stubs, bank)
            vouchers = _all_vouchers(stubs)
            break
        except grpc.RpcError as error:
            last = error
            stubs.switch()
            time.sleep(RESOLVE_PAUSE_S)
    else:
        raise RuntimeError(f"the final read did not succeed; the last answer: {last!r}")
    return Final(tuple(b.current for b in got.balances), got.voucher_sequence, got.event_sequence, vouchers)


def _all_vouchers(stubs: Stubs) -> list:
    vouchers, token = [], ""
    while True:
        page = stubs.accounting.ListVouchers(post_pb.ListVouchersRequest(page_size=PAGE_SIZE, page_token=token),
                                             metadata=stubs.metadata, timeout=30)
        vouchers += page.vouchers
        token = page.next_page_token
        if not token:
            return vouchers


def _report(plan: Plan, ops: list[Op], faults: Faults, counts: dict[str, int], final: Final,
            consumers: list[Consumer]) -> dict:
    outcomes = Counter((op.kind, op.outcome) for op in ops)
    first = [op for op in ops if op.kind == "transfer"]
    return {
        "plan": {"accounts": plan.accounts, "clients": plan.clients, "duration_s": plan.duration_s,
                 "weaken": plan.weaken or "none", "unique_constraints": not plan.unprotect},
        "operations": {
            "attempted": len(ops),
            "by_kind_and_outcome": {f"{k}:{o}": n for (k, o), n in sorted(outcomes.items())},
            "transfers_acknowledged": sum(op.outcome == "ok" and not op.resolved for op in first),
            "transfers_refused": sum(op.outcome == "failed" and not op.resolved for op in first),
            "transfers_unknown_then_resolved": sum(op.resolved for op in first),
            "server_errors": sum(op.code in {c.name for c in SERVER_ERRORS} for op in ops),
        },
        "faults": dict(sorted(faults.injected.items())),
        "fault_log": [{"at_ms": int((at - faults.started_s) * 1000), "kind": kind, "detail": detail}
                      for at, kind, detail in faults.log],
        "final": {"vouchers": len(final.vouchers), "voucher_sequence": final.voucher_sequence,
                  "event_sequence": final.event_sequence,
                  "stream_events_seen": [len(c.seen) for c in consumers],
                  "stream_resumes": [c.resumes for c in consumers]},
        "checker": counts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted([*MODES, *FAILOVER_MODES]), default="short")
    parser.add_argument("--duration-s", type=int, default=0, help="override each plan's duration")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the JSON report here too")
    args = parser.parse_args(argv)
    if args.mode in FAILOVER_MODES:
        return run_failover(args)
    reports = []
    for plan in MODES[args.mode]:
        if args.duration_s:
            plan = Plan(**{**plan.__dict__, "duration_s": args.duration_s})
        with tempfile.TemporaryDirectory(prefix="tally-bank-") as tmp:
            reports.append(run_plan(plan, Path(tmp), args.seed))
        print(json.dumps(reports[-1], indent=2), flush=True)
    if args.out:
        args.out.write_text(json.dumps(reports, indent=2) + "\n")
    return 0 if verdict(args.mode, reports) else 1


def run_failover(args: argparse.Namespace) -> int:
    reports = []
    for plan in FAILOVER_MODES[args.mode]:
        if args.duration_s:
            plan = FailoverPlan(**{**plan.__dict__, "duration_s": args.duration_s})
        with tempfile.TemporaryDirectory(prefix="tally-failover-") as tmp:
            reports.append(run_failover_plan(plan, Path(tmp), args.seed))
        print(json.dumps(reports[-1], indent=2), flush=True)
    if args.out:
        args.out.write_text(json.dumps(reports, indent=2) + "\n")
    return 0 if failover_verdict(reports) else 1


def verdict(mode: str, reports: list[dict]) -> bool:
    """Real runs: every count zero and every fault kind injected. Control: the checker caught the run
    without locks and unique constraints. (Repeatable read without locks is reported, not required to be
    caught: every write of a tenant updates its ledger head row, so PostgreSQL's first-updater-wins rule
    turns each race into a serialization failure, which the writers retry.)"""
    caught = [sum(r["checker"].values()) for r in reports]
    if mode == "control":
        return all(c for c, r in zip(caught, reports, strict=True) if not r["plan"]["unique_constraints"])
    injected = Counter()
    for report in reports:
        injected.update(report["faults"])
    return not any(caught) and all(injected[kind] for kind in KINDS)


if __name__ == "__main__":
    sys.exit(main())
