"""tally-client as shipped: its generated code is what the protos give today, and it builds as a wheel that
imports and works with nothing but grpcio and protobuf (no `tally` package)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.client.conftest import CLIENT_ROOT

ROOT = CLIENT_ROOT.parents[1]
BUILD_TIMEOUT_S = 300


def test_shipped_generated_code_is_current() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_client_protos
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert gen_client_protos.check() == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(CLIENT_ROOT)], check=True, timeout=BUILD_TIMEOUT_S)
    (built,) = out.glob("tally_client-*.whl")
    return built


def test_wheel_ships_its_generated_code_and_nothing_of_the_server(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "tally_client/_gen/accounting_service_pb2_grpc.py" in names
    assert "tally_client/_gen/rpc_status_pb2.py" in names
    assert "tally_client/py.typed" in names
    assert not [n for n in names if n.startswith("tally/")]
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA"))).decode()
    requires = sorted(line.split(":", 1)[1].strip() for line in metadata.splitlines()
                      if line.startswith("Requires-Dist"))
    assert requires == ["grpcio>=1.85.1", "protobuf>=7.35.1"]


def test_wheel_imports_without_the_server_package(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # `tally` (the server) is installed in this venv: the child process makes it unimportable first.
    script = (
        "import sys; sys.modules['tally'] = None\n"
        "import tally_client, grpc\n"
        "assert tally_client.__file__.startswith(sys.argv[1]), tally_client.__file__\n"
        "r = tally_client.pb.accounting.PostRequest(request_id='x')\n"
        "assert r.DESCRIPTOR.full_name == 'tally.v1.PostRequest'\n"
        "c = tally_client.TallyClient('127.0.0.1:1', 'k', retry=tally_client.RetryPolicy(attempts_max=2,"
        " backoff_initial_s=0, backoff_max_s=0), deadline_s=2)\n"
        "try:\n"
        "    c.accounts.get_account(tally_client.pb.accounts.GetAccountRequest())\n"
        "except tally_client.TallyError as e:\n"
        "    assert e.code == grpc.StatusCode.UNAVAILABLE and e.attempts == 2, e\n"
        "else:\n"
        "    raise SystemExit('no error from a closed port')\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(site)], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
