"""Account hierarchies over the real gRPC wire, on SQLite and PostgreSQL: a parent's balance report rolls up
its subtree (own, descendants, total per currency, from one snapshot), a child must share its parent's
currency, a subtree has its own trial balance, and the CLI shows both."""

from __future__ import annotations

import json
import random
from pathlib import Path

import grpc
import pytest

from tally import cli
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import bookkeeping_service_pb2 as book_pb
from tally.v1 import bookkeeping_service_pb2_grpc as book_grpc
from tally.v1 import types_pb2
from tests.e2e.conftest import ACCOUNT_TYPES, SIDES, Server, adjustment_request, error_info, line, md, ref
from tests.e2e.test_e2e_streams_cli import issue_key

T = "acme"


def child(srv: Server, code: str, parent: str | None, *, currency: str = "USD", type_: str = "deposit",
          normal_side: str | int = 0) -> types_pb2.Account:
    request = acc_pb.CreateAccountRequest(request_id=srv.request_id(f"create-{code}"), code=code,
                                          type=ACCOUNT_TYPES[type_], currency=currency,
                                          normal_side=SIDES.get(normal_side, normal_side))
    if parent:
        request.parent.CopyFrom(ref(parent))
    return srv.accounts().CreateAccount(request, metadata=md(T)).account


def rollups(srv: Server, code: str) -> tuple[types_pb2.Balance, list[types_pb2.RollUp]]:
    response = srv.accounts().GetBalance(acc_pb.GetBalanceRequest(account=ref(code), include_descendants=True),
                                         metadata=md(T))
    return response.balance, list(response.rollups)


def test_a_parent_rolls_up_its_subtree_and_a_child_shares_its_currency(server: Server) -> None:
    child(server, "merchant", None)
    child(server, "merchant-eu", "merchant")
    child(server, "merchant-us", "merchant")
    child(server, "merchant-us-pos", "merchant-us")
    server.fund(T, "merchant-eu", 300_000)
    server.fund(T, "merchant-us", 200_000)
    server.fund(T, "merchant-us-pos", 50_000)
    server.fund(T, "merchant", 7)

    balance, [usd] = rollups(server, "merchant")
    assert balance.current == 7  # the account's own balance is unchanged
    assert (usd.currency, usd.own, usd.descendants, usd.total, usd.descendant_accounts) == (
        "USD", 7, 550_000, 550_007, 3)
    _, [us] = rollups(server, "merchant-us")
    assert (us.own, us.descendants, us.total, us.descendant_accounts) == (200_000, 50_000, 250_000, 1)
    _, [leaf] = rollups(server, "merchant-us-pos")
    assert (leaf.own, leaf.descendants, leaf.total, leaf.descendant_accounts) == (50_000, 0, 50_000, 0)

    # A EUR child under a USD parent is refused, and nothing is opened.
    with pytest.raises(grpc.RpcError) as caught:
        child(server, "merchant-eur", "merchant", currency="EUR")
    code, reason, meta = error_info(caught.value)
    assert (code, reason, meta["parent_currency"]) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                       "PARENT_CURRENCY_MISMATCH", "USD")
    assert "merchant-eur" not in {a.code for a in server.all_accounts(T)}

    # Live balances only: a roll-up as of a date is refused, not answered with today's figures.
    with pytest.raises(grpc.RpcError) as caught:
        server.accounts().GetBalance(acc_pb.GetBalanceRequest(account=ref("merchant"), include_descendants=True,
                                                              as_of_date="2026-01-01"), metadata=md(T))
    assert error_info(caught.value)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "ROLLUP_AS_OF_UNSUPPORTED")

    # Many accounts at once, in the order asked, from one snapshot.
    batch = server.accounts().BatchGetBalances(acc_pb.BatchGetBalancesRequest(
        accounts=[ref("merchant-us"), ref("merchant")], include_descendants=True), metadata=md(T))
    assert [r.rollups[0].total for r in batch.rollups] == [250_000, 550_007]
    assert [r.account_id for r in batch.rollups] == [b.account_id for b in batch.balances]


def test_a_contra_child_counts_against_its_parent_and_the_subtree_has_a_trial_balance(server: Server) -> None:
    child(server, "receivables", None, type_="internal", normal_side="debit")
    child(server, "receivables-open", "receivables", type_="internal", normal_side="debit")
    child(server, "receivables-allowance", "receivables", type_="internal", normal_side="credit")
    child(server, "income", None, type_="internal", normal_side="credit")
    server.accounting().Post(adjustment_request(server.request_id("adjust"), [line("receivables-open", "debit", 1_000),
                                           line("receivables-allowance", "credit", 40),
                                           line("income", "credit", 960)]), metadata=md(T))
    _, [usd] = rollups(server, "receivables")
    # The allowance is kept on the credit side: it reduces the debit-normal parent's total.
    assert (usd.own, usd.descendants, usd.total) == (0, 960, 960)

    books = book_grpc.BookkeepingServiceStub(server._default)
    subtree = books.GetTrialBalance(book_pb.GetTrialBalanceRequest(subtree=ref("receivables")), metadata=md(T))
    [total] = subtree.totals
    assert (total.currency, total.debit_total, total.credit_total, total.account_count) == ("USD", 1_000, 40, 3)
    assert not subtree.balanced  # the subtree alone is not the whole of the books
    whole = books.GetTrialBalance(book_pb.GetTrialBalanceRequest(), metadata=md(T))
    assert whole.balanced


def test_a_roll_up_always_equals_the_sum_of_its_subtree(server: Server) -> None:
    """Random trees and random transfers inside them: every account's roll-up equals its own balance plus
    the balances of every account under it, each read on its own."""
    rng = random.Random(20261207)
    parents: dict[str, str | None] = {}
    for i in range(12):
        code = f"node-{i}"
        parent = rng.choice([None, *parents]) if parents else None
        depth, up = 0, parent
        while up is not None:
            depth, up = depth + 1, parents[up]
        parents[code] = parent if depth < 6 else None
        child(server, code, parents[code])
        server.fund(T, code, rng.randint(1, 10_000))
    codes = list(parents)
    for _ in range(20):
        source, destination = rng.sample(codes, 2)
        server.transfer(T, source, destination, rng.randint(1, 50))

    own = {code: server.current(T, code) for code in codes}

    def subtree(code: str) -> list[str]:
        below = [c for c, p in parents.items() if p == code]
        return below + [d for c in below for d in subtree(c)]

    for code in codes:
        _, [usd] = rollups(server, code)
        under = subtree(code)
        assert (usd.own, usd.descendants, usd.descendant_accounts) == (own[code], sum(own[c] for c in under),
                                                                       len(under)), code


def test_the_cli_shows_a_subtree(server: Server, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TALLY_KEY_FILE", raising=False)
    monkeypatch.setenv("TALLY_API_KEY", issue_key(server, tmp_path))
    child(server, "team", None)
    child(server, "team-a", "team")
    server.fund(T, "team-a", 1_234)
    assert cli.main(["balance", "team", "--descendants", "--target", server.target]) == 0
    out = capsys.readouterr().out
    assert "subtree (USD, 1 accounts under it)" in out and "total" in out and "1234" in out
    assert cli.main(["balance", "team", "--descendants", "--json", "--target", server.target]) == 0
    [rollup] = json.loads(capsys.readouterr().out)["rollups"]
    assert (rollup["descendants"], rollup["total"]) == ("1234", "1234")  # proto JSON: int64 as strings
    assert cli.main(["trial-balance", "--subtree", "team", "--json", "--target", server.target]) == 0
    [total] = json.loads(capsys.readouterr().out)["totals"]
    assert (total["credit_total"], total["account_count"]) == ("1234", "2")
    assert cli.main(["statement", "team", "--descendants", "--atomic", "--target", server.target]) == 0
    out = capsys.readouterr().out
    [row] = [line.split() for line in out.splitlines() if " team-a " in f" {line} "]
    assert "1234" in row and "opening balance" not in out  # the child's entry, named by its code
    assert cli.main(["statement", "team", "--descendants", "--min-sequence", "99", "--target", server.target]) == 1
    assert "VOUCHER_SEQUENCE_NOT_POSTED" in capsys.readouterr().err  # never posted: refused, not waited for
