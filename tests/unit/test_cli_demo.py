"""`tally demo` without a server: its run label, the parties and fixed request ids derived from it, and the
verbs' registration."""

from __future__ import annotations

import argparse
import re

import pytest

from tally import cli
from tally.cli import demo as cli_demo
from tally.cli import watch as cli_watch
from tally.domain.fields import check_code, check_request_id


def test_default_run_is_fresh_hex():
    args = cli.build_parser().parse_args(["demo"])
    assert args.func is cli_demo.cmd_demo and args.run is None  # chosen when the demo starts
    runs = {cli_demo.default_run() for _ in range(20)}
    assert len(runs) == 20 and all(re.fullmatch(r"[0-9a-f]{8}", run) for run in runs)
    assert cli.build_parser().parse_args(["demo", "--run", "Mine_1-a"]).run == "Mine_1-a"


@pytest.mark.parametrize("label", ["", "-x", "a b", "a.b", "a:b", "é", "x" * 33])
def test_bad_run_labels_are_argument_errors(label, capsys):
    assert cli.main(["demo", f"--run={label}"]) == 2
    assert "run label" in capsys.readouterr().err


def test_the_demo_has_no_tenant_option(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["demo", "--tenant", "demo-mine"])
    assert exited.value.code == 2 and "the tenant comes from the API key" in capsys.readouterr().err
    assert not hasattr(cli.build_parser().parse_args(["demo"]), "tenant")


def test_parties_and_request_ids_derive_from_the_run():
    longest = "r" * cli_demo.RUN_LENGTH_MAX
    assert cli_demo.party("r1", "alice") == "r1-alice" != cli_demo.party("r2", "alice")
    assert cli_demo.request_id("r1", "fund-alice") == cli_demo.request_id("r1", "fund-alice")
    assert cli_demo.request_id("r1", "fund-alice") != cli_demo.request_id("r2", "fund-alice")
    assert check_request_id(cli_demo.request_id(longest, "payout-acme-1"))
    names = [*cli_demo.CONSUMERS, *(p for p, _ in cli_demo.CONSUMERS.values()), *cli_demo.MERCHANTS,
             cli_demo.AFFILIATE, cli_demo.CHANNEL]
    for name in names:  # the longest account code a party gets must still be a valid code
        assert check_code(f"processor_clearing:{cli_demo.party(longest, name)}:USD")


class _Recorder:
    """Stands in for the stubs: records the requests, answers with empty responses of the right type."""

    def __init__(self, tenant: str = "acme") -> None:
        self.requests: list = []
        self.tenant = tenant

    def Post(self, request):
        from tally.v1 import accounting_service_pb2 as post_pb
        from tally.v1 import types_pb2

        self.requests.append(request)
        return post_pb.PostResponse(vouchers=[types_pb2.Voucher(id=f"v{len(self.requests)}", tenant_id=self.tenant)])

    def UpdateAccount(self, request):
        from tally.v1 import account_service_pb2 as acc_pb
        from tally.v1 import types_pb2

        self.requests.append(request)
        return acc_pb.UpdateAccountResponse(account=types_pb2.Account(tenant_id=self.tenant))

    def ListEntries(self, request):
        from tally.v1 import account_service_pb2 as acc_pb

        return acc_pb.ListEntriesResponse()


def test_every_party_and_request_id_of_a_run_carries_its_label(capsys):
    stub = _Recorder()
    args = argparse.Namespace(run="r7", scale=None, json=True)
    demo = cli_demo.Demo(args, stub, stub, stub)
    cli_demo._story(demo)
    assert demo.tenant == "acme" and len(demo.stages) == 9
    parties = ("consumer", "processor", "merchant", "affiliate", "channel")
    seen = 0
    for request in stub.requests:
        assert request.request_id.startswith("r7.")
        if request.DESCRIPTOR.name != "PostRequest":
            assert request.account.code == "merchant:r7-acme:USD/settled"
            continue
        flow = getattr(request, request.WhichOneof("flow"))
        for name in parties:
            if name in flow.DESCRIPTOR.fields_by_name and getattr(flow, name):
                assert getattr(flow, name).startswith("r7-"), (name, flow)
                seen += 1
        if request.WhichOneof("flow") == "refund":
            assert flow.original_request_id == "r7.order-1"
    assert seen == 2 * 2 + 4 * 3 + 2 + 1 + 1 + 1 + 1  # funding, usage, acquisition, settlements, payout
    assert len({r.request_id for r in stub.requests}) == len(stub.requests) == 13


def test_demo_amounts_are_integers():
    amounts = [a for _, a in cli_demo.CONSUMERS.values()] + list(cli_demo.USAGE.values()) + [
        cli_demo.ORDER, cli_demo.COUPON, cli_demo.REFUND, cli_demo.MERCHANT_SETTLEMENT, cli_demo.CHANNEL_SETTLEMENT,
        cli_demo.PAYOUT]
    assert all(type(a) is int and a > 0 for a in amounts)
    assert cli_demo.PAYOUT % 10_000 != 0  # sub-cent digits at USD's scale 6, so the payout leaves a residue


def test_move_change():
    move = cli_demo.Move("acme", "id", "USD", before=100, after=40)
    assert move.change == -60


def test_watch_is_hooked():
    args = cli.build_parser().parse_args(["watch", "--balances", "--account", "alice", "--limit", "3"])
    assert args.func is cli_watch.cmd_watch and args.balances and args.accounts == ["alice"]
