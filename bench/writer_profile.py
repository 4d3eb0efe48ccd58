"""In-process profile of the batch writer: no gRPC, no event loop in the measured part.

Builds transfer submissions the way `Posting.submission` does, then writes them in batches exactly as the
pipeline's writer thread does (`uow.write` around `write_batch`, with the service's spending controls and, as
`tally serve` has by default, a writer memory: `--no-memory` reads every batch's opening instead), and
reports per voucher:

* writer CPU: CPU time of the writing thread (`time.thread_time_ns`), which includes SQLite's own work but
  not the PostgreSQL server's;
* wall: elapsed time of the write transactions, and the vouchers/s that makes;
* prepare CPU: building the submissions (flow -> drafts -> Submission with its request fingerprint), which
  the server does in the event loop before queueing.

    PYTHONPATH=src:. .venv/bin/python bench/writer_profile.py                 # both backends
    PYTHONPATH=src:. .venv/bin/python bench/writer_profile.py --backend sqlite --profile 25
    PYTHONPATH=src:. .venv/bin/python bench/writer_profile.py --backend postgresql --batch-size 1 \
        --batches 3000 --warmup-batches 3000 --workloads uniform --no-servicer     # a lone Post's write

`--busy-thread` runs a thread of pure Python beside the writer for the measured part, as the server's event
loop is beside its writer under load: both take turns on one GIL, and the writer gives it up at every wait
for the database.

PostgreSQL is a throwaway server from tests/pgserver.py (durability off: it measures CPU, not fsync).
Timings are integer microseconds; money is integer atomic units.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert

from bench import servicer_side
from tally.bootstrap import build_services, tune_gc
from tally.config import Settings
from tally.domain.accounts import AccountType, FloorPolicy, NewAccount, Side, open_account
from tally.domain.flows import AdjustmentFlow, TransferFlow
from tally.domain.ids import new_id
from tally.domain.vouchers import AccountRef, LineDraft
from tally.service.commands import PostFlow
from tally.service.posting.batch import Posted, Submission, write_batch
from tally.service.posting.memory import WriterMemory
from tally.service.posting.pipeline import now_us
from tally.storage import tables as t
from tally.storage.engine import make_engines
from tally.storage.migrate import migrate

TENANT = "profile"
CURRENCY = "USD"
FUNDING = "funding"
MERCHANT = "merchant"
EMPTY = "empty"  # never funded: transfers out of it are refused (INSUFFICIENT_FUNDS)
OPENING_FUNDS = 10**12
CREDITS_PER_VOUCHER_MAX = 63
WORKLOADS = ("uniform", "hot")


@dataclass(frozen=True)
class Figures:
    backend: str
    workload: str
    vouchers: int
    refused: int
    writer_cpu_ns: int
    wall_ns: int
    prepare_cpu_ns: int

    def row(self) -> str:
        per = max(self.vouchers + self.refused, 1)
        rate = (self.vouchers + self.refused) * 1_000_000_000 // max(self.wall_ns, 1)
        return (f"| {self.backend} | {self.workload} | {self.vouchers} | {self.refused} | "
                f"{self.writer_cpu_ns // 1000 // per} | {self.wall_ns // 1000 // per} | {rate} | "
                f"{self.prepare_cpu_ns // 1000 // per} |")


HEADER = ("| backend | workload | posted | refused | writer CPU us/voucher | wall us/voucher | vouchers/s | "
          "prepare CPU us/voucher |\n|---|---|---:|---:|---:|---:|---:|---:|")


def account_code(i: int) -> str:
    return f"acct-{i:05d}"


class Rig:
    """One migrated database with the service stack on it, and the writer's call as the pipeline makes it."""

    def __init__(self, url: str, memory: bool = True) -> None:
        migrate(url)
        self.engines = make_engines(url, pool_size=2)
        settings = Settings(database_url=url, db_pool_size=2)
        self.services = build_services(settings, self.engines)
        self.memory = WriterMemory(settings.writer_memory_accounts_max) if memory else None
        self.loop = asyncio.new_event_loop()
        self.request_no = 0

    def close(self) -> None:
        self.loop.close()
        self.engines.dispose()

    def write(self, subs: list[Submission]) -> list:
        pipeline, memory = self.services.pipeline, self.memory
        outcomes = self.services.uow.write({TENANT}, lambda conn: write_batch(
            conn, subs, now_us(), pipeline.calendar, pipeline.opener, pipeline.controls, memory))
        if memory is not None:
            memory.settle()  # as the pipeline does once the transaction has committed
        return outcomes

    def submissions(self, flows: list) -> list[Submission]:
        posting = self.services.posting
        commands = []
        for flow in flows:
            self.request_no += 1
            commands.append(PostFlow(TENANT, f"req-{self.request_no}", flow))

        async def build() -> list[Submission]:
            return [await posting.submission(c) for c in commands]

        return self.loop.run_until_complete(build())


def open_accounts(rig: Rig, count: int) -> None:
    """Inserts the accounts in one transaction (set-up, not measured)."""
    known = frozenset(rig.services.settings.currencies)
    specs = [NewAccount(account_code(i), AccountType.DEPOSIT, CURRENCY) for i in range(count)]
    specs += [NewAccount(MERCHANT, AccountType.DEPOSIT, CURRENCY), NewAccount(EMPTY, AccountType.DEPOSIT, CURRENCY),
              NewAccount(FUNDING, AccountType.INTERNAL, CURRENCY, normal_side=Side.DEBIT,
                         floor_policy=FloorPolicy.UNBOUNDED)]
    now = now_us()
    opened = [open_account(s, account_id=new_id(), tenant_id=TENANT, now_us=now, currencies=known) for s in specs]
    rows = [{"id": a.id, "tenant_id": a.tenant_id, "code": a.code, "name": a.name, "type": a.type.value,
             "normal_side": a.normal_side.value, "currency": a.currency, "status": a.status.value,
             "parent_id": None, "credit_limit": 0, "floor_policy": a.floor_policy.value, "metadata": "{}",
             "created_us": now, "updated_us": now} for a in opened]
    balances = [{"account_id": a.id, "tenant_id": TENANT, "current": 0, "locked": 0, "previous_day": 0,
                 "last_date": "", "entry_count": 0, "updated_us": now} for a in opened]

    def work(conn) -> None:
        conn.execute(insert(t.accounts), rows)
        conn.execute(insert(t.balances), balances)

    rig.services.uow.write({TENANT}, work)


def fund_accounts(rig: Rig, count: int, batch_size: int) -> None:
    codes = [account_code(i) for i in range(count)] + [MERCHANT]
    flows = []
    for start in range(0, len(codes), CREDITS_PER_VOUCHER_MAX):
        chunk = codes[start:start + CREDITS_PER_VOUCHER_MAX]
        lines = [LineDraft(AccountRef(code=FUNDING), Side.DEBIT, OPENING_FUNDS * len(chunk), CURRENCY)]
        lines += [LineDraft(AccountRef(code=c), Side.CREDIT, OPENING_FUNDS, CURRENCY) for c in chunk]
        flows.append(AdjustmentFlow(tuple(lines), "opening funds"))
    for start in range(0, len(flows), batch_size):
        outcomes = rig.write(rig.submissions(flows[start:start + batch_size]))
        if not all(isinstance(o, Posted) for o in outcomes):
            raise RuntimeError(f"funding failed: {next(o for o in outcomes if not isinstance(o, Posted))!r}")


def analyze(rig: Rig) -> None:
    """Statistics for the planner, as autovacuum gives a server's tables soon after they fill: without
    them PostgreSQL plans the account reads blind, and a read of a few keys among 10,000 may scan."""
    engine = rig.engines.write
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()


def transfer_flows(workload: str, size: int, accounts: int, refusals_pct: int, rng: random.Random) -> list:
    flows = []
    for _ in range(size):
        amount = rng.randint(1, 1000)
        if rng.randrange(100) < refusals_pct:
            source, destination = EMPTY, MERCHANT
        elif workload == "hot":
            source, destination = account_code(rng.randrange(accounts)), MERCHANT
        else:
            i, j = rng.sample(range(accounts), 2)
            source, destination = account_code(i), account_code(j)
        flows.append(TransferFlow(AccountRef(code=source), AccountRef(code=destination), amount, CURRENCY))
    return flows


def measure_servicer(rig: Rig, backend: str, workload: str, args: argparse.Namespace,
                     rng: random.Random) -> servicer_side.ServicerFigures:
    """The servicer's CPU around the same writes: PostBatch's and Post's request and response sides."""
    side = servicer_side.ServicerSide(rig, TENANT)
    totals, vouchers = [0, 0, 0, 0], 0
    for batch_no in range(args.warmup_batches + args.batches):
        flows = transfer_flows(workload, args.batch_size, args.accounts, 0, rng)
        spent, posted = side.run(flows, f"{workload}-{batch_no}")
        if batch_no >= args.warmup_batches:
            totals, vouchers = [a + b for a, b in zip(totals, spent, strict=True)], vouchers + posted
    return servicer_side.ServicerFigures(backend, workload, vouchers, *totals)


def measure(rig: Rig, backend: str, workload: str, args: argparse.Namespace, profiler: cProfile.Profile | None,
            rng: random.Random) -> Figures:
    posted = refused = writer_ns = wall_ns = prepare_ns = 0
    for batch_no in range(args.warmup_batches + args.batches):
        flows = transfer_flows(workload, args.batch_size, args.accounts, args.refusals_pct, rng)
        started_cpu = time.thread_time_ns()
        subs = rig.submissions(flows)
        prepared_cpu = time.thread_time_ns()
        started_wall = time.perf_counter_ns()
        if profiler is not None and batch_no >= args.warmup_batches:
            profiler.enable()
        outcomes = rig.write(subs)
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.perf_counter_ns() - started_wall, time.thread_time_ns() - prepared_cpu
        if batch_no < args.warmup_batches:
            continue
        ok = sum(isinstance(o, Posted) for o in outcomes)
        bad = [o for o in outcomes if not isinstance(o, Posted)]
        if any(getattr(o, "reason", "") != "INSUFFICIENT_FUNDS" for o in bad):
            raise RuntimeError(f"unexpected refusal: {next(o for o in bad if o.reason != 'INSUFFICIENT_FUNDS')!r}")
        posted, refused = posted + ok, refused + len(bad)
        writer_ns, wall_ns, prepare_ns = writer_ns + cpu, wall_ns + wall, prepare_ns + prepared_cpu - started_cpu
    return Figures(backend, workload, posted, refused, writer_ns, wall_ns, prepare_ns)


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="tally-writer-profile-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'tally.db'}"
        return
    from tests.pgserver import start_server  # only when PostgreSQL is wanted

    server = start_server()
    try:
        yield server.create_database("writer_profile")
    finally:
        server.stop()


def run_backend(backend: str, args: argparse.Namespace) -> list:
    with database(backend) as url:
        rig = Rig(url, args.memory)
        try:
            open_accounts(rig, args.accounts)
            fund_accounts(rig, args.accounts, args.batch_size)
            analyze(rig)
            tune_gc()  # as `tally serve` does once it has started
            figures = []
            for workload in args.workloads:
                # CPU time, not wall time: the writer's waits for the database are not its cost.
                profiler = cProfile.Profile(time.thread_time_ns, 1e-9) if args.profile else None
                with busy_thread() if args.busy_thread else contextlib.nullcontext():
                    figures.append(measure(rig, backend, workload, args, profiler, random.Random(args.seed)))
                if profiler is not None:
                    print(f"\n## cProfile: {backend} {workload}, write calls only")
                    print(profile_text(profiler, args.profile, args.profile_sort))
            if args.servicer:
                figures += [measure_servicer(rig, backend, w, args, random.Random(args.seed)) for w in args.workloads]
            return figures
        finally:
            rig.close()


@contextlib.contextmanager
def busy_thread() -> Iterator[None]:
    """A thread that runs Python and never waits, until the block ends."""
    stop = threading.Event()

    def spin() -> None:
        table: dict[int, tuple[int, str]] = {}
        while not stop.is_set():
            for i in range(1000):
                table[i % 97] = (i, str(i))

    thread = threading.Thread(target=spin, name="busy", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def profile_text(profiler: cProfile.Profile, top: int, sort: str) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(sort).print_stats(top)
    return out.getvalue()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        type=lambda s: [w for w in s.split(",") if w in WORKLOADS] or list(WORKLOADS))
    parser.add_argument("--accounts", type=int, default=10_000, help="funded deposit accounts")
    parser.add_argument("--batch-size", type=int, default=1000, help="submissions per write transaction")
    parser.add_argument("--batches", type=int, default=5, help="measured batches per workload")
    parser.add_argument("--warmup-batches", type=int, default=1)
    parser.add_argument("--refusals-pct", type=int, default=0,
                        help="percent of transfers out of an unfunded account (refused, exercises the undo path)")
    parser.add_argument("--seed", type=int, default=20260521)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print cProfile's top N functions")
    parser.add_argument("--no-servicer", dest="servicer", action="store_false",
                        help="skip timing the servicer's side (PostBatch and Post: proto in, proto out)")
    parser.add_argument("--busy-thread", action="store_true",
                        help="a thread of pure Python beside the writer, as the event loop under load")
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="no writer memory: every batch reads its opening (TALLY_WRITER_MEMORY_ACCOUNTS_MAX=0)")
    parser.add_argument("--profile-sort", default="tottime", choices=("tottime", "cumulative"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    figures = [f for backend in backends for f in run_backend(backend, args)]
    print(f"\n{args.batches} batches of {args.batch_size} transfers per workload after {args.warmup_batches} "
          f"warm-up; {args.accounts} accounts; refusals {args.refusals_pct}%")
    print(HEADER)
    for f in figures:
        if isinstance(f, Figures):
            print(f.row())
    if args.servicer:
        print(f"\nServicer side, CPU of this thread per posted voucher\n{servicer_side.HEADER}")
        for f in figures:
            if isinstance(f, servicer_side.ServicerFigures):
                print(f.row())


if __name__ == "__main__":
    main()
