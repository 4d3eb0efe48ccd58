"""Webhook delivery lag under posting load: how long after a posting commits does a webhook receiver get it?

    .venv/bin/python bench/webhook_lag.py [--processes 2] [--posters 8] [--seconds 10] [--database-url URL]
    .venv/bin/python bench/webhook_lag.py --sqlite [--posters 8] [--seconds 10]

Starts `tally serve` processes on one PostgreSQL database (a throwaway durable server unless --database-url
is given; `--sqlite`: one process on a SQLite file), a webhook receiver on loopback in this process (every
signature verified with the `standardwebhooks` package), and one subscription to `ledger.entry.posted`.
Posters in a separate process (so their load does not disturb this process's clock readings) post
transfers through all processes in turn for `--seconds`; the subscription's deliverer is whichever process
holds its lease. For every posting the receiver records:

* created -> received: arrival minus the event's `timestamp` (the batch's clock reading, taken just before
  its transaction commits, so a slight over-estimate of commit -> receipt);
* acknowledged -> received: arrival minus the moment the poster's Post call returned.

Also checks that every acknowledged posting arrived, in sequence order, and counts repeats (none expected
with a healthy receiver) and bad signatures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from standardwebhooks.webhooks import Webhook, WebhookVerificationError  # noqa: E402

from bench.credentials import auth_metadata, tenant_key  # noqa: E402
from bench.stats import format_table, ms_text, percentile  # noqa: E402
from bench.stream_lag import _post_in_child, now_us, open_accounts  # noqa: E402
from tally.v1 import webhook_service_pb2 as hook_pb  # noqa: E402
from tally.v1 import webhook_service_pb2_grpc as hook_grpc  # noqa: E402

TENANT = "bench"
DRAIN_TIMEOUT_S = 120
SERVER_ENV = {"TALLY_WEBHOOK_KEY": Fernet.generate_key().decode(), "TALLY_WEBHOOK_HTTP_HOSTS": "127.0.0.1",
              "TALLY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}


class Receiver:
    """Verifies, records (voucher id -> arrival and event time; the sequences in arrival order), answers 204."""

    def __init__(self) -> None:
        self.secret = ""
        self.arrivals: dict[str, tuple[int, int]] = {}
        self.sequences: list[int] = []
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                arrived = now_us()
                try:
                    message = Webhook(receiver.secret).verify(body, dict(self.headers.items()))
                except WebhookVerificationError:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                stamp = datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00"))
                created = int(stamp.timestamp()) * 1_000_000 + stamp.microsecond
                with receiver.lock:
                    receiver.sequences.append(message["data"]["sequence"])
                    receiver.arrivals.setdefault(message["data"]["voucher_id"], (arrived, created))
                self.send_response(204)
                self.end_headers()

        return Handler


def subscribe(target: str, md: tuple, receiver: Receiver) -> None:
    with grpc.insecure_channel(target) as channel:
        created = hook_grpc.WebhookServiceStub(channel).CreateWebhook(hook_pb.CreateWebhookRequest(
            request_id="bench-hook", url=receiver.url, event_types=["ledger.entry.posted"]), metadata=md)
    receiver.secret = created.secret


def run(database_url: str, processes: int, posters: int, seconds: int, workdir: Path) -> int:
    from bench.tally_server import TallyServer

    servers, receiver = [], Receiver()
    try:
        for n in range(processes):
            extra = {**SERVER_ENV, "TALLY_AUTO_MIGRATE": "true" if n == 0 else "false"}
            servers.append(TallyServer(database_url, workdir, name=f"tally-{n}", extra_env=extra).start())
        targets = [s.target for s in servers]
        md = auth_metadata(tenant_key(database_url, TENANT))
        open_accounts(targets[0], md)
        subscribe(targets[0], md, receiver)
        time.sleep(1.5)  # a process has taken the lease
        acked = _post_in_child(targets, posters, seconds, md)
        _drain(receiver, acked)
        return report(receiver, acked, processes, posters, seconds)
    finally:
        for server in servers:
            server.stop()
        receiver.server.shutdown()


def _drain(receiver: Receiver, acked: dict) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while not set(acked) <= set(receiver.arrivals):
        if time.monotonic() > deadline:
            missing = len(set(acked) - set(receiver.arrivals))
            raise SystemExit(f"the receiver never got {missing} acknowledged vouchers")
        time.sleep(0.05)


def report(receiver: Receiver, acked: dict, processes: int, posters: int, seconds: int) -> int:
    sequences = receiver.sequences
    in_order = sequences == sorted(sequences)
    repeats = len(sequences) - len(set(sequences))
    ids = list(acked)
    created = sorted(receiver.arrivals[v][0] - receiver.arrivals[v][1] for v in ids)
    ack = sorted(receiver.arrivals[v][0] - acked[v][0] for v in ids)
    print(f"\nwebhook lag: {processes} process(es), {posters} posters, {seconds}s, {len(acked)} postings "
          f"({len(acked) // max(seconds, 1)}/s); the receiver got {len(sequences)} messages, "
          f"{'in order' if in_order else 'OUT OF ORDER'}, {repeats} repeated, {receiver.bad_signatures} bad "
          "signatures")
    print(format_table(["n", "created->received p50 ms", "p99 ms", "max ms", "ack->received p50 ms", "p99 ms"],
                       [[len(ids), ms_text(percentile(created, 50)), ms_text(percentile(created, 99)),
                         ms_text(created[-1]), ms_text(percentile(ack, 50)), ms_text(percentile(ack, 99))]]))
    return 0 if in_order and not receiver.bad_signatures else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--posters", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a throwaway server)")
    parser.add_argument("--sqlite", action="store_true", help="one process on a SQLite file instead")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tally-webhook-lag-") as tmp:
        if args.sqlite:
            return run(f"sqlite:///{Path(tmp) / 'tally.db'}", 1, args.posters, args.seconds, Path(tmp))
        if args.database_url:
            return run(args.database_url, args.processes, args.posters, args.seconds, Path(tmp))
        from bench.pg import BenchPostgres

        pg = BenchPostgres().start()
        try:
            pg.create_database("webhook_lag")
            return run(pg.sqlalchemy_url("webhook_lag"), args.processes, args.posters, args.seconds, Path(tmp))
        finally:
            pg.stop()


if __name__ == "__main__":
    sys.exit(main())
