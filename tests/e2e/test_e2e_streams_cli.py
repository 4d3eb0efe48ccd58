"""`tally watch` against a real server: lines as events arrive, JSON lines, filters, the resume hint, refusals
and a clean end on Ctrl-C (SIGINT to a real process)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tally.cli_watch import add_watch_parser
from tests.e2e.conftest import Server
from tests.e2e.test_e2e_streams import T, _setup, _transfers


def watch(srv: Server, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tally")
    add_watch_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["watch", "--target", srv.target, "--tenant", T, *argv])
    return args.func(args)


def test_watch_events_replay_with_limit(server: Server, capsys) -> None:
    _setup(server)
    posted = _transfers(server, 2)
    assert watch(server, "--from", "0", "--limit", "5") == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["#1", "#2", "#3", "#4", "#5"]
    assert lines[3].split()[2] == "ledger.entry.posted" and f"voucher={posted[0].id}" in lines[4]
    assert "last sequence 5; resume with --from 5" in err


def test_watch_types_and_json(server: Server, capsys) -> None:
    _setup(server)
    assert watch(server, "--from", "0", "--type", "account.created", "--json", "--limit", "3") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["type"] for r in rows] == ["account.created"] * 3
    assert [r["sequence"] for r in rows] == ["1", "2", "3"]  # proto JSON: int64 as strings


def test_watch_balances_of_one_account_by_code(server: Server, capsys) -> None:
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
def test_watch_refusals(server: Server, capsys, argv, status, message) -> None:
    assert watch(server, *argv) == status
    assert message in capsys.readouterr().err


def test_watch_ends_cleanly_on_ctrl_c(server: Server) -> None:
    _setup(server)
    script = ("import argparse, sys; from tally.cli_watch import add_watch_parser; p = argparse.ArgumentParser();"
              "add_watch_parser(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")
    proc = subprocess.Popen([sys.executable, "-c", script, "watch", "--target", server.target, "--tenant", T,
                             "--from", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        first = proc.stdout.readline()
        assert first.startswith("#1 "), first + proc.stderr.read()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped: last sequence 4; resume with --from 4" in err
