"""The `tally` command as a real process against a real `tally serve` process (SQLite in a temp file):
`demo` (balanced, and replayed by a rerun in the same tenant), `rules check|show`, `post`, `trial-balance`,
a holds cycle, refusals and `--json` output.

One server for the module; each test works in tenants of its own. Every CLI run is a fresh interpreter
(`python -m tally.cli`, or the installed console script for the demo)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from tests.e2e.conftest import open_channel
from tests.e2e.test_e2e_serve_process import free_port, stop, tally_serve, wait_serving

RUN_TIMEOUT_S = 60.0
DEFAULT_RULES = resources.files("tally.rules").joinpath("default.toml")
ENV = {k: v for k, v in os.environ.items() if k not in ("TALLY_TARGET", "TALLY_TENANT")}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a `tally serve` process on a fresh SQLite file."""
    directory = tmp_path_factory.mktemp("e2e-cli")
    db, log, port = directory / "tally.db", directory / "serve.log", free_port()
    with tally_serve(db, port, log) as proc:
        channel = open_channel(f"127.0.0.1:{port}", timeout_s=10)
        try:
            wait_serving(proc, channel, log)
        finally:
            channel.close()
        yield f"127.0.0.1:{port}"
        stop(proc, log)
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


def tally(*argv: str, script: bool = False) -> subprocess.CompletedProcess:
    """Runs the CLI in a new process; `script` uses the installed `tally` console script when there is one."""
    installed = Path(sys.executable).parent / "tally"
    command = [str(installed)] if script and installed.exists() else [sys.executable, "-m", "tally.cli"]
    result = subprocess.run([*command, *argv], capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=ENV,
                            stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def client(target: str, tenant: str, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    return tally(*argv, "--target", target, "--tenant", tenant, **kwargs)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


# ---------------------------------------------------------------------------------------------- demo


def _without_replay_marks(text: str) -> str:
    text = text.replace(" (replayed)", "")
    return re.sub(r"^\d+ requests: .*$", "", text, flags=re.MULTILINE)


def test_demo_is_balanced_and_a_rerun_replays(target: str) -> None:
    tenant = "demo-e2e-rerun"
    first = ok(client(target, tenant, "demo", script=True))
    assert "BALANCED" in first and "NOT BALANCED" not in first
    assert "13 requests: 13 done now, 0 replayed" in first
    assert "residue of 5678" in first and "merchant_settled:acme" in first
    for step in ("funding", "usage", "acquisition", "refund", "merchant settlement", "channel settlement",
                 "bank settlement", "payout prerequisites", "payout"):
        assert f". {step}" in first
    books = json.loads(ok(client(target, tenant, "trial-balance", "--json")))
    settled = ok(client(target, tenant, "balance", "merchant_settled:acme", "--json"))

    second = ok(client(target, tenant, "demo", script=True))
    assert "13 requests: 0 done now, 13 replayed" in second and "BALANCED" in second
    assert _without_replay_marks(second) == _without_replay_marks(first)  # the same vouchers and balances
    assert json.loads(ok(client(target, tenant, "trial-balance", "--json"))) == books
    assert json.loads(ok(client(target, tenant, "balance", "merchant_settled:acme", "--json")))["balance"] == \
        json.loads(settled)["balance"]


def test_demo_json_in_a_fresh_tenant_with_decimals(target: str) -> None:
    result = tally("demo", "--target", target, "--json", "--scale", "6")
    report = json.loads(ok(result))
    assert re.fullmatch(r"demo-[0-9a-f]{8}", report["tenant"])
    assert report["balanced"] is True and report["trial_balance"]["balanced"] is True
    assert report["requests"] == 13 and report["replayed"] == 0
    payout = report["steps"][-1]
    settled = next(b for b in payout["balances"] if b["account"] == "merchant_settled:acme")
    assert int(settled["before"]) - int(settled["after"]) == 12_340_000  # whole cents of the 12345678 asked


# ---------------------------------------------------------------------------------------------- rules


def test_rules_check_default_and_broken(tmp_path: Path) -> None:
    out = ok(tally("rules", "check", str(DEFAULT_RULES)))
    assert re.fullmatch(rf"{re.escape(str(DEFAULT_RULES))}: valid, version \S+, \d+ rules\n", out)

    broken = tmp_path / "broken.toml"
    broken.write_text(DEFAULT_RULES.read_text().replace('account = "consumer:{consumer}"\namount = "amount"',
                                                        'account = "consumer:{consumer}"\namount = "amount +"', 1))
    result = tally("rules", "check", str(broken))
    assert result.returncode == 1, result
    assert f"{broken}: rules[1] (id=usage.default).vouchers[0].lines[0].amount:" in result.stdout
    assert "invalid, 1 problem(s)" in result.stderr


def test_rules_show(target: str) -> None:
    out = ok(client(target, "cli-rules", "rules", "show"))
    assert "usage.default" in out and "bps(amount, platform_fee_bps)" in out and "proportional_reversal" in out
    shown = json.loads(ok(client(target, "cli-rules", "rules", "show", "--json")))
    assert {"usage", "payout"} <= set(shown["flow_types"])


# ---------------------------------------------------------------------------------------------- post


def test_post_usage_then_trial_balance(target: str) -> None:
    t = "cli-post"
    ok(client(target, t, "post", "funding", "--consumer", "c1", "--processor", "card", "--amount", "10000000",
              "--currency", "USD", "--request-id", "fund-1"))
    usage = ["post", "usage", "--consumer", "c1", "--merchant", "m1", "--amount", "1234567", "--currency", "USD",
             "--affiliate", "a1", "--share", "m1:7000", "--share", "m2:3000", "--request-id", "use-1"]
    out = ok(client(target, t, *usage, "--scale", "6"))
    rows = [line.split() for line in out.splitlines()]
    assert ["2", "usage", "usage.default", "1", "consumer:c1", "debit", "1234567", "1.234567", "USD"] in rows
    assert ["2", "usage", "usage.default", "3", "affiliate:a1", "credit", "61728", "0.061728", "USD"] in rows
    assert any(row[4:6] == ["merchant_settled:m2", "credit"] for row in rows if len(row) > 5)

    again = client(target, t, *usage, "--json")
    posted = json.loads(ok(again))
    assert posted["replayed"] is True and posted["vouchers"][0]["lines"][0]["amount"] == "1234567"

    tb = ok(client(target, t, "trial-balance", "--check"))
    assert tb.rstrip().endswith("BALANCED") and "NOT BALANCED" not in tb
    totals = json.loads(ok(client(target, t, "trial-balance", "--json")))
    assert totals["balanced"] is True
    assert [(x["currency"], x["debit_total"], x["credit_total"]) for x in totals["totals"]] == \
        [("USD", "10000000", "10000000")]

    refused = client(target, t, "post", "payout", "--merchant", "m1", "--amount", "100", "--currency", "USD")
    assert refused.returncode == 1 and "FAILED_PRECONDITION KYC_NOT_VERIFIED" in refused.stderr
    assert "request-id: " in refused.stderr
    malformed = client(target, t, "post", "usage", "--consumer", "c1", "--merchant", "m1", "--amount", "1.5",
                       "--currency", "USD")
    assert malformed.returncode == 2 and "no decimal point" in malformed.stderr


def test_holds_create_capture_cycle(target: str) -> None:
    t = "cli-holds"
    ok(client(target, t, "post", "funding", "--consumer", "c1", "--processor", "ach", "--amount", "5000000",
              "--currency", "USD", "--request-id", "fund-1"))
    ok(client(target, t, "accounts", "create", "shop", "--type", "deposit", "--currency", "USD"))
    created = json.loads(ok(client(target, t, "holds", "create", "consumer:c1", "2000000", "--currency", "USD",
                                   "--expires-in", "3600", "--memo", "api credit", "--json")))["hold"]
    assert created["status"] == "HOLD_STATUS_ACTIVE" and created["remaining"] == "2000000" and created["expire_time"]
    balance = json.loads(ok(client(target, t, "balance", "consumer:c1", "--json")))["balance"]
    assert (balance["locked"], balance["available"]) == ("2000000", "3000000")

    out = ok(client(target, t, "holds", "capture", created["id"], "1500000", "--to", "shop",
                    "--final", "--request-id", "cap-1"))
    assert re.search(r"^status\s+captured$", out, re.MULTILINE) and re.search(r"^captured\s+1500000$", out,
                                                                               re.MULTILINE)
    assert re.search(r"^\s+2\s+shop\s+\S+\s+credit\s+1500000\s+USD", out, re.MULTILINE), out

    got = ok(client(target, t, "holds", "get", created["id"]))
    assert re.search(r"^remaining\s+0$", got, re.MULTILINE)
    listed = ok(client(target, t, "holds", "list", "--account", "consumer:c1", "--status", "captured"))
    assert created["id"] in listed and "1500000" in listed
    assert created["id"] not in ok(client(target, t, "holds", "list", "--status", "active"))
    balance = json.loads(ok(client(target, t, "balance", "consumer:c1", "--json")))["balance"]
    assert (balance["current"], balance["locked"], balance["available"]) == ("3500000", "0", "3500000")

    released = client(target, t, "holds", "release", created["id"])
    assert released.returncode == 1 and "HOLD_CAPTURED" in released.stderr


def test_unreachable_server_exits_2() -> None:
    result = tally("trial-balance", "--target", f"127.0.0.1:{free_port()}", "--timeout", "0.5")
    assert result.returncode == 2 and "cannot reach" in result.stderr
