"""The `tally` command as a real process against a real `tally serve` process (SQLite in a temp file):
credentials provisioned the way an operator would (`tally tenants create`, `tally keys create --json` on
the server's database, the key passed in TALLY_API_KEY, or the tally-admin.key the first start wrote),
`demo` (balanced, replayed by a rerun with the same --run, untouched by another run), `rules check|show`,
`post`, `trial-balance`, `verify`, a holds cycle, roles, revocation, refusals and `--json` output.

One server for the module, with the verified-key cache off (TALLY_AUTH_CACHE_TTL_S=0) so a revoked key is
refused at once; each test works in tenants of its own. Every CLI run is a fresh interpreter (`python -m
tally.cli`, or the installed console script for the demo) in a directory without a key file, and no key
ever appears in a client verb's output."""

from __future__ import annotations

import dataclasses
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
ENV = {k: v for k, v in os.environ.items()
       if k not in ("TALLY_TARGET", "TALLY_TENANT", "TALLY_API_KEY", "TALLY_KEY_FILE", "TALLY_DATABASE_URL")}
KEY = re.compile(r"tly_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")


@dataclasses.dataclass
class Served:
    target: str
    database_url: str
    directory: Path  # the server's working directory: its tally-admin.key is here
    cwd: Path  # where client runs happen: no key file
    keys: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A `tally serve` process on a fresh SQLite file, started in a directory of its own."""
    directory = tmp_path_factory.mktemp("e2e-cli")
    db, log, port = directory / "tally.db", directory / "serve.log", free_port()
    with pytest.MonkeyPatch.context() as patch:  # tally_serve passes os.environ on
        patch.setenv("TALLY_AUTH_CACHE_TTL_S", "0")
        patch.delenv("TALLY_ADMIN_KEY_FILE", raising=False)
        patch.delenv("TALLY_BOOTSTRAP_ADMIN", raising=False)
        serving = tally_serve(db, port, log)
        proc = serving.__enter__()
    try:
        channel = open_channel(f"127.0.0.1:{port}", timeout_s=10)
        try:
            wait_serving(proc, channel, log)
        finally:
            channel.close()
        yield Served(f"127.0.0.1:{port}", f"sqlite:///{db}", directory, tmp_path_factory.mktemp("e2e-cli-cwd"))
        stop(proc, log)
    finally:
        serving.__exit__(None, None, None)
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]
    assert not KEY.search(text), "a key was logged"


def tally(*argv: str, key: str | None = None, cwd: Path, script: bool = False) -> subprocess.CompletedProcess:
    """Runs the CLI in a new process, the key (if any) in TALLY_API_KEY; `script` uses the installed `tally`
    console script when there is one."""
    installed = Path(sys.executable).parent / "tally"
    command = [str(installed)] if script and installed.exists() else [sys.executable, "-m", "tally.cli"]
    env = dict(ENV) if key is None else {**ENV, "TALLY_API_KEY": key}
    result = subprocess.run([*command, *argv], capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env,
                            stdin=subprocess.DEVNULL, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def client(served: Served, key: str | None, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    result = tally(*argv, "--target", served.target, key=key, cwd=kwargs.pop("cwd", served.cwd), **kwargs)
    assert not KEY.search(result.stdout + result.stderr), "a client verb printed a key"
    return result


def admin(served: Served, *argv: str) -> subprocess.CompletedProcess:
    return tally(*argv, "--database-url", served.database_url, cwd=served.cwd)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def provision(served: Served, tenant: str, role: str = "admin") -> str:
    """A key for `tenant` with `role`, issued as an operator would: `tally tenants create` (once) and
    `tally keys create --json` against the server's database."""
    if (tenant, role) not in served.keys:
        created = admin(served, "tenants", "create", tenant, "--name", f"e2e {tenant}")
        assert created.returncode == 0 or "TENANT_EXISTS" in created.stderr, created.stderr
        issued = json.loads(ok(admin(served, "keys", "create", "--tenant", tenant, "--role", role, "--name",
                                     f"e2e-{role}", "--json")))
        assert (issued["tenant"], issued["role"]) == (tenant, role) and KEY.fullmatch(issued["key"])
        served.keys[tenant, role] = issued["key"]
    return served.keys[tenant, role]


# ---------------------------------------------------------------------------------------------- demo


def _without_replay_marks(text: str) -> str:
    text = text.replace(" (replayed)", "")
    return re.sub(r"^\d+ requests: .*$", "", text, flags=re.MULTILINE)


def test_demo_is_balanced_and_a_rerun_replays(served: Served) -> None:
    key = provision(served, "cli-demo", "operator")
    first = ok(client(served, key, "demo", "--run", "rerun", script=True))
    assert "run rerun" in first and "tenant cli-demo (the API key's)" in first
    assert "BALANCED" in first and "NOT BALANCED" not in first
    assert "13 requests: 13 done now, 0 replayed" in first
    assert "residue of 5678" in first and "merchant:rerun-acme:USD/settled" in first
    for step in ("funding", "usage", "acquisition", "refund", "merchant settlement", "channel settlement",
                 "bank settlement", "payout prerequisites", "payout"):
        assert f". {step}" in first
    books = json.loads(ok(client(served, key, "trial-balance", "--json")))
    settled = ok(client(served, key, "balance", "merchant:rerun-acme:USD/settled", "--json"))

    second = ok(client(served, key, "demo", "--run", "rerun", script=True))
    assert "13 requests: 0 done now, 13 replayed" in second and "BALANCED" in second
    assert _without_replay_marks(second) == _without_replay_marks(first)  # the same vouchers and balances
    assert json.loads(ok(client(served, key, "trial-balance", "--json"))) == books
    assert json.loads(ok(client(served, key, "balance", "merchant:rerun-acme:USD/settled", "--json")))["balance"] == \
        json.loads(settled)["balance"]


def test_demo_json_in_a_fresh_run_of_the_same_tenant(served: Served) -> None:
    key = provision(served, "cli-demo", "operator")
    report = json.loads(ok(client(served, key, "demo", "--json", "--scale", "6")))
    assert re.fullmatch(r"[0-9a-f]{8}", report["run"]) and report["tenant"] == "cli-demo"
    assert report["balanced"] is True and report["trial_balance"]["balanced"] is True
    assert report["requests"] == 13 and report["replayed"] == 0  # nothing shared with another run
    assert all(rid.startswith(f"{report['run']}.") for step in report["steps"] for rid in step["request_ids"])
    payout = report["steps"][-1]
    settled = next(b for b in payout["balances"] if b["account"] == f"merchant:{report['run']}-acme:USD/settled")
    assert int(settled["before"]) - int(settled["after"]) == 12_340_000  # whole cents of the 12345678 asked
    assert all(v["tenant_id"] == "cli-demo" for step in report["steps"] for v in step["vouchers"])
    chain = json.loads(ok(client(served, key, "verify", "--json")))
    assert chain["intact"] is True and int(chain["vouchers_checked"]) >= 2 * 13


def test_the_demo_needs_an_operator_key(served: Served) -> None:
    result = client(served, provision(served, "cli-demo-poster", "poster"), "demo", "--run", "p1")
    assert result.returncode == 1
    assert "step 8 (payout prerequisites" in result.stderr and "PERMISSION_DENIED ROLE_NOT_ALLOWED" in result.stderr
    assert "operator or admin key" in result.stderr


# ---------------------------------------------------------------------------------------------- rules


def test_rules_check_default_and_broken(served: Served, tmp_path: Path) -> None:
    out = ok(tally("rules", "check", str(DEFAULT_RULES), cwd=served.cwd))  # offline: no key, no server
    assert re.fullmatch(rf"{re.escape(str(DEFAULT_RULES))}: valid, version \S+, \d+ rules\n", out)

    broken = tmp_path / "broken.toml"
    line = 'account = "consumer:{consumer}:{currency}"\namount = "amount'
    broken.write_text(DEFAULT_RULES.read_text().replace(line + '"', line + ' +"', 1))
    result = tally("rules", "check", str(broken), cwd=served.cwd)
    assert result.returncode == 1, result
    assert f"{broken}: rules[1] (id=usage.default).vouchers[0].lines[0].amount:" in result.stdout
    assert "invalid, 1 problem(s)" in result.stderr


def test_rules_show(served: Served) -> None:
    key = provision(served, "cli-rules", "reader")
    out = ok(client(served, key, "rules", "show"))
    assert "usage.default" in out and "bps(amount, platform_fee_bps)" in out and "proportional_reversal" in out
    shown = json.loads(ok(client(served, key, "rules", "show", "--json")))
    assert {"usage", "payout"} <= set(shown["flow_types"])


# ---------------------------------------------------------------------------------------------- post


def test_post_usage_then_trial_balance(served: Served) -> None:
    key = provision(served, "cli-post", "poster")
    ok(client(served, key, "post", "funding", "--consumer", "c1", "--processor", "card", "--amount", "10000000",
              "--currency", "USD", "--request-id", "fund-1"))
    usage = ["post", "usage", "--consumer", "c1", "--merchant", "m1", "--amount", "1234567", "--currency", "USD",
             "--affiliate", "a1", "--share", "m1:7000", "--share", "m2:3000", "--request-id", "use-1"]
    out = ok(client(served, key, *usage, "--scale", "6"))
    rows = [line.split() for line in out.splitlines()]
    assert ["2", "usage", "usage.default", "1", "consumer:c1:USD", "debit", "1234567", "1.234567", "USD"] in rows
    assert ["2", "usage", "usage.default", "3", "affiliate:a1:USD", "credit", "61728", "0.061728", "USD"] in rows
    assert any(row[4:6] == ["merchant:m2:USD/settled", "credit"] for row in rows if len(row) > 5)

    again = client(served, key, *usage, "--json")
    posted = json.loads(ok(again))
    assert posted["replayed"] is True and posted["vouchers"][0]["lines"][0]["amount"] == "1234567"
    assert posted["vouchers"][0]["tenant_id"] == "cli-post"  # the key's tenant

    tb = ok(client(served, key, "trial-balance", "--check"))
    assert tb.rstrip().endswith("BALANCED") and "NOT BALANCED" not in tb
    totals = json.loads(ok(client(served, key, "trial-balance", "--json")))
    assert totals["balanced"] is True
    assert [(x["currency"], x["debit_total"], x["credit_total"]) for x in totals["totals"]] == \
        [("USD", "10000000", "10000000")]

    refused = client(served, key, "post", "payout", "--merchant", "m1", "--amount", "100", "--currency", "USD")
    assert refused.returncode == 1 and "FAILED_PRECONDITION KYC_NOT_VERIFIED" in refused.stderr
    assert "request-id: " in refused.stderr
    malformed = client(served, key, "post", "usage", "--consumer", "c1", "--merchant", "m1", "--amount", "1.5",
                       "--currency", "USD")
    assert malformed.returncode == 2 and "no decimal point" in malformed.stderr


def test_holds_create_capture_cycle(served: Served) -> None:
    key = provision(served, "cli-holds", "admin")
    ok(client(served, key, "post", "funding", "--consumer", "c1", "--processor", "ach", "--amount", "5000000",
              "--currency", "USD", "--request-id", "fund-1"))
    shop = ok(client(served, key, "accounts", "create", "shop", "--type", "deposit", "--currency", "USD"))
    assert re.search(r"^tenant\s+cli-holds$", shop, re.MULTILINE)
    created = json.loads(ok(client(served, key, "holds", "create", "consumer:c1:USD", "2000000", "--currency", "USD",
                                   "--expires-in", "3600", "--memo", "api credit", "--json")))["hold"]
    assert created["status"] == "HOLD_STATUS_ACTIVE" and created["remaining"] == "2000000" and created["expire_time"]
    balance = json.loads(ok(client(served, key, "balance", "consumer:c1:USD", "--json")))["balance"]
    assert (balance["locked"], balance["available"]) == ("2000000", "3000000")

    out = ok(client(served, key, "holds", "capture", created["id"], "1500000", "--to", "shop",
                    "--final", "--request-id", "cap-1", "--atomic"))  # counts as stored (default: 1.500000 USD)
    assert re.search(r"^status\s+captured$", out, re.MULTILINE) and re.search(r"^captured\s+1500000$", out,
                                                                               re.MULTILINE)
    assert re.search(r"^\s+2\s+shop\s+\S+\s+credit\s+1500000\s+USD", out, re.MULTILINE), out

    got = ok(client(served, key, "holds", "get", created["id"], "--atomic"))
    assert re.search(r"^remaining\s+0$", got, re.MULTILINE)
    listed = ok(client(served, key, "holds", "list", "--account", "consumer:c1:USD", "--status", "captured",
                       "--atomic"))
    assert created["id"] in listed and "1500000" in listed
    assert created["id"] not in ok(client(served, key, "holds", "list", "--status", "active"))
    balance = json.loads(ok(client(served, key, "balance", "consumer:c1:USD", "--json")))["balance"]
    assert (balance["current"], balance["locked"], balance["available"]) == ("3500000", "0", "3500000")

    released = client(served, key, "holds", "release", created["id"])
    assert released.returncode == 1 and "HOLD_CAPTURED" in released.stderr


# ---------------------------------------------------------------------------------------------- credentials


def test_a_reader_key_cannot_post(served: Served) -> None:
    key = provision(served, "cli-reader", "reader")
    assert "no accounts" in ok(client(served, key, "trial-balance"))
    refused = client(served, key, "post", "funding", "--consumer", "c1", "--processor", "card", "--amount", "100",
                     "--currency", "USD", "--request-id", "fund-1")
    assert refused.returncode == 1 and refused.stdout == ""
    assert "error: PERMISSION_DENIED ROLE_NOT_ALLOWED: role reader may not post" in refused.stderr
    assert "the key sent came from TALLY_API_KEY" in refused.stderr
    denied = client(served, key, "verify")  # verification is for operators
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr


def test_a_revoked_key_is_refused(served: Served) -> None:
    key = provision(served, "cli-revoke", "poster")
    assert "BALANCED" in ok(client(served, key, "trial-balance"))
    key_id = key[len("tly_"):][:16]
    listed = json.loads(ok(admin(served, "keys", "list", "--tenant", "cli-revoke", "--json")))
    assert [(k["key_id"], k["status"]) for k in listed["keys"]] == [(key_id, "active")]
    assert not KEY.search(json.dumps(listed))

    revoked = ok(admin(served, "keys", "revoke", "--tenant", "cli-revoke", key_id))
    assert f"revoked key {key_id} of tenant cli-revoke" in revoked and not KEY.search(revoked)
    refused = client(served, key, "trial-balance")  # the server's key cache is off: refused at once
    assert refused.returncode == 1
    assert "error: UNAUTHENTICATED KEY_REVOKED" in refused.stderr
    assert "the key sent came from TALLY_API_KEY and was refused" in refused.stderr
    listed = json.loads(ok(admin(served, "keys", "list", "--tenant", "cli-revoke", "--json")))
    assert listed["keys"][0]["status"] == "revoked" and listed["keys"][0]["revoked"]


def test_verify_on_a_fresh_ledger_says_intact(served: Served) -> None:
    key = provision(served, "cli-verify", "operator")
    out = ok(client(served, key, "verify"))
    assert out.startswith("intact: 0 vouchers checked")
    ok(client(served, key, "post", "funding", "--consumer", "c1", "--processor", "card", "--amount", "100",
              "--currency", "USD", "--request-id", "fund-1"))
    assert ok(client(served, key, "verify")).startswith("intact: 1 voucher checked, head hash ")


def test_no_credentials_is_unauthenticated_with_a_hint(served: Served) -> None:
    result = client(served, None, "trial-balance")
    assert result.returncode == 1
    assert "error: UNAUTHENTICATED CREDENTIALS_MISSING" in result.stderr
    assert "no API key was sent" in result.stderr and "TALLY_API_KEY" in result.stderr
    assert "tally keys create" in result.stderr
    gone = client(served, None, "trial-balance", "--tenant", "local")
    assert gone.returncode == 2 and "the tenant comes from the API key" in gone.stderr
    absent = client(served, None, "trial-balance", "--key-file", str(served.cwd / "absent.key"))
    assert absent.returncode == 2 and "does not exist" in absent.stderr


def test_the_first_start_key_file_is_used_from_the_current_directory(served: Served) -> None:
    key_file = served.directory / "tally-admin.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    created = ok(client(served, None, "accounts", "create", "cash", "--type", "deposit", "--currency", "USD",
                        cwd=served.directory))
    assert re.search(r"^tenant\s+local$", created, re.MULTILINE)
    by_option = ok(client(served, None, "accounts", "get", "cash", "--key-file", str(key_file)))
    assert re.search(r"^tenant\s+local$", by_option, re.MULTILINE)
    tenants = ok(admin(served, "tenants", "list"))
    assert re.search(r"^local\s", tenants, re.MULTILINE) and re.search(r"^cli-\w+", tenants, re.MULTILINE)


def test_unreachable_server_exits_2(served: Served) -> None:
    result = tally("trial-balance", "--target", f"127.0.0.1:{free_port()}", "--timeout", "0.5", "--api-key",
                   "tly_0123456789abcdef_" + "a" * 43, cwd=served.cwd)
    assert result.returncode == 2 and "cannot reach" in result.stderr and "a" * 43 not in result.stderr
