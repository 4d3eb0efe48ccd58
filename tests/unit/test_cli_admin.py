"""`tally tenants` and `tally keys` through tally.cli.main on a migrated SQLite file (no server): parsing,
tenant and key life cycle, keys shown once and never listed, refusals and their exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tally import cli
from tally.cli import admin as cli_admin
from tally.service.auth.keys import secret_hash
from tally.storage import auth_repo
from tally.storage.engine import make_engines
from tally.storage.migrate import migrate
from tally.storage.uow import Scope, UnitOfWork

KEY = re.compile(r"tly_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")


@pytest.fixture
def db(tmp_path: Path, monkeypatch) -> str:
    """A migrated, empty ledger database; TALLY_DATABASE_URL points elsewhere so --database-url must win."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    monkeypatch.setenv("TALLY_DATABASE_URL", f"sqlite:///{tmp_path / 'not-this.db'}")
    return url


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def stored_keys(url: str, tenant: str) -> list[auth_repo.KeyRecord]:
    engines = make_engines(url, pool_size=1)
    try:
        return UnitOfWork(engines).read({tenant}, lambda conn: auth_repo.list_keys(conn, tenant))
    finally:
        engines.dispose()


def test_tenant_and_key_life_cycle(db: str, capsys):
    status, out, _ = run(capsys, "tenants", "create", "acme", "--name", "Acme Corp", "--database-url", db)
    assert status == 0 and "created tenant acme" in out and "tally keys create --tenant acme" in out
    assert run(capsys, "tenants", "create", "beta", "--database-url", db)[0] == 0

    status, out, _ = run(capsys, "tenants", "list", "--database-url", db)
    assert status == 0
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [row[0] for row in rows] == ["acme", "beta"] and rows[0][1:3] == ["Acme", "Corp"]
    listed = json.loads(run(capsys, "tenants", "list", "--json", "--database-url", db)[1])
    assert [(t["tenant"], t["name"]) for t in listed["tenants"]] == [("acme", "Acme Corp"), ("beta", "")]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", listed["tenants"][0]["created"])

    status, out, err = run(capsys, "keys", "create", "--tenant", "acme", "--role", "poster", "--name", "billing",
                           "--database-url", db)
    assert status == 0 and err == ""
    shown = KEY.findall(out)
    assert len(shown) == 1 and out.count("tly_") == 1  # printed once
    assert "cannot be shown again" in out and re.search(r"^role\s+poster$", out, re.MULTILINE)
    key_id = shown[0]

    status, out, err = run(capsys, "keys", "create", "--tenant", "acme", "--role", "reader", "--json",
                           "--database-url", db)
    issued = json.loads(out)
    assert status == 0 and set(issued) == {"key_id", "tenant", "role", "key"}
    assert (issued["tenant"], issued["role"]) == ("acme", "reader") and KEY.fullmatch(issued["key"])
    assert issued["key"].startswith(f"tly_{issued['key_id']}_") and "cannot be shown again" in err

    stored = {record.id: record for record in stored_keys(db, "acme")}
    assert set(stored) == {key_id, issued["key_id"]}
    record = stored[issued["key_id"]]
    assert record.secret_hash == secret_hash(record.salt, issued["key"][len("tly_") + 17:])  # only a hash stored
    assert record.created_by.startswith("cli")

    status, out, _ = run(capsys, "keys", "list", "--tenant", "acme", "--database-url", db)
    assert status == 0 and "tly_" not in out and record.salt not in out and record.secret_hash not in out
    table = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert table[key_id][1:4] == ["poster", "active", "billing"]
    assert table[issued["key_id"]][1:3] == ["reader", "active"]

    status, out, _ = run(capsys, "keys", "revoke", "--tenant", "acme", key_id, "--database-url", db)
    assert status == 0 and f"revoked key {key_id} of tenant acme" in out and "TALLY_AUTH_CACHE_TTL_S" in out
    listing = json.loads(run(capsys, "keys", "list", "--tenant", "acme", "--json", "--database-url", db)[1])
    by_id = {k["key_id"]: k for k in listing["keys"]}
    assert listing["tenant"] == "acme" and "tly_" not in json.dumps(listing)
    assert by_id[key_id]["status"] == "revoked" and by_id[key_id]["revoked"]
    assert by_id[issued["key_id"]]["status"] == "active" and by_id[issued["key_id"]]["revoked"] is None

    status, _, err = run(capsys, "keys", "revoke", "--tenant", "acme", key_id, "--database-url", db)
    assert status == 1 and "NOT_FOUND KEY_NOT_FOUND" in err  # already revoked
    status, _, err = run(capsys, "keys", "revoke", "--tenant", "beta", issued["key_id"], "--database-url", db)
    assert status == 1 and "KEY_NOT_FOUND" in err  # another tenant's key
    out = run(capsys, "keys", "list", "--tenant", "beta", "--database-url", db)[1]
    assert out.startswith("tenant beta has no keys")


def test_refusals(db: str, capsys):
    assert run(capsys, "tenants", "create", "acme", "--database-url", db)[0] == 0
    status, _, err = run(capsys, "tenants", "create", "acme", "--database-url", db)
    assert status == 1 and err == "error: ALREADY_EXISTS TENANT_EXISTS: tenant acme exists\n"
    status, _, err = run(capsys, "keys", "create", "--tenant", "nope", "--role", "admin", "--database-url", db)
    assert status == 1 and "NOT_FOUND TENANT_NOT_FOUND" in err
    status, _, err = run(capsys, "keys", "list", "--tenant", "nope", "--database-url", db)
    assert status == 1 and "TENANT_NOT_FOUND" in err
    status, _, err = run(capsys, "tenants", "create", "acme2", "--name", "x" * 300, "--database-url", db)
    assert status == 1 and "TEXT_TOO_LONG" in err


def test_the_environment_names_the_database(db: str, monkeypatch, capsys):
    monkeypatch.setenv("TALLY_DATABASE_URL", db)
    assert run(capsys, "tenants", "create", "acme")[0] == 0
    assert run(capsys, "tenants", "list")[1].splitlines()[2].startswith("acme")


@pytest.mark.parametrize("argv", [
    ["tenants", "create", "Acme"], ["tenants", "create", "_bad"], ["tenants", "create", "a" * 65],
    ["tenants", "create", "a b"], ["keys", "create", "--tenant", "acme", "--role", "root"],
    ["keys", "create", "--tenant", "acme"], ["keys", "create", "--role", "admin"], ["keys", "list"],
    ["keys", "revoke", "--tenant", "acme", "xyz"], ["keys", "revoke", "--tenant", "acme"],
    ["keys", "revoke", "--tenant", "acme", "tly_0123456789abcdef_" + "s" * 43],
])
def test_argument_errors_exit_2(argv, capsys):
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert "s" * 43 not in err  # a key given where its id belongs is not echoed


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path, capsys):
    absent = tmp_path / "absent.db"
    status, _, err = run(capsys, "tenants", "list", "--database-url", f"sqlite:///{absent}")
    assert status == 2 and "no database at" in err and "tally migrate" in err and not absent.exists()


def test_an_unmigrated_database_says_migrate(tmp_path: Path, capsys):
    empty = tmp_path / "empty.db"
    empty.touch()
    status, _, err = run(capsys, "tenants", "list", "--database-url", f"sqlite:///{empty}")
    assert status == 1 and "no such table" in err and "tally migrate" in err


def test_a_bad_url_exits_2(capsys):
    assert run(capsys, "tenants", "list", "--database-url", "nonsense")[0] == 2
    assert run(capsys, "tenants", "list", "--database-url", "mysql://x/y")[0] == 2


def test_time_text_is_integer_arithmetic():
    assert cli_admin.time_text(0) == "1970-01-01T00:00:00Z"
    assert cli_admin.time_text(1_767_225_600_999_999) == "2026-01-01T00:00:00Z"
    assert cli_admin.time_text(None) == ""


def test_tenants_list_reads_every_tenant(db: str, capsys, monkeypatch):
    scopes = []
    real_read = UnitOfWork.read

    def spy(self, tenants, work):
        scopes.append(tenants)
        return real_read(self, tenants, work)

    monkeypatch.setattr(UnitOfWork, "read", spy)
    run(capsys, "tenants", "create", "acme", "--database-url", db)
    run(capsys, "tenants", "list", "--database-url", db)
    run(capsys, "keys", "list", "--tenant", "acme", "--database-url", db)
    assert scopes == [Scope.SYSTEM, {"acme"}]
