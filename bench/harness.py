"""The benchmark run: PostgreSQL, `tally serve`, set-up, every scenario in its own generator process,
the SQL baseline, memory, and the report. `bench/run.py` is the command; see bench/README.md."""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench import disk, procs, statements, stats, timeline
from bench.baseline import create_schema
from bench.credentials import tenant_key
from bench.ledger_setup import MERCHANT, PREFIX, load_transfers, setup_tenant
from bench.pg import SERVICE_ROLE, BenchPostgres
from bench.tally_server import ROOT, TallyServer, migrate_as_owner

NS = 1_000_000_000
OPENING_BALANCE = 10**12  # atomic units per account: a million USD at scale 6, never exhausted here
AMOUNT_MAX = 1000  # atomic units per transfer, drawn uniformly from 1..AMOUNT_MAX
DEADLINE_S = 30
START_LEAD_S = 2.0  # time the generator processes get to start and connect before the first call
PROC_EXIT_MARGIN_S = DEADLINE_S + 60
SOAK_SAMPLE_S = 10
TENANTS = {"uniform": "bench-uniform", "hot": "bench-hot"}
TALLY_KINDS = ("post", "batch", "soak", "disk")  # scenarios that need the tenants set up
DISK_BYTES_PER_VOUCHER_MAX = 1_500
SETBASED_BATCH = 50  # transfers per call of the set-based reference
SETBASED_CONNECTIONS = 4
BASELINE_KINDS = {"baseline": "sql", "plpgsql": "plpgsql", "setbased": "setbased"}  # kind -> bench.baseline mode


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    kind: str  # empty | post | batch | baseline | plpgsql | setbased | soak | disk
    workload: str = ""
    callers: int = 1
    batch: int = 1
    server: str = "pg"  # pg | sqlite
    gen_procs: int | None = None  # None: the run's --gen-procs


@dataclass
class Row:
    scenario: Scenario
    rate: int | None = None  # vouchers/s (calls/s for the empty call, transfers/s for the baseline)
    calls_rate: int | None = None
    p50_us: int | None = None
    p99_us: int | None = None
    max_us: int | None = None
    rejections: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    server_cpu: int | None = None
    pg_cpu: int | None = None
    gen_cpu: int | None = None
    host_cpu: int | None = None  # the whole machine, % of one core
    other_cpu: int | None = None  # the machine less what we measured (server(s), PostgreSQL, generator)
    rss_kib: int | None = None
    hwm_kib: int | None = None
    notes: str = ""
    raw: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        s = self.scenario
        return {"scenario": s.name, "label": s.label, "kind": s.kind, "workload": s.workload, "callers": s.callers,
                "batch": s.batch, "server": s.server, "rate_per_s": self.rate, "calls_per_s": self.calls_rate,
                "p50_us": self.p50_us, "p99_us": self.p99_us, "max_us": self.max_us, "rejections": self.rejections,
                "errors": self.errors, "server_cpu_pct": self.server_cpu, "pg_cpu_pct": self.pg_cpu,
                "gen_cpu_pct": self.gen_cpu, "host_cpu_pct": self.host_cpu,
                "other_cpu_pct": self.other_cpu, "server_rss_kib": self.rss_kib,
                "server_hwm_kib": self.hwm_kib, "notes": self.notes, "raw": self.raw}


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    bc = args.batch_callers
    out = [Scenario("empty-1", "empty call (Health/Check)", "empty", callers=1),
           Scenario("empty-64", "empty call (Health/Check)", "empty", callers=64)]
    if args.gen_procs == 1:
        out.append(Scenario("empty-64-2procs", "empty call, 2 generator procs", "empty", callers=64, gen_procs=2))
    for workload in ("uniform", "hot"):
        for callers in (1, 16, 64):
            out.append(Scenario(f"post-{workload}-{callers}", f"Post {workload}", "post", workload, callers))
    for size in (100, 1000):
        for workload in ("uniform", "hot"):
            out.append(Scenario(f"batch{size}-{workload}", f"PostBatch {size} {workload}", "batch", workload, bc, size))
    out.append(Scenario("baseline-uniform-1", "SQL baseline uniform", "baseline", "uniform", 1))
    out.append(Scenario("baseline-plpgsql-1", "PL/pgSQL transfer uniform", "plpgsql", "uniform", 1))
    for workload in ("uniform", "hot"):
        for threads in (16, 64):
            out.append(Scenario(f"baseline-{workload}-{threads}", f"SQL baseline {workload}", "baseline", workload,
                                threads))
    for workload in ("uniform", "hot"):
        out.append(Scenario(f"setbased-{workload}", f"set-based SQL batch {SETBASED_BATCH} {workload}", "setbased",
                            workload, SETBASED_CONNECTIONS, SETBASED_BATCH))
    if args.sqlite:
        out.append(Scenario("sqlite-batch1000-uniform", "SQLite PostBatch 1000 uniform", "batch", "uniform", bc, 1000,
                            server="sqlite"))
    if args.soak_s > 0:
        out.append(Scenario("soak", "soak (mixed)", "soak", "mixed", 33))
    if args.disk_vouchers > 0:
        out.append(Scenario("disk-uniform", "disk: PostBatch 1000 uniform", "disk", "uniform", bc, 1000))
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {s.name for s in out}
        if unknown:
            raise SystemExit(f"--only: unknown scenario(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(s.name for s in out)}")
        out = [s for s in out if s.name in wanted]
    return out


def serve_on_postgres(pg: BenchPostgres, dbname: str, workdir: Path, env: dict[str, str],
                      superuser: bool = False) -> TallyServer:
    """`tally serve` on a database (created unless it exists): as the README's production set-up (database
    owned by tally_owner, migrated by it with `tally migrate`, served as tally_app under row security), or
    as the superuser (which bypasses row security; migrates at start-up) for comparison."""
    if superuser:
        if not pg.has_database(dbname):
            pg.create_database(dbname)
        return TallyServer(pg.sqlalchemy_url(dbname), workdir, "tally-pg", extra_env=env).start()
    owner_url, app_url = pg.create_service_database(dbname)
    migrate_as_owner(owner_url, SERVICE_ROLE, env)
    # The service role cannot create tenants or keys: no first-start admin; the owner makes them (credentials.py).
    return TallyServer(app_url, workdir, "tally-pg", admin_url=owner_url,
                       extra_env={**env, "TALLY_AUTO_MIGRATE": "false", "TALLY_BOOTSTRAP_ADMIN": "false"}).start()


def split_callers(callers: int, procs_n: int) -> list[int]:
    """Callers spread over at most procs_n processes, none empty: 64 over 2 -> [32, 32]; 1 over 2 -> [1]."""
    procs_n = max(1, min(procs_n, callers))
    base, extra = divmod(callers, procs_n)
    return [base + (1 if i < extra else 0) for i in range(procs_n)]


# ---------------------------------------------------------------------------------------------- runner


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="tally-bench-"))
        self.pg: BenchPostgres | None = None
        self.servers: dict[str, TallyServer] = {}
        self.tenants: dict[str, dict] = {}  # (server, workload) key "pg/uniform"
        self.children: list[subprocess.Popen] = []
        self.rows: list[Row] = []
        self.soak_samples: list[tuple[int, int]] = []
        self.info: dict = {}
        self.run_id = uuid.uuid4().hex[:8]
        self._current = ""
        self.child_env: dict[str, str] = {}
        self.warmup_ns = int(args.warmup_s * NS)
        self.duration_ns = int(args.duration_s * NS)

    def log(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(10)
        for name, server in self.servers.items():
            code = server.stop()
            self.info.setdefault("server_exit", {})[name] = code
        if self.pg is not None:
            self.pg.stop()
        if not self.args.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def prepare_source(self) -> None:
        """With --snapshot REV, the server and the generators run the code of REV (git archive of src/ into
        the temp dir, first on PYTHONPATH), so edits to the working tree during the run change nothing."""
        head = _git("rev-parse", "--short", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", "src"))
        if not self.args.snapshot:
            self.info["source"] = f"working tree at {head}" + (" with uncommitted changes in src/" if dirty else "")
            return
        rev = _git("rev-parse", "--short", self.args.snapshot)
        dest = self.workdir / "src-snapshot"
        dest.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "--", "src"],
                                 capture_output=True, check=True, timeout=120)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, timeout=120)
        src = dest / "src"
        self.child_env["PYTHONPATH"] = os.pathsep.join(
            [str(src), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
        self.info["source"] = f"snapshot of {rev} (git archive of src/)"

    def start_pg_server(self) -> None:
        self.log("starting PostgreSQL (durable defaults)")
        self.pg = BenchPostgres()
        if self.args.pg_statements:
            self.pg.settings.update(statements.SETTINGS)
        self.pg.start()
        self.info["postgres"] = self.pg.describe()
        self.pg.create_database("baseline")
        server = serve_on_postgres(self.pg, "bench", self.workdir, self._server_env("pg"), self.args.superuser)
        if self.args.pg_statements:
            with self.pg.connect("bench") as conn:
                statements.install(conn)
        self.servers["pg"] = server
        self.info["pg_server_role"] = "postgres (superuser)" if self.args.superuser else SERVICE_ROLE
        self.log(f"tally serve (PostgreSQL as {self.info['pg_server_role']}) pid {server.pid} on {server.target}")

    def start_sqlite_server(self) -> None:
        db = self.workdir / "tally-bench.db"
        server = TallyServer(f"sqlite:///{db}", self.workdir, "tally-sqlite", extra_env=self._server_env("sqlite"))
        self.servers["sqlite"] = server.start()
        self.log(f"tally serve (SQLite) pid {server.pid} on {server.target}")

    def _server_env(self, server: str) -> dict[str, str]:
        env = dict(self.child_env)
        for item in self.args.server_env:
            key, _, value = item.partition("=")
            env[key] = value
        if self.args.timeline:  # the hook first on the path, and the bench package it imports
            env[timeline.ENV] = str(self._timeline_file(server))
            env["PYTHONPATH"] = os.pathsep.join(
                [str(timeline.HOOK_DIR), str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        return env

    def _timeline_file(self, server: str) -> Path:
        return self.workdir / f"{server}.timeline.json"

    def _read_timeline(self, s: Scenario, row: Row, window: dict) -> None:
        """The server's records of the measured window (SIGUSR1 makes the hook write them), summarized."""
        path = self._timeline_file(s.server)
        path.unlink(missing_ok=True)
        os.kill(self.servers[s.server].pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeline.DUMP_WAIT_S
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server wrote no timeline to {path} (started with --timeline?)")
            time.sleep(0.1)
        row.raw["timeline"] = timeline.summarize(timeline.read_dump(path), *window["t_ns"])
        for line in timeline.summary_lines(s.name, row.raw["timeline"], row.p50_us):
            self.log(line)

    def setup_tenants(self, server_key: str, workloads: list[str]) -> None:
        server = self.servers[server_key]
        for workload in workloads:
            key = f"{server_key}/{workload}"
            if key in self.tenants:
                continue
            self.log(f"set-up: {self.args.accounts} accounts + merchant + funding for {TENANTS[workload]} "
                     f"on {server_key}")
            api_key = tenant_key(server.admin_url, TENANTS[workload])
            self.tenants[key] = asyncio.run(setup_tenant(server.target, api_key, TENANTS[workload],
                                                         self.args.accounts, OPENING_BALANCE))
            self.log(f"set-up of {key} took {self.tenants[key]['setup_s']}s")

    # -- one scenario ----------------------------------------------------------------------------
    def _spawn(self, module: str, config: dict, tag: str) -> tuple[subprocess.Popen, Path]:
        cfg = self.workdir / f"{tag}.config.json"
        out = self.workdir / f"{tag}.out.json"
        cfg.write_text(json.dumps(config))
        err = open(self.workdir / f"{tag}.stderr", "wb")  # noqa: SIM115 - closed when the child is reaped
        child = subprocess.Popen([sys.executable, "-m", module, str(cfg), str(out)], cwd=ROOT,
                                 env={**os.environ, **self.child_env}, stdin=subprocess.DEVNULL, stdout=err,
                                 stderr=subprocess.STDOUT)
        err.close()
        self.children.append(child)
        return child, out

    def _measure_window(self, start_ns: int, window_ns: int, server: TallyServer | None,
                        profile: str | None = None) -> dict:
        """Sleeps to the window's start, samples CPU counters, sleeps to its end, samples again."""
        pg_pid = self.pg.postmaster_pid if self.pg else None
        win_start = start_ns + self.warmup_ns

        def sample() -> dict:
            return {"t": time.monotonic_ns(), "wall_us": time.time_ns() // 1000,
                    # The tree: with TALLY_PROCESSES > 1 the server is a supervisor and its serving children.
                    "server": procs.tree_cpu_ticks(server.pid) if server else None,
                    "servers": sum(procs.tree_cpu_ticks(s.pid) for s in self.servers.values()),
                    "pg": procs.tree_cpu_ticks(pg_pid) if pg_pid else None, "host": procs.machine_cpu()}

        self._sleep_until(win_start)
        spy = self._start_profile(profile, server, window_ns) if profile and server else None
        a = sample()
        self._sleep_until(win_start + window_ns)
        b = sample()
        if spy is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(60)
        span = b["t"] - a["t"]
        out = {"host": None, "server": None, "pg": None, "wall_us": (a["wall_us"], b["wall_us"]),
               "t_ns": (a["t"], b["t"])}
        if a["server"] is not None and b["server"] is not None:
            out["server"] = stats.cpu_pct(b["server"] - a["server"], procs.TICKS_PER_S, span)
        out["servers"] = stats.cpu_pct(max(0, b["servers"] - a["servers"]), procs.TICKS_PER_S, span)
        if a["pg"] is not None and b["pg"] is not None:
            out["pg"] = stats.cpu_pct(max(0, b["pg"] - a["pg"]), procs.TICKS_PER_S, span)
        out["host"] = stats.host_cpu_pct(b["host"][0] - a["host"][0], b["host"][1] - a["host"][1],
                                         os.cpu_count() or 1)
        return out

    def _other(self, window: dict, client_cpu: int | None) -> int | None:
        """CPU the machine spent on anything but our servers, PostgreSQL and the client process."""
        if window.get("host") is None:
            return None
        # A difference of separately sampled counters: clamp the small negative noise to 0.
        return max(0, window["host"] - (window.get("servers") or 0) - (window.get("pg") or 0) - (client_cpu or 0))

    def wait_quiet(self) -> str:
        """Waits (bounded by --quiet-wait-s) until the machine is idle apart from us, so another job on
        the shared machine does not take CPU from a measurement; returns a note when it gave up."""
        deadline = time.monotonic() + self.args.quiet_wait_s
        warned = False
        while True:
            a = procs.machine_cpu()
            time.sleep(1.0)
            b = procs.machine_cpu()
            busy = stats.host_cpu_pct(b[0] - a[0], b[1] - a[1], os.cpu_count() or 1)
            if busy is None or busy <= self.args.quiet_pct:
                return ""
            if time.monotonic() > deadline:
                self.log(f"machine still busy ({busy}% of a core) after {self.args.quiet_wait_s}s: measuring anyway")
                return f"machine busy ({busy}% of a core) at start"
            if not warned:
                self.log(f"machine busy ({busy}% of a core, not us): waiting up to {self.args.quiet_wait_s}s")
                warned = True
            time.sleep(2.0)

    def _start_profile(self, profile_dir: str, server: TallyServer, window_ns: int) -> subprocess.Popen | None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        out = Path(profile_dir) / f"{self._current}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [py_spy, "record", "--pid", str(server.pid), "--duration", str(max(1, window_ns // NS)),
               "--rate", "100", "--format", "raw", "--output", str(out)]
        if self.args.py_spy_gil:
            cmd.append("--gil")
        elif self.args.py_spy_threads:
            cmd += ["--idle", "--threads"]
        self.log(f"profiling: {' '.join(cmd)}")
        log = open(self.workdir / f"{self._current}.py-spy.log", "wb")  # noqa: SIM115
        spy = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.children.append(spy)
        return spy

    @staticmethod
    def _sleep_until(t_ns: int) -> None:
        now = time.monotonic_ns()
        if t_ns > now:
            time.sleep((t_ns - now) / NS)

    def _wait_children(self, children: list[subprocess.Popen], end_ns: int) -> list[str]:
        problems = []
        for child in children:
            remaining = max(1.0, (end_ns - time.monotonic_ns()) / NS + PROC_EXIT_MARGIN_S)
            try:
                code = child.wait(remaining)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)
                problems.append(f"pid {child.pid} did not finish in time and was killed")
                continue
            if code != 0:
                problems.append(f"pid {child.pid} exited with {code}")
        return problems

    def _stream(self, s: Scenario, name: str, kind: str, workload: str, callers: int, batch: int) -> dict:
        tenant = self.tenants.get(f"{s.server}/{workload}", {}) if workload in TENANTS else {}
        return {"name": name, "kind": kind, "workload": workload, "callers": callers, "batch": batch,
                "tenant": tenant.get("tenant", ""), "api_key": tenant.get("api_key", ""),
                "accounts": self.args.accounts, "prefix": PREFIX,
                "merchant": MERCHANT, "amount_max": AMOUNT_MAX}

    def run_generator(self, s: Scenario, streams: list[dict], window_ns: int, warmup_ns: int,
                      start_ns: int | None = None) -> tuple[dict, dict]:
        """Runs the streams in generator processes; returns (per-stream merged results, window measurements)."""
        server = self.servers[s.server]
        procs_n = s.gen_procs or self.args.gen_procs
        per_stream_split = [split_callers(st["callers"], procs_n) for st in streams]
        n_procs = max(len(split) for split in per_stream_split)
        start_ns = start_ns or time.monotonic_ns() + int(START_LEAD_S * NS)
        children = []
        for p in range(n_procs):
            mine = [dict(st, callers=split[p]) for st, split in zip(streams, per_stream_split, strict=True)
                    if p < len(split)]
            config = {"target": server.target, "channels": self.args.channels, "deadline_s": DEADLINE_S,
                      "start_ns": start_ns, "warmup_ns": warmup_ns, "duration_ns": window_ns,
                      "run_id": f"{self.run_id}{s.name}", "proc_index": p,
                      "max_calls_per_caller": max(10_000, (window_ns + warmup_ns) // NS * 20_000), "streams": mine}
            children.append(self._spawn("bench.loadgen", config, f"{s.name}.gen{p}"))
        old_warmup = self.warmup_ns
        self.warmup_ns = warmup_ns
        try:
            window = self._measure_window(start_ns, window_ns, server, self.args.py_spy if s.kind != "soak" else None)
        finally:
            self.warmup_ns = old_warmup
        problems = self._wait_children([c for c, _ in children], start_ns + warmup_ns + window_ns)
        merged: dict[str, dict] = {}
        cpu_s = 0.0
        for p, (_child, out) in enumerate(children):
            if not out.exists():
                err = (self.workdir / f"{s.name}.gen{p}.stderr").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"generator {p} of {s.name} wrote no result ({problems}):\n{err}")
            data = json.loads(out.read_text())
            cpu_s += data["cpu_s"]
            for st in data["streams"]:
                lat = array.array("q")
                with open(st["latency_file"], "rb") as f:
                    lat.frombytes(f.read())
                m = merged.setdefault(st["name"], {"calls": 0, "items": 0, "vouchers": 0, "calls_total": 0,
                                                   "rejections": {}, "errors": {}, "latencies": array.array("q"),
                                                   "kind": st["kind"], "batch": st["batch"]})
                for k in ("calls", "items", "vouchers", "calls_total"):
                    m[k] += st[k]
                m["rejections"] = stats.merge_counts([m["rejections"], st["rejections"]])
                m["errors"] = stats.merge_counts([m["errors"], st["errors"]])
                m["latencies"].extend(lat)
        window["gen"] = int(round(cpu_s * NS * 100 / window_ns)) if window_ns else None
        window["gen_procs"] = n_procs
        window["problems"] = problems
        return merged, window

    def _row_from(self, s: Scenario, m: dict, window: dict, window_ns: int) -> Row:
        lat = sorted(m["latencies"])
        if m["kind"] == "empty":
            ok = m["calls"] - sum(m["errors"].values()) - sum(m["rejections"].values())
            rate = stats.rate_per_s(ok, window_ns)
        else:
            rate = stats.rate_per_s(m["vouchers"], window_ns)
        row = Row(s, rate=rate, calls_rate=stats.rate_per_s(m["calls"], window_ns),
                  p50_us=stats.percentile(lat, 50), p99_us=stats.percentile(lat, 99), max_us=lat[-1] if lat else None,
                  rejections=m["rejections"], errors=m["errors"], server_cpu=window.get("server"),
                  pg_cpu=window.get("pg"), gen_cpu=window.get("gen"), host_cpu=window.get("host"),
                  other_cpu=self._other(window, window.get("gen")))
        row.raw = {k: v for k, v in m.items() if k != "latencies"}
        row.raw.update(window_ns=window_ns, gen_procs=window.get("gen_procs"), problems=window.get("problems"),
                       p90_us=stats.percentile(lat, 90) if lat else None,
                       p999_us=lat[min(len(lat) - 1, (999 * len(lat) + 999) // 1000 - 1)] if lat else None)
        notes = []
        if window.get("gen_procs", 1) > 1:
            notes.append(f"{window['gen_procs']} gen procs")
        if m["kind"] == "batch":
            notes.append(f"{stats.tenths_text(m['calls'] * 10 * NS // window_ns)} calls/s")
        if window.get("problems"):
            notes.append("; ".join(window["problems"]))
        if row.gen_cpu is not None and row.gen_cpu >= 90 * window.get("gen_procs", 1):
            notes.append("GENERATOR SATURATED")
        if row.other_cpu is not None and row.other_cpu > self.args.quiet_pct:
            notes.append(f"DISTURBED: {row.other_cpu}% CPU elsewhere")
        row.notes = ", ".join(notes)
        return row

    def run_load(self, s: Scenario) -> Row:
        stream = self._stream(s, s.name, s.kind, s.workload, s.callers, s.batch)
        profiled = self.args.pg_statements and s.server == "pg" and s.kind in ("post", "batch")
        if profiled:  # reset at the window's start: the warm-up's statements are not counted
            threading.Timer(self.warmup_ns / NS + 0.5, self._reset_statements).start()
        merged, window = self.run_generator(s, [stream], self.duration_ns, self.warmup_ns)
        row = self._row_from(s, merged[s.name], window, self.duration_ns)
        if self.args.timeline and s.kind in ("post", "batch"):
            self._read_timeline(s, row, window)
        if profiled:
            with self.pg.connect("bench") as conn:
                row.raw["pg_statements"] = statements.read(conn, "bench", merged[s.name]["vouchers"])
            for line in statements.summary_lines(s.name, row.raw["pg_statements"]):
                self.log(line)
        self._memory(row, self.servers[s.server])
        if s.kind in ("post", "batch"):
            per_txn = self.vouchers_per_transaction(s.server, *window["wall_us"])
            if per_txn is not None:
                row.raw["write_transactions"], row.raw["vouchers_in_db"] = per_txn
                if per_txn[0]:
                    row.notes = ", ".join(filter(None, [
                        f"{stats.tenths_text(per_txn[1] * 10 // per_txn[0])} vouchers/txn", row.notes]))
        return row

    def _reset_statements(self) -> None:
        with self.pg.connect("bench") as conn:
            statements.reset(conn)

    def vouchers_per_transaction(self, server_key: str, from_us: int, to_us: int) -> tuple[int, int] | None:
        """(write transactions, vouchers) the server committed in the window, read from its database: the
        vouchers of one batch transaction share their posted_us. A diagnostic only; None if unreadable."""
        query = "SELECT count(DISTINCT posted_us), count(*) FROM vouchers WHERE posted_us BETWEEN {a} AND {b}"
        try:
            if server_key == "pg":
                with self.pg.connect("bench") as conn:
                    found = conn.execute(query.format(a="%s", b="%s"), (from_us, to_us)).fetchone()
            else:
                db = sqlite3.connect(f"file:{self.workdir / 'tally-bench.db'}?mode=ro", uri=True, timeout=10)
                try:
                    found = db.execute(query.format(a="?", b="?"), (from_us, to_us)).fetchone()
                finally:
                    db.close()
        except Exception as exc:  # noqa: BLE001 - the schema is the server's business
            self.log(f"(could not count transactions: {exc})")
            return None
        return int(found[0]), int(found[1])

    def _memory(self, row: Row, server: TallyServer) -> None:
        mem = procs.memory_kib(server.pid)
        row.rss_kib, row.hwm_kib = mem.get("VmRSS"), mem.get("VmHWM")
        if not server.alive():
            raise RuntimeError(f"tally serve ({row.scenario.server}) died during {row.scenario.name}:\n"
                               f"{server.log_tail()}")

    def run_baseline(self, s: Scenario) -> Row:
        start_ns = time.monotonic_ns() + int(START_LEAD_S * NS)
        config = {"conninfo": self.pg.conninfo("baseline"), "threads": s.callers, "workload": s.workload,
                  "mode": BASELINE_KINDS[s.kind], "batch": s.batch,
                  "accounts": self.args.accounts, "amount_max": AMOUNT_MAX, "retries_max": 10,
                  "start_ns": start_ns, "warmup_ns": self.warmup_ns, "duration_ns": self.duration_ns,
                  "max_transfers_per_thread": max(10_000, (self.duration_ns + self.warmup_ns) // NS * 20_000)}
        child, out = self._spawn("bench.baseline", config, s.name)
        window = self._measure_window(start_ns, self.duration_ns, None)
        problems = self._wait_children([child], start_ns + self.warmup_ns + self.duration_ns + 400 * NS)
        if not out.exists():
            err = (self.workdir / f"{s.name}.stderr").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"baseline {s.name} wrote no result ({problems}):\n{err}")
        data = json.loads(out.read_text())
        lat = array.array("q")
        with open(data.pop("latency_file"), "rb") as f:
            lat.frombytes(f.read())
        lat = sorted(lat)
        errors = dict(data["other_errors"])
        if data["exhausted"]:
            errors["RETRIES_EXHAUSTED"] = data["exhausted"]
        gen_cpu = int(round(data["cpu_s"] * NS * 100 / self.duration_ns))
        row = Row(s, rate=stats.rate_per_s(data["transfers"], self.duration_ns),
                  calls_rate=stats.rate_per_s(data["calls"], self.duration_ns), p50_us=stats.percentile(lat, 50),
                  p99_us=stats.percentile(lat, 99), max_us=lat[-1] if lat else None,
                  rejections={"INSUFFICIENT_FUNDS": data["refused"]} if data["refused"] else {}, errors=errors,
                  pg_cpu=window.get("pg"), host_cpu=window.get("host"), gen_cpu=gen_cpu,
                  other_cpu=self._other(window, gen_cpu))
        failed = data["serialization_failures"] + data["deadlocks"]
        row.notes = (f"{stats.pct_text(failed, data['attempts'])} of attempts failed to serialize "
                     f"({data['serialization_failures']} x 40001, {data['deadlocks']} x 40P01)")
        if s.kind == "setbased":
            row.notes = (f"{s.batch} transfers/call, "
                         f"{stats.tenths_text(data['calls'] * 10 * NS // self.duration_ns)} calls/s; {row.notes}")
        if data["failures"] or problems or data["threads_alive"]:
            row.notes += f"; problems: {data['failures'][:3]} {problems} alive={data['threads_alive']}"
        if row.other_cpu is not None and row.other_cpu > self.args.quiet_pct:
            row.notes += f"; DISTURBED: {row.other_cpu}% CPU elsewhere"
        row.raw = {**data, "problems": problems}
        return row

    def run_disk(self, s: Scenario) -> Row:
        """Bytes on disk per transfer voucher: table sizes after VACUUM before and after posting
        --disk-vouchers transfers (PostBatch 1000, uniform) through the API; read as the superuser."""
        n, server = self.args.disk_vouchers, self.servers[s.server]
        tenant = self.tenants[f"{s.server}/{s.workload}"]
        with self.pg.connect("bench") as conn:
            before = disk.table_sizes(conn)
        t0 = time.monotonic_ns()
        asyncio.run(load_transfers(server.target, tenant["api_key"], n, self.args.accounts, AMOUNT_MAX,
                                   in_flight=s.callers, batch=s.batch))
        load_ns = time.monotonic_ns() - t0
        with self.pg.connect("bench") as conn:
            after = disk.table_sizes(conn)
        per = disk.per_voucher(before, after, n)
        row = Row(s, rate=stats.rate_per_s(n, load_ns), notes=f"{n} vouchers; {per['total']} B/voucher on disk")
        row.raw = {"disk_vouchers": n, "bytes_before": before, "bytes_after": after, "bytes_per_voucher_by_table": per,
                   "bytes_per_voucher": per["total"], "load_ns": load_ns}
        self._memory(row, server)
        return row

    def run_soak(self, s: Scenario) -> list[Row]:
        soak_ns = self.args.soak_s * NS
        streams = [self._stream(s, "soak-post-uniform", "post", "uniform", 16, 1),
                   self._stream(s, "soak-post-hot", "post", "hot", 16, 1),
                   self._stream(s, "soak-batch100-uniform", "batch", "uniform", 1, 100)]
        server = self.servers["pg"]
        samples: list[tuple[int, int]] = []
        start_ns = time.monotonic_ns() + int(START_LEAD_S * NS)

        # RSS is sampled from a thread while the generator runs; the generator's own window covers the soak.
        stop = threading.Event()

        def sampler() -> None:
            self._sleep_until(start_ns)
            for i in range(self.args.soak_s // SOAK_SAMPLE_S + 1):
                mem = procs.memory_kib(server.pid)
                if "VmRSS" in mem:
                    samples.append((i * SOAK_SAMPLE_S, mem["VmRSS"]))
                if stop.wait(max(0.0, (start_ns + (i + 1) * SOAK_SAMPLE_S * NS - time.monotonic_ns()) / NS)):
                    return

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        try:
            merged, window = self.run_generator(s, streams, soak_ns, 0, start_ns)
        finally:
            stop.set()
            thread.join(5)
        self.soak_samples = samples
        rows = []
        for st in streams:
            sub = Scenario(st["name"], f"soak: {st['kind']} {st['workload']}" + (
                f" {st['batch']}" if st["kind"] == "batch" else ""), st["kind"], st["workload"], st["callers"],
                st["batch"])
            row = self._row_from(sub, merged[st["name"]], window, soak_ns)
            rows.append(row)
        self._memory(rows[-1], server)
        return rows

    # -- all -------------------------------------------------------------------------------------
    def run(self) -> None:
        todo = scenarios(self.args)
        self.info["command"] = shlex.join(getattr(sys, "orig_argv", sys.argv))
        self.info["scenarios_planned"] = [s.name for s in todo]
        self.prepare_source()
        if any(s.server == "pg" for s in todo):
            self.start_pg_server()
            self.setup_tenants("pg", [w for w in ("uniform", "hot") if any(
                s.server == "pg" and s.kind in TALLY_KINDS and (s.workload == w or s.kind == "soak") for s in todo)])
            if any(s.kind in BASELINE_KINDS for s in todo):
                create_schema(self.pg.conninfo("baseline"), self.args.accounts, OPENING_BALANCE)
        for s in todo:
            if s.server == "sqlite" and "sqlite" not in self.servers:
                self.start_sqlite_server()
                self.setup_tenants("sqlite", ["uniform"])
            self._current = s.name
            busy_note = self.wait_quiet() if self.args.quiet_wait_s > 0 else ""
            self.log(f"scenario {s.name}: {s.callers} callers, {self.args.duration_s:g}s "
                     f"(+{self.args.warmup_s:g}s warm-up)" if s.kind != "soak" else f"soak: {self.args.soak_s}s")
            if s.kind in BASELINE_KINDS:
                rows = [self.run_baseline(s)]
            elif s.kind == "soak":
                rows = self.run_soak(s)
            elif s.kind == "disk":
                rows = [self.run_disk(s)]
            else:
                rows = [self.run_load(s)]
            for row in rows:
                if busy_note:
                    row.notes = ", ".join(filter(None, [row.notes, busy_note]))
                self.rows.append(row)
                self.log(f"  -> {row.rate} /s, p50 {stats.ms_text(row.p50_us)} ms, p99 {stats.ms_text(row.p99_us)} ms, "
                         f"rejections {sum(row.rejections.values())}, errors {sum(row.errors.values())}, "
                         f"server CPU {row.server_cpu}%, PG CPU {row.pg_cpu}%, gen CPU {row.gen_cpu}%")
        for key, server in self.servers.items():
            mem = procs.memory_kib(server.pid)
            self.info.setdefault("server_memory_kib", {})[key] = mem
            log = server.log_tail(20000)
            self.info.setdefault("server_log_lines", {})[key] = len(log.splitlines())
            self.info.setdefault("server_log_tail", {})[key] = log[-2000:]


def _git(*argv: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *argv], capture_output=True, text=True, timeout=60,
                              check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip()


# ---------------------------------------------------------------------------------------------- report


def find(rows: list[Row], name: str) -> Row | None:
    return next((r for r in rows if r.scenario.name == name), None)


def _rate(rows: list[Row], name: str) -> int | None:
    r = find(rows, name)
    return r.rate if r else None


def _p50(rows: list[Row], name: str) -> int | None:
    r = find(rows, name)
    return r.p50_us if r else None


def checks(rows: list[Row], soak_samples: list[tuple[int, int]], soak_s: int) -> list[stats.Check]:
    """The targets of issue 18, every one a ratio to a reference measured in the same run (or a fixed bound
    where the issue gives one)."""
    empty = _rate(rows, "empty-64")
    floor_refs = {"SQL baseline 1 thread": _p50(rows, "baseline-uniform-1"),
                  "empty call 1 caller": _p50(rows, "empty-1")}
    out = [stats.p50_at_most_times_sum(f"Post 1 {w} p50", _p50(rows, f"post-{w}-1"), floor_refs, 15)
           for w in ("uniform", "hot")]
    out += [
        stats.at_least_pct("Post 64 uniform / empty call", _rate(rows, "post-uniform-64"), empty, 70),
        stats.at_least_pct("Post 64 hot / empty call", _rate(rows, "post-hot-64"), empty, 70),
    ]
    for workload in ("uniform", "hot"):
        r = find(rows, f"post-{workload}-16")
        out.append(stats.below_ms(f"Post 16 {workload} p99", r.p99_us if r else None, 15))
    for workload in ("uniform", "hot"):
        out.append(stats.at_least_pct(f"PostBatch 1000 {workload} / set-based SQL",
                                      _rate(rows, f"batch1000-{workload}"), _rate(rows, f"setbased-{workload}"), 50))
    out.append(stats.at_least("SQLite PostBatch 1000", _rate(rows, "sqlite-batch1000-uniform"), 8_000, "vouchers/s"))
    out += [
        stats.at_least_pct("hot / uniform, Post 64", _rate(rows, "post-hot-64"), _rate(rows, "post-uniform-64"), 90),
        stats.at_least_pct("hot / uniform, Post 16", _rate(rows, "post-hot-16"), _rate(rows, "post-uniform-16"), 90),
        stats.at_least_pct("hot / uniform, PostBatch 1000", _rate(rows, "batch1000-hot"),
                           _rate(rows, "batch1000-uniform"), 90),
    ]
    hot_rows = [r for r in rows if r.scenario.workload == "hot" and r.scenario.kind in ("post", "batch")]
    aborted = sum(n for r in hot_rows for k, n in r.errors.items() if k.startswith("ABORTED")) if hot_rows else None
    out.append(stats.equals_zero("hot: client-visible ABORTED", aborted, "ABORTED"))
    warmup = min(60, soak_s // 3)
    base, peak = stats.memory_growth(soak_samples, warmup)
    label = f"server RSS growth after {warmup}s warm-up ({soak_s}s soak)" if soak_s else "server RSS growth (soak)"
    out.append(stats.growth_at_most_pct(label, base, peak, 10))
    disk = find(rows, "disk-uniform")
    out.append(stats.at_most("bytes on disk per transfer voucher", disk.raw.get("bytes_per_voucher") if disk else None,
                             DISK_BYTES_PER_VOUCHER_MAX, "B"))
    return out


HEADERS = ["scenario", "callers", "vouchers/s", "p50 ms", "p99 ms", "rejections", "errors", "srv CPU", "PG CPU",
           "gen CPU", "other CPU", "srv RSS MiB", "notes"]
RIGHT = [False, True, True, True, True, True, True, True, True, True, True, True, False]


def _pct(v: int | None) -> str:
    return "-" if v is None else f"{v}%"


def table_rows(rows: list[Row]) -> list[list[object]]:
    out = []
    for r in rows:
        out.append([r.scenario.label, r.scenario.callers, r.rate, stats.ms_text(r.p50_us), stats.ms_text(r.p99_us),
                    sum(r.rejections.values()), sum(r.errors.values()), _pct(r.server_cpu), _pct(r.pg_cpu),
                    _pct(r.gen_cpu), _pct(r.other_cpu), None if r.rss_kib is None else r.rss_kib // 1024,
                    r.notes])
    return out


def disk_table(raw: dict, markdown: bool) -> str:
    """Per table: bytes before and after (VACUUM, with indexes and TOAST) and the growth per voucher."""
    per, before, after = raw["bytes_per_voucher_by_table"], raw["bytes_before"], raw["bytes_after"]
    cells = [[t, before.get(t), after.get(t), per.get(t)] for t in disk.TABLES]
    cells.append(["total", sum(v or 0 for v in before.values()), sum(v or 0 for v in after.values()), per["total"]])
    title = f"Bytes on disk per transfer voucher ({raw['disk_vouchers']} vouchers, after VACUUM (ANALYZE)):"
    return title + "\n" + stats.format_table(["table", "bytes before", "bytes after", "B/voucher"], cells,
                                              markdown=markdown, right=[False, True, True, True])


def report(runner: Runner, markdown: bool) -> str:
    args, rows = runner.args, runner.rows
    pg = runner.info.get("postgres", {})
    lines = []
    lines.append(stats.format_table(HEADERS, table_rows(rows), markdown=markdown, right=RIGHT))
    lines.append("")
    details = [f"{r.scenario.name}: rejections {stats.counts_text(r.rejections)}; errors {stats.counts_text(r.errors)}"
               for r in rows if r.rejections or r.errors]
    if details:
        bullet = "- " if markdown else "  "
        lines += ["Rejections and errors by reason / status code:", *([""] if markdown else []),
                  *(f"{bullet}{d}" for d in details), ""]
    lines.append(stats.checks_table(checks(rows, runner.soak_samples, args.soak_s), markdown=markdown))
    lines.append("")
    disk_row = find(rows, "disk-uniform")
    if disk_row is not None:
        lines += [disk_table(disk_row.raw, markdown), ""]
    hwm = runner.info.get("server_memory_kib", {})
    mem_text = ", ".join(f"{k}: peak {v.get('VmHWM', 0) // 1024} MiB (VmHWM), now {v.get('VmRSS', 0) // 1024} MiB"
                         for k, v in hwm.items())
    if mem_text:
        lines.append(f"Server memory: {mem_text}")
    if runner.soak_samples:
        lines.append("Soak RSS samples (s: MiB): " + " ".join(f"{t}:{kib // 1024}" for t, kib in runner.soak_samples))
    lines.append(f"Machine: nproc {os.cpu_count()}, {platform.system()} {platform.release()}, "
                 f"PostgreSQL {pg.get('version', '-')} (fsync={pg.get('fsync', '-')}, "
                 f"synchronous_commit={pg.get('synchronous_commit', '-')}, "
                 f"full_page_writes={pg.get('full_page_writes', '-')}, "
                 f"shared_buffers={pg.get('shared_buffers', '-')}), "
                 f"Python {platform.python_version()}, grpcio {grpc.__version__}")
    lines.append(f"Each scenario: {args.duration_s:g}s measured after {args.warmup_s:g}s warm-up; "
                 f"{args.accounts} accounts per tenant; generator: {args.gen_procs} process(es), "
                 f"{args.channels} channel(s) each, grpc.aio; PostBatch at {args.batch_callers} calls in flight; "
                 f"CPU columns are % of one core over the measured window; 'other CPU' is what the machine "
                 f"spent on anything else (kernel, other jobs), flagged DISTURBED above {args.quiet_pct}%.")
    lines.append(f"Server code: {runner.info.get('source', '-')}; it connects to PostgreSQL as "
                 f"{runner.info.get('pg_server_role', '-')}")
    lines.append(f"Command: {runner.info.get('command') or shlex.join(getattr(sys, 'orig_argv', sys.argv))}")
    return "\n".join(lines)


def rows_from_json(saved: list[dict]) -> list[Row]:
    """The rows of a --json file, to print its report again (e.g. as Markdown for the README)."""
    out = []
    for d in saved:
        sc = Scenario(d["scenario"], d["label"], d["kind"], d["workload"], d["callers"], d["batch"], d["server"])
        out.append(Row(sc, rate=d["rate_per_s"], calls_rate=d["calls_per_s"], p50_us=d["p50_us"], p99_us=d["p99_us"],
                       max_us=d["max_us"], rejections=d["rejections"], errors=d["errors"],
                       server_cpu=d["server_cpu_pct"], pg_cpu=d["pg_cpu_pct"], gen_cpu=d["gen_cpu_pct"],
                       host_cpu=d["host_cpu_pct"], other_cpu=d.get("other_cpu_pct"), rss_kib=d["server_rss_kib"],
                       hwm_kib=d["server_hwm_kib"], notes=d["notes"], raw=d.get("raw", {})))
    return out


@dataclass
class SavedRun:
    args: argparse.Namespace
    rows: list[Row]
    info: dict
    soak_samples: list[tuple[int, int]]


def report_saved(path: str, markdown: bool) -> str:
    with open(path) as f:
        data = json.load(f)
    info = dict(data.get("info", {}), command=data.get("command"))
    saved = SavedRun(argparse.Namespace(**data["args"]), rows_from_json(data["rows"]), info,
                     [tuple(x) for x in data.get("soak_samples_kib", [])])
    return report(saved, markdown)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description="Tally benchmark: one command, one table.")
    p.add_argument("--quick", action="store_true", help="short smoke run: 2s per scenario, 1,000 accounts")
    p.add_argument("--duration-s", type=float, default=None, help="measured seconds per scenario (default 10)")
    p.add_argument("--warmup-s", type=float, default=None, help="unmeasured seconds before each (default 2)")
    p.add_argument("--soak-s", type=int, default=0, help="memory soak seconds (0 skips it; 600 for the target)")
    p.add_argument("--sqlite", action="store_true", help="also run PostBatch 1000 on a SQLite server")
    p.add_argument("--json", metavar="FILE", help="save the raw results as JSON")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    p.add_argument("--accounts", type=int, default=None, help="deposit accounts per tenant (default 10000)")
    p.add_argument("--gen-procs", type=int, default=1, help="load-generator processes per scenario (default 1)")
    p.add_argument("--channels", type=int, default=1, help="gRPC channels per generator process (default 1)")
    p.add_argument("--batch-callers", type=int, default=4, help="PostBatch calls in flight (default 4)")
    p.add_argument("--only", help="comma-separated scenario names to run (default all)")
    p.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for tally serve, e.g. TALLY_LINGER_MS=2 (repeatable)")
    p.add_argument("--py-spy", metavar="DIR", help="record a py-spy profile (raw) of the server per scenario")
    p.add_argument("--py-spy-gil", action="store_true", help="with --py-spy: only samples holding the GIL")
    p.add_argument("--py-spy-threads", action="store_true",
                   help="with --py-spy: every thread's wall time, waits included, each stack under its thread's "
                   "name (bench/profile_summary.py --thread NAME reads one)")
    p.add_argument("--snapshot", metavar="REV", help="run the server from `git archive REV` of src/ (e.g. HEAD) "
                   "instead of the working tree")
    p.add_argument("--quiet-wait-s", type=int, default=120,
                   help="before each scenario, wait up to this long for the machine to be idle (0: don't)")
    p.add_argument("--quiet-pct", type=int, default=15,
                   help="idle means at most this %% of one core busy outside the benchmark (default 15)")
    p.add_argument("--disk-vouchers", type=int, default=0, metavar="N",
                   help="last, post N transfer vouchers (PostBatch 1000, uniform) and report bytes on disk per "
                        "voucher (0, the default, skips it)")
    p.add_argument("--superuser", action="store_true", help="serve PostgreSQL as the superuser (skips row security) "
                   "instead of the service role tally_app, for comparison")
    p.add_argument("--report", metavar="FILE", help="only print the report of a saved --json FILE (no run)")
    p.add_argument("--timeline", action="store_true",
                   help="per Tally scenario, where the server's time goes: call, pipeline, transaction, apply, "
                        "commit (bench/timeline.py)")
    p.add_argument("--pg-statements", action="store_true",
                   help="pg_stat_statements per Tally scenario on PostgreSQL: each statement's cost per voucher")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temp dir (logs, raw generator output)")
    args = p.parse_args(argv)
    if args.duration_s is None:
        args.duration_s = 2.0 if args.quick else 10.0
    if args.warmup_s is None:
        args.warmup_s = 0.5 if args.quick else 2.0
    if args.accounts is None:
        args.accounts = 1000 if args.quick else 10_000
    if not 0 < args.duration_s <= 3600 or not 0 <= args.warmup_s <= 600:
        p.error("--duration-s must be in (0, 3600] and --warmup-s in [0, 600]")
    if not 0 <= args.disk_vouchers <= 10_000_000:
        p.error("--disk-vouchers must be in [0, 10000000]")
    if not 0 <= args.soak_s <= 7200:
        p.error("--soak-s must be in [0, 7200]")
    if not 2 <= args.accounts <= 1_000_000:
        p.error("--accounts must be in [2, 1000000]")
    if not 1 <= args.gen_procs <= 8 or not 1 <= args.channels <= 16 or not 1 <= args.batch_callers <= 64:
        p.error("--gen-procs 1..8, --channels 1..16, --batch-callers 1..64")
    for item in args.server_env:
        if "=" not in item or not item.startswith("TALLY_"):
            p.error(f"--server-env {item!r}: expected TALLY_NAME=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print(report_saved(args.report, args.markdown))
        return 0
    runner = Runner(args)

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    status = 0
    try:
        runner.run()
    except KeyboardInterrupt:
        runner.log("interrupted: cleaning up")
        status = 130
    except Exception as exc:  # noqa: BLE001 - report what ran, then fail
        runner.log(f"FAILED: {type(exc).__name__}: {exc}")
        status = 1
    finally:
        runner.close()
    if runner.rows:
        print(report(runner, args.markdown))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": [r.as_json() for r in runner.rows], "soak_samples_kib": runner.soak_samples,
                       "checks": [c.__dict__ for c in checks(runner.rows, runner.soak_samples, args.soak_s)],
                       "info": runner.info, "args": vars(args),
                       "command": shlex.join(getattr(sys, "orig_argv", sys.argv))}, f, indent=2)
    return status
