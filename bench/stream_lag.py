"""Stream lag under posting load: how long after a posting commits does a StreamEvents consumer get it?

    .venv/bin/python bench/stream_lag.py [--processes 2] [--posters 16] [--seconds 10] [--database-url URL]

Starts `tally serve` processes on one PostgreSQL database (a throwaway durable server unless --database-url
is given), opens a StreamEvents consumer on the first process, and runs `--posters` concurrent posters (in a
separate process, so their load does not disturb the consumer's clock readings) that post transfers through
all processes in turn for `--seconds`. For every ledger.entry.posted event the consumer records:

* created -> delivered: arrival time minus the event's `time` (the batch's clock reading, taken just before
  its transaction commits, so this is a slight over-estimate of commit -> delivery);
* acknowledged -> delivered: arrival minus the moment the poster's Post call returned (negative when the
  stream was faster than the response).

Both split by where the posting went in: the consumer's own process (after-commit wake-up) or another one
(PostgreSQL NOTIFY). Also checks that the consumer saw every sequence exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from bench.credentials import auth_metadata, tenant_key  # noqa: E402
from bench.stats import format_table, ms_text, percentile  # noqa: E402
from tally.v1 import account_service_pb2 as acc_pb  # noqa: E402
from tally.v1 import account_service_pb2_grpc as acc_grpc  # noqa: E402
from tally.v1 import accounting_service_pb2 as post_pb  # noqa: E402
from tally.v1 import accounting_service_pb2_grpc as post_grpc  # noqa: E402
from tally.v1 import flows_pb2, types_pb2  # noqa: E402

TENANT = "bench"
ACCOUNTS = 64
FUNDS = 10**12
DRAIN_TIMEOUT_S = 60


def now_us() -> int:
    return time.time_ns() // 1000


# --- set-up ------------------------------------------------------------------------------------------

def open_accounts(target: str, md: tuple) -> None:
    with grpc.insecure_channel(target) as channel:
        accounts, accounting = acc_grpc.AccountServiceStub(channel), post_grpc.AccountingServiceStub(channel)
        accounts.CreateAccount(acc_pb.CreateAccountRequest(
            request_id="funding", code="funding", type=types_pb2.ACCOUNT_TYPE_INTERNAL,
            normal_side=types_pb2.SIDE_DEBIT, floor_policy=types_pb2.FLOOR_POLICY_UNBOUNDED, currency="USD"),
            metadata=md)
        for i in range(ACCOUNTS):
            accounts.CreateAccount(acc_pb.CreateAccountRequest(
                request_id=f"open-{i}", code=f"a{i}", type=types_pb2.ACCOUNT_TYPE_DEPOSIT, currency="USD"),
                metadata=md)
            lines = [types_pb2.LineInput(account=types_pb2.AccountRef(code="funding"), side=types_pb2.SIDE_DEBIT,
                                         amount=FUNDS, currency="USD"),
                     types_pb2.LineInput(account=types_pb2.AccountRef(code=f"a{i}"), side=types_pb2.SIDE_CREDIT,
                                         amount=FUNDS, currency="USD")]
            accounting.Post(post_pb.PostRequest(request_id=f"fund-{i}", adjustment=flows_pb2.AdjustmentFlow(
                lines=lines, reason="bench")), metadata=md)


# --- posters (a child process) -----------------------------------------------------------------------

def post_for(targets: list[str], posters: int, seconds: int, out, md: tuple) -> None:
    """Child process: `posters` concurrent callers for `seconds`; sends {voucher_id: (ack_us, target)}."""
    out.send(asyncio.run(_post_all(targets, posters, seconds, md)))


async def _post_all(targets: list[str], posters: int, seconds: int, md: tuple) -> dict[str, tuple[int, int]]:
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    acked: dict[str, tuple[int, int]] = {}
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_poster(n, channels, deadline, acked, md) for n in range(posters)))
    for channel in channels:
        await channel.close()
    return acked


async def _poster(n: int, channels: list, deadline: float, acked: dict, md: tuple) -> None:
    rng, i = random.Random(n), 0
    while time.monotonic() < deadline:
        index = (n + i) % len(channels)
        source, destination = rng.sample(range(ACCOUNTS), 2)
        flow = flows_pb2.TransferFlow(to=types_pb2.AccountRef(code=f"a{destination}"), amount=rng.randint(1, 999),
                                      currency="USD")
        getattr(flow, "from").CopyFrom(types_pb2.AccountRef(code=f"a{source}"))
        stub = post_grpc.AccountingServiceStub(channels[index])
        response = await stub.Post(post_pb.PostRequest(request_id=f"p{n}-{i}", transfer=flow), metadata=md,
                                   timeout=30)
        acked[response.vouchers[0].id] = (now_us(), index)
        i += 1


# --- the consumer ------------------------------------------------------------------------------------

class Consumer(threading.Thread):
    def __init__(self, target: str, md: tuple) -> None:
        super().__init__(daemon=True)
        self.channel = grpc.insecure_channel(target)
        self.call = post_grpc.AccountingServiceStub(self.channel).StreamEvents(post_pb.StreamEventsRequest(),
                                                                               metadata=md)
        self.arrivals: dict[str, tuple[int, int]] = {}  # voucher id -> (arrival_us, created_us)
        self.sequences: list[int] = []

    def run(self) -> None:
        try:
            for response in self.call:
                event = response.event
                self.sequences.append(event.sequence)
                if event.type == "ledger.entry.posted":
                    self.arrivals[event.voucher_id] = (now_us(), event.time.ToMicroseconds())
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                print(f"consumer ended: {exc.code().name} {exc.details()}", file=sys.stderr)

    def stop(self) -> None:
        self.call.cancel()
        self.join(10)
        self.channel.close()


# --- the run -----------------------------------------------------------------------------------------

def run(database_url: str, processes: int, posters: int, seconds: int, workdir: Path) -> int:
    from bench.tally_server import TallyServer

    servers = []
    try:
        for n in range(processes):
            extra = {"TALLY_AUTO_MIGRATE": "true" if n == 0 else "false"}
            servers.append(TallyServer(database_url, workdir, name=f"tally-{n}", extra_env=extra).start())
        targets = [s.target for s in servers]
        md = auth_metadata(tenant_key(database_url, TENANT))
        open_accounts(targets[0], md)
        consumer = Consumer(targets[0], md)
        consumer.start()
        time.sleep(0.5)  # subscribed
        acked = _post_in_child(targets, posters, seconds, md)
        _drain(consumer, acked)
        consumer.stop()
        return report(consumer, acked, processes, posters, seconds)
    finally:
        for server in servers:
            server.stop()


def _post_in_child(targets: list[str], posters: int, seconds: int, md: tuple) -> dict[str, tuple[int, int]]:
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=post_for, args=(targets, posters, seconds, send, md))
    child.start()
    acked = receive.recv()
    child.join(30)
    return acked


def _drain(consumer: Consumer, acked: dict) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while not set(acked) <= set(consumer.arrivals):
        if time.monotonic() > deadline:
            missing = len(set(acked) - set(consumer.arrivals))
            raise SystemExit(f"the stream never delivered {missing} acknowledged vouchers")
        time.sleep(0.05)


def report(consumer: Consumer, acked: dict, processes: int, posters: int, seconds: int) -> int:
    sequences = consumer.sequences
    contiguous = sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    rows = []
    for label, origins in (("all", None), ("same process", {0}), ("other process", set(range(1, processes)))):
        ids = [v for v, (_, origin) in acked.items() if origins is None or origin in origins]
        if not ids:
            continue
        created = sorted(consumer.arrivals[v][0] - consumer.arrivals[v][1] for v in ids)
        ack = sorted(consumer.arrivals[v][0] - acked[v][0] for v in ids)
        rows.append([label, len(ids), ms_text(percentile(created, 50)), ms_text(percentile(created, 99)),
                     ms_text(created[-1]), ms_text(percentile(ack, 50)), ms_text(percentile(ack, 99))])
    print(f"\nstream lag: {processes} processes, {posters} posters, {seconds}s, {len(acked)} postings "
          f"({len(acked) // max(seconds, 1)}/s); consumer on process 0 saw {len(sequences)} events, "
          f"{'contiguous, no duplicate' if contiguous else 'WITH GAPS OR DUPLICATES'}")
    print(format_table(["postings via", "n", "created->delivered p50 ms", "p99 ms", "max ms",
                        "ack->delivered p50 ms", "p99 ms"], rows))
    return 0 if contiguous else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--posters", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a throwaway server)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tally-stream-lag-") as tmp:
        if args.database_url:
            return run(args.database_url, args.processes, args.posters, args.seconds, Path(tmp))
        from bench.pg import BenchPostgres

        pg = BenchPostgres().start()
        try:
            pg.create_database("stream_lag")
            return run(pg.sqlalchemy_url("stream_lag"), args.processes, args.posters, args.seconds, Path(tmp))
        finally:
            pg.stop()


if __name__ == "__main__":
    sys.exit(main())
