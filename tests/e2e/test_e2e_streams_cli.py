"""`tally watch` against a real server: lines as events arrive, JSON lines, filters, the resume hint, refusals
and a clean end on Ctrl-C (SIGINT to a real process).

The watcher's key is issued as an operator would: `tally tenants create` and `tally keys create --json`
run as processes against the server's database, and the key is passed in TALLY_API_KEY. A reader key is
enough to watch."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tally.cli.watch import add_watch_parser
from tests.e2e.conftest import Server
from tests.e2e.test_e2e_streams import T, _setup, _transfers

RUN_TIMEOUT_S = 60.0
KEY = re.compile(r"tly_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")
# gRPC's C core logs on the same stderr in glog's form ("E1207 12:00:00.123456  42 file.cc:12] ..."), e.g. a
# harmless "epoll_wait error" when its poller thread races the process's exit; such lines are not the CLI's.
GRPC_LOG_LINE = re.compile(r"[EWID]\d{4} [\d:.]+ +\d+ \S+:\d+\] ")


def _tally_admin(database_url: str, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    return subprocess.run([sys.executable, "-m", "tally.cli", *argv, "--database-url", database_url],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def issue_key(srv: Server, cwd: Path, tenant: str = T, role: str = "reader") -> str:
    """`tally tenants create` (the tenant may exist already) and `tally keys create --json`."""
    created = _tally_admin(srv.database_url, cwd, "tenants", "create", tenant)
    assert created.returncode == 0 or "TENANT_EXISTS" in created.stderr, created.stderr
    issued = _tally_admin(srv.database_url, cwd, "keys", "create", "--tenant", tenant, "--role", role, "--json")
    assert issued.returncode == 0, issued.stderr
    key = json.loads(issued.stdout)["key"]
    assert KEY.fullmatch(key)
    return key


@pytest.fixture
def key(server: Server, tmp_path: Path, monkeypatch) -> str:
    """A reader key for tenant T in TALLY_API_KEY, and a working directory without a key file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TALLY_KEY_FILE", raising=False)
    issued = issue_key(server, tmp_path)
    monkeypatch.setenv("TALLY_API_KEY", issued)
    return issued


def watch(srv: Server, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tally")
    add_watch_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["watch", "--target", srv.target, *argv])
    return args.func(args)


def test_watch_events_replay_with_limit(server: Server, key: str, capsys) -> None:
    _setup(server)
    posted = _transfers(server, 2)
    assert watch(server, "--from", "0", "--limit", "5") == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["#1", "#2", "#3", "#4", "#5"]
    assert lines[3].split()[2] == "ledger.entry.posted" and f"voucher={posted[0].id}" in lines[4]
    assert "last sequence 5; resume with --from 5" in err


def test_watch_types_and_json(server: Server, key: str, capsys) -> None:
    _setup(server)
    assert watch(server, "--from", "0", "--type", "account.created", "--json", "--limit", "3") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["type"] for r in rows] == ["account.created"] * 3
    assert [r["sequence"] for r in rows] == ["1", "2", "3"]  # proto JSON: int64 as strings


def test_watch_balances_of_one_account_by_code(server: Server, key: str, capsys) -> None:
    alice, _ = _setup(server)
    _transfers(server, 1, amount=40)
    assert watch(server, "--balances", "--account", "alice", "--from", "0", "--limit", "2", "--scale", "2") == 0
    out, err = capsys.readouterr()
    first, second = out.splitlines()
    assert alice.id in first and "current=100000 (1000.00) (+100000)" in first
    assert "current=99960 (999.60) (-40)" in second and "ledger.entry.posted" in second
    assert "resume with --from" in err


@pytest.mark.parametrize(("argv", "status", "message"), [
    (["--account", "alice"], 2, "--account needs --balances"),
    (["--balances", "--type", "account.created"], 2, "--type goes with --events"),
    (["--type", "nope"], 1, "INVALID_ARGUMENT EVENT_TYPE_UNKNOWN"),
    (["--from", "999999"], 1, "INVALID_ARGUMENT SEQUENCE_INVALID"),
])
def test_watch_refusals(server: Server, key: str, capsys, argv, status, message) -> None:
    assert watch(server, *argv) == status
    assert message in capsys.readouterr().err


def test_watch_without_a_key_is_unauthenticated(server: Server, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TALLY_API_KEY", raising=False)
    monkeypatch.delenv("TALLY_KEY_FILE", raising=False)
    assert watch(server, "--from", "0") == 1
    err = capsys.readouterr().err
    assert "UNAUTHENTICATED CREDENTIALS_MISSING" in err and "no API key was sent" in err


def test_watch_sees_only_the_keys_tenant(server: Server, key: str, tmp_path: Path, monkeypatch, capsys) -> None:
    _setup(server)
    _setup(server, "globex")
    monkeypatch.setenv("TALLY_API_KEY", issue_key(server, tmp_path, "globex"))
    assert watch(server, "--from", "0", "--type", "account.created", "--json", "--limit", "3") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    globex = {a.id for a in server.all_accounts("globex")}
    assert len(rows) == 3 and {r["account_id"] for r in rows} == globex


# The child takes SIGINT as an interactive shell gives it: handled by default and not blocked, whatever the
# test process inherited or set (an ignored SIGINT is inherited across exec, and Python then installs no
# KeyboardInterrupt handler). Set by the child itself: a preexec_fn would run Python in a child forked from a
# process whose gRPC threads are running, which its documentation warns against.
_AS_FROM_A_TERMINAL = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                       "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT]);")


def _watch_process(server: Server, key: str, *argv: str) -> subprocess.Popen:
    script = (_AS_FROM_A_TERMINAL + "import argparse, sys; from tally.cli.watch import add_watch_parser; "
              "p = argparse.ArgumentParser(); add_watch_parser(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); "
              "sys.exit(a.func(a))")
    return subprocess.Popen([sys.executable, "-c", script, "watch", "--target", server.target, *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "TALLY_API_KEY": key})


def _cli_line(stream) -> str:
    """The next line the CLI itself wrote, past any of gRPC's own log lines."""
    while GRPC_LOG_LINE.match(line := stream.readline()):
        pass
    return line


def _interrupt(proc: subprocess.Popen) -> tuple[str, str]:
    """Ctrl-C, then what the process printed after it; the process is gone either way."""
    try:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return out, err


def test_watch_ends_cleanly_on_ctrl_c(server: Server, key: str) -> None:
    _setup(server)
    proc = _watch_process(server, key, "--from", "0")
    lines = [proc.stdout.readline() for _ in range(4)]  # the setup's four events
    if not all(lines):  # the watcher ended early: say why
        proc.kill()
        pytest.fail(f"the watcher ended early ({proc.wait()}): {proc.stderr.read()}")
    assert [line.split(" ")[0] for line in lines] == ["#1", "#2", "#3", "#4"], lines
    out, err = _interrupt(proc)
    assert "Traceback" not in err and key not in out + err
    assert "watching after sequence 0" in err
    assert "stopped: last sequence 4; resume with --from 4" in err


def test_watch_from_now_says_where_it_started(server: Server, key: str) -> None:
    """Stopped before anything arrived, a watch from now still gives the --from that misses nothing."""
    _setup(server)
    proc = _watch_process(server, key)
    started = _cli_line(proc.stderr)
    assert started == "watching after sequence 4\n", started
    out, err = _interrupt(proc)
    assert out == "" and "stopped: nothing received; resume with --from 4" in err
