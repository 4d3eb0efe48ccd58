"""`tally serve` with TALLY_PROCESSES=2 on PostgreSQL: two serving processes on one port, both answering, the
ledger exact, a killed one started again, SIGTERM stopping all; refused on SQLite and on port 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tally_client import TallyClient, pb

from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tests.client.test_client_server import funding
from tests.e2e.test_e2e_serve_process import free_port, open_channel, tally_command, wait_serving
from tests.pgserver import unique_database_name

CALLERS = 24  # connections: the kernel spreads them over the processes; all 24 on one has odds 2^-23
POSTS_PER_CALLER = 3
WAIT_S = 60


class Supervised:
    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.port, self.metrics_port = free_port(), adjacent_free_ports()
        self.target = f"127.0.0.1:{self.port}"
        self.log = tmp_path / "serve.log"
        self.key_file = tmp_path / "tally-admin.key"
        env = {**os.environ, "TALLY_DATABASE_URL": database_url, "TALLY_LISTEN_ADDRESS": self.target,
               "TALLY_PROCESSES": "2", "TALLY_METRICS_ADDRESS": f"127.0.0.1:{self.metrics_port}",
               "TALLY_ADMIN_KEY_FILE": str(self.key_file), "TALLY_SHUTDOWN_GRACE_S": "2", "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(tally_command(), env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=tmp_path)

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def wait_children(self, count: int, other_than: frozenset[int] = frozenset()) -> list[int]:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            pids = self.children()
            if len(pids) == count and not other_than & set(pids):
                return pids
            time.sleep(0.1)
        raise AssertionError(f"children {self.children()}, wanted {count} other than {other_than}:\n{self.tail()}")

    def posts_counted(self, index: int) -> float:
        url = f"http://127.0.0.1:{self.metrics_port + index}/metrics"
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                text = urllib.request.urlopen(url, timeout=5).read().decode()
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(f"process {index}'s metrics at {url}: {exc}\n{self.tail()}") from exc
                time.sleep(0.2)
        return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                   if s.name == "tally_postings_total" and s.labels.get("rpc") == "Post")

    def tail(self) -> str:
        return self.log.read_text()[-4000:]


def adjacent_free_ports() -> int:
    """A port whose next one is free too (process i serves metrics on port + i): both held at once while
    looking, so another test's server cannot be given either meanwhile."""
    for _ in range(100):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two adjacent free ports")


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text()
    except FileNotFoundError:
        return False


def post_from_many_connections(target: str, key: str, amount: int) -> None:
    """CALLERS clients, each on a connection of its own, post at once; every post must be acknowledged."""
    failures: list[BaseException] = []

    def caller() -> None:
        # A channel of its own connection: channels of one process otherwise share one.
        with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            stub = post_grpc.AccountingServiceStub(channel)
            try:
                for _ in range(POSTS_PER_CALLER):
                    request = funding("alice", amount)
                    request.request_id = str(uuid.uuid4())
                    stub.Post(request, metadata=(("authorization", f"Bearer {key}"),), timeout=WAIT_S)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert not failures, failures


@pytest.mark.postgres
def test_two_processes_serve_one_port_and_one_ledger(tmp_path: Path, pg_server) -> None:
    server = Supervised(tmp_path, pg_server.create_database(unique_database_name("processes")))
    try:
        channel = open_channel(server.target, timeout_s=5)
        wait_serving(server.proc, channel, server.log)
        channel.close()
        first = server.wait_children(2)
        key = server.key_file.read_text().strip()  # made once, by the first process
        with TallyClient(server.target, key) as tally:
            tally.accounts.create_account(pb.accounts.CreateAccountRequest(
                code="bank", type=pb.types.ACCOUNT_TYPE_INTERNAL, normal_side=pb.types.SIDE_DEBIT, currency="USD",
                floor_policy=pb.types.FLOOR_POLICY_UNBOUNDED))
            tally.accounts.create_account(pb.accounts.CreateAccountRequest(
                code="alice", type=pb.types.ACCOUNT_TYPE_DEPOSIT, currency="USD"))

        # Until both processes have answered some: the second may still be starting when the first round goes.
        rounds, counted = 0, [0.0, 0.0]
        while rounds < 5 and min(counted) == 0:
            post_from_many_connections(server.target, key, 3)
            rounds += 1
            counted = [server.posts_counted(0), server.posts_counted(1)]
        assert sum(counted) == rounds * CALLERS * POSTS_PER_CALLER and min(counted) > 0, counted

        # A process that dies is started again; the other serves meanwhile, and the ledger stays exact.
        os.kill(first[1], signal.SIGKILL)
        server.wait_children(2, other_than=frozenset({first[1]}))
        post_from_many_connections(server.target, key, 7)
        with TallyClient(server.target, key) as tally:
            balance = tally.accounts.get_balance(pb.accounts.GetBalanceRequest(
                account=pb.types.AccountRef(code="alice"))).balance
            posted = (rounds + 1) * CALLERS * POSTS_PER_CALLER
            assert balance.current == CALLERS * POSTS_PER_CALLER * (3 * rounds + 7)
            vouchers = tally.accounting.list_vouchers(pb.accounting.ListVouchersRequest(page_size=1000)).vouchers
            assert sorted(v.sequence for v in vouchers) == list(range(1, posted + 1))  # one gap-free sequence

        children = server.children()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0, server.tail()
        assert not [pid for pid in children if alive(pid)]
    finally:
        if server.proc.poll() is None:
            server.proc.kill()  # its children get SIGTERM as it dies
            server.proc.wait(10)


@pytest.mark.postgres
def test_serving_processes_end_with_a_killed_supervisor(tmp_path: Path, pg_server) -> None:
    server = Supervised(tmp_path, pg_server.create_database(unique_database_name("processes_kill")))
    try:
        children = server.wait_children(2)
    finally:
        server.proc.kill()
        server.proc.wait(10)
    deadline = time.monotonic() + WAIT_S
    while [pid for pid in children if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)], server.tail()


@pytest.mark.parametrize(("database", "listen", "said"), [
    ("sqlite", "127.0.0.1:{port}", "needs PostgreSQL"),
    ("postgresql", "127.0.0.1:0", "must name a port other than 0"),
])
def test_processes_refused_where_they_cannot_share(tmp_path: Path, database: str, listen: str, said: str) -> None:
    url = f"sqlite:///{tmp_path / 'tally.db'}" if database == "sqlite" else "postgresql+psycopg://nobody@127.0.0.1:1/x"
    done = subprocess.run(tally_command(), capture_output=True, text=True, timeout=60, cwd=tmp_path, env={
        **os.environ, "TALLY_DATABASE_URL": url, "TALLY_PROCESSES": "2",
        "TALLY_LISTEN_ADDRESS": listen.format(port=free_port())})
    assert done.returncode == 2
    assert said in done.stderr
