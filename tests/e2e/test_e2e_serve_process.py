"""`tally serve` as a real process: with zero set-up it creates a local tenant and an admin key on first
start, comes up healthy, serves, stops cleanly on SIGTERM (exit 0 within the grace period), and what it
acknowledged is still there after a restart on the same SQLite file."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2_grpc

from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import types_pb2
from tests.e2e.conftest import (
    HEALTH_SERVICE,
    TALLY_SERVICES,
    adjustment_request,
    line,
    listed_services,
    open_channel,
    ref,
    transfer_request,
)

GRACE_S = 5
READY_TIMEOUT_S = 30.0
EXIT_MARGIN_S = 10.0  # interpreter shutdown on top of the grace period


def tally_command() -> list[str]:
    """The installed console script next to this interpreter, else the CLI module run directly."""
    script = Path(sys.executable).parent / "tally"
    if script.exists():
        return [str(script), "serve"]
    found = shutil.which("tally")
    if found:
        return [found, "serve"]
    return [sys.executable, "-c", "from tally.cli import main; raise SystemExit(main(['serve']))"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def tally_serve(db: Path, port: int, log: Path, **extra_env: str) -> Iterator[subprocess.Popen]:
    env = {**os.environ, "TALLY_DATABASE_URL": f"sqlite:///{db}", "TALLY_LISTEN_ADDRESS": f"127.0.0.1:{port}",
           "TALLY_SHUTDOWN_GRACE_S": str(GRACE_S), "TALLY_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1", **extra_env}
    with log.open("ab") as out:
        proc = subprocess.Popen(tally_command(), env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=db.parent)
    try:
        yield proc
    finally:
        if proc.poll() is None:  # only when the test failed before stopping it
            proc.kill()
            proc.wait(10)


def wait_serving(proc: subprocess.Popen, channel: grpc.Channel, log: Path) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"tally serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
        try:
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                return
            last = status
        except grpc.RpcError as err:
            last = err.code()
        time.sleep(0.1)
    raise AssertionError(f"not SERVING within {READY_TIMEOUT_S}s (last: {last}):\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen, log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(GRACE_S + EXIT_MARGIN_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {GRACE_S + EXIT_MARGIN_S}s after SIGTERM:\n"
                             f"{log.read_text()[-4000:]}") from None
    assert code == 0, f"exit status {code} after SIGTERM:\n{log.read_text()[-4000:]}"


def admin_key(directory: Path, log: Path) -> tuple[tuple[str, str], ...]:
    """The first-start admin key: in a file only its owner can read, never in the log."""
    key_file = directory / "tally-admin.key"
    assert key_file.exists(), log.read_text()[-4000:]
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    assert key.startswith("tly_") and key not in log.read_text()
    return (("authorization", f"Bearer {key}"),)


def test_serve_sigterm_and_restart(tmp_path: Path) -> None:
    db, log = tmp_path / "tally.db", tmp_path / "serve.log"
    port = free_port()

    with tally_serve(db, port, log) as proc:
        channel = open_channel(f"127.0.0.1:{port}", timeout_s=10)
        try:
            wait_serving(proc, channel, log)
            auth = admin_key(tmp_path, log)
            health = health_pb2_grpc.HealthStub(channel)
            for service in TALLY_SERVICES:
                assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == \
                    health_pb2.HealthCheckResponse.SERVING
            assert {*TALLY_SERVICES, HEALTH_SERVICE} <= listed_services(
                reflection_pb2_grpc.ServerReflectionStub(channel))

            accounts, accounting = acc_grpc.AccountServiceStub(channel), post_grpc.AccountingServiceStub(channel)
            for code, kind, side in (("bank", types_pb2.ACCOUNT_TYPE_INTERNAL, types_pb2.SIDE_DEBIT),
                                     ("alice", types_pb2.ACCOUNT_TYPE_DEPOSIT, 0),
                                     ("bob", types_pb2.ACCOUNT_TYPE_DEPOSIT, 0)):
                accounts.CreateAccount(acc_pb.CreateAccountRequest(
                    request_id=f"create-{code}", code=code, type=kind, normal_side=side, currency="USD"),
                    metadata=auth)
            accounting.Post(adjustment_request("fund-1", [line("bank", "debit", 10_000),
                                                          line("alice", "credit", 10_000)]), metadata=auth)
            posted = accounting.Post(transfer_request("tr-1", "alice", "bob", 2_500), metadata=auth)
            voucher = posted.vouchers[0]
            balance = accounts.GetBalance(acc_pb.GetBalanceRequest(account=ref("alice")), metadata=auth).balance
            assert balance.current == 7_500
        finally:
            channel.close()
        stop(proc, log)
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]

    # Same file, new process: everything acknowledged is still there, and replays still replay.
    port = free_port()
    with tally_serve(db, port, log) as proc:
        channel = open_channel(f"127.0.0.1:{port}", timeout_s=10)
        try:
            wait_serving(proc, channel, log)
            assert admin_key(tmp_path, log) == auth  # not made again: the ledger has its tenant already
            accounts, accounting = acc_grpc.AccountServiceStub(channel), post_grpc.AccountingServiceStub(channel)
            current = {code: accounts.GetBalance(acc_pb.GetBalanceRequest(account=ref(code)),
                                                 metadata=auth).balance.current
                       for code in ("alice", "bob", "bank")}
            assert current == {"alice": 7_500, "bob": 2_500, "bank": 10_000}
            stored = accounting.GetVoucher(post_pb.GetVoucherRequest(voucher_id=voucher.id), metadata=auth).voucher
            assert stored == voucher
            again = accounting.Post(transfer_request("tr-1", "alice", "bob", 2_500), metadata=auth)
            assert again.replayed and again.vouchers[0].id == voucher.id
            assert accounts.GetBalance(acc_pb.GetBalanceRequest(account=ref("alice")),
                                       metadata=auth).balance.current == 7_500
        finally:
            channel.close()
        stop(proc, log)


def spans_in(text: str) -> list[str]:
    """The span names a console exporter wrote (one JSON object per span)."""
    marker = '    "name": "'
    return [line[len(marker):].split('"', 1)[0] for line in text.splitlines() if line.startswith(marker)]


@pytest.mark.parametrize("exporter", ["console", "none"])
def test_tracing_exports_a_span_per_call_only_when_asked(tmp_path: Path, exporter: str) -> None:
    """TALLY_OTEL_EXPORTER=console: each call but health checks becomes a span, flushed at shutdown.
    none (the default): no span is made at all."""
    db, log = tmp_path / "tally.db", tmp_path / "serve.log"
    port = free_port()
    with tally_serve(db, port, log, TALLY_OTEL_EXPORTER=exporter) as proc:
        channel = open_channel(f"127.0.0.1:{port}", timeout_s=10)
        try:
            wait_serving(proc, channel, log)
            auth = admin_key(tmp_path, log)
            accounts = acc_grpc.AccountServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                accounts.GetAccount(acc_pb.GetAccountRequest(account=ref("nobody")), metadata=auth)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            channel.close()
        stop(proc, log)
    spans = spans_in(log.read_text())
    if exporter == "console":
        assert spans == ["/tally.v1.AccountService/GetAccount"], log.read_text()[-4000:]
    else:
        assert spans == [] and '"trace_id"' not in log.read_text()
