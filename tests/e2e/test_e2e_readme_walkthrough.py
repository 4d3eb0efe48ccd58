"""The README's walkthrough, run as written: its marked code block goes line by line through `bash -e` against a
real `tally serve` process on SQLite, in the server's directory (where the first start wrote tally-admin.key),
with a `.venv` there that is this interpreter's. Then the CLI for people against SQLite and PostgreSQL:
amounts in currency units by default, counts with --atomic and --json, ids alone with --quiet, an id the
tenant cannot see explained without "use a key with a higher role", and no waiting when no server is there."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_e2e_serve_process import free_port
from tests.tally_process import BACKENDS, TallyProcess, module_process

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- walkthrough:"
BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
RUN_TIMEOUT_S = 180.0
CLI_TIMEOUT_S = 60.0
ENV = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}


def walkthrough_lines() -> list[str]:
    """The shell lines of the README's walkthrough: the first sh block after the marker."""
    text = README.read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, "the README marks exactly one walkthrough"
    match = BLOCK.search(text, text.index(MARKER))
    assert match, "no ```sh block after the walkthrough marker"
    return [line for line in match.group(1).splitlines() if line.strip()]


def venv_here(directory: Path) -> None:
    """`.venv` in `directory` for the walkthrough's `. .venv/bin/activate`: this interpreter's venv, or (when the
    tests run without one) an activate script that puts this interpreter's bin directory first on PATH."""
    if sys.prefix != sys.base_prefix:
        (directory / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        return
    bin_dir = directory / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TallyProcess]:
    directory = tmp_path_factory.mktemp("walkthrough")
    process = TallyProcess(directory, f"sqlite:///{directory / 'tally.db'}")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TallyProcess]:
    yield from module_process(request, tmp_path_factory)


def test_the_readme_walkthrough_runs_as_written(sqlite_server: TallyProcess) -> None:
    lines = walkthrough_lines()
    assert lines[0] == ". .venv/bin/activate" and not any("VOUCHER_ID" in line for line in lines)
    venv_here(sqlite_server.dir)
    script = sqlite_server.dir / "walkthrough.sh"
    script.write_text("set -ex\n" + "\n".join(lines) + "\n")  # -x: the log names the line that failed
    result = subprocess.run(["bash", str(script)], cwd=sqlite_server.dir, capture_output=True, text=True,
                            timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL,
                            env={**ENV, "TALLY_TARGET": sqlite_server.target})
    assert result.returncode == 0, f"stdout:\n{result.stdout[-6000:]}\nstderr:\n{result.stderr[-6000:]}"
    out = result.stdout
    assert "Traceback" not in result.stderr
    assert re.search(r"^current\s+3\.750000 USD$", out, re.MULTILINE), out  # alice after the transfer
    voucher = re.search(r"^\+ VOUCHER=([0-9a-f-]{36})$", result.stderr, re.MULTILINE)
    assert voucher, result.stderr  # --quiet gave the id alone, and `reverse "$VOUCHER"` used it
    assert re.search(rf"^reverses\s+{voucher.group(1)}$", out, re.MULTILINE), out
    assert re.search(r"^status\s+captured$", out, re.MULTILINE) and re.search(r"^captured\s+0\.040000 USD$", out,
                                                                               re.MULTILINE), out
    assert re.search(r"^account\s+alice$", out, re.MULTILINE), out  # the hold's account by code, not its id
    assert re.search(r"\susage\.default\s+1\s+consumer:c1:USD\s+debit\s+1\.234567\s+USD$", out, re.MULTILINE), out
    assert re.search(r"^BALANCED$", out, re.MULTILINE) and re.search(r"^intact: \d+ vouchers checked", out,
                                                                      re.MULTILINE), out


def cli(server: TallyProcess, *argv: str) -> subprocess.CompletedProcess:
    env = {**ENV, "TALLY_API_KEY": server.api_key}
    result = subprocess.run([sys.executable, "-m", "tally.cli", *argv, "--target", server.target],
                            capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def test_amounts_for_people_counts_for_programs(server: TallyProcess) -> None:
    run = uuid.uuid4().hex[:8]
    cash, shop = f"cash-{run}", f"shop-{run}"
    ok(cli(server, "accounts", "create", cash, "--type", "internal", "--normal-side", "debit", "--currency", "USD"))
    created = cli(server, "accounts", "create", shop, "--type", "deposit", "--currency", "USD", "--name", "The Shop",
                  "-q")
    shop_id = ok(created).strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", shop_id) and created.stderr == ""  # the id alone, no request-id line
    posted = cli(server, "adjust", "--line", f"debit:{cash}:12345678:USD", "--line", f"credit:{shop}:12345678:USD",
                 "--reason", "opening", "--quiet")
    voucher_id = ok(posted).strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", voucher_id), posted.stdout

    people = ok(cli(server, "balance", shop_id))  # named by id, shown by code and name
    assert re.search(rf"^account\s+{shop} \(The Shop\)$", people, re.MULTILINE), people
    assert re.search(r"^current\s+12\.345678 USD$", people, re.MULTILINE) and shop_id not in people, people
    atomic = ok(cli(server, "balance", shop, "--atomic"))
    assert re.search(r"^current\s+12345678$", atomic, re.MULTILINE) and shop_id in atomic, atomic
    assert json.loads(ok(cli(server, "balance", shop, "--json")))["balance"]["current"] == "12345678"

    voucher = ok(cli(server, "vouchers", "get", voucher_id))
    assert re.search(rf"^\s+2\s+{shop}\s+credit\s+12\.345678\s+USD$", voucher, re.MULTILINE), voucher
    assert shop_id not in voucher  # the line names the account by code
    listed = ok(cli(server, "accounts", "list", "--all"))
    assert re.search(rf"^{shop}\s+The Shop\s+deposit\s+USD\s+active\s+0\.000000$", listed, re.MULTILINE), listed


def test_an_id_the_tenant_cannot_see_is_not_a_role_problem(server: TallyProcess) -> None:
    unknown = str(uuid.uuid4())
    refused = cli(server, "vouchers", "get", unknown)
    assert refused.returncode == 1, refused
    assert "PERMISSION_DENIED VOUCHER_NOT_ACCESSIBLE" in refused.stderr, refused.stderr
    assert "no voucher with that id is visible to the key's tenant" in refused.stderr, refused.stderr
    assert "use a key with a higher role" not in refused.stderr


def test_no_server_fails_fast_in_one_line() -> None:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tally.cli", "balance", "alice", "--target",
                             f"127.0.0.1:{free_port()}", "--api-key", "tly_0123456789abcdef_" + "a" * 43],
                            capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=ENV, stdin=subprocess.DEVNULL)
    elapsed_s = time.monotonic() - started
    assert result.returncode == 2 and result.stdout == "", result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the tally server: the connection failed"), \
        result.stderr
    assert elapsed_s < 5.0, f"took {elapsed_s:.1f} s; the default deadline is 10 s"  # interpreter start included
