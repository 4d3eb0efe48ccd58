"""Shared by the console tests: a server with the console on, a small ledger in two tenants, HTTP helpers."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import jwt
import pytest

from tally.domain.auth import Role
from tally.service.auth import keys
from tally.service.posting.pipeline import now_us
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import (
    day_service_pb2,
    day_service_pb2_grpc,
    flows_pb2,
    settlement_service_pb2,
    settlement_service_pb2_grpc,
    types_pb2,
)
from tests.e2e.conftest import Server, TenantKeys, md, module_server, timestamp_in

HTTP_TIMEOUT_S = 10.0
FUNDED_UNITS = 12_345_678  # 12.345678 USD
SENT_UNITS = 2_000_000
HELD_UNITS = 300_000
CLEARING = "channel_clearing:visa:USD"
JWT_SECRET = "console-test-secret-of-at-least-32-bytes"
JWT_ISSUER, JWT_AUDIENCE = "https://idp.test", "tally"
STATEMENT = "visa-2026-12"


@dataclass
class Ledger:
    """What `populate` made: ids and keys the tests look for."""

    console_url: str
    admin_key: str
    reader_key: str
    poster_key: str
    other_key: str
    funding_voucher_id: str
    transfer_voucher_id: str
    merchant_id: str
    alice_id: str
    other_account_id: str
    other_voucher_id: str
    hold_id: str
    day: str


@contextlib.contextmanager
def console_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[Server, Ledger]]:
    with module_server(request, tmp_path_factory, console_address="127.0.0.1:0", jwt_secret=JWT_SECRET,
                       jwt_issuer=JWT_ISSUER, jwt_audience=JWT_AUDIENCE) as srv:
        yield srv, populate(srv)


def populate(srv: Server) -> Ledger:
    tenant, other = "console-a", "console-b"
    merchant = srv.create_account(tenant, "merchant", name="Merchant <b>HQ</b>")
    for child in ("merchant-eu", "merchant-us"):
        srv.accounts().CreateAccount(acc_pb.CreateAccountRequest(
            request_id=f"create-{child}", code=child, type=types_pb2.ACCOUNT_TYPE_DEPOSIT, currency="USD",
            parent=types_pb2.AccountRef(code="merchant")), metadata=md(tenant))
    alice = srv.create_account(tenant, "alice")
    srv.create_account(tenant, "bob")
    funding = srv.fund(tenant, "alice", FUNDED_UNITS)
    srv.fund(tenant, "merchant-us", 1_000_000)
    transfer = srv.transfer(tenant, "alice", "bob", SENT_UNITS).vouchers[0]
    hold = srv.accounting().CreateHold(post_pb.CreateHoldRequest(
        request_id="console-hold", account=types_pb2.AccountRef(code="alice"), amount=HELD_UNITS, currency="USD",
        expire_time=timestamp_in(3600), memo="card auth"), metadata=md(tenant)).hold
    _reconcile(srv, tenant, funding.accounting_date)
    other_account = srv.create_account(other, "secret")
    other_voucher = srv.fund(other, "secret", 5_000_000)
    day_service_pb2_grpc.DayServiceStub(srv._default).CloseAccountingDay(day_service_pb2.CloseAccountingDayRequest(
        accounting_date=funding.accounting_date, request_id="console-close", early=True), metadata=md(tenant))
    provisioner = TenantKeys.for_target(srv.target)
    console = srv.app.console
    assert console is not None, "TALLY_CONSOLE_ADDRESS did not start the console"
    return Ledger(
        console_url=f"http://127.0.0.1:{console.port}", admin_key=provisioner.key_for(tenant),
        reader_key=_key(provisioner, tenant, Role.READER), poster_key=_key(provisioner, tenant, Role.POSTER),
        other_key=provisioner.key_for(other), funding_voucher_id=funding.id, transfer_voucher_id=transfer.id,
        merchant_id=merchant.id, alice_id=alice.id, other_account_id=other_account.id,
        other_voucher_id=other_voucher.id, hold_id=hold.id, day=funding.accounting_date)


def _reconcile(srv: Server, tenant: str, day: str) -> None:
    """Two card acquisitions, and the channel's statement of them: one matched, one short by a fee."""
    for reference, units in (("ORD-A", 5_000_000), ("ORD-B", 3_000_000)):
        srv.accounting().Post(post_pb.PostRequest(
            request_id=f"acquire-{reference}", metadata={"channel_ref": reference},
            acquisition=flows_pb2.AcquisitionFlow(merchant="m1", channel="visa", amount=units, currency="USD")),
            metadata=md(tenant))
    text = f"id,reference,amount,date\nL1,ORD-A,5.00,{day}\nL2,ORD-B,2.99,{day}\n"
    settlement_service_pb2_grpc.SettlementServiceStub(srv._default).ImportStatement(
        settlement_service_pb2.ImportStatementRequest(
            request_id="console-import", account=types_pb2.AccountRef(code=CLEARING), statement_id=STATEMENT,
            format=settlement_service_pb2.STATEMENT_FORMAT_CSV, statement_file=text.encode(),
            closing_balance=7_990_000), metadata=md(tenant))


def _key(provisioner: TenantKeys, tenant: str, role: Role) -> str:
    return keys.create_key(provisioner.uow, tenant, role, f"console {role.value}", "tests", now_us).secret_key


def token(tenant: str, role: str, lifetime_s: int = 600) -> str:
    """A signed JWT as an identity provider would issue it."""
    now = int(time.time())
    return jwt.encode({"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": f"console-{role}", "tenant_id": tenant,
                       "role": role, "exp": now + lifetime_s}, JWT_SECRET, algorithm="HS256")


def client(ledger: Ledger, key: str | None = None) -> httpx.Client:
    """An HTTP client of the console, sending `key` as a bearer credential (None: no credential)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=ledger.console_url, headers=headers, timeout=HTTP_TIMEOUT_S,
                        follow_redirects=False)


def cells(html: str, css_class: str) -> list[list[str]]:
    """The text of each body row's cells of the first table with this class."""
    table = re.search(rf'<table class="{css_class}">(.*?)</table>', html, re.S)
    assert table, f"no table.{css_class} in the page"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(1), re.S).group(1)
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
