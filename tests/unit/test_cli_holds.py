"""`tally holds`: argument parsing of each verb, the expiry computed with integers, the hold table."""

from __future__ import annotations

import pytest

from tally import cli
from tally.cli import holds as cli_holds
from tally.v1 import types_pb2

TARGET = ["--target", "127.0.0.1:1", "--api-key", "tly_0123456789abcdef_k"]


def parse(*argv: str):
    return cli.build_parser().parse_args([*argv, *TARGET])


def test_create_parses_account_amount_and_expiry():
    args = parse("holds", "create", "consumer:c1:USD", "1000000", "--currency", "usd", "--expires-in", "3600",
                 "--memo", "credit")
    assert args.func is cli_holds.cmd_holds_create
    assert args.account == types_pb2.AccountRef(code="consumer:c1:USD")
    assert args.amount == 1000000 and type(args.amount) is int and args.expires_in == 3600
    at = parse("holds", "create", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "5", "--currency", "USD",
               "--expires-at", "2026-05-01T12:00:00Z")
    assert at.account.id == "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b" and at.expires_at.seconds == 1777636800


def test_capture_release_get_list():
    capture = parse("holds", "capture", "H1", "400000", "--to", "merchant:m1:USD/settled", "--final")
    assert (capture.hold_id, capture.amount, capture.final) == ("H1", 400000, True)
    assert capture.to == types_pb2.AccountRef(code="merchant:m1:USD/settled")
    assert parse("holds", "release", "H1", "--reason", "done").func is cli_holds.cmd_holds_release
    assert parse("holds", "get", "H1").hold_id == "H1"
    listing = parse("holds", "list", "--account", "consumer:c1:USD", "--status", "active", "--all")
    assert (listing.account, listing.status, listing.all) == ("consumer:c1:USD", "active", True)


@pytest.mark.parametrize("argv", [
    ["holds", "create", "c1", "10.5", "--currency", "USD"],
    ["holds", "create", "c1", "0", "--currency", "USD"],
    ["holds", "create", "c1", "10"],
    ["holds", "create", "c1", "10", "--currency", "USD", "--expires-in", "1.5"],
    ["holds", "create", "c1", "10", "--currency", "USD", "--expires-in", "0"],
    ["holds", "create", "c1", "10", "--currency", "USD", "--expires-in", "5", "--expires-at", "2026-05-01T12:00:00Z"],
    ["holds", "create", "c1", "10", "--currency", "USD", "--expires-at", "tomorrow"],
    ["holds", "capture", "H1", "5"],
    ["holds", "capture", "H1", "5e3", "--to", "m1"],
    ["holds", "list", "--status", "pending"],
    ["holds", "list", "--page-size", "0"],
])
def test_malformed_holds_arguments_exit_2(capsys, argv):
    assert cli.main([*argv, *TARGET]) == 2
    assert "error" in capsys.readouterr().err


def test_expiry_is_whole_seconds_from_integer_nanoseconds():
    ts = cli_holds.expiry_after(60, now_ns=1_777_636_800_999_999_999)
    assert (ts.seconds, ts.nanos) == (1_777_636_860, 0)


def test_holds_table_with_decimals():
    hold = types_pb2.Hold(id="H1", tenant_id="acme", account_id="A1", status=types_pb2.HOLD_STATUS_CAPTURED,
                          amount=1000000,
                          captured=400000, remaining=0, currency="USD", memo="m")
    lines = cli_holds.holds_table([hold], 6).splitlines()
    assert lines[0].split() == ["id", "account_id", "status", "amount", "amount_dec", "captured", "captured_dec",
                                "remaining", "remaining_dec", "currency", "expire_time", "memo"]
    assert lines[2].split() == ["H1", "A1", "captured", "1000000", "1.000000", "400000", "0.400000", "0",
                                "0.000000", "USD", "m"]
    fields = dict(cli_holds.hold_fields(hold, None))
    assert fields["status"] == "captured" and fields["remaining"] == "0" and fields["tenant"] == "acme"
