"""TLS and mutual TLS on the gRPC port, with throwaway certificates made by the `openssl` command line.

A test CA signs a server certificate (SAN IP:127.0.0.1 and DNS:localhost) and a client certificate; a
second, unrelated CA signs a client certificate the server must not accept. Proven over the real wire:
a TLS client that trusts the CA works (with its API key); plaintext and untrusting clients fail; with a
client CA configured, a client without a certificate, or with one from another CA, is refused at the
handshake (the call never reaches the server: no audit row), and a client with a certificate the CA
signed works. TLS never replaces the API key. Bad TLS settings stop the start with a message naming the
variable and file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tally import cli
from tally.api.tls import load_tls
from tally.config import ConfigError, Settings
from tally.storage import tables
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import types_pb2
from tests.e2e.conftest import (
    STOP_TIMEOUT_S,
    TenantKeys,
    e2e_settings,
    error_info,
    md,
    running_server,
    with_credentials,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line")

TENANT = "tls"
CALL_TIMEOUT_S = 10.0
REFUSED_AT_HANDSHAKE = grpc.StatusCode.UNAVAILABLE


# ------------------------------------------------------------------------------------------ certificates


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_client_cert: Path  # signed by other_ca: the server's client CA must not accept it
    other_client_key: Path

    def read(self, path: Path) -> bytes:
        return path.read_bytes()


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"openssl {' '.join(args)} failed: {result.stderr}"


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=directory)
    return cert, key


def _make_leaf(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
             "-out", str(csr), "-subj", f"/CN={name}", cwd=directory)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-out", str(cert), "-days", "2", "-extfile", str(ext), cwd=directory)
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = _make_ca(directory, "tally-test-ca")
    server = _make_leaf(directory, "localhost", ca,
                        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    client_ext = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
    client = _make_leaf(directory, "tally-client", ca, client_ext)
    other_ca = _make_ca(directory, "other-ca")
    other_client = _make_leaf(directory, "intruder", other_ca, client_ext)
    return Pki(ca=ca[0], server_cert=server[0], server_key=server[1], client_cert=client[0], client_key=client[1],
               other_ca=other_ca[0], other_client_cert=other_client[0], other_client_key=other_client[1])


def tls_settings(url: str, pki: Pki, *, mutual: bool = False) -> Settings:
    return e2e_settings(url, tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key),
                        tls_client_ca_file=str(pki.ca) if mutual else "")


# ------------------------------------------------------------------------------------------ client side


def tls_channel(target: str, root: bytes | None, key: bytes | None = None, cert: bytes | None = None,
                host: str | None = None) -> grpc.Channel:
    """A TLS channel to the server (``host`` replaces 127.0.0.1 in the address, e.g. ``localhost``)."""
    credentials = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=cert)
    address = target if host is None else f"{host}:{target.rsplit(':', 1)[1]}"
    return with_credentials(grpc.secure_channel(address, credentials), target)


def create_and_read(channel: grpc.Channel, code: str) -> types_pb2.Account:
    stub = acc_grpc.AccountServiceStub(channel)
    created = stub.CreateAccount(acc_pb.CreateAccountRequest(
        request_id=f"create-{code}", code=code, type=types_pb2.ACCOUNT_TYPE_DEPOSIT, currency="USD"),
        metadata=md(TENANT), timeout=CALL_TIMEOUT_S).account
    read = stub.GetAccount(acc_pb.GetAccountRequest(account=types_pb2.AccountRef(code=code)),
                           metadata=md(TENANT), timeout=CALL_TIMEOUT_S).account
    assert read.id == created.id and read.tenant_id == TENANT
    return read


def call_error(channel: grpc.Channel, *, with_key: bool = True) -> grpc.RpcError:
    stub = acc_grpc.AccountServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListAccounts(acc_pb.ListAccountsRequest(), metadata=md(TENANT) if with_key else (),
                          timeout=CALL_TIMEOUT_S)
    return caught.value


def audit_rows(server) -> int:
    asyncio.run_coroutine_threadsafe(server.app.services.audit.flush(), server.loop).result(STOP_TIMEOUT_S)
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(tables.audit_log)).scalar_one()
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------ server TLS


def test_a_tls_client_that_trusts_the_ca_works_and_plaintext_does_not(sqlite_url, pki) -> None:
    with running_server(tls_settings(sqlite_url, pki)) as server:
        assert server.app.server.tls and not server.app.server.mutual_tls
        ca = pki.read(pki.ca)
        for host, code in ((None, "by-ip"), ("localhost", "by-name")):  # both subject alternative names
            channel = tls_channel(server.target, ca, host=host)
            try:
                assert create_and_read(channel, code).code == code
                health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                                   timeout=CALL_TIMEOUT_S)
                assert health.status == health_pb2.HealthCheckResponse.SERVING
                # TLS is the transport, not the credential: a call without an API key is still refused.
                assert error_info(call_error(channel, with_key=False))[:2] == (
                    grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING")
            finally:
                channel.close()

        before = audit_rows(server)
        plaintext = with_credentials(grpc.insecure_channel(server.target), server.target)
        untrusting = tls_channel(server.target, pki.read(pki.other_ca))  # trusts another CA only
        try:
            for channel in (plaintext, untrusting):
                assert call_error(channel).code() is REFUSED_AT_HANDSHAKE
        finally:
            plaintext.close()
            untrusting.close()
        assert audit_rows(server) == before, "a connection that failed its handshake reached the service"


def test_mutual_tls_requires_a_client_certificate_the_ca_signed(sqlite_url, pki) -> None:
    with running_server(tls_settings(sqlite_url, pki, mutual=True)) as server:
        assert server.app.server.tls and server.app.server.mutual_tls
        ca = pki.read(pki.ca)
        before = audit_rows(server)
        refused = {
            "no client certificate": tls_channel(server.target, ca),
            "a certificate from another CA": tls_channel(server.target, ca, pki.read(pki.other_client_key),
                                                         pki.read(pki.other_client_cert)),
            "plaintext": with_credentials(grpc.insecure_channel(server.target), server.target),
        }
        try:
            for what, channel in refused.items():
                code = call_error(channel).code()
                assert code is REFUSED_AT_HANDSHAKE, f"{what}: {code}"
        finally:
            for channel in refused.values():
                channel.close()
        assert audit_rows(server) == before, "a connection refused at the handshake reached the service"

        channel = tls_channel(server.target, ca, pki.read(pki.client_key), pki.read(pki.client_cert))
        try:
            assert create_and_read(channel, "mutual").code == "mutual"
            # The client certificate opens the connection; each call still needs its API key.
            assert error_info(call_error(channel, with_key=False))[:2] == (
                grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING")
        finally:
            channel.close()


# ------------------------------------------------------------------------------------------ the tally command

CLI_TIMEOUT_S = 30  # a CLI run that should succeed: room for a slow handshake on a busy machine
CLI_REFUSED_TIMEOUT_S = 3  # how long a refused CLI run waits for a connection that never comes up


def run_cli(server, *argv: str, env: dict[str, str] | None = None,
            timeout_s: int = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """The `tally` command as a process of its own, with the tenant's key and no other TALLY_ setting."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    environ["TALLY_API_KEY"] = TenantKeys.for_target(server.target).key_for(TENANT)
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "tally.cli", *argv, "--target", server.target,
                           "--timeout", str(timeout_s)],
                          env=environ, capture_output=True, text=True, timeout=60)


def assert_unreachable(server, hint: str, *argv: str) -> None:
    result = run_cli(server, *argv, timeout_s=CLI_REFUSED_TIMEOUT_S)
    assert result.returncode == cli.EXIT_UNREACHABLE, result
    assert "cannot reach the tally server" in result.stderr and hint in result.stderr, result.stderr


def test_the_tally_command_connects_over_tls_with_its_ca_file(sqlite_url, pki) -> None:
    with running_server(tls_settings(sqlite_url, pki)) as server:
        created = run_cli(server, "accounts", "create", "from-cli", "--type", "deposit", "--currency", "USD",
                          "--json", "--ca-file", str(pki.ca))
        assert created.returncode == 0, created.stderr
        account_id = json.loads(created.stdout)["account"]["id"]
        read = run_cli(server, "accounts", "get", "from-cli", "--json", env={"TALLY_CA_FILE": str(pki.ca)})
        assert read.returncode == 0, read.stderr
        assert json.loads(read.stdout)["account"]["id"] == account_id

        # --target is 127.0.0.1; the certificate also names localhost, and nothing else.
        by_name = run_cli(server, "accounts", "get", "from-cli", "--ca-file", str(pki.ca), "--server-name", "localhost")
        assert by_name.returncode == 0 and "from-cli" in by_name.stdout, by_name.stderr
        assert_unreachable(server, "--server-name", "accounts", "get", "from-cli", "--ca-file", str(pki.ca),
                           "--server-name", "ledger.example")

        assert_unreachable(server, "pass --ca-file", "accounts", "get", "from-cli")  # plaintext
        for refused in (["--ca-file", str(pki.other_ca)],  # trusts another CA only
                        ["--tls"]):  # the system's CAs did not sign the test server's certificate
            assert_unreachable(server, "over TLS", "accounts", "get", "from-cli", *refused)


def test_the_tally_command_presents_its_client_certificate_for_mutual_tls(sqlite_url, pki) -> None:
    with running_server(tls_settings(sqlite_url, pki, mutual=True)) as server:
        mutual = ["--ca-file", str(pki.ca), "--client-cert", str(pki.client_cert), "--client-key", str(pki.client_key)]
        created = run_cli(server, "accounts", "create", "mutual-cli", "--type", "deposit", "--currency", "USD",
                          *mutual)
        assert created.returncode == 0, created.stderr
        from_env = run_cli(server, "accounts", "get", "mutual-cli", env={
            "TALLY_CA_FILE": str(pki.ca), "TALLY_CLIENT_CERT_FILE": str(pki.client_cert),
            "TALLY_CLIENT_KEY_FILE": str(pki.client_key)})
        assert from_env.returncode == 0 and "mutual-cli" in from_env.stdout, from_env.stderr

        assert_unreachable(server, "--client-cert and --client-key", "accounts", "get", "mutual-cli",
                           "--ca-file", str(pki.ca))
        intruder = ["--ca-file", str(pki.ca), "--client-cert", str(pki.other_client_cert),
                    "--client-key", str(pki.other_client_key)]
        assert_unreachable(server, "over TLS", "accounts", "get", "mutual-cli", *intruder)


def test_an_unusable_tls_setting_stops_the_command_before_it_connects(pki, tmp_path, monkeypatch, capsys) -> None:
    for name in ("TALLY_TLS", "TALLY_CA_FILE", "TALLY_CLIENT_CERT_FILE", "TALLY_CLIENT_KEY_FILE",
                 "TALLY_TLS_SERVER_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TALLY_API_KEY", "tly_0123456789abcdef_" + "a" * 43)
    missing, garbage, encrypted = tmp_path / "missing.pem", tmp_path / "garbage.pem", tmp_path / "encrypted.key"
    garbage.write_text("not a certificate\n")
    _openssl("pkey", "-in", str(pki.client_key), "-aes256", "-passout", "pass:secret", "-out", str(encrypted),
             cwd=tmp_path)
    cert = ["--client-cert", str(pki.client_cert)]
    cases = [
        (["--ca-file", str(missing)], f"--ca-file {missing}: cannot read it"),
        (["--ca-file", str(garbage)], f"--ca-file {garbage}: holds no PEM certificate"),
        (["--ca-file", str(pki.client_key)], "holds no PEM certificate"),  # a key where a certificate belongs
        (cert, "--client-cert and --client-key go together"),
        ([*cert, "--client-key", str(pki.client_cert)], "holds no PEM private key"),
        ([*cert, "--client-key", str(encrypted)], "the key is encrypted"),
    ]
    # Nothing listens on the target: a run that got as far as connecting would report it unreachable.
    target = ["--target", "127.0.0.1:9", "--timeout", "30"]
    for options, message in cases:
        assert cli.main(["accounts", "list", *target, *options]) == cli.EXIT_UNREACHABLE, options
        err = capsys.readouterr().err
        assert message in err and "cannot reach" not in err, (options, err)
    monkeypatch.setenv("TALLY_TLS", "maybe")
    assert cli.main(["accounts", "list", *target]) == cli.EXIT_UNREACHABLE
    assert "TALLY_TLS='maybe'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ settings


def test_tls_settings_come_in_pairs() -> None:
    assert Settings.from_env({}).tls_cert_file == ""
    both = Settings.from_env({"TALLY_TLS_CERT_FILE": "c.pem", "TALLY_TLS_KEY_FILE": "k.pem",
                              "TALLY_TLS_CLIENT_CA_FILE": "ca.pem"})
    assert (both.tls_cert_file, both.tls_key_file, both.tls_client_ca_file) == ("c.pem", "k.pem", "ca.pem")
    for env, named in (({"TALLY_TLS_CERT_FILE": "c.pem"}, "TALLY_TLS_KEY_FILE"),
                       ({"TALLY_TLS_KEY_FILE": "k.pem"}, "TALLY_TLS_CERT_FILE"),
                       ({"TALLY_TLS_CLIENT_CA_FILE": "ca.pem"}, "TALLY_TLS_CLIENT_CA_FILE")):
        with pytest.raises(ConfigError, match=named):
            Settings.from_env(env)


def test_no_tls_settings_means_plaintext() -> None:
    assert load_tls(Settings()) is None


def test_the_files_are_read_and_checked_at_start_up(pki, tmp_path) -> None:
    material = load_tls(tls_settings("sqlite://", pki, mutual=True))
    assert material is not None and material.mutual
    assert material.certificate_chain == pki.read(pki.server_cert) and material.client_ca == pki.read(pki.ca)
    assert "PRIVATE" not in repr(material)  # the key never shows up in a log line

    missing, garbage = tmp_path / "missing.pem", tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = {
        "TALLY_TLS_CERT_FILE": dict(tls_cert_file=str(missing)),
        "TALLY_TLS_KEY_FILE": dict(tls_key_file=str(missing)),
        "TALLY_TLS_CLIENT_CA_FILE": dict(tls_client_ca_file=str(missing)),
    }
    for variable, override in cases.items():
        with pytest.raises(ConfigError, match=variable) as caught:
            load_tls(dataclasses.replace(tls_settings("sqlite://", pki, mutual=True), **override))
        assert str(missing) in str(caught.value) and "cannot read" in str(caught.value)
    for variable, override in (("TALLY_TLS_CERT_FILE", dict(tls_cert_file=str(garbage))),
                               ("TALLY_TLS_KEY_FILE", dict(tls_key_file=str(garbage))),
                               ("TALLY_TLS_CLIENT_CA_FILE", dict(tls_client_ca_file=str(garbage))),
                               ("TALLY_TLS_KEY_FILE", dict(tls_key_file=str(tmp_path)))):  # a directory
        with pytest.raises(ConfigError, match=variable):
            load_tls(dataclasses.replace(tls_settings("sqlite://", pki, mutual=True), **override))

    # A key that does not belong to the certificate, and a key file holding a certificate.
    for override in (dict(tls_key_file=str(pki.client_key)), dict(tls_key_file=str(pki.server_cert))):
        with pytest.raises(ConfigError, match="TALLY_TLS_KEY_FILE"):
            load_tls(dataclasses.replace(tls_settings("sqlite://", pki), **override))

    encrypted = tmp_path / "encrypted.key"
    _openssl("pkey", "-in", str(pki.server_key), "-aes256", "-passout", "pass:secret", "-out", str(encrypted),
             cwd=tmp_path)
    with pytest.raises(ConfigError, match="encrypted"):
        load_tls(dataclasses.replace(tls_settings("sqlite://", pki), tls_key_file=str(encrypted)))


def test_a_server_with_a_bad_tls_file_does_not_start(sqlite_url, pki, tmp_path) -> None:
    settings = dataclasses.replace(tls_settings(sqlite_url, pki), tls_key_file=str(tmp_path / "absent.key"))
    with pytest.raises(ConfigError, match="TALLY_TLS_KEY_FILE"), running_server(settings):
        pass
