"""Client credentials without a server: where the key comes from (--api-key, TALLY_API_KEY, --key-file,
TALLY_KEY_FILE, ./tally-admin.key), the metadata it becomes, the refusals, the hints after UNAUTHENTICATED
and PERMISSION_DENIED, and that the key is never printed and --tenant is gone."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

from tally import cli

KEY = "tly_0123456789abcdef_" + "s" * 43
OTHER = "tly_fedcba9876543210_" + "o" * 43


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path: Path) -> Path:
    """No key in the environment and a working directory without tally-admin.key."""
    for name in (cli.API_KEY_ENV, cli.KEY_FILE_ENV, "TALLY_TENANT", "TALLY_TARGET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def parse(*argv: str):
    return cli.build_parser().parse_args(["trial-balance", *argv])


def write_key(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def test_no_credential_at_all_sends_no_header():
    args = parse()
    found = cli.credential(args)
    assert (found.key, found.source) == ("", "") and cli.call_metadata(args) == ()


def test_api_key_option_wins(monkeypatch, clean_env: Path):
    monkeypatch.setenv(cli.API_KEY_ENV, OTHER)
    write_key(clean_env / cli.DEFAULT_KEY_FILE, OTHER)
    args = parse("--api-key", KEY)
    assert cli.call_metadata(args) == (("authorization", f"Bearer {KEY}"),)
    assert args.credential.source == "--api-key"


def test_environment_comes_before_key_files(monkeypatch, clean_env: Path):
    monkeypatch.setenv(cli.API_KEY_ENV, f"  {KEY}\n")
    write_key(clean_env / "k", OTHER)
    found = cli.credential(parse("--key-file", str(clean_env / "k")))
    assert (found.key, found.source) == (KEY, cli.API_KEY_ENV)


def test_blank_environment_key_is_no_key(monkeypatch, clean_env: Path):
    monkeypatch.setenv(cli.API_KEY_ENV, "  ")
    write_key(clean_env / cli.DEFAULT_KEY_FILE, KEY)
    assert cli.credential(parse()).source == f"key file {cli.DEFAULT_KEY_FILE}"


def test_key_file_option_then_env_then_default(monkeypatch, clean_env: Path):
    named, env_file = write_key(clean_env / "named.key", KEY + "\n"), write_key(clean_env / "env.key", OTHER)
    write_key(clean_env / cli.DEFAULT_KEY_FILE, "tly_default")
    monkeypatch.setenv(cli.KEY_FILE_ENV, str(env_file))
    assert cli.credential(parse("--key-file", str(named))) == cli.Credential(KEY, f"key file {named}")
    assert cli.credential(parse()) == cli.Credential(OTHER, f"key file {env_file}")
    monkeypatch.delenv(cli.KEY_FILE_ENV)
    assert cli.credential(parse()) == cli.Credential("tly_default", f"key file {cli.DEFAULT_KEY_FILE}")


def test_the_default_key_file_is_read_from_the_current_directory(monkeypatch, clean_env: Path, tmp_path_factory):
    write_key(clean_env / cli.DEFAULT_KEY_FILE, KEY)
    assert cli.credential(parse()).key == KEY
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert cli.credential(parse()).key == ""


def test_the_credential_is_resolved_once_per_invocation(clean_env: Path):
    path = write_key(clean_env / cli.DEFAULT_KEY_FILE, KEY)
    args = parse()
    assert cli.call_metadata(args) == (("authorization", f"Bearer {KEY}"),)
    path.unlink()
    assert cli.call_metadata(args) == (("authorization", f"Bearer {KEY}"),)


@pytest.mark.parametrize(("content", "message"), [
    ("", "is empty"),
    ("  \n", "is empty"),
    (f"{KEY} {OTHER}", "is malformed"),
    ("tly_a\tb", "is malformed"),
    ("tly_\x07bell", "is malformed"),
])
def test_unusable_key_files(clean_env: Path, content, message):
    path = write_key(clean_env / "bad.key", content)
    with pytest.raises(cli.CredentialError, match=message) as raised:
        cli.credential(parse("--key-file", str(path)))
    assert str(path) in str(raised.value) and KEY not in str(raised.value)


def test_binary_and_oversized_key_files(clean_env: Path):
    binary = clean_env / "binary.key"
    binary.write_bytes(b"tly_\xff\xfe")
    with pytest.raises(cli.CredentialError, match="not ASCII"):
        cli.credential(parse("--key-file", str(binary)))
    big = clean_env / "big.key"
    big.write_text("a" * (cli.KEY_FILE_SIZE_MAX + 1))
    with pytest.raises(cli.CredentialError, match="larger than"):
        cli.credential(parse("--key-file", str(big)))


def test_a_named_key_file_must_exist(monkeypatch, clean_env: Path):
    with pytest.raises(cli.CredentialError, match="does not exist"):
        cli.credential(parse("--key-file", str(clean_env / "absent.key")))
    monkeypatch.setenv(cli.KEY_FILE_ENV, str(clean_env / "absent.key"))
    with pytest.raises(cli.CredentialError, match="does not exist"):
        cli.credential(parse())


def test_a_directory_is_not_a_key_file(clean_env: Path):
    with pytest.raises(cli.CredentialError, match="cannot read the key file"):
        cli.credential(parse("--key-file", str(clean_env)))


def test_malformed_keys_are_refused_without_echoing_them(monkeypatch):
    secret = "tly_abc def"
    monkeypatch.setenv(cli.API_KEY_ENV, secret)
    with pytest.raises(cli.CredentialError) as raised:
        cli.credential(parse())
    assert cli.API_KEY_ENV in str(raised.value) and secret not in str(raised.value)
    with pytest.raises(cli.CredentialError, match="--api-key"):
        cli.credential(parse("--api-key", "  "))
    with pytest.raises(cli.CredentialError):
        cli.credential(parse("--api-key", "tly_ümlaut"))


def test_a_bad_key_file_exits_2_before_connecting(clean_env: Path, capsys):
    # Port 1 is never reached: the key file is read first.
    assert cli.main(["trial-balance", "--target", "127.0.0.1:1", "--key-file", str(clean_env / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the key file ") and "does not exist" in err and "cannot reach" not in err


def test_the_credential_never_shows_the_key():
    found = cli.Credential(KEY, "--api-key")
    assert KEY not in repr(found) and KEY not in str(found) and "--api-key" in str(found)
    assert str(cli.Credential("", "")) == "no credential"


@pytest.mark.parametrize("argv", [
    ["trial-balance"], ["balance", "alice"], ["accounts", "list"], ["vouchers", "list"], ["verify"],
    ["post", "payout", "--merchant", "m", "--amount", "1", "--currency", "USD"], ["holds", "list"],
    ["rules", "show"], ["watch"], ["demo"],
])
def test_tenant_is_gone_from_every_client_verb(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args([*argv, "--tenant", "acme"])
    assert exited.value.code == 2
    assert "--tenant is gone: the tenant comes from the API key" in capsys.readouterr().err
    args = cli.build_parser().parse_args(argv)
    assert not hasattr(args, "tenant") and args.api_key is None and args.key_file is None


def test_tally_tenant_is_not_read(monkeypatch):
    monkeypatch.setenv("TALLY_TENANT", "acme")
    assert not hasattr(parse(), "tenant")


def test_help_does_not_show_a_key_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv(cli.API_KEY_ENV, KEY)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["trial-balance", "--help"])
    out = capsys.readouterr().out
    assert "--api-key KEY" in out and "--key-file PATH" in out and KEY not in out and "--tenant" not in out


# ---------------------------------------------------------------------------------------------- refusals


class _Refused(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self):
        return ()


def test_unauthenticated_without_a_key_explains_how_to_send_one(capsys):
    args = parse()
    cli.credential(args)
    refused = _Refused(grpc.StatusCode.UNAUTHENTICATED, "send `authorization: Bearer <API key or token>`")
    assert cli.report_rpc_error(refused, args) == cli.EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.startswith("error: UNAUTHENTICATED: send `authorization: Bearer <API key or token>`\n")
    assert "no API key was sent" in err
    ways = ("--api-key", cli.API_KEY_ENV, "--key-file", cli.KEY_FILE_ENV, cli.DEFAULT_KEY_FILE, "tally keys create")
    assert all(way in err for way in ways)


def test_unauthenticated_with_a_key_names_its_source_not_the_key(monkeypatch, capsys):
    monkeypatch.setenv(cli.API_KEY_ENV, KEY)
    args = parse()
    cli.credential(args)
    cli.report_rpc_error(_Refused(grpc.StatusCode.UNAUTHENTICATED, "the API key has been revoked"), args)
    err = capsys.readouterr().err
    assert f"the key sent came from {cli.API_KEY_ENV} and was refused" in err and KEY not in err


def test_permission_denied_hints_at_roles(capsys):
    args = parse("--api-key", KEY)
    cli.credential(args)
    cli.report_rpc_error(_Refused(grpc.StatusCode.PERMISSION_DENIED, "role reader may not post"), args)
    err = capsys.readouterr().err
    assert "role reader may not post" in err and "reader < poster < operator < admin" in err and KEY not in err


def test_other_refusals_get_no_credential_hint(capsys):
    args = parse("--api-key", KEY)
    cli.credential(args)
    cli.report_rpc_error(_Refused(grpc.StatusCode.NOT_FOUND, "no such account"), args)
    assert capsys.readouterr().err == "error: NOT_FOUND: no such account\n"
