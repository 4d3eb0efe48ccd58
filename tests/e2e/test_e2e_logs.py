"""`tally serve`'s logs as a real process writes them: JSON lines with TALLY_LOG_FORMAT=json (level, time,
logger, message, and the tenant, request id and trace id of the call being served), human text by default;
and a bad setting is one line naming the variable, exit status 2, no traceback."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from tally.config import ConfigError, Settings
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import types_pb2
from tests.e2e.test_e2e_serve_process import free_port, open_channel, stop, tally_command, wait_serving

EXIT_BAD_SETTING = 2
RUN_TIMEOUT_S = 60


def serve(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, Path, str]:
    """`tally serve` with its stderr (the logs) in a file of its own; stdout (console spans) elsewhere."""
    port = free_port()
    full_env = {**os.environ, "TALLY_DATABASE_URL": f"sqlite:///{tmp_path / 'tally.db'}",
                "TALLY_LISTEN_ADDRESS": f"127.0.0.1:{port}", "TALLY_SHUTDOWN_GRACE_S": "5", "PYTHONUNBUFFERED": "1",
                **env}
    log = tmp_path / "stderr.log"
    with log.open("wb") as err, (tmp_path / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(tally_command(), env=full_env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                cwd=tmp_path)
    return proc, log, f"127.0.0.1:{port}"


def test_json_lines_carry_the_call_context(tmp_path: Path) -> None:
    proc, log, target = serve(tmp_path, TALLY_LOG_FORMAT="json", TALLY_LOG_LEVEL="DEBUG",
                              TALLY_OTEL_EXPORTER="console")
    try:
        channel = open_channel(target, timeout_s=10)
        wait_serving(proc, channel, log)
        key = (tmp_path / "tally-admin.key").read_text().strip()
        accounts = acc_grpc.AccountServiceStub(channel)
        accounts.CreateAccount(acc_pb.CreateAccountRequest(request_id="log-req-1", code="log-alice", currency="USD",
                                                          type=types_pb2.ACCOUNT_TYPE_DEPOSIT),
                               metadata=(("authorization", f"Bearer {key}"),))
        channel.close()
    finally:
        stop(proc, log)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", r["time"]) for r in records)
    assert any(r["level"] == "INFO" and r["message"].startswith("tally serving on port") for r in records)
    (served,) = [r for r in records if r["message"] == "/tally.v1.AccountService/CreateAccount served"]
    assert served["tenant"] == "local" and served["request_id"] == "log-req-1" and served["level"] == "DEBUG"
    assert re.fullmatch(r"[0-9a-f]{32}", served["trace_id"]) and int(served["trace_id"], 16) != 0
    assert served["trace_id"] in (tmp_path / "stdout.log").read_text()  # the span printed by the console exporter


def test_text_logs_by_default(tmp_path: Path) -> None:
    proc, log, target = serve(tmp_path)
    try:
        channel = open_channel(target, timeout_s=10)
        wait_serving(proc, channel, log)
        channel.close()
    finally:
        stop(proc, log)
    text = log.read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO tally: tally serving on port \d+", text, re.M)
    assert not text.lstrip().startswith("{")


def test_a_bad_setting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    cases = {
        "TALLY_LOG_FORMAT": "xml",  # refused by the settings (the rest of them: test_settings_name_the_variable)
        "TALLY_RULES_FILE": str(tmp_path / "missing.toml"),  # refused when the server loads it
        "TALLY_METRICS_ADDRESS": f"127.0.0.1:{taken.getsockname()[1]}",  # in use
        "TALLY_LISTEN_ADDRESS ": f"127.0.0.1:{taken.getsockname()[1]}",  # in use; gRPC core logs a line of its own
    }
    running = {}
    for name, bad in cases.items():  # all at once: each costs an interpreter start
        directory = tmp_path / name
        directory.mkdir()
        env = {**os.environ, "TALLY_DATABASE_URL": f"sqlite:///{directory / 'tally.db'}",
               "TALLY_LISTEN_ADDRESS": f"127.0.0.1:{free_port()}", name.strip(): bad}
        running[name] = subprocess.Popen(tally_command(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL, cwd=directory, text=True)
    try:
        for name, proc in running.items():
            out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
            assert proc.returncode == EXIT_BAD_SETTING, (name, err)
            problem = [line for line in err.splitlines() if not _start_up_log(line)]
            if name == "TALLY_LISTEN_ADDRESS ":
                problem = [line for line in problem if "add_port.cc" not in line]
            assert len(problem) == 1, (name, err)
            assert problem[0].startswith("error: ") and name.strip() in problem[0], (name, err)
            assert "Traceback" not in err and out == ""
    finally:
        taken.close()
        for proc in running.values():
            if proc.poll() is None:
                proc.kill()


def _start_up_log(line: str) -> bool:
    """What a start that got as far as logging writes before it stops (e.g. the first-start admin key)."""
    return bool(re.match(r"^\d{4}-\d\d-\d\d ", line))


@pytest.mark.parametrize("value", ["0.0.0.0:9464", "[::1]:9464", ":9464", ""])
def test_metrics_address_takes_host_port(value: str) -> None:
    assert Settings.from_env({"TALLY_METRICS_ADDRESS": value}).metrics_address == value


@pytest.mark.parametrize("value", ["9464", "host:port", "::1:9464", "h:99999"])
def test_metrics_address_refuses_others(value: str) -> None:
    with pytest.raises(ConfigError, match="TALLY_METRICS_ADDRESS"):
        Settings.from_env({"TALLY_METRICS_ADDRESS": value})


def test_listen_address_may_be_a_unix_socket() -> None:
    assert Settings.from_env({"TALLY_LISTEN_ADDRESS": "unix:/run/tally.sock"}).listen_address == "unix:/run/tally.sock"


@pytest.mark.parametrize(("name", "value"), [
    ("TALLY_LOG_LEVEL", "loud"), ("TALLY_METRICS_ADDRESS", "nope"), ("TALLY_DATABASE_URL", "bogus://x"),
    ("TALLY_MIGRATE_DATABASE_URL", "not a url"), ("TALLY_CURRENCIES", "???"), ("TALLY_LISTEN_ADDRESS", "garbage"),
])
def test_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
