"""The scale run: reads on a large ledger. Loads a tenant of --accounts deposit accounts and --vouchers transfer
vouchers into `tally serve` on PostgreSQL (as the service role, like bench/run.py) through the real API, then
times each read --repeats times and prints p50/p99.

    .venv/bin/python bench/scale.py                                  # 1,000,000 vouchers, 100,000 accounts
    .venv/bin/python bench/scale.py --vouchers 20000 --accounts 2000 # smoke
    .venv/bin/python bench/scale.py --reuse /tmp/tally-scale         # keep the loaded ledger for the next run

A share (--busy-pct) of the transfers credits one busy account (`merchant`), whose history the as-of and
statement reads walk. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402
from google.protobuf.timestamp_pb2 import Timestamp  # noqa: E402

from bench import disk, stats  # noqa: E402
from bench.credentials import auth_metadata, tenant_key  # noqa: E402
from bench.harness import AMOUNT_MAX, OPENING_BALANCE, serve_on_postgres  # noqa: E402
from bench.ledger_setup import MERCHANT, PREFIX, load_transfers, setup_tenant  # noqa: E402
from bench.loadgen import CURRENCY, account_code  # noqa: E402
from bench.pg import BenchPostgres  # noqa: E402
from tally.v1 import account_service_pb2 as acc_pb  # noqa: E402
from tally.v1 import account_service_pb2_grpc as acc_grpc  # noqa: E402
from tally.v1 import accounting_service_pb2 as post_pb  # noqa: E402
from tally.v1 import accounting_service_pb2_grpc as post_grpc  # noqa: E402
from tally.v1 import types_pb2  # noqa: E402

NS = 1_000_000_000
DB = "scale"
TENANT = "bench-scale"
STATE_FILE = "scale-state.json"  # in --reuse DIR: what was loaded, so a later run can skip the load
PAGE_SIZE = 500  # the API's largest page
DEADLINE_S = 120
HISTORY_PCTS = (1, 50, 99)
BATCH_BALANCES = 1000


def ledger_shape(args: argparse.Namespace) -> dict:
    return {"vouchers": args.vouchers, "accounts": args.accounts, "busy_pct": args.busy_pct}


def reusable(state: dict | None, args: argparse.Namespace) -> bool:
    """A kept ledger serves this run only if it was loaded completely with the same shape."""
    return bool(state) and state.get("complete") is True and state.get("shape") == ledger_shape(args)


def summary(samples_us: list[int]) -> dict:
    ordered = sorted(samples_us)
    return {"n": len(ordered), "p50_us": stats.percentile(ordered, 50), "p99_us": stats.percentile(ordered, 99),
            "max_us": ordered[-1] if ordered else None}


def timestamp_us(ts: Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def timestamp_of(us: int) -> Timestamp:
    return Timestamp(seconds=us // 1_000_000, nanos=us % 1_000_000 * 1000)


def walk(fetch: Callable[[str], tuple[list, int, str]], pages_max: int) -> tuple[list, str, list[int]]:
    """Follows page tokens from the first page (at most pages_max pages); `fetch(token)` answers (items to
    keep, rows on the page, next token). Returns the items kept, the token of the last full page reached
    (a late page; the last page may be short) and each page's time in us."""
    items, token, late, times, full = [], "", "", [], 0
    for _ in range(pages_max):
        t0 = time.monotonic_ns()
        page, rows, following = fetch(token)
        times.append((time.monotonic_ns() - t0) // 1000)
        items += page
        if rows >= full:
            full, late = rows, token
        if not following:
            break
        token = following
    return items, late, times


class Scale:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.keep = Path(args.reuse).resolve() if args.reuse else None
        self.workdir = Path(tempfile.mkdtemp(prefix="tally-scale-"))
        self.pg = BenchPostgres(keep_dir=self.keep / "pg" if self.keep else None)
        self.server = None
        self.state: dict = {}

    def log(self, text: str) -> None:
        print(f"[scale {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def state_path(self) -> Path | None:
        return self.keep / STATE_FILE if self.keep else None

    def save_state(self) -> None:
        if self.state_path():
            self.state_path().write_text(json.dumps(self.state, indent=2))

    # -- set-up ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.pg.start()
        path = self.state_path()
        old = json.loads(path.read_text()) if path and path.exists() else None
        if self.pg.reused and self.pg.has_database(DB) and reusable(old, self.args):
            self.state = old
            self.log(f"reusing the ledger in {self.keep} ({old['shape']})")
        elif self.pg.has_database(DB):
            self.log(f"the kept ledger in {self.keep} is not this shape or incomplete: loading it again")
            with self.pg.connect() as conn:
                conn.execute(f"DROP DATABASE {DB} WITH (FORCE)")
        self.server = serve_on_postgres(self.pg, DB, self.workdir, {}, self.args.superuser)
        self.log(f"tally serve pid {self.server.pid} on {self.server.target}")

    def load(self) -> None:
        args, t0 = self.args, time.monotonic_ns()
        self.state = {"shape": ledger_shape(args), "complete": False, "tenant": TENANT,
                      "api_key": tenant_key(self.server.admin_url, TENANT)}
        self.save_state()
        self.log(f"creating and funding {args.accounts} accounts (CreateAccount, {args.create_concurrency} at a time)")
        setup = asyncio.run(setup_tenant(self.server.target, self.state["api_key"], TENANT, args.accounts,
                                         OPENING_BALANCE, concurrency=args.create_concurrency))
        t1 = time.monotonic_ns()
        self.log(f"accounts took {setup['setup_s']}s; posting {args.vouchers} transfers (PostBatch 1000, "
                 f"{args.in_flight} in flight, {args.busy_pct}% to {MERCHANT})")
        busy = asyncio.run(load_transfers(self.server.target, self.state["api_key"], args.vouchers, args.accounts,
                                          AMOUNT_MAX, busy_pct=args.busy_pct, in_flight=args.in_flight))
        t2 = time.monotonic_ns()
        with self.pg.connect(DB) as conn:  # VACUUM (ANALYZE), as autovacuum would in time; sizes for the report
            sizes = disk.table_sizes(conn)
        self.state["load"] = {"accounts_s": (t1 - t0) // NS, "vouchers_s": (t2 - t1) // NS,
                              "vouchers_per_s": stats.rate_per_s(args.vouchers, t2 - t1),
                              "busy_vouchers": busy, "table_bytes": sizes, "vacuum_s": (time.monotonic_ns() - t2) // NS}
        self.log(f"loaded: {self.state['load']}")
        self.save_state()

    def explore(self, channel: grpc.Channel) -> None:
        """Walks the busy account's statement and the voucher lists once, every page timed: the late pages'
        tokens and the busy account's posting times (for the as-of reads)."""
        md = auth_metadata(self.state["api_key"])
        accounts, accounting = acc_grpc.AccountServiceStub(channel), post_grpc.AccountingServiceStub(channel)
        busy = accounts.GetBalance(acc_pb.GetBalanceRequest(account=types_pb2.AccountRef(code=MERCHANT)),
                                   metadata=md, timeout=DEADLINE_S).balance
        pages_max = self.args.walk_pages_max

        def entries(token: str):
            r = accounts.ListEntries(acc_pb.ListEntriesRequest(account=types_pb2.AccountRef(code=MERCHANT),
                                                               page_size=PAGE_SIZE, page_token=token),
                                     metadata=md, timeout=DEADLINE_S)
            return [timestamp_us(e.post_time) for e in r.entries], len(r.entries), r.next_page_token

        def vouchers(account_id: str):
            def fetch(token: str):
                r = accounting.ListVouchers(post_pb.ListVouchersRequest(page_size=PAGE_SIZE, page_token=token,
                                                                        account_id=account_id),
                                            metadata=md, timeout=DEADLINE_S)
                return [v.id for v in r.vouchers[:1]], len(r.vouchers), r.next_page_token
            return fetch

        self.log("walking the busy account's entries and the voucher lists (every page)")
        times, late_entries, entry_pages = walk(entries, pages_max)
        ids, late_all, all_pages = walk(vouchers(""), pages_max)
        _, late_busy, busy_pages = walk(vouchers(busy.account_id), pages_max)
        times.sort()
        self.state["explore"] = {
            "busy_account_id": busy.account_id, "accounting_date": busy.accounting_date,
            "busy_entries_seen": len(times), "voucher_ids": ids[:: max(1, len(ids) // 50)][:50],
            "as_of_us": {str(p): stats.percentile(times, p) for p in HISTORY_PCTS} if times else {},
            "late_tokens": {"entries": late_entries, "vouchers": late_all, "vouchers_busy": late_busy},
            "walks": {"ListEntries busy, every page": summary(entry_pages),
                      "ListVouchers tenant, every page": summary(all_pages),
                      "ListVouchers busy, every page": summary(busy_pages)},
        }
        self.state["complete"] = True
        self.save_state()

    # -- the timed reads ---------------------------------------------------------------------------------
    def reads(self, channel: grpc.Channel) -> dict[str, Callable[[int], object]]:
        md, ex = auth_metadata(self.state["api_key"]), self.state["explore"]
        accounts, accounting = acc_grpc.AccountServiceStub(channel), post_grpc.AccountingServiceStub(channel)
        busy = types_pb2.AccountRef(code=MERCHANT)
        refs = [types_pb2.AccountRef(code=account_code(PREFIX, i)) for i in range(min(BATCH_BALANCES,
                                                                                       self.args.accounts))]
        late = ex["late_tokens"]
        run = uuid.uuid4().hex[:8]

        def call(method, request):
            return lambda _i: method(request, metadata=md, timeout=DEADLINE_S)

        def entries(token: str):
            return call(accounts.ListEntries, acc_pb.ListEntriesRequest(account=busy, page_size=PAGE_SIZE,
                                                                        page_token=token))

        def vouchers(token: str, account_id: str = ""):
            return call(accounting.ListVouchers, post_pb.ListVouchersRequest(page_size=PAGE_SIZE, page_token=token,
                                                                             account_id=account_id))

        out = {"GetBalance busy, now": call(accounts.GetBalance, acc_pb.GetBalanceRequest(account=busy))}
        for pct, us in ex["as_of_us"].items():
            out[f"GetBalance busy, as_of_time {pct}% into its history"] = call(
                accounts.GetBalance, acc_pb.GetBalanceRequest(account=busy, as_of_time=timestamp_of(us)))
        out["GetBalance busy, as_of_date"] = call(accounts.GetBalance, acc_pb.GetBalanceRequest(
            account=busy, as_of_date=ex["accounting_date"]))
        out["ListEntries busy, first page"] = entries("")
        out["ListEntries busy, late page"] = entries(late["entries"])
        out["ListVouchers tenant, first page"] = vouchers("")
        out["ListVouchers tenant, late page"] = vouchers(late["vouchers"])
        out["ListVouchers busy, first page"] = vouchers("", ex["busy_account_id"])
        out["ListVouchers busy, late page"] = vouchers(late["vouchers_busy"], ex["busy_account_id"])
        out[f"BatchGetBalances {len(refs)}"] = call(accounts.BatchGetBalances,
                                                    acc_pb.BatchGetBalancesRequest(accounts=refs))
        ids = ex["voucher_ids"]
        out["GetVoucher"] = lambda i: accounting.GetVoucher(post_pb.GetVoucherRequest(voucher_id=ids[i % len(ids)]),
                                                            metadata=md, timeout=DEADLINE_S)
        out["CreateAccount"] = lambda i: accounts.CreateAccount(acc_pb.CreateAccountRequest(
            request_id=f"scale-{run}-{i}", code=f"scale-{run}-{i}", type=types_pb2.ACCOUNT_TYPE_DEPOSIT,
            currency=CURRENCY), metadata=md, timeout=DEADLINE_S)
        return out

    def time_reads(self, channel: grpc.Channel) -> dict[str, dict]:
        results = {}
        for name, read in self.reads(channel).items():
            samples, errors = [], {}
            for i in range(-1, self.args.repeats):  # one untimed warm-up call
                t0 = time.monotonic_ns()
                try:
                    read(i)
                except grpc.RpcError as exc:
                    errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                    continue
                if i >= 0:
                    samples.append((time.monotonic_ns() - t0) // 1000)
            results[name] = {**summary(samples), "errors": errors}
            self.log(f"{name}: p50 {stats.ms_text(results[name]['p50_us'])} ms, "
                     f"p99 {stats.ms_text(results[name]['p99_us'])} ms{f', errors {errors}' if errors else ''}")
        return results

    def run(self) -> dict:
        self.start()
        if not self.state:
            self.load()
        with grpc.insecure_channel(self.server.target) as channel:
            if not self.state.get("complete"):
                self.explore(channel)
            reads = self.time_reads(channel)
        return {"state": {k: v for k, v in self.state.items() if k != "api_key"}, "reads": reads,
                "postgres": self.pg.describe(), "command": shlex.join(getattr(sys, "orig_argv", sys.argv))}

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.pg.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def report(result: dict, markdown: bool) -> str:
    st, ex = result["state"], result["state"]["explore"]
    rows = [[name, r["n"], stats.ms_text(r["p50_us"]), stats.ms_text(r["p99_us"]), stats.counts_text(r["errors"])]
            for name, r in result["reads"].items()]
    rows += [[name, r["n"], stats.ms_text(r["p50_us"]), stats.ms_text(r["p99_us"]), "once, loading"]
             for name, r in ex["walks"].items()]
    load = st.get("load", {})
    sizes = load.get("table_bytes", {})
    total = sum(v or 0 for v in sizes.values())
    shape = st["shape"]
    lines = [stats.format_table(["read", "calls", "p50 ms", "p99 ms", "errors / notes"], rows, markdown=markdown,
                                right=[False, True, True, True, False]), "",
             f"Ledger: {shape['vouchers']:,} transfer vouchers, {shape['accounts']:,} deposit accounts; "
             f"{load.get('busy_vouchers', '-')} vouchers ({shape['busy_pct']}%) credit the busy account, "
             f"{ex['busy_entries_seen']:,} of its entries walked; pages of {PAGE_SIZE}.",
             f"Load: accounts {load.get('accounts_s', '-')} s, vouchers {load.get('vouchers_s', '-')} s "
             f"({load.get('vouchers_per_s', '-')} vouchers/s), VACUUM (ANALYZE) {load.get('vacuum_s', '-')} s; "
             f"tables a voucher writes: {total:,} B after VACUUM "
             f"({total // max(1, shape['vouchers']):,} B per voucher, accounts included).",
             f"PostgreSQL {result['postgres'].get('version', '-')}; command: {result['command']}"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/scale.py", description="Tally reads on a large ledger (PostgreSQL).")
    p.add_argument("--vouchers", type=int, default=1_000_000, help="transfer vouchers to load (default 1,000,000)")
    p.add_argument("--accounts", type=int, default=100_000, help="deposit accounts (default 100,000)")
    p.add_argument("--busy-pct", type=int, default=10, help="%% of the transfers that credit the busy account")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per read (default 20)")
    p.add_argument("--in-flight", type=int, default=4, help="PostBatch calls in flight while loading (default 4)")
    p.add_argument("--create-concurrency", type=int, default=16, help="CreateAccount calls in flight (default 16)")
    p.add_argument("--walk-pages-max", type=int, default=5000, help="pages walked per list to reach a late page")
    p.add_argument("--reuse", metavar="DIR", help="keep PostgreSQL's data and what was loaded in DIR; a later run "
                   "with the same --vouchers, --accounts and --busy-pct skips the load")
    p.add_argument("--superuser", action="store_true", help="serve as the PostgreSQL superuser (no row security)")
    p.add_argument("--json", metavar="FILE", help="save the results as JSON")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = p.parse_args(argv)
    if not 1_000 <= args.vouchers <= 100_000_000 or not 2 <= args.accounts <= 10_000_000:
        p.error("--vouchers 1,000..100,000,000 and --accounts 2..10,000,000")
    if not 0 < args.busy_pct <= 100 or not 1 <= args.repeats <= 10_000 or not 1 <= args.in_flight <= 64:
        p.error("--busy-pct 1..100, --repeats 1..10,000, --in-flight 1..64")
    if not 1 <= args.create_concurrency <= 256 or not 1 <= args.walk_pages_max <= 1_000_000:
        p.error("--create-concurrency 1..256, --walk-pages-max 1..1,000,000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scale = Scale(args)
    try:
        result = scale.run()
    except KeyboardInterrupt:
        scale.log("interrupted: cleaning up")
        return 130
    finally:
        scale.close()
    print(report(result, args.markdown))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
