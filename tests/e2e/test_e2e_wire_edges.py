"""Edges of the wire, through the real server on SQLite and PostgreSQL: bodies that are not protobuf, rule
sets nested too deep, faults that recur (INTERNAL with an error id) and faults that pass (UNAVAILABLE), refused
reads and refused credentials in the audit log, caller metadata beside the server's keys, the credit limit's
bound, and list pages bounded by bytes. Tokens, stream caps and the database role are in
test_e2e_wire_tokens_and_roles."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DataError, OperationalError

from tally.config import Settings
from tally.domain.auth import Role
from tally.service.auth import keys
from tally.service.posting.pipeline import now_us
from tally.storage import tables
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import bookkeeping_service_pb2 as bk_pb
from tally.v1 import bookkeeping_service_pb2_grpc as bk_grpc
from tally.v1 import flows_pb2
from tests.e2e.conftest import Server, TenantKeys, adjustment_request, error_info, line, md, module_server, ref, walk

C = grpc.StatusCode
ACCOUNTING, ACCOUNTS = "/tally.v1.AccountingService/", "/tally.v1.AccountService/"
INT64_MAX = 2**63 - 1
AUDIT_FLUSH_S = 30


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def srv(request, tmp_path_factory):
    with module_server(request, tmp_path_factory, page_bytes_max=64 * 1024) as server:
        yield server


_tenants = iter(range(1, 10_000))


def tenant() -> str:
    return f"edge-{next(_tenants)}"


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def admin_key(srv: Server, name: str) -> str:
    return TenantKeys.for_target(srv.target).key_for(name)


def key_with_role(srv: Server, name: str, role: Role) -> str:
    provisioner = TenantKeys.for_target(srv.target)
    admin_key(srv, name)  # the tenant exists
    return keys.create_key(provisioner.uow, name, role, "edge", "tests", now_us).secret_key


def raw_call(srv: Server, path: str, body: bytes, metadata=()) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    """Sends `body` as it is (no serializer) and returns the refusal's code, reason and metadata."""
    channel = grpc.insecure_channel(srv.target)
    try:
        if path.split("/")[-1].startswith("Stream"):
            call = channel.unary_stream(path)(body, metadata=metadata, timeout=30)
            next(iter(call))
        else:
            channel.unary_unary(path)(body, metadata=metadata, timeout=30)
    except grpc.RpcError as err:
        return error_info(err)
    finally:
        channel.close()
    pytest.fail(f"{path}: the body {body!r} was accepted")


def audit_rows(srv: Server, **where) -> list:
    asyncio.run_coroutine_threadsafe(srv.app.services.audit.flush(), srv.loop).result(AUDIT_FLUSH_S)
    engine = sa.create_engine(srv.database_url)
    try:
        with engine.connect() as conn:
            query = sa.select(tables.audit_log).order_by(tables.audit_log.c.id)
            for column, value in where.items():
                query = query.where(tables.audit_log.c[column] == value)
            return list(conn.execute(query))
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------ bodies


NOT_PROTOBUF = [b"\xff\xff\xff\xff", b"\x0a\x7fshort", b"\x08" + b"\xff" * 11]  # bad tag, length past end, varint


@dataclass(frozen=True)
class Body:
    path: str
    credential: str  # "none", "unknown key", "reader", "admin"
    code: grpc.StatusCode
    reason: str


BODIES = [
    Body(f"{ACCOUNTING}Post", "none", C.UNAUTHENTICATED, "CREDENTIALS_MISSING"),
    Body(f"{ACCOUNTING}StreamEvents", "none", C.UNAUTHENTICATED, "CREDENTIALS_MISSING"),
    Body(f"{ACCOUNTS}GetAccount", "unknown key", C.UNAUTHENTICATED, "CREDENTIALS_INVALID"),
    Body(f"{ACCOUNTING}Post", "reader", C.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"),  # authorization comes first too
    Body(f"{ACCOUNTING}Post", "admin", C.INVALID_ARGUMENT, "BODY_MALFORMED"),
    Body(f"{ACCOUNTING}GetVoucher", "admin", C.INVALID_ARGUMENT, "BODY_MALFORMED"),
    Body(f"{ACCOUNTING}StreamEvents", "admin", C.INVALID_ARGUMENT, "BODY_MALFORMED"),
    Body(f"{ACCOUNTS}CreateAccount", "admin", C.INVALID_ARGUMENT, "BODY_MALFORMED"),
]


@pytest.mark.parametrize("case", BODIES, ids=lambda c: f"{c.path.rsplit('/', 1)[1]}-{c.credential}")
def test_a_body_that_is_not_protobuf_is_read_only_after_the_credential(srv: Server, case: Body, caplog) -> None:
    """It answered UNKNOWN with a traceback in the log, before any credential was checked."""
    name = tenant()
    credential = {"none": (), "unknown key": bearer("tly_0123456789abcdef_" + "A" * 43),
                  "reader": bearer(key_with_role(srv, name, Role.READER)),
                  "admin": bearer(admin_key(srv, name))}[case.credential]
    with caplog.at_level(logging.INFO, logger="tally"):
        for body in NOT_PROTOBUF:
            code, reason, _ = raw_call(srv, case.path, body, credential)
            assert (code, reason) == (case.code, case.reason), body
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    if case.reason == "BODY_MALFORMED":
        logged = [r for r in caplog.records if "not a valid request" in r.getMessage()]
        assert len(logged) == len(NOT_PROTOBUF) and all(r.levelno == logging.INFO for r in logged)
        rows = audit_rows(srv, tenant_id=name, outcome="error:INVALID_ARGUMENT:BODY_MALFORMED")
        assert [r.action for r in rows] == [case.path.rsplit("/", 1)[1]] * len(NOT_PROTOBUF)
        assert {r.actor for r in rows} == {f"key:{admin_key(srv, name).split('_')[1]}"}


# ------------------------------------------------------------------------------------------ rule sets


@pytest.mark.parametrize("content", [
    "a = " + "[" * 50_000 + "]" * 50_000,
    "a = " + "{b = " * 20_000 + "1" + "}" * 20_000,
], ids=["arrays-50000-deep", "inline-tables-20000-deep"])
def test_a_rule_set_nested_too_deep_is_invalid_argument(srv: Server, content: str) -> None:
    """It failed with RecursionError and answered UNAVAILABLE "retry"."""
    stub = bk_grpc.BookkeepingServiceStub(srv.channel())
    with pytest.raises(grpc.RpcError) as caught:
        stub.ValidateRuleSet(bk_pb.ValidateRuleSetRequest(content=content), metadata=md(tenant()))
    assert error_info(caught.value)[:2] == (C.INVALID_ARGUMENT, "RULE_SET_TOO_DEEP")
    # A shallow file with problems is still answered with them.
    answer = stub.ValidateRuleSet(bk_pb.ValidateRuleSetRequest(content="a = [[[1]]]"), metadata=md(tenant()))
    assert not answer.valid and answer.problems


# ------------------------------------------------------------------------------------------ faults


def _raising(exc: BaseException) -> Callable:
    def get_voucher(*args, **kwargs):
        raise exc

    return get_voucher


FAULTS = [
    (RuntimeError("a bug"), C.INTERNAL, "INTERNAL_ERROR"),
    (RecursionError("maximum recursion depth exceeded"), C.INTERNAL, "INTERNAL_ERROR"),
    (DataError("INSERT ...", {}, Exception("value too long")), C.INTERNAL, "INTERNAL_ERROR"),
    (OperationalError("SELECT ...", {}, Exception("server closed the connection")), C.UNAVAILABLE,
     "DATABASE_UNAVAILABLE"),
]


@pytest.mark.parametrize(("exc", "code", "reason"), FAULTS, ids=["bug", "recursion", "data-error", "connection-lost"])
def test_a_fault_that_recurs_is_internal_with_an_error_id_in_the_log(srv: Server, monkeypatch, caplog, exc, code,
                                                                       reason) -> None:
    monkeypatch.setattr(srv.app.services.queries, "get_voucher", _raising(exc))
    with caplog.at_level(logging.WARNING, logger="tally"), pytest.raises(grpc.RpcError) as caught:
        srv.accounting().GetVoucher(post_pb.GetVoucherRequest(voucher_id="v"), metadata=md(tenant()))
    got_code, got_reason, meta = error_info(caught.value)
    assert (got_code, got_reason) == (code, reason)
    if code is C.INTERNAL:
        error_id = meta["error_id"]
        assert re.fullmatch(r"[0-9a-f]{16}", error_id) and error_id in caught.value.details()
        assert "retry with the same request_id" not in caught.value.details()
        [logged] = [r for r in caplog.records if error_id in r.getMessage()]
        assert logged.levelno == logging.ERROR and logged.exc_info is not None
    else:
        assert "error_id" not in meta and "retry with the same request_id" in caught.value.details()


# ------------------------------------------------------------------------------------------ audit


def test_refused_reads_and_refused_keys_are_in_the_audit_log(srv: Server) -> None:
    name = tenant()
    srv.create_account(name, "alice")
    refusals = [
        (lambda: srv.accounting().ListVouchers(post_pb.ListVouchersRequest(page_size=-1), metadata=md(name)),
         "ListVouchers", "error:INVALID_ARGUMENT:PAGE_SIZE_INVALID", ""),
        (lambda: srv.accounts().GetBalance(acc_pb.GetBalanceRequest(account=ref("nobody")), metadata=md(name)),
         "GetBalance", "error:NOT_FOUND:ACCOUNT_NOT_FOUND", "account:code:nobody"),
        (lambda: srv.accounting().GetVoucher(post_pb.GetVoucherRequest(voucher_id="v\x00\x01"), metadata=md(name)),
         "GetVoucher", "error:PERMISSION_DENIED:VOUCHER_NOT_ACCESSIBLE", "voucher_id:v\ufffd\x01"),
    ]
    for call, *_ in refusals:
        with pytest.raises(grpc.RpcError):
            call()
    srv.accounts().GetAccount(acc_pb.GetAccountRequest(account=ref("alice")), metadata=md(name))  # not audited
    rows = [r for r in audit_rows(srv, tenant_id=name) if r.action != "CreateAccount"]
    assert [(r.action, r.outcome, r.target) for r in rows] == [(a, o, t) for _, a, o, t in refusals]


def test_rows_of_a_revoked_or_wrong_key_name_the_key(srv: Server) -> None:
    """They carried no key id: nobody could tell which key was tried."""
    name = tenant()
    revoked = key_with_role(srv, name, Role.READER)
    revoked_id = revoked.split("_")[1]
    keys.revoke_key(TenantKeys.for_target(srv.target).uow, name, revoked_id, now_us)
    real_id = admin_key(srv, name).split("_")[1]
    attempts = {revoked_id: (revoked, "KEY_REVOKED"), real_id: (f"tly_{real_id}_" + "B" * 43, "CREDENTIALS_INVALID")}
    for key_id, (credential, reason) in attempts.items():
        code, got, _ = raw_call(srv, f"{ACCOUNTS}ListAccounts", b"", bearer(credential))
        assert (code, got) == (C.UNAUTHENTICATED, reason)
        [row] = audit_rows(srv, actor=f"key:{key_id}", outcome=f"denied:{reason}")
        assert (row.action, row.tenant_id, row.request_id) == ("ListAccounts", "", "")


# ------------------------------------------------------------------------------------------ metadata, limits


def test_a_caller_may_use_all_32_metadata_entries_beside_the_servers_keys(srv: Server) -> None:
    """Exactly 32 were refused as "more than 32": the rule's own `rule_voucher` counted against them."""
    name = tenant()
    full = {f"k{i:02d}": "v" for i in range(32)}
    funding = post_pb.PostRequest(request_id="fund-1", metadata=full, funding=flows_pb2.FundingFlow(
        consumer="c1", processor="p1", amount=500, currency="USD"))
    [voucher] = srv.accounting().Post(funding, metadata=md(name)).vouchers
    assert dict(voucher.metadata) == {**full, "rule_voucher": "funding"}
    source = srv.funding_account(name)
    adjust = adjustment_request("adj-1", [line(source.code, "debit", 5), line("consumer:c1:USD", "credit", 5)],
                                reason="why", metadata=full)
    [voucher] = srv.accounting().Post(adjust, metadata=md(name)).vouchers
    assert dict(voucher.metadata) == {**full, "reason": "why"}


def test_the_largest_credit_limit_still_takes_credits(srv: Server) -> None:
    name = tenant()
    card = srv.create_account(name, "card", "credit", credit_limit=2**62)
    srv.create_account(name, "shop")
    srv.transfer(name, "card", "shop", 1_000)
    assert srv.balance(name, "card").available == 2**62 - 1_000
    srv.fund(name, "card", 5_000)  # a credit: refused for any limit when the limit was int64 max
    assert srv.balance(name, ref(id=card.id)).available == 2**62 + 4_000


# ------------------------------------------------------------------------------------------ pages


def test_list_pages_are_bounded_by_bytes_and_lose_nothing(srv: Server) -> None:
    """A page of 500 large vouchers was 7 MB, past a client's 4 MiB: the server here bounds pages at 64 KiB."""
    name = tenant()
    bound = srv.app.settings.page_bytes_max
    big = {f"k{i:02d}": "m" * 120 for i in range(32)}  # ~4 KiB of metadata
    srv.create_account(name, "alice", metadata=big)
    for i in range(30):
        srv.create_account(name, f"acct-{i:02d}", metadata=big)
    source = srv.funding_account(name)
    for i in range(5):  # vouchers of ~40 KiB: 63 credit lines to alice, each with a 512-character memo
        lines = [line(source.code, "debit", 63)] + [line("alice", "credit", 1, memo=f"{i}" * 512)] * 63
        srv.accounting().Post(adjustment_request(f"big-{i}", lines, metadata=big), metadata=md(name))
    hold_request = post_pb.CreateHoldRequest(account=ref("alice"), amount=1, currency="USD", memo="h" * 512,
                                             metadata=big)
    for i in range(20):
        hold_request.request_id = f"hold-{i}"
        srv.accounting().CreateHold(hold_request, metadata=md(name))

    lists = {
        "accounts": lambda token: srv.accounts().ListAccounts(
            acc_pb.ListAccountsRequest(page_size=500, page_token=token), metadata=md(name)),
        "vouchers": lambda token: srv.accounting().ListVouchers(
            post_pb.ListVouchersRequest(page_size=500, page_token=token), metadata=md(name)),
        "holds": lambda token: srv.accounting().ListHolds(
            post_pb.ListHoldsRequest(page_size=500, page_token=token), metadata=md(name)),
        "entries": lambda token: srv.accounts().ListEntries(
            acc_pb.ListEntriesRequest(account=ref("alice"), page_size=500, page_token=token), metadata=md(name)),
    }
    expected = {"accounts": 32, "vouchers": 5, "holds": 20, "entries": 5 * 63}
    for field, call in lists.items():
        pages: list = []
        items = list(walk(lambda token, call=call, pages=pages: _kept(pages, call(token)), field))
        assert len(pages) > 1, f"{field}: one page of {pages[0].ByteSize()} bytes"
        for page in pages:  # the bound counts the items; the page token and opening balance come on top
            assert page.ByteSize() <= bound + 256 or len(getattr(page, field)) == 1, field
        ids = [(i.voucher_id, i.line_no) if field == "entries" else i.id for i in items]
        assert len(items) == expected[field] and len(set(ids)) == len(ids), field


def _kept(pages: list, page):
    pages.append(page)
    return page


def test_page_bytes_default_to_one_mebibyte() -> None:
    assert Settings().page_bytes_max == 1024 * 1024
    assert Settings.from_env({"TALLY_PAGE_BYTES_MAX": "65536"}).page_bytes_max == 65536
