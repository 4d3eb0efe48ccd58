"""The "done when" story of the ledger, over the real gRPC wire, on SQLite and on PostgreSQL."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2

from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import types_pb2
from tests.e2e.conftest import (
    HEALTH_SERVICE,
    TALLY_SERVICES,
    Server,
    error_info,
    health_status,
    md,
    ref,
    signed,
    transfer_request,
)

T = "acme"
CREDIT_SIDE = types_pb2.SIDE_CREDIT
ACTIVE, FROZEN, CLOSED = (types_pb2.ACCOUNT_STATUS_ACTIVE, types_pb2.ACCOUNT_STATUS_FROZEN,
                          types_pb2.ACCOUNT_STATUS_CLOSED)


def refused(call, *args, **kwargs) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return error_info(caught.value)


def test_health_and_reflection(server: Server) -> None:
    health = server.health()
    for service in ("", *TALLY_SERVICES):
        assert health_status(health, service) == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.RpcError) as caught:
        health_status(health, "no.such.Service")
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND

    listed = server.listed_services()
    assert {*TALLY_SERVICES, HEALTH_SERVICE} <= listed


def test_open_fund_transfer_statement_idempotency_reversal(server: Server) -> None:
    acc, post = server.accounts(), server.accounting()

    alice = server.create_account(T, "alice", "deposit", name="Alice")
    bob = server.create_account(T, "bob", "deposit")
    for account, code in ((alice, "alice"), (bob, "bob")):
        assert account.code == code and account.tenant_id == T
        assert account.type == types_pb2.ACCOUNT_TYPE_DEPOSIT
        assert account.normal_side == CREDIT_SIDE  # customer money is a liability: credit-normal
        assert account.status == ACTIVE and account.currency == "USD"
        assert account.floor_policy == types_pb2.FLOOR_POLICY_NON_NEGATIVE
    assert alice.id != bob.id

    # CreateAccount is idempotent too.
    again = acc.CreateAccount(acc_pb.CreateAccountRequest(
        request_id="create-bob-again", code="bob2", type=types_pb2.ACCOUNT_TYPE_DEPOSIT, currency="USD"),
        metadata=md(T))
    replay = acc.CreateAccount(acc_pb.CreateAccountRequest(
        request_id="create-bob-again", code="bob2", type=types_pb2.ACCOUNT_TYPE_DEPOSIT, currency="USD"),
        metadata=md(T))
    assert (again.replayed, replay.replayed) == (False, True)
    assert replay.account.id == again.account.id

    funding = server.fund(T, "alice", 1_000)
    assert funding.flow_type == "adjustment" and funding.sequence == 1
    assert server.current(T, "alice") == 1_000

    request = transfer_request("tr-1", "alice", "bob", 300, memo="rent")
    first = post.Post(request, metadata=md(T))
    assert first.replayed is False and len(first.vouchers) == 1
    voucher = first.vouchers[0]
    assert voucher.flow_type == "transfer" and voucher.request_id == "tr-1" and voucher.sequence == 2
    assert voucher.previous_hash == funding.hash and len(voucher.hash) == 64
    assert [(ln.account_code, ln.side, ln.amount, ln.currency) for ln in voucher.lines] == [
        ("alice", types_pb2.SIDE_DEBIT, 300, "USD"), ("bob", types_pb2.SIDE_CREDIT, 300, "USD")]

    alice_balance, bob_balance = server.balance(T, "alice"), server.balance(T, "bob")
    assert (alice_balance.current, alice_balance.available, alice_balance.locked) == (700, 700, 0)
    assert (bob_balance.current, bob_balance.available) == (300, 300)
    assert (alice_balance.entry_count, bob_balance.entry_count) == (2, 1)
    by_id = server.balance(T, ref(id=bob.id))
    assert by_id.current == 300 and by_id.account_id == bob.id

    # The statement: entries in posting order with the running balance after each.
    entries = server.all_entries(T, "alice")
    assert [(e.entry_number, e.side, e.amount, e.balance_after, e.flow_type) for e in entries] == [
        (1, types_pb2.SIDE_CREDIT, 1_000, 1_000, "adjustment"),
        (2, types_pb2.SIDE_DEBIT, 300, 700, "transfer")]
    assert entries[1].voucher_id == voucher.id
    bob_entries = server.all_entries(T, "bob")
    assert [(e.amount, e.balance_after) for e in bob_entries] == [(300, 300)]
    page = acc.ListEntries(acc_pb.ListEntriesRequest(account=ref("alice"), page_size=1, page_token=""),
                           metadata=md(T))
    page2 = acc.ListEntries(acc_pb.ListEntriesRequest(account=ref("alice"), page_size=1,
                                                      page_token=page.next_page_token), metadata=md(T))
    assert (page.opening_balance, page2.opening_balance) == (0, 1_000)
    assert [e.entry_number for e in page2.entries] == [2] and page2.next_page_token == ""

    # A retry with the same request_id and body is answered from the record and posts nothing.
    retry = post.Post(request, metadata=md(T))
    assert retry.replayed is True
    assert [v.id for v in retry.vouchers] == [voucher.id]
    assert retry.vouchers[0].sequence == voucher.sequence
    assert (server.current(T, "alice"), server.current(T, "bob")) == (700, 300)
    assert len(server.all_vouchers(T)) == 2

    # The same request_id with another body is refused and names what differs.
    code, reason, meta = refused(post.Post, transfer_request("tr-1", "alice", "bob", 301, memo="rent"),
                                 metadata=md(T))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert meta["request_id"] == "tr-1"
    assert "flow.amount" in meta["fields"].split(","), meta
    assert (server.current(T, "alice"), server.current(T, "bob")) == (700, 300)

    # Reverse the transfer: balances restored, the original points at its reversal.
    reversal = post.ReverseVoucher(post_pb.ReverseVoucherRequest(request_id="rv-1", voucher_id=voucher.id,
                                                                 reason="typo"), metadata=md(T))
    assert reversal.replayed is False
    rv = reversal.voucher
    assert rv.flow_type == "reversal" and rv.reverses_voucher_id == voucher.id and rv.sequence == 3
    assert [(ln.account_code, ln.side, ln.amount) for ln in rv.lines] == [
        ("alice", types_pb2.SIDE_CREDIT, 300), ("bob", types_pb2.SIDE_DEBIT, 300)]
    assert (server.current(T, "alice"), server.current(T, "bob")) == (1_000, 0)
    original = post.GetVoucher(post_pb.GetVoucherRequest(voucher_id=voucher.id), metadata=md(T)).voucher
    assert original.reversed_by_voucher_id == rv.id
    assert original.hash == voucher.hash  # the original itself is never edited
    fetched = post.GetVoucher(post_pb.GetVoucherRequest(voucher_id=rv.id), metadata=md(T)).voucher
    assert fetched.reverses_voucher_id == voucher.id
    assert [(e.amount, e.balance_after) for e in server.all_entries(T, "alice")] == [
        (1_000, 1_000), (300, 700), (300, 1_000)]

    # Same reversal request again: replayed. Another request to reverse it: refused.
    replayed = post.ReverseVoucher(post_pb.ReverseVoucherRequest(request_id="rv-1", voucher_id=voucher.id,
                                                                 reason="typo"), metadata=md(T))
    assert replayed.replayed is True and replayed.voucher.id == rv.id
    code, reason, meta = refused(post.ReverseVoucher, post_pb.ReverseVoucherRequest(
        request_id="rv-2", voucher_id=voucher.id, reason="again"), metadata=md(T))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VOUCHER_ALREADY_REVERSED")
    assert meta["voucher_id"] == voucher.id
    assert (server.current(T, "alice"), server.current(T, "bob")) == (1_000, 0)
    assert [v.sequence for v in server.all_vouchers(T)] == [1, 2, 3]


def test_freeze_unfreeze_close(server: Server) -> None:
    server.create_account(T, "alice", "deposit")
    server.create_account(T, "bob", "deposit")
    server.fund(T, "alice", 500)
    server.fund(T, "bob", 50)

    frozen = server.set_status(T, "alice", FROZEN)
    assert frozen.status == FROZEN
    code, reason, _ = refused(server.transfer, T, "alice", "bob", 100)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_FROZEN")
    code, reason, _ = refused(server.transfer, T, "bob", "alice", 10)  # receiving is refused too
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_FROZEN")
    assert server.accounts().GetAccount(acc_pb.GetAccountRequest(account=ref("alice")),
                                        metadata=md(T)).account.status == FROZEN
    assert (server.current(T, "alice"), server.current(T, "bob")) == (500, 50)

    assert server.set_status(T, "alice", ACTIVE).status == ACTIVE
    server.transfer(T, "alice", "bob", 100)
    assert (server.current(T, "alice"), server.current(T, "bob")) == (400, 150)

    code, reason, meta = refused(server.set_status, T, "alice", CLOSED)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_BALANCE_NOT_ZERO")
    assert server.accounts().GetAccount(acc_pb.GetAccountRequest(account=ref("alice")),
                                        metadata=md(T)).account.status == ACTIVE

    # Empty it, then it can close; closed is final.
    server.transfer(T, "alice", "bob", 400)
    assert server.set_status(T, "alice", CLOSED).status == CLOSED
    code, reason, _ = refused(server.transfer, T, "bob", "alice", 1)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_CLOSED")
    code, reason, _ = refused(server.set_status, T, "alice", ACTIVE)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_CLOSED")
    assert (server.current(T, "alice"), server.current(T, "bob")) == (0, 550)


def test_a_refused_account_change_is_the_final_answer_to_its_request_id(server: Server) -> None:
    """Closing an account that holds money is refused; once it is emptied, a resend of that same request
    is still refused (it must not close the account later), and a new request_id closes it. A create
    naming a parent that does not exist yet stays refused after the parent appears."""
    server.create_account(T, "carol", "deposit")
    server.create_account(T, "dave", "deposit")
    server.fund(T, "carol", 70)
    close_id = server.request_id("close-carol")
    code, reason, _ = refused(server.set_status, T, "carol", CLOSED, request_id=close_id)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_BALANCE_NOT_ZERO")

    server.transfer(T, "carol", "dave", 70)
    code, reason, _ = refused(server.set_status, T, "carol", CLOSED, request_id=close_id)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_BALANCE_NOT_ZERO")
    assert server.accounts().GetAccount(acc_pb.GetAccountRequest(account=ref("carol")),
                                        metadata=md(T)).account.status == ACTIVE
    assert server.set_status(T, "carol", CLOSED).status == CLOSED

    create = acc_pb.CreateAccountRequest(request_id=server.request_id("create-child"), code="child",
                                         type=types_pb2.ACCOUNT_TYPE_DEPOSIT, currency="USD", parent=ref("parent"))
    for _ in range(2):
        code, reason, _ = refused(server.accounts().CreateAccount, create, metadata=md(T))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
        server.create_account(T, "parent", "deposit", request_id="create-parent")  # replayed the second time
    code, reason, _ = refused(server.accounts().GetAccount, acc_pb.GetAccountRequest(account=ref("child")),
                              metadata=md(T))
    assert code == grpc.StatusCode.NOT_FOUND


def test_credit_limit_floor(server: Server) -> None:
    limit = 5_000
    card = server.create_account(T, "card", "credit", credit_limit=limit)
    assert card.credit_limit == limit and card.normal_side == CREDIT_SIDE
    server.create_account(T, "shop", "deposit")
    balance = server.balance(T, "card")
    assert (balance.current, balance.available, balance.credit_limit) == (0, limit, limit)

    server.transfer(T, "card", "shop", 3_000)
    server.transfer(T, "card", "shop", 2_000)  # exactly down to -limit
    balance = server.balance(T, "card")
    assert (balance.current, balance.available) == (-limit, 0)

    code, reason, meta = refused(server.transfer, T, "card", "shop", 1)  # not one unit further
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")
    assert (meta["available"], meta["required"]) == ("0", "1")
    assert server.current(T, "card") == -limit and server.current(T, "shop") == limit

    server.transfer(T, "shop", "card", 1)  # repaying works, and then exactly that unit is available
    server.transfer(T, "card", "shop", 1)
    code, _, _ = refused(server.transfer, T, "card", "shop", 1)
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    entries = server.all_entries(T, "card")
    assert [e.balance_after for e in entries] == [-3_000, -5_000, -4_999, -5_000]
    assert sum(signed(e, CREDIT_SIDE) for e in entries) == -limit


def test_pagination_walks_everything_once(server: Server) -> None:
    codes = [f"acct-{i:02d}" for i in range(7)]
    for code in codes:
        server.create_account(T, code, "deposit")
    server.create_account("other", "acct-00", "deposit")  # another tenant's account never shows
    for i, code in enumerate(codes[:5]):
        server.fund(T, code, 100 + i)  # 5 adjustments (plus the funding account)
    for i in range(4):
        server.transfer(T, codes[i], codes[i + 1], 10)
    expected_accounts = {*codes, "funding-usd"}

    seen, pages, token = [], 0, ""
    while True:
        page = server.accounts().ListAccounts(acc_pb.ListAccountsRequest(page_size=2, page_token=token),
                                              metadata=md(T))
        assert len(page.accounts) <= 2
        seen += [a.code for a in page.accounts]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(expected_accounts) and len(seen) == len(set(seen)) == 8
    assert pages == 4  # 8 items, 2 a page, and no empty last page

    vouchers, token = [], ""
    first_token = None
    while True:
        page = server.accounting().ListVouchers(post_pb.ListVouchersRequest(page_size=2, page_token=token),
                                                metadata=md(T))
        assert len(page.vouchers) <= 2
        vouchers += list(page.vouchers)
        token = page.next_page_token
        first_token = first_token or token
        if not token:
            break
    assert [v.sequence for v in vouchers] == list(range(1, 10))
    assert len({v.id for v in vouchers}) == 9
    assert [v.flow_type for v in vouchers] == ["adjustment"] * 5 + ["transfer"] * 4
    for previous, voucher in zip(vouchers, vouchers[1:], strict=False):
        assert voucher.previous_hash == previous.hash  # the tenant's hash chain is unbroken

    # Filters narrow the walk.
    transfers = server.all_vouchers(T, page_size=2, flow_type="transfer")
    assert [v.sequence for v in transfers] == [6, 7, 8, 9]
    acct1 = server.accounts().GetAccount(acc_pb.GetAccountRequest(account=ref("acct-01")), metadata=md(T)).account
    touching = server.all_vouchers(T, page_size=1, account_id=acct1.id)
    assert [v.sequence for v in touching] == [2, 6, 7]

    # A page token belongs to the query that made it.
    code, reason, _ = refused(server.accounting().ListVouchers,
                              post_pb.ListVouchersRequest(page_size=2, page_token=first_token,
                                                          flow_type="transfer"), metadata=md(T))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")
    account_page = server.accounts().ListAccounts(acc_pb.ListAccountsRequest(page_size=2), metadata=md(T))
    code, reason, _ = refused(server.accounts().ListAccounts, acc_pb.ListAccountsRequest(
        page_size=2, page_token=account_page.next_page_token, type=types_pb2.ACCOUNT_TYPE_INTERNAL),
        metadata=md(T))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")
    code, reason, _ = refused(server.accounts().ListAccounts, acc_pb.ListAccountsRequest(
        page_size=2, page_token=account_page.next_page_token), metadata=md("other"))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")


def test_missing_tenant_is_unauthenticated(server: Server) -> None:
    server.create_account(T, "alice", "deposit")
    calls = [
        (server.accounts().GetAccount, acc_pb.GetAccountRequest(account=ref("alice"))),
        (server.accounts().ListAccounts, acc_pb.ListAccountsRequest()),
        (server.accounts().CreateAccount, acc_pb.CreateAccountRequest(
            request_id="c1", code="x", type=types_pb2.ACCOUNT_TYPE_DEPOSIT, currency="USD")),
        (server.accounting().Post, transfer_request("t1", "alice", "bob", 1)),
        (server.accounting().ListVouchers, post_pb.ListVouchersRequest()),
    ]
    for call, request in calls:
        code, reason, _ = refused(call, request, metadata=md(None))
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING"), call
        code, reason, _ = refused(call, request, metadata=(("authorization", "Bearer not-a-key"),))
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_INVALID"), call
    assert [a.code for a in server.all_accounts(T)] == ["alice"]


def test_update_account_fields(server: Server) -> None:
    server.create_account(T, "card", "credit", credit_limit=100)
    request = acc_pb.UpdateAccountRequest(
        request_id="upd-1", account=ref("card"),
        account_update=types_pb2.Account(name="Visa", credit_limit=250, metadata={"tier": "gold"}),
        update_mask=field_mask_pb2.FieldMask(paths=["name", "credit_limit", "metadata"]))
    updated = server.accounts().UpdateAccount(request, metadata=md(T))
    assert updated.replayed is False
    assert (updated.account.name, updated.account.credit_limit, dict(updated.account.metadata)) == (
        "Visa", 250, {"tier": "gold"})
    assert server.balance(T, "card").available == 250
    again = server.accounts().UpdateAccount(request, metadata=md(T))
    assert again.replayed is True and again.account == updated.account
    server.create_account(T, "shop", "deposit")
    server.transfer(T, "card", "shop", 250)
    code, reason, _ = refused(server.transfer, T, "card", "shop", 1)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")


def test_tenants_see_only_their_own_ledger(server: Server) -> None:
    mine = server.create_account(T, "alice", "deposit")
    theirs = server.create_account("other", "alice", "deposit")  # the same code in another tenant is fine
    assert mine.id != theirs.id and theirs.tenant_id == "other"
    server.fund(T, "alice", 70)
    their_voucher = server.fund("other", "alice", 30)
    assert (server.current(T, "alice"), server.current("other", "alice")) == (70, 30)
    assert server.all_vouchers(T, account_id=theirs.id) == []
    assert [v.sequence for v in server.all_vouchers("other")] == [1]  # per-tenant sequence
    assert {a.code for a in server.all_accounts(T)} == {"alice", "funding-usd"}
    code, reason, _ = refused(server.accounting().GetVoucher, post_pb.GetVoucherRequest(
        voucher_id=their_voucher.id), metadata=md(T))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "VOUCHER_NOT_ACCESSIBLE")
