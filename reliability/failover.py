"""The bank workload across a failover: two `tally serve` processes on a pg_auto_failover pair (reliability/ha.py)
reached by one multi-host URL with `target_session_attrs=read-write`. While the clients work, the primary is
killed (SIGKILL to its keeper and PostgreSQL), the monitor promotes the synchronous standby, Tally reconnects
on its own, and the killed node rejoins as the new standby, as often as the plan says. Then the same checker
as every other run counts lost, duplicated and wrongly answered operations.

Reported per kill: the time to the first write the new primary took (`writable_s`) and to the first transfer
a client sent after the kill and got acknowledged (`first_ack_s`, the issue's goal: under 10 s).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.tally_server import TallyServer
from reliability.bank import Bank, Client, Stubs, open_bank
from reliability.checker import check
from reliability.consumer import Consumer
from reliability.ha import HaCluster
from reliability.history import SERVER_ERRORS, History, Op

FIRST_ACK_GOAL_S = 10.0
CONSUMER_CATCH_UP_S = 60


@dataclass(frozen=True)
class FailoverPlan:
    accounts: int
    clients: int
    duration_s: int
    kills: int
    servers: int = 2
    consumers: int = 2


FAILOVER_MODES = {
    "failover-short": [FailoverPlan(8, 6, 16, 1)],
    "failover": [FailoverPlan(8, 12, 300, 6), FailoverPlan(1000, 12, 300, 6)],
}


@dataclass
class Kill:
    node: str
    killed_s: float
    writable_s: float = 0.0
    rejoined_s: float = 0.0


@dataclass
class FailoverCluster:
    workdir: Path
    ha: HaCluster = field(default_factory=HaCluster)
    servers: list[TallyServer] = field(default_factory=list)
    api_key: str = ""

    def start(self, servers: int) -> FailoverCluster:
        self.ha.start()
        for i in range(servers):
            env = {"PYTHONUNBUFFERED": "1", "TALLY_BOOTSTRAP_ADMIN": "true" if i == 0 else "false",
                   "TALLY_ADMIN_KEY_FILE": str(self.workdir / "admin.key"), "TALLY_SHUTDOWN_GRACE_S": "2"}
            server = TallyServer(self.ha.url(), self.workdir, f"server-{i}", env)
            self.servers.append(server)
            server.start()  # one at a time: the first migrates and makes the admin key
        self.api_key = (self.workdir / "admin.key").read_text().strip()
        return self

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.ha.stop()


class KillSchedule(threading.Thread):
    """Kills the primary `kills` times, evenly over the run; after each, waits for the promotion and brings
    the killed node back as the standby, so the next kill again has a standby to promote."""

    def __init__(self, ha: HaCluster, plan: FailoverPlan, stop: threading.Event,
                 on_error: Callable[[BaseException], None]) -> None:
        super().__init__(name="failover", daemon=True)
        self.ha, self.plan, self.stop, self.on_error = ha, plan, stop, on_error
        self.kills: list[Kill] = []

    def run(self) -> None:
        gap_s = self.plan.duration_s / (self.plan.kills + 1)
        try:
            for number in range(1, self.plan.kills + 1):
                if self.stop.wait(gap_s):
                    return
                node, killed_s = self.ha.kill_primary()
                kill = Kill(node.name, killed_s)
                self.kills.append(kill)
                kill.writable_s = self.ha.wait_writable()
                if number < self.plan.kills:  # the last kill needs no standby after it
                    self.ha.rejoin(node)
                    kill.rejoined_s = time.monotonic()
        except BaseException as exc:  # reported by the runner: a failed failover fails the run
            self.on_error(exc)


def run_failover_plan(plan: FailoverPlan, workdir: Path, seed: int) -> dict:
    from reliability.run import _final, _resolve  # the same resolution and final read as every run

    cluster = FailoverCluster(workdir)
    try:
        cluster.start(plan.servers)
        targets, metadata = [s.target for s in cluster.servers], cluster.metadata()
        bank = Bank(plan.accounts, 1_000_000 if plan.accounts <= 100 else 100_000)
        setup = Stubs(targets, 0, metadata)
        open_bank(setup, bank)
        history_ops, stop, errors = History(), threading.Event(), []
        clients = [Client(i, bank, history_ops, targets, metadata, stop, seed * 1000 + i) for i in range(plan.clients)]
        consumers = [Consumer(i, targets, metadata, stop) for i in range(plan.consumers)]
        schedule = KillSchedule(cluster.ha, plan, stop, errors.append)
        for thread in (*clients, *consumers, schedule):
            thread.start()
        time.sleep(plan.duration_s)
        schedule.join()  # a failover still under way finishes before the clients stop
        stop.set()
        for thread in clients:
            thread.join()
        if errors:
            raise RuntimeError(f"a failover did not complete: {errors[0]!r}") from errors[0]
        _resolve(setup, bank, history_ops)
        final = _final(setup, bank)
        for consumer in consumers:
            consumer.until = final.event_sequence
        for consumer in consumers:
            consumer.join(CONSUMER_CATCH_UP_S)
        setup.close()
        counts = check(bank, history_ops.ops, final, [c.seen for c in consumers])
        return _report(plan, history_ops.ops, schedule.kills, counts, final, consumers)
    finally:
        cluster.stop()


def first_ack_after(ops: list[Op], killed_s: float) -> float | None:
    """Seconds from the kill to the first acknowledged transfer sent after it (None: there was none)."""
    done = [op.completed_s for op in ops if op.kind in ("transfer", "resend") and op.outcome == "ok"
            and op.invoked_s >= killed_s]
    return round(min(done) - killed_s, 3) if done else None


def _report(plan: FailoverPlan, ops: list[Op], kills: list[Kill], counts: dict[str, int], final,
            consumers: list[Consumer]) -> dict:
    outcomes = Counter((op.kind, op.outcome) for op in ops)
    first = [op for op in ops if op.kind == "transfer"]
    return {
        "plan": {"accounts": plan.accounts, "clients": plan.clients, "duration_s": plan.duration_s,
                 "kills": plan.kills, "servers": plan.servers, "engine": "pg_auto_failover"},
        "operations": {
            "attempted": len(ops),
            "by_kind_and_outcome": {f"{k}:{o}": n for (k, o), n in sorted(outcomes.items())},
            "transfers_acknowledged": sum(op.outcome == "ok" and not op.resolved for op in first),
            "transfers_refused": sum(op.outcome == "failed" and not op.resolved for op in first),
            "transfers_unknown_then_resolved": sum(op.resolved for op in first),
            "server_errors": sum(op.code in {c.name for c in SERVER_ERRORS} for op in ops),
        },
        "failovers": [{"killed": k.node, "writable_s": round(k.writable_s - k.killed_s, 3),
                       "first_ack_s": first_ack_after(ops, k.killed_s),
                       "rejoined_s": round(k.rejoined_s - k.killed_s, 3) if k.rejoined_s else None}
                      for k in kills],
        "final": {"vouchers": len(final.vouchers), "voucher_sequence": final.voucher_sequence,
                  "event_sequence": final.event_sequence,
                  "stream_events_seen": [len(c.seen) for c in consumers],
                  "stream_resumes": [c.resumes for c in consumers]},
        "checker": counts,
    }


def verdict(reports: list[dict]) -> bool:
    """Every count zero, every kill followed by an acknowledged transfer within the goal."""
    return all(not any(r["checker"].values()) and r["failovers"] and all(
        f["first_ack_s"] is not None and f["first_ack_s"] < FIRST_ACK_GOAL_S for f in r["failovers"])
        for r in reports)
