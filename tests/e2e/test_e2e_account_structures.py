"""Account structures over the real gRPC wire and the CLI, on SQLite and PostgreSQL: MergeAccounts (balances
and holds move, sources close, a source's code posts to the target, refusals carry their ErrorInfo reason)
and secured credit (SetAccountSecurity, the bound limit, the deposit's secured floor)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from tally import cli
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import flows_pb2, types_pb2
from tests.e2e.conftest import Server, TenantKeys, adjustment_request, error_info, line, md, ref

T = "acme"


def merge(srv: Server, sources: list[str], target: str, request_id: str | None = None,
          policy: int = acc_pb.MERGE_HOLD_POLICY_UNSPECIFIED) -> acc_pb.MergeAccountsResponse:
    request = acc_pb.MergeAccountsRequest(request_id=request_id or srv.request_id("merge"),
                                          sources=[ref(s) for s in sources], target=ref(target), hold_policy=policy)
    return srv.accounts().MergeAccounts(request, metadata=md(T))


def refusal(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    code, reason, _ = error_info(caught.value)
    return code, reason


def test_merge_over_the_wire(server: Server) -> None:
    a = server.create_account(T, "biz-a")
    b = server.create_account(T, "biz-b")
    target = server.create_account(T, "biz-main")
    server.create_account(T, "biz-eur", currency="EUR")
    server.fund(T, "biz-a", 300_000)
    server.fund(T, "biz-b", 200_000)
    hold = server.accounting().CreateHold(post_pb.CreateHoldRequest(
        request_id=server.request_id("hold"), account=ref("biz-b"), amount=500, currency="USD"), metadata=md(T)).hold

    assert refusal(lambda: merge(server, ["biz-b"], "biz-main", policy=acc_pb.MERGE_HOLD_POLICY_REFUSE)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "MERGE_SOURCE_HAS_HOLDS")
    assert refusal(lambda: merge(server, ["biz-eur"], "biz-main")) == (
        grpc.StatusCode.FAILED_PRECONDITION, "MERGE_CURRENCY_MISMATCH")
    assert refusal(lambda: merge(server, [], "biz-main")) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                              "MERGE_SOURCES_REQUIRED")
    assert server.current(T, "biz-b") == 200_000  # refusals changed nothing

    response = merge(server, ["biz-a", "biz-b"], "biz-main", request_id="merge-wire")
    assert response.target.id == target.id and not response.replayed
    assert [(m.source_account_id, m.amount) for m in response.merged] == [(a.id, 300_000), (b.id, 200_000)]
    [moved] = response.merged[1].moved_holds
    assert (moved.source_hold_id, moved.amount) == (hold.id, 500)
    assert merge(server, ["biz-a", "biz-b"], "biz-main", request_id="merge-wire").replayed
    balance = server.balance(T, "biz-main")
    assert (balance.current, balance.locked) == (500_000, 500)
    got = server.accounts().GetAccount(acc_pb.GetAccountRequest(account=ref(id=a.id)), metadata=md(T))
    assert (got.account.status, got.merged_into) == (types_pb2.ACCOUNT_STATUS_CLOSED, target.id)
    # A source's code posts to the target, and the answer names the target's id.
    posted = server.accounting().Post(adjustment_request(server.request_id("adj"), [
        line(ref(id=server.funding_account(T).id), "debit", 9), line("biz-a", "credit", 9)]), metadata=md(T))
    assert target.id in {ln.account_id for ln in posted.vouchers[0].lines}
    assert a.id not in {ln.account_id for ln in posted.vouchers[0].lines}
    assert server.current(T, "biz-main") == 500_009
    # The source's statement is still readable: its funding, then the merge that emptied it.
    entries = server.all_entries(T, ref(id=a.id))
    assert [e.balance_after for e in entries] == [300_000, 0]


def test_secured_credit_over_the_wire(server: Server) -> None:
    credit = server.create_account(T, "line-1", "credit", credit_limit=10**9)
    deposit = server.create_account(T, "deposit-1", "security_deposit")
    server.fund(T, "deposit-1", 10_000)
    secured = server.accounts().SetAccountSecurity(acc_pb.SetAccountSecurityRequest(
        request_id=server.request_id("secure"), credit_account=ref("line-1"), deposit_account=ref("deposit-1"),
        ratio_bps=5_000, bind_credit_limit=True), metadata=md(T)).security
    assert (secured.credit_account_id, secured.deposit_account_id, secured.credit_limit) == (
        credit.id, deposit.id, 5_000)
    funding = ref(id=server.funding_account(T).id)
    server.accounting().Post(adjustment_request(server.request_id("draw"), [
        line("line-1", "debit", 5_000), line(funding, "credit", 5_000)]), metadata=md(T))
    code, reason = refusal(lambda: server.accounting().Post(adjustment_request(server.request_id("out"), [
        line("deposit-1", "debit", 1), line(funding, "credit", 1)]), metadata=md(T)))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DEPOSIT_SECURES_CREDIT")
    report = server.accounts().GetAccountSecurity(acc_pb.GetAccountSecurityRequest(account=ref("deposit-1")),
                                                  metadata=md(T))
    assert report.required_deposit == 10_000 and [s.credit_account_id for s in report.securities] == [credit.id]
    assert refusal(lambda: server.accounts().SetAccountSecurity(acc_pb.SetAccountSecurityRequest(
        request_id=server.request_id("secure"), credit_account=ref("line-1"), deposit_account=ref("deposit-1"),
        ratio_bps=0), metadata=md(T))) == (grpc.StatusCode.INVALID_ARGUMENT, "RATIO_BPS_INVALID")


def test_sub_accounts_over_the_wire(server: Server) -> None:
    main = server.create_account(T, "merchant_9")
    pending = server.create_account(T, "merchant_9/pending")
    settled = server.create_account(T, "merchant_9/settled")
    assert pending.parent_id == settled.parent_id == main.id
    server.fund(T, "merchant_9/pending", 900)
    flow = flows_pb2.SubAccountTransferFlow(account="merchant_9", from_sub="pending", to_sub="settled", amount=600,
                                            currency="USD")
    posted = server.accounting().Post(post_pb.PostRequest(request_id=server.request_id("move"),
                                                          sub_account_transfer=flow), metadata=md(T))
    assert {ln.account_id for ln in posted.vouchers[0].lines} == {pending.id, settled.id}
    assert (server.current(T, "merchant_9/pending"), server.current(T, "merchant_9/settled")) == (300, 600)
    flow.amount = 301
    assert refusal(lambda: server.accounting().Post(post_pb.PostRequest(
        request_id=server.request_id("move"), sub_account_transfer=flow), metadata=md(T))) == (
        grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")


def test_the_cli_merges_secures_and_moves(server: Server, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TALLY_KEY_FILE", raising=False)
    # The tenant's admin key, issued in-process (the CLI's key handling has tests of its own).
    monkeypatch.setenv("TALLY_API_KEY", TenantKeys.for_target(server.target).key_for(T))
    target = server.create_account(T, "shop")
    server.create_account(T, "shop-old")
    server.fund(T, "shop-old", 1_234)
    assert cli.main(["accounts", "merge", "shop", "shop-old", "--target", server.target]) == 0
    out = capsys.readouterr().out
    assert f"merged into shop ({target.id})" in out and "1234" in out
    assert server.current(T, "shop") == 1_234
    server.create_account(T, "cred", "credit", credit_limit=100)
    server.create_account(T, "dep", "security_deposit")
    assert cli.main(["accounts", "secure", "cred", "dep", "--ratio-bps", "2500", "--bind-limit", "--json",
                     "--target", server.target]) == 0
    security = json.loads(capsys.readouterr().out)["security"]
    assert (security["ratio_bps"], security["bind_credit_limit"], security["credit_limit"]) == (2500, True, "0")
    assert cli.main(["accounts", "security", "dep", "--target", server.target]) == 0
    assert "required_deposit  0" in capsys.readouterr().out
    assert cli.main(["accounts", "merge", "shop", "shop", "--target", server.target]) == 1
    assert "MERGE_SOURCE_IS_TARGET" in capsys.readouterr().err
    server.create_account(T, "shop/pending")
    server.create_account(T, "shop/settled")
    server.fund(T, "shop/pending", 50)
    assert cli.main(["accounts", "move", "shop", "pending", "settled", "20", "--currency", "usd",
                     "--target", server.target]) == 0
    assert "sub_account_transfer" in capsys.readouterr().out
    assert server.current(T, "shop/settled") == 20
