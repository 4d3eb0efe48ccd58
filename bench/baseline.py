"""The SQL references: SERIALIZABLE transfers straight to PostgreSQL, with retries.

    python -m bench.baseline CONFIG.json OUT.json

N threads, each with its own psycopg connection. Per call, by the config's `mode`:
  * `sql` (the SQL baseline), one transfer:
        BEGIN ISOLATION LEVEL SERIALIZABLE;
        UPDATE accounts SET balance = balance - x WHERE id = src AND balance >= x;   -- 0 rows: refused
        UPDATE accounts SET balance = balance + x WHERE id = dst;
        INSERT INTO transfers (src, dst, amount) VALUES (...);
        COMMIT;
  * `plpgsql`: the same transfer as one call of `bench_transfer(src, dst, x)`, a single-statement
    SERIALIZABLE transaction (autocommit, default_transaction_isolation): one round trip;
  * `setbased`: `batch` transfers as one call of `bench_transfer_batch(src[], dst[], amount[])` (FUNCTIONS),
    one SERIALIZABLE transaction the same way: the touched rows locked in id order, refused as a whole if
    any balance would go below zero, one aggregated UPDATE, one multi-row INSERT.
Each retries the whole transaction on SQLSTATE 40001 (serialization failure) or 40P01 (deadlock) up to 10
times, with a small random pause. Counts are transfers, latencies per call. The window rules are those of
bench/loadgen.py.
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
FUNCTIONS = """
CREATE OR REPLACE FUNCTION bench_transfer(p_src bigint, p_dst bigint, p_amount bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET balance = balance - p_amount WHERE id = p_src AND balance >= p_amount;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE accounts SET balance = balance + p_amount WHERE id = p_dst;
    INSERT INTO transfers (src, dst, amount) VALUES (p_src, p_dst, p_amount);
    RETURN true;
END $$;

-- The net change per account of a set of transfers (one row per account).
CREATE OR REPLACE FUNCTION bench_deltas(p_src bigint[], p_dst bigint[], p_amount bigint[])
RETURNS TABLE (id bigint, delta bigint) LANGUAGE sql STABLE AS $$
    SELECT m.id, sum(m.delta)::bigint
    FROM (SELECT s, -a FROM unnest(p_src, p_amount) AS t (s, a)
          UNION ALL SELECT d, a FROM unnest(p_dst, p_amount) AS t (d, a)) AS m (id, delta)
    GROUP BY m.id
$$;

CREATE OR REPLACE FUNCTION bench_transfer_batch(p_src bigint[], p_dst bigint[], p_amount bigint[]) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts WHERE id = ANY (p_src || p_dst) ORDER BY id FOR UPDATE;
    IF EXISTS (SELECT 1 FROM accounts AS a JOIN bench_deltas(p_src, p_dst, p_amount) AS d ON a.id = d.id
               WHERE a.balance + d.delta < 0) THEN
        RETURN false;
    END IF;
    UPDATE accounts AS a SET balance = a.balance + d.delta
        FROM bench_deltas(p_src, p_dst, p_amount) AS d WHERE a.id = d.id;
    INSERT INTO transfers (src, dst, amount) SELECT * FROM unnest(p_src, p_dst, p_amount);
    RETURN true;
END $$;
"""
RETRY_SQLSTATES = frozenset({"40001", "40P01"})
DEBIT = "UPDATE accounts SET balance = balance - %s WHERE id = %s AND balance >= %s"
CREDIT = "UPDATE accounts SET balance = balance + %s WHERE id = %s"
RECORD = "INSERT INTO transfers (src, dst, amount) VALUES (%s, %s, %s)"
MODES = ("sql", "plpgsql", "setbased")


def sql_transfer(conn: psycopg.Connection, src: list[int], dst: list[int], amount: list[int]) -> bool:
    """One transfer in three statements (psycopg sends BEGIN ISOLATION LEVEL ... first); False: refused."""
    if conn.execute(DEBIT, (amount[0], src[0], amount[0])).rowcount == 0:
        conn.rollback()
        return False
    conn.execute(CREDIT, (amount[0], dst[0]))
    conn.execute(RECORD, (src[0], dst[0], amount[0]))
    conn.commit()
    return True


def plpgsql_transfer(conn: psycopg.Connection, src: list[int], dst: list[int], amount: list[int]) -> bool:
    return conn.execute("SELECT bench_transfer(%s, %s, %s)", (src[0], dst[0], amount[0])).fetchone()[0]


def setbased_transfers(conn: psycopg.Connection, src: list[int], dst: list[int], amount: list[int]) -> bool:
    return conn.execute("SELECT bench_transfer_batch(%s, %s, %s)", (src, dst, amount)).fetchone()[0]


CALLS = {"sql": sql_transfer, "plpgsql": plpgsql_transfer, "setbased": setbased_transfers}


def create_schema(conninfo: str, accounts: int, opening_balance: int) -> None:
    """accounts 0..accounts-1 and the merchant (id = accounts), each with the opening balance."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        conn.execute(SCHEMA)
        conn.execute(FUNCTIONS)
        conn.execute("TRUNCATE accounts, transfers")
        conn.execute("INSERT INTO accounts (id, balance) SELECT g, %s FROM generate_series(0, %s) AS g",
                     (opening_balance, accounts))
        conn.execute("VACUUM ANALYZE accounts")


@dataclass
class ThreadResult:
    calls: int = 0  # transactions (calls) ended inside the window, whatever their outcome
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
        self.mode = config.get("mode", "sql")
        self.call = CALLS[self.mode]
        self.batch = int(config.get("batch", 1)) if self.mode == "setbased" else 1
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
            if self.mode != "sql":  # one statement, one round trip: its own SERIALIZABLE transaction
                conn.execute("SET default_transaction_isolation = 'serializable'")
                conn.commit()
                conn.autocommit = True
            now = time.monotonic_ns()
            if now < self.start_ns:
                time.sleep((self.start_ns - now) / 1e9)
            done = 0
            while done < self.max_transfers and time.monotonic_ns() < self.window_end_ns:
                done += 1
                src, dst, amount = [], [], []
                for _ in range(self.batch):
                    from_, to = pick_pair(rng, accounts, workload)
                    src.append(from_)
                    dst.append(accounts if to is None else to)  # the merchant is id = accounts
                    amount.append(rng.randint(1, amount_max))
                self._transfer(conn, result, src, dst, amount)
        except Exception as exc:  # noqa: BLE001 - reported, the others go on
            self.failures.append(f"thread {index}: {type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def _transfer(self, conn: psycopg.Connection, result: ThreadResult, src: list[int], dst: list[int],
                  amount: list[int]) -> None:
        t0 = time.monotonic_ns()
        outcome = "exhausted"
        attempts = failures = deadlocks = 0
        for attempt in range(self.retries_max + 1):
            attempts += 1
            try:
                outcome = "ok" if self.call(conn, src, dst, amount) else "refused"
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
        n = len(src)
        result.calls += 1
        if outcome == "ok":
            result.transfers += n
        elif outcome == "refused":
            result.refused += n
        elif outcome == "exhausted":
            result.exhausted += n
        else:
            result.other_errors[outcome] = result.other_errors.get(outcome, 0) + n

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
        totals = {"calls": 0, "transfers": 0, "refused": 0, "exhausted": 0, "attempts": 0, "serialization_failures": 0,
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
