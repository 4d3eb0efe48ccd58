"""`tally demo` without a server: its tenant default, its fixed request ids, and the verbs' registration."""

from __future__ import annotations

import re

from tally import cli, cli_demo, cli_watch
from tally.domain.fields import check_request_id, check_tenant


def test_default_tenant_is_fresh_and_valid(monkeypatch):
    monkeypatch.setenv("TALLY_TENANT", "production")  # deliberately ignored: a demo never posts into it
    first = cli.build_parser().parse_args(["demo"])
    assert first.func is cli_demo.cmd_demo and first.tenant is None
    tenants = {cli_demo.default_tenant() for _ in range(20)}
    assert len(tenants) == 20
    for tenant in tenants:
        assert re.fullmatch(r"demo-[0-9a-f]{8}", tenant) and check_tenant(tenant) == tenant
    assert cli.build_parser().parse_args(["demo", "--tenant", "demo-mine"]).tenant == "demo-mine"


def test_other_verbs_keep_their_tenant_default(monkeypatch):
    monkeypatch.delenv("TALLY_TENANT", raising=False)
    parser = cli.build_parser()
    assert parser.parse_args(["demo"]).tenant is None
    assert parser.parse_args(["trial-balance"]).tenant == "default"
    assert parser.parse_args(["balance", "alice"]).tenant == "default"


def test_request_ids_derive_from_the_tenant():
    longest = "d" * 64
    assert cli_demo.request_id("demo-1", "fund-alice") == cli_demo.request_id("demo-1", "fund-alice")
    assert cli_demo.request_id("demo-1", "fund-alice") != cli_demo.request_id("demo-2", "fund-alice")
    assert check_request_id(cli_demo.request_id(longest, "payout-acme-1"))


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
