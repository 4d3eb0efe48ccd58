"""Figures the API reports in int64 stay inside it: an available balance that would leave it is refused,
and a trial balance whose side's sum passes it answers a definite refusal, never a retry."""

from __future__ import annotations

import grpc
import pytest

from tally.domain.limits import AMOUNT_MAX
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import bookkeeping_service_pb2 as bk_pb
from tally.v1 import bookkeeping_service_pb2_grpc as bk_grpc
from tests.e2e.conftest import Server, adjustment_request, error_info, line, md, ref

T = "edges"


def refused(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return error_info(caught.value)[:2]


def test_a_posting_that_would_push_available_past_int64_is_refused(server: Server) -> None:
    fund = server.funding_account(T)
    server.create_account(T, "card", "credit", credit_limit=1_000)
    post = server.accounting().Post
    request = adjustment_request("too-much", [line(fund.code, "debit", AMOUNT_MAX), line("card", "credit", AMOUNT_MAX)])
    assert refused(lambda: post(request, metadata=md(T))) == (grpc.StatusCode.INVALID_ARGUMENT, "BALANCE_OVERFLOW")
    fits = adjustment_request("fits", [line(fund.code, "debit", AMOUNT_MAX - 1_000),
                                       line("card", "credit", AMOUNT_MAX - 1_000)])
    post(fits, metadata=md(T))
    assert server.balance(T, "card").available == AMOUNT_MAX
    # Raising the limit now would push available past int64 too.
    update = acc_pb.UpdateAccountRequest(request_id="limit", account=ref("card"))
    update.account_update.credit_limit = 1_001
    update.update_mask.paths.append("credit_limit")
    assert refused(lambda: server.accounts().UpdateAccount(update, metadata=md(T))) == \
        (grpc.StatusCode.INVALID_ARGUMENT, "CREDIT_LIMIT_INVALID")
    assert server.balance(T, "card").credit_limit == 1_000


def test_a_trial_balance_side_past_int64_is_a_definite_refusal(server: Server) -> None:
    fund = server.funding_account(T)
    other = server.create_account(T, "fund-2", "internal", normal_side="debit", floor_policy="unbounded")
    server.create_account(T, "a")
    server.create_account(T, "b")
    post = server.accounting().Post
    post(adjustment_request("big", [line(fund.code, "debit", AMOUNT_MAX), line("a", "credit", AMOUNT_MAX)]),
         metadata=md(T))
    books = bk_grpc.BookkeepingServiceStub(server.channel())
    assert books.GetTrialBalance(bk_pb.GetTrialBalanceRequest(), metadata=md(T)).balanced
    post(adjustment_request("more", [line(other.code, "debit", 5), line("b", "credit", 5)]), metadata=md(T))
    assert refused(lambda: books.GetTrialBalance(bk_pb.GetTrialBalanceRequest(), metadata=md(T))) == \
        (grpc.StatusCode.FAILED_PRECONDITION, "TRIAL_BALANCE_OUT_OF_RANGE")
    assert server.balance(T, "a").current == AMOUNT_MAX and server.balance(T, "b").current == 5
