"""The SQL baseline: one SERIALIZABLE transaction per transfer, straight to PostgreSQL, with retries.

    python -m bench.baseline CONFIG.json OUT.json

N threads, each with its own psycopg connection, each doing per transfer:
    BEGIN ISOLATION LEVEL SERIALIZABLE;
    UPDATE accounts SET balance = balance - x WHERE id = src AND balance >= x;   -- 0 rows: refused
    UPDATE accounts SET balance = balance + x WHERE id = dst;
    INSERT INTO transfers (src, dst, amount) VALUES (...);
    COMMIT;
retrying the whole transaction on SQLSTATE 40001 (serialization failure) or 40P01 (deadlock) up to 10
times, with a small random pause. The window rules are those of bench/loadgen.py.
"""

from __future__ import annotations

import array
import json
import random
import resource
import sys
import threading
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import IsolationLevel

from bench.loadgen import pick_pair

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE IF NOT EXISTS transfers (id bigserial PRIMARY KEY, src bigint NOT NULL, dst bigint NOT NULL,
                                      amount bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
"""
RETRY_SQLSTATES = frozenset({"40001", "40P01"})
DEBIT = "UPDATE accounts SET balance = balance - %s WHERE id = %s AND balance >= %s"
CREDIT = "UPDATE accounts SET balance = balance + %s WHERE id = %s"
RECORD = "INSERT INTO transfers (src, dst, amount) VALUES (%s, %s, %s)"


def create_schema(conninfo: str, accounts: int, opening_balance: int) -> None:
    """accounts 0..accounts-1 and the merchant (id = accounts), each with the opening balance."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        conn.execute(SCHEMA)
        conn.execute("TRUNCATE accounts, transfers")
        conn.execute("INSERT INTO accounts (id, balance) SELECT g, %s FROM generate_series(0, %s) AS g",
                     (opening_balance, accounts))
        conn.execute("VACUUM ANALYZE accounts")


@dataclass
class ThreadResult:
    transfers: int = 0  # committed inside the window
    refused: int = 0  # insufficient funds inside the window
    exhausted: int = 0  # still failing to serialize after the last retry, inside the window
    other_errors: dict[str, int] = field(default_factory=dict)
    attempts: int = 0  # transactions begun inside the window (first tries and retries)
    serialization_failures: int = 0  # of those, ended by 40001
    deadlocks: int = 0  # of those, ended by 40P01
    latencies_us: array.array = field(default_factory=lambda: array.array("q"))


class Baseline:
    def __init__(self, config: dict) -> None:
        self.config = config
        self.start_ns = int(config["start_ns"])
        self.window_start_ns = self.start_ns + int(config["warmup_ns"])
        self.window_end_ns = self.window_start_ns + int(config["duration_ns"])
        self.retries_max = int(config.get("retries_max", 10))
        self.max_transfers = int(config.get("max_transfers_per_thread", 1_000_000))
        self.results = [ThreadResult() for _ in range(int(config["threads"]))]
        self.failures: list[str] = []

    def _in_window(self, t: int) -> bool:
        return self.window_start_ns <= t <= self.window_end_ns

    def _thread(self, index: int) -> None:
        result = self.results[index]
        rng = random.Random(f"baseline/{self.config['workload']}/{index}")
        accounts, workload = int(self.config["accounts"]), self.config["workload"]
        amount_max = int(self.config["amount_max"])
        try:
            conn = psycopg.connect(self.config["conninfo"], connect_timeout=10)
        except psycopg.Error as exc:
            self.failures.append(f"connect: {exc}")
            return
        try:
            conn.isolation_level = IsolationLevel.SERIALIZABLE
            conn.execute("SET statement_timeout = '30s'")
            conn.commit()
            now = time.monotonic_ns()
            if now < self.start_ns:
                time.sleep((self.start_ns - now) / 1e9)
            done = 0
            while done < self.max_transfers and time.monotonic_ns() < self.window_end_ns:
                done += 1
                src, dst = pick_pair(rng, accounts, workload)
                dst = accounts if dst is None else dst  # the merchant is id = accounts
                amount = rng.randint(1, amount_max)
                self._transfer(conn, result, src, dst, amount)
        except Exception as exc:  # noqa: BLE001 - reported, the others go on
            self.failures.append(f"thread {index}: {type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def _transfer(self, conn: psycopg.Connection, result: ThreadResult, src: int, dst: int, amount: int) -> None:
        t0 = time.monotonic_ns()
        outcome = "exhausted"
        attempts = failures = deadlocks = 0
        for attempt in range(self.retries_max + 1):
            attempts += 1
            try:
                cur = conn.execute(DEBIT, (amount, src, amount))  # psycopg sends BEGIN ISOLATION LEVEL ...
                if cur.rowcount == 0:
                    conn.rollback()
                    outcome = "refused"
                    break
                conn.execute(CREDIT, (amount, dst))
                conn.execute(RECORD, (src, dst, amount))
                conn.commit()
                outcome = "ok"
                break
            except psycopg.Error as exc:
                conn.rollback()
                state = getattr(exc, "sqlstate", None)
                if state not in RETRY_SQLSTATES:
                    outcome = f"{type(exc).__name__}:{state}"
                    break
                if state == "40001":
                    failures += 1
                else:
                    deadlocks += 1
                if attempt < self.retries_max:
                    time.sleep(rng_pause(attempt))
        t1 = time.monotonic_ns()
        if not self._in_window(t1):
            return
        result.attempts += attempts
        result.serialization_failures += failures
        result.deadlocks += deadlocks
        result.latencies_us.append((t1 - t0) // 1000)
        if outcome == "ok":
            result.transfers += 1
        elif outcome == "refused":
            result.refused += 1
        elif outcome == "exhausted":
            result.exhausted += 1
        else:
            result.other_errors[outcome] = result.other_errors.get(outcome, 0) + 1

    def run(self) -> dict:
        threads = [threading.Thread(target=self._thread, args=(i,), daemon=True) for i in range(len(self.results))]
        for t in threads:
            t.start()
        cpu = {}
        for label, at in (("start", self.window_start_ns), ("end", self.window_end_ns)):
            now = time.monotonic_ns()
            if now < at:
                time.sleep((at - now) / 1e9)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu[label] = usage.ru_utime + usage.ru_stime
            cpu[f"{label}_ns"] = time.monotonic_ns()
        limit = time.monotonic() + 30 + 10 * (self.retries_max + 1)  # statement timeout, bounded retries
        for t in threads:
            t.join(max(0.1, limit - time.monotonic()))
        latencies = array.array("q")
        totals = {"transfers": 0, "refused": 0, "exhausted": 0, "attempts": 0, "serialization_failures": 0,
                  "deadlocks": 0}
        other: dict[str, int] = {}
        for r in self.results:
            for k in totals:
                totals[k] += getattr(r, k)
            for k, n in r.other_errors.items():
                other[k] = other.get(k, 0) + n
            latencies.extend(r.latencies_us)
        return {**totals, "other_errors": other, "failures": self.failures[:20],
                "threads_alive": sum(t.is_alive() for t in threads),
                "cpu_s": cpu["end"] - cpu["start"], "cpu_window_ns": cpu["end_ns"] - cpu["start_ns"],
                "window_ns": self.window_end_ns - self.window_start_ns, "latencies": latencies}


_pause_rng = random.Random()


def rng_pause(attempt: int) -> float:
    """A short random pause before retry `attempt` (0-based): up to 1, 2, 4 ... ms, at most 50 ms."""
    return _pause_rng.uniform(0, min(50, 2 ** attempt)) / 1000


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m bench.baseline CONFIG.json OUT.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        config = json.load(f)
    out = Baseline(config).run()
    latencies = out.pop("latencies")
    lat_path = f"{argv[2]}.lat"
    with open(lat_path, "wb") as f:
        latencies.tofile(f)
    out["latency_file"] = lat_path
    with open(argv[2], "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
