"""Two `tally serve` processes on one PostgreSQL database: a consumer streams from process A while concurrent
posters post through both. A hears B's commits through LISTEN/NOTIFY (the safety poll is switched off), its
stream has every sequence exactly once (1..N), and replaying its balance changes gives GetBalance."""

from __future__ import annotations

import os
import random
import subprocess
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tests.e2e.conftest import (
    TenantKeys,
    adjustment_request,
    error_info,
    line,
    md,
    open_channel,
    ref,
    transfer_request,
)
from tests.e2e.test_e2e_serve_process import GRACE_S, free_port, stop, tally_command, wait_serving
from tests.e2e.test_e2e_streams import STREAM_TIMEOUT_S, Reader

T = "acme"
ACCOUNTS = [f"acct-{i}" for i in range(6)]
POSTERS = 8
TRANSFERS_PER_POSTER = 40
FUNDS = 1_000_000
DRAIN_HELD_S = 60  # server A's shutdown grace: longer than stop() waits


@contextmanager
def tally_serve(url: str, log: Path, **env: str) -> Iterator[tuple[subprocess.Popen, int]]:
    port = free_port()
    full_env = {**os.environ, "TALLY_DATABASE_URL": url, "TALLY_LISTEN_ADDRESS": f"127.0.0.1:{port}",
                "TALLY_SHUTDOWN_GRACE_S": str(GRACE_S), "TALLY_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
                "TALLY_STREAM_IDLE_POLL_S": "3600", "TALLY_BOOTSTRAP_ADMIN": "false", **env}
    with log.open("ab") as out:
        proc = subprocess.Popen(tally_command(), env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    TenantKeys.register(f"127.0.0.1:{port}", url)  # test tenants' keys are made in this database
    try:
        yield proc, port
    finally:
        if proc.poll() is None:  # only when the test failed before stopping it
            proc.kill()
            proc.wait(10)


class Poster(threading.Thread):
    """Random transfers of small amounts, each through process A or B at random."""

    def __init__(self, n: int, stubs: list[post_grpc.AccountingServiceStub]) -> None:
        super().__init__(daemon=True)
        self.n, self.stubs, self.rng = n, stubs, random.Random(n)
        self.voucher_ids: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i in range(TRANSFERS_PER_POSTER):
                source, destination = self.rng.sample(ACCOUNTS, 2)
                request = transfer_request(f"p{self.n}-{i}", source, destination, self.rng.randint(1, 100))
                response = self.rng.choice(self.stubs).Post(request, metadata=md(T))
                self.voucher_ids.append(response.vouchers[0].id)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def _open_accounts(accounts: acc_grpc.AccountServiceStub, accounting: post_grpc.AccountingServiceStub) -> None:
    accounts.CreateAccount(acc_pb.CreateAccountRequest(
        request_id="create-funding", code="funding", type=4, normal_side=1, floor_policy=2, currency="USD"),
        metadata=md(T))
    for code in ACCOUNTS:
        accounts.CreateAccount(acc_pb.CreateAccountRequest(request_id=f"create-{code}", code=code, type=1,
                                                           currency="USD"), metadata=md(T))
        accounting.Post(adjustment_request(f"fund-{code}", [line("funding", "debit", FUNDS),
                                                            line(code, "credit", FUNDS)]), metadata=md(T))


def _seen(voucher_id: str, count: int = 1):
    """Seen `count` items of this voucher (a transfer makes one event, and two balance changes)."""
    return lambda items: sum((getattr(i, "event", None) or i.change).voucher_id == voucher_id
                             for i in items) >= count


def test_two_processes_one_stream_no_gap_no_duplicate(postgres_url: str, tmp_path: Path) -> None:
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    # A's grace outlasts stop()'s wait, so a stream holding A's drain would fail the test.
    with tally_serve(postgres_url, log_a, TALLY_SHUTDOWN_GRACE_S=str(DRAIN_HELD_S)) as (proc_a, port_a):
        chan_a = open_channel(f"127.0.0.1:{port_a}", timeout_s=STREAM_TIMEOUT_S)
        wait_serving(proc_a, chan_a, log_a)  # A migrated the database
        with tally_serve(postgres_url, log_b, TALLY_AUTO_MIGRATE="false") as (proc_b, port_b):
            chan_b = open_channel(f"127.0.0.1:{port_b}", timeout_s=STREAM_TIMEOUT_S)
            try:
                wait_serving(proc_b, chan_b, log_b)
                a, b = post_grpc.AccountingServiceStub(chan_a), post_grpc.AccountingServiceStub(chan_b)
                accounts_a = acc_grpc.AccountServiceStub(chan_a)
                _open_accounts(acc_grpc.AccountServiceStub(chan_b), b)  # written through B ...
                events = Reader(a.StreamEvents(post_pb.StreamEventsRequest(from_sequence=0), metadata=md(T)))
                changes = Reader(a.StreamBalanceChanges(post_pb.StreamBalanceChangesRequest(from_sequence=0),
                                                        metadata=md(T)))  # ... replayed, then live on A
                posters = [Poster(n, [a, b]) for n in range(POSTERS)]
                for poster in posters:
                    poster.start()
                for poster in posters:
                    poster.join(120)
                    assert poster.error is None, repr(poster.error)
                marker = b.Post(transfer_request("marker", ACCOUNTS[0], ACCOUNTS[1], 1), metadata=md(T)).vouchers[0]
                events.wait_for(_seen(marker.id))
                changes.wait_for(_seen(marker.id, 2))
                _check_events(events.items, marker.id, [p.voucher_ids for p in posters])
                _check_balances(changes.items, accounts_a)
                # Stopping A ends its streams at once, telling the client to resume elsewhere.
                stop(proc_a, log_a)
                for reader in (events, changes):
                    assert reader.done.wait(30)
                    assert error_info(reader.error)[:2] == (grpc.StatusCode.UNAVAILABLE, "SERVER_SHUTTING_DOWN")
                stop(proc_b, log_b)
            finally:
                chan_a.close()
                chan_b.close()
    for log in (log_a, log_b):
        assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


def _check_events(items: list, marker_id: str, posted: list[list[str]]) -> None:
    got = [i.event for i in items]
    assert got[-1].voucher_id == marker_id, "an event after the last posting"
    assert [e.sequence for e in got] == list(range(1, len(got) + 1)), "a gap or a duplicate"
    entries = [e.voucher_id for e in got if e.type == "ledger.entry.posted"]
    expected = [v for ids in posted for v in ids] + [marker_id]
    assert len(entries) == len(set(entries)) == len(ACCOUNTS) + len(expected)
    assert set(expected) <= set(entries)


def _check_balances(items: list, accounts: acc_grpc.AccountServiceStub) -> None:
    last, summed = {}, defaultdict(int)
    for item in items:
        last[item.change.account_id] = item.change
        summed[item.change.account_id] += item.change.current_delta
    assert len(last) == len(ACCOUNTS) + 1
    total = 0
    for account_id, change in last.items():
        balance = accounts.GetBalance(acc_pb.GetBalanceRequest(account=ref(id=account_id)), metadata=md(T)).balance
        assert change.current == balance.current == summed[account_id]
        assert (change.locked, change.available) == (balance.locked, balance.available)
        total += balance.current
    assert total == 2 * len(ACCOUNTS) * FUNDS  # funding (debit-normal) mirrors the deposits
