"""Tenant isolation and authentication over the real wire, for every RPC, on SQLite and PostgreSQL.

One server per backend (auth cache off, so a revoked key fails on its next call; JWTs accepted with HS256
only), with tenant A holding accounts, vouchers and holds and tenant B holding its own. For EVERY RPC in
METHOD_PERMISSIONS (a new RPC is covered as soon as it is added there; a request is built for it from its
descriptor, naming A's resources wherever it names one) the matrix tries:

* bad credentials: none, malformed headers, unknown and wrong API keys, a revoked key, and JWTs that are
  expired, wrongly signed, unsigned (`alg=none`), of an algorithm not configured, from another issuer or
  for another audience, without expiry, not yet valid, of an unknown tenant or role, or altered after
  signing: each must be UNAUTHENTICATED with its reason;
* tenant B's valid credentials (its admin API key, its JWT, and its key with an `x-tenant-id: A` header)
  naming A's account, voucher and hold ids: PERMISSION_DENIED `<KIND>_NOT_ACCESSIBLE`, exactly like an id
  that does not exist (codes and request ids are names inside the caller's own tenant, so B naming A's
  *codes* would find B's own namespace: the cross-tenant cases use ids). A list filter naming A's id
  (ListVouchers/ListHolds `account_id`, ListAccounts `parent_id`) names no target: it answers B's own,
  empty, page; those calls, and B's calls that name nothing, are checked to show nothing of A's;
* keys of A with too small a role: PERMISSION_DENIED ROLE_NOT_ALLOWED.

After each batch of attempts the whole database (every table but the audit log) must be exactly as it was,
and each refusal must have its row in the audit log (read straight from the table after the server's
audit writer is flushed). The counts of attempts and refusals are printed (`pytest -s`).

A refusal made inside a handler (B naming A's ids in a read, a stream or a mutation) is audited as
`error:PERMISSION_DENIED:<reason>`; PostBatch, which refuses items one by one inside an OK call, is
audited as `ok:items_refused=<n>:<reasons>`.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import itertools
import json
import re
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import descriptor_pool, field_mask_pb2, message_factory
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tally.api.server import SERVICE_NAMES
from tally.domain.auth import GRANTS, METHOD_PERMISSIONS, Role
from tally.domain.errors import LedgerError
from tally.service.auth import keys
from tally.service.posting.pipeline import now_us
from tally.storage import tables
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import bookkeeping_service_pb2 as book_pb
from tally.v1 import flows_pb2, types_pb2
from tally.v1 import settlement_service_pb2 as settlement_pb
from tally.v1 import settlement_service_pb2_grpc as settlement_grpc
from tally.v1 import webhook_service_pb2 as hook_pb
from tally.v1 import webhook_service_pb2_grpc as hook_grpc
from tests.e2e.conftest import BACKENDS, STOP_TIMEOUT_S, Server, TenantKeys, md, module_server

A, B = "iso-a", "iso-b"
JWT_SECRET = b"isolation-test-secret-of-at-least-32-bytes"
OTHER_SECRET = b"someone-else's-secret-also-32-bytes-long!!"
ISSUER, AUDIENCE = "https://issuer.tally.test", "tally-isolation"
CALL_TIMEOUT_S = 10.0
STREAM_TIMEOUT_S = 5.0
OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
REFUSED = (UNAUTHENTICATED, DENIED)
CLOSED_DAY = "2000-01-03"  # closed for both tenants at set-up: the day-service calls have a day to read
FILTER_FIELDS = ("account_id", "parent_id")  # list filters: a foreign id filters to nothing, it names no target


# ------------------------------------------------------------------------------------------ JWTs (stdlib)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(claims: dict, *, secret: bytes = JWT_SECRET, alg: str = "HS256", header: dict | None = None,
         sign_as: str | None = None) -> str:
    """A compact JWT. ``alg`` goes in the header; ``sign_as`` (default: the same) picks the HMAC actually
    used, "none" for no signature at all."""
    head = {"alg": alg, "typ": "JWT"} if header is None else header
    signing_input = f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(claims).encode())}"
    algorithm = sign_as or alg
    if algorithm == "none":
        return f"{signing_input}."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[algorithm]
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), digest).digest())}"


def claims(tenant: str = A, role: str = "admin", **changes) -> dict:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": f"svc-{tenant}", "tenant_id": tenant, "role": role,
            "iat": now, "exp": now + 600}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def bearer(credential: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {credential}"),)


def actor_of_key(secret_key: str) -> str:
    return f"key:{secret_key.split('_')[1]}"


# ------------------------------------------------------------------------------------------ the world


def _structures_setup(server: Server) -> dict[str, str]:
    """A's credit account and security deposit, and two accounts to merge: targets of A's for
    SetAccountSecurity and MergeAccounts."""
    made = {name: server.create_account(A, f"a-{name}", name).id for name in ("credit", "security_deposit")}
    return made | {name: server.create_account(A, f"a-{name}").id for name in ("merge-from", "merge-into")}


def _settlement_setup(server: Server) -> dict[str, str]:
    """A's reconciled statements and payouts, so that every SettlementService RPC has a target of A's."""
    accounting, settle = server.accounting(), settlement_grpc.SettlementServiceStub(server.channel())

    def post(request_id: str, **flow) -> None:
        accounting.Post(post_pb.PostRequest(request_id=request_id, **flow), metadata=md(A))

    usd = {"currency": "USD"}
    post("a-acq", acquisition=flows_pb2.AcquisitionFlow(merchant="am", channel="visa", amount=1_000_000, **usd))
    post("a-fund", funding=flows_pb2.FundingFlow(consumer="ac", processor="card", amount=9_000_000, **usd))
    post("a-proc", settlement=flows_pb2.SettlementFlow(kind=flows_pb2.SETTLEMENT_KIND_PROCESSOR, processor="card",
                                                       amount=9_000_000, **usd))
    post("a-bank", settlement=flows_pb2.SettlementFlow(kind=flows_pb2.SETTLEMENT_KIND_BANK, channel="card",
                                                       amount=9_000_000, **usd))
    post("a-use", usage=flows_pb2.UsageFlow(consumer="ac", merchant="am", amount=8_000_000, **usd))
    server.accounts().UpdateAccount(acc_pb.UpdateAccountRequest(
        request_id="a-kyc", account=types_pb2.AccountRef(code="merchant:am:USD/settled"),
        account_update=types_pb2.Account(metadata={"kyc_status": "verified"}),
        update_mask=field_mask_pb2.FieldMask(paths=["metadata"])), metadata=md(A))
    day = dt.datetime.now(dt.UTC).date().isoformat()

    def statement(request_id: str, code: str, statement_id: str) -> None:
        settle.ImportStatement(settlement_pb.ImportStatementRequest(
            request_id=request_id, account=types_pb2.AccountRef(code=code), format=settlement_pb.STATEMENT_FORMAT_CSV,
            statement_file=f"reference,amount,date\nA-EXTRA,0.05,{day}\n".encode(), statement_id=statement_id),
            metadata=md(A))

    statement("a-stmt-1", "alice", "a-statement-alice")
    statement("a-stmt-2", "channel_clearing:visa:USD", "a-statement-visa")
    (item,) = settle.ListReconciliationItems(settlement_pb.ListReconciliationItemsRequest(
        account=types_pb2.AccountRef(code="channel_clearing:visa:USD"), statement_id="a-statement-visa",
        state=settlement_pb.RECONCILIATION_ITEM_STATE_UNMATCHED_THEIRS), metadata=md(A)).items
    bank = settle.LinkBankAccount(settlement_pb.LinkBankAccountRequest(
        request_id="a-link", merchant_account=types_pb2.AccountRef(code="merchant:am:USD/settled"), currency="USD",
        holder_name="A Merchant", iban="DE89370400440532013000", bic="COBADEFFXXX", verified=True),
        metadata=md(A)).bank_account

    def batch(n: int) -> tuple[str, str]:
        payout = settle.RequestPayout(settlement_pb.RequestPayoutRequest(
            request_id=f"a-payout-{n}", bank_account_id=bank.id, amount=1_000_000, currency="USD"),
            metadata=md(A)).payout
        (made,) = settle.CreatePayoutBatches(settlement_pb.CreatePayoutBatchesRequest(
            request_id=f"a-cut-{n}", currency="USD"), metadata=md(A)).batches
        return payout.id, made.id

    sent_payout, sent_batch = batch(1)
    settle.SendPayoutBatch(settlement_pb.SendPayoutBatchRequest(request_id="a-send-1", batch_id=sent_batch),
                           metadata=md(A))
    _, waiting_batch = batch(2)
    settled = server.accounts().GetAccount(acc_pb.GetAccountRequest(
        account=types_pb2.AccountRef(code="merchant:am:USD/settled")), metadata=md(A)).account.id
    return {"item": item.id, "statement": "a-statement-alice", "bank_account": bank.id, "payout": sent_payout,
            "sent_batch": sent_batch, "batch": waiting_batch, "settled": settled}


@dataclasses.dataclass
class World:
    server: Server
    backend: str
    a: dict[str, str]  # A's resource ids by name
    b: dict[str, str]  # B's resource ids by name
    keys: dict[str, str]  # credential name -> API key
    _ids: Iterator[int] = dataclasses.field(default_factory=itertools.count)

    def request_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    @property
    def a_ids(self) -> list[str]:
        return list(self.a.values())


def _create_key(server: Server, tenant: str, role: Role, name: str) -> keys.IssuedKey:
    uow = TenantKeys.for_target(server.target).uow
    with contextlib.suppress(LedgerError):  # it exists already
        keys.create_tenant(uow, tenant, f"isolation tenant {tenant}", now_us)
    return keys.create_key(uow, tenant, role, name, "isolation-test", now_us)


def _setup(server: Server, backend: str) -> World:
    accounting = server.accounting()
    a: dict[str, str] = {}
    for code in ("alice", "bob"):
        a[code] = server.create_account(A, code).id
    a["fund"] = server.fund(A, "alice", 10_000).id
    a["funding"] = server.funding_account(A).id
    a["transfer"] = server.transfer(A, "alice", "bob", 1_000).vouchers[0].id
    a["hold"] = accounting.CreateHold(post_pb.CreateHoldRequest(
        request_id="a-hold-1", account=types_pb2.AccountRef(id=a["alice"]), amount=2_000, currency="USD"),
        metadata=md(A)).hold.id
    a["released"] = accounting.CreateHold(post_pb.CreateHoldRequest(
        request_id="a-hold-2", account=types_pb2.AccountRef(code="alice"), amount=100, currency="USD"),
        metadata=md(A)).hold.id
    webhooks = hook_grpc.WebhookServiceStub(server.channel())
    for name in ("webhook", "spare-webhook"):  # a denied address: never reached, even by Redeliver
        a[name] = webhooks.CreateWebhook(hook_pb.CreateWebhookRequest(
            request_id=f"a-{name}", url="https://127.0.0.1:9/hooks", account_ids=[a["alice"]]),
            metadata=md(A)).webhook.id
    a.update(_settlement_setup(server))
    a.update(_structures_setup(server))

    b: dict[str, str] = {}
    for code in ("wallet", "shop"):
        b[code] = server.create_account(B, code).id
    server.fund(B, "wallet", 5_000)
    b["hold"] = accounting.CreateHold(post_pb.CreateHoldRequest(
        request_id="b-hold-1", account=types_pb2.AccountRef(code="wallet"), amount=500, currency="USD"),
        metadata=md(B)).hold.id
    accounting.Post(post_pb.PostRequest(request_id="b-funding-1", funding=flows_pb2.FundingFlow(
        consumer="bu", processor="card", amount=3_000, currency="USD")), metadata=md(B))

    issued = {name: _create_key(server, A, role, name)
              for name, role in (("a-reader", Role.READER), ("a-poster", Role.POSTER),
                                 ("a-operator", Role.OPERATOR), ("a-admin", Role.ADMIN), ("a-revoked", Role.ADMIN),
                                 ("a-auditor", Role.AUDITOR))}
    issued["b-admin"] = _create_key(server, B, Role.ADMIN, "b-admin")
    world_keys = {name: key.secret_key for name, key in issued.items()}
    world = World(server, backend, a, b, world_keys)

    # Positive controls: the credentials the matrix relies on work before it starts (so a refusal below is
    # the credential's doing, not a server that refuses everything).
    channel = raw_channel(server)
    try:
        valid = [bearer(world_keys[name]) for name in ("a-revoked", "a-reader", "a-poster", "a-operator", "b-admin")]
        for credential in (*valid, bearer(mint(claims(A))), bearer(mint(claims(A, role="reader"))),
                           bearer(mint(claims(B)))):
            # The whole tenant's trial balance: a subtree would name one of A's accounts, which B may not see.
            code, reason, _ = call(channel, "/tally.v1.BookkeepingService/GetTrialBalance",
                                   book_pb.GetTrialBalanceRequest(), credential)
            assert code is OK, f"a valid credential was refused: {reason}"
    finally:
        channel.close()
    keys.revoke_key(TenantKeys.for_target(server.target).uow, A, issued["a-revoked"].key_id, now_us)
    for tenant in (A, B):
        server.app.services.days.close(tenant, CLOSED_DAY)
    return world


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    overrides = dict(auth_cache_ttl_s=0, jwt_secret=JWT_SECRET.decode(), jwt_algorithms="HS256",
                     jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
                     webhook_delivery=False)  # no leases renewed in the background: "changes nothing" holds
    with module_server(request, tmp_path_factory, **overrides) as srv:
        yield _setup(srv, request.param)


# ------------------------------------------------------------------------------------------ requests


def method_descriptor(path: str):
    service, method = path.strip("/").split("/")
    return descriptor_pool.Default().FindServiceByName(service).methods_by_name[method]


def _fill(request: Message, world: World, request_id: str) -> None:
    """Every field the request has that names something gets A's resource (or a plausible value)."""
    for field in request.DESCRIPTOR.fields:
        name = field.name
        if field.message_type is not None and field.message_type.full_name == "tally.v1.AccountRef":
            account_id = world.a["bob" if name == "destination" else "alice"]
            if field.is_repeated:
                getattr(request, name).add(id=account_id)
            else:
                getattr(request, name).id = account_id
        elif name == "request_id":
            request.request_id = request_id
        elif name == "voucher_id":
            request.voucher_id = world.a["transfer"]
        elif name == "hold_id":
            request.hold_id = world.a["hold"]
        elif name == "webhook_id":
            request.webhook_id = world.a["webhook"]
        elif name in FILTER_FIELDS:
            setattr(request, name, world.a["alice"])
        elif name == "account_ids":
            request.account_ids.append(world.a["alice"])
        elif name == "amount" and field.cpp_type == field.CPPTYPE_INT64:
            request.amount = 1
        elif name == "currency":
            request.currency = "USD"
        elif name == "from_sequence":
            request.from_sequence = 0
        elif name == "reason" and field.cpp_type == field.CPPTYPE_STRING:
            request.reason = "isolation test"
        elif name in ("accounting_date", "date"):
            setattr(request, name, CLOSED_DAY)


def _transfer(source: types_pb2.AccountRef, destination: types_pb2.AccountRef, amount: int = 1
              ) -> flows_pb2.TransferFlow:
    flow = flows_pb2.TransferFlow(to=destination, amount=amount, currency="USD")
    getattr(flow, "from").CopyFrom(source)
    return flow


def _ids(*ids: str) -> list[types_pb2.AccountRef]:
    return [types_pb2.AccountRef(id=i) for i in ids]


# What the generic filling cannot guess: a flow to post, a code to create, a field to update.
OVERRIDES: dict[str, Callable[[Message, World, str], None]] = {
    "Post": lambda r, w, rid: r.transfer.CopyFrom(_transfer(*_ids(w.a["alice"], w.a["bob"]))),
    "PostBatch": lambda r, w, rid: r.requests.append(post_pb.PostRequest(
        request_id=f"{rid}-item", transfer=_transfer(*_ids(w.a["alice"], w.a["bob"])))),
    "CreateAccount": lambda r, w, rid: (setattr(r, "code", f"acct-{rid}"),
                                        setattr(r, "type", types_pb2.ACCOUNT_TYPE_DEPOSIT)),
    "UpdateAccount": lambda r, w, rid: (setattr(r.account_update, "name", "renamed"),
                                        r.update_mask.paths.append("name")),
    "CreateWebhook": lambda r, w, rid: setattr(r, "url", "https://127.0.0.1:9/hooks"),
    "SetAccountSecurity": lambda r, w, rid: (
        r.credit_account.CopyFrom(_ids(w.a["credit"])[0]), r.deposit_account.CopyFrom(_ids(w.a["security_deposit"])[0]),
        setattr(r, "ratio_bps", 5_000)),
    "MergeAccounts": lambda r, w, rid: (r.ClearField("sources"), r.sources.extend(_ids(w.a["merge-from"])),
                                        r.target.CopyFrom(_ids(w.a["merge-into"])[0])),
    "UpdateWebhook": lambda r, w, rid: (setattr(r.webhook, "description", "renamed"),
                                        r.update_mask.paths.append("description")),
    "DeleteWebhook": lambda r, w, rid: setattr(r, "webhook_id", w.a["spare-webhook"]),
    "ReplayWebhook": lambda r, w, rid: setattr(r, "after_sequence", 1),
    "Redeliver": lambda r, w, rid: setattr(r, "sequence", 1),
    "ImportStatement": lambda r, w, rid: (
        setattr(r, "format", settlement_pb.STATEMENT_FORMAT_CSV), setattr(r, "statement_id", rid),
        setattr(r, "statement_file", f"reference,amount,date\n{rid},0.01,{dt.datetime.now(dt.UTC).date()}\n".encode())),
    "GetReconciliation": lambda r, w, rid: setattr(r, "statement_id", w.a["statement"]),
    "ListReconciliationItems": lambda r, w, rid: setattr(r, "statement_id", w.a["statement"]),
    "ResolveItem": lambda r, w, rid: (setattr(r, "item_id", w.a["item"]),
                                      setattr(r, "resolution", settlement_pb.RESOLUTION_LONG_FALL)),
    "LinkBankAccount": lambda r, w, rid: (
        r.merchant_account.CopyFrom(types_pb2.AccountRef(id=w.a["settled"])), setattr(r, "holder_name", "A M"),
        setattr(r, "iban", "DE89370400440532013000"), setattr(r, "bic", "COBADEFFXXX")),
    "UpdateBankAccountStatus": lambda r, w, rid: (setattr(r, "bank_account_id", w.a["bank_account"]),
                                                  setattr(r, "status", settlement_pb.BANK_ACCOUNT_STATUS_VERIFIED)),
    "RequestPayout": lambda r, w, rid: (setattr(r, "bank_account_id", w.a["bank_account"]),
                                        setattr(r, "amount", 10_000)),
    "ExportPayoutBatch": lambda r, w, rid: (setattr(r, "batch_id", w.a["batch"]),
                                            setattr(r, "format", settlement_pb.PAYOUT_EXPORT_FORMAT_PAIN001)),
    "SendPayoutBatch": lambda r, w, rid: setattr(r, "batch_id", w.a["batch"]),
    "SettlePayoutBatch": lambda r, w, rid: setattr(r, "batch_id", w.a["sent_batch"]),
    "GetPayoutBatch": lambda r, w, rid: setattr(r, "batch_id", w.a["batch"]),
    "ReturnPayout": lambda r, w, rid: setattr(r, "payout_id", w.a["payout"]),
}


def request_for(path: str, world: World) -> Message:
    """A minimal request for the RPC, built from its descriptor, naming A's resources; one that would
    succeed with A's admin key (`test_the_same_requests_work_with_a_valid_key` proves it)."""
    method = method_descriptor(path)
    request = message_factory.GetMessageClass(method.input_type)()
    request_id = world.request_id(method.name.lower())
    _fill(request, world, request_id)
    override = OVERRIDES.get(method.name)
    if override is not None:
        override(request, world, request_id)
    return request


def names_foreign_target(request: Message, world: World) -> bool:
    """The request names one of A's ids as what it acts on (not merely as a list filter)."""
    copy = type(request)()
    copy.CopyFrom(request)
    for name in FILTER_FIELDS:
        if name in copy.DESCRIPTOR.fields_by_name:
            copy.ClearField(name)
    return _mentions(copy.SerializeToString(), world.a_ids)


def _mentions(data: bytes, ids: list[str]) -> bool:
    return any(i.encode() in data for i in ids)


# ------------------------------------------------------------------------------------------ calls


def raw_channel(server: Server) -> grpc.Channel:
    """A channel without the tests' credential interceptor: every header is the test's own."""
    return grpc.insecure_channel(server.target)


def call(channel: grpc.Channel, path: str, request: Message, metadata) -> tuple[grpc.StatusCode, str, Message]:
    """(status code, ErrorInfo reason, response or first streamed message) of one call."""
    method = method_descriptor(path)
    response_type = message_factory.GetMessageClass(method.output_type)
    serializer, deserializer = type(request).SerializeToString, response_type.FromString
    assert not method.client_streaming, "only unary and server-streaming RPCs exist"
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=serializer, response_deserializer=deserializer)(
                request, metadata=metadata, timeout=STREAM_TIMEOUT_S)
            try:
                return OK, "", next(stream)
            except StopIteration:
                return OK, "", response_type()
            finally:
                stream.cancel()
        response = channel.unary_unary(path, request_serializer=serializer, response_deserializer=deserializer)(
            request, metadata=metadata, timeout=CALL_TIMEOUT_S)
        return OK, "", response
    except grpc.RpcError as err:
        return err.code(), _reason(err), response_type()


def _reason(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)
    if status is None or not status.details:
        return ""
    info = error_details_pb2.ErrorInfo()
    return info.reason if status.details[0].Unpack(info) else ""


# ------------------------------------------------------------------------------------------ evidence


@dataclasses.dataclass
class Attempt:
    group: str  # "credentials", "cross-tenant", "role"
    credential: str
    method: str  # the RPC's short name
    code: grpc.StatusCode
    reason: str
    expected: str  # what had to happen, in words
    as_expected: bool
    refused: bool  # UNAUTHENTICATED / PERMISSION_DENIED, or every item of a batch PERMISSION_DENIED
    request_id: str = ""
    tenant: str = ""  # whom the audit row must name ("" when the caller is not identified)
    actor: str = ""
    role: str = ""
    audit_outcome: str = ""  # the outcome its audit row must carry
    audited: bool = False
    changed: bool = False  # the database differed after this attempt's batch


UNSNAPSHOTTED = ("audit_log", "audit_heads", "audit_checkpoints", "audit_account_sums")
# A tenant's epoch counts its write transactions that wrote anything (storage/epochs.py): a ledger audit's
# checkpoint moves it as it moves the audit tables above.
UNSNAPSHOTTED_COLUMNS = {("ledger_heads", "epoch")}


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table except the audit's own records: what "changes nothing" is checked against. The
    audit log and its chain's head grow with every refusal; the ledger audit's checkpoints move when B's own
    VerifyChain / AuditLedger calls (which name nothing of A's) audit B's ledger."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {table.name: [tuple(row) for row in conn.execute(
                        sa.select(*(c for c in table.columns if (table.name, c.name) not in UNSNAPSHOTTED_COLUMNS))
                        .order_by(*table.primary_key.columns))]
                    for table in tables.metadata.sorted_tables if table.name not in UNSNAPSHOTTED}
    finally:
        engine.dispose()


def audit_watermark(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.coalesce(sa.func.max(tables.audit_log.c.id), 0))).scalar_one()
    finally:
        engine.dispose()


AUDIT_WAIT_S = 5


def audit_rows_after(world: World, after_id: int) -> list[sa.Row]:
    server = world.server
    asyncio.run_coroutine_threadsafe(server.app.services.audit.flush(), server.loop).result(STOP_TIMEOUT_S)
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(tables.audit_log).where(tables.audit_log.c.id > after_id)
                                     .order_by(tables.audit_log.c.id)))
    finally:
        engine.dispose()


class Batch:
    """Attempts made together; afterwards the database is compared and the audit rows are matched."""

    def __init__(self, world: World, baseline: dict) -> None:
        self.world, self.baseline = world, baseline
        self.attempts: list[Attempt] = []
        self.watermark = audit_watermark(world.server.database_url)

    def add(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)

    def close(self) -> list[Attempt]:
        # A refusal's row may be queued a moment after its answer reached the client: read again, briefly.
        deadline = time.monotonic() + AUDIT_WAIT_S
        while not self._match() and time.monotonic() < deadline:
            time.sleep(0.1)
        changed = snapshot(self.world.server.database_url) != self.baseline
        for attempt in self.attempts:
            attempt.changed = changed
        return self.attempts

    def _match(self) -> bool:
        """Marks the refused attempts that have their audit row; True when all have."""
        unused = list(audit_rows_after(self.world, self.watermark))
        for attempt in self.attempts:
            attempt.audited = False
            if not attempt.refused:
                continue
            for row in unused:
                if ((row.action, row.outcome, row.tenant_id, row.actor, row.role, row.request_id) ==
                        (attempt.method, attempt.audit_outcome, attempt.tenant, attempt.actor, attempt.role,
                         attempt.request_id)):
                    attempt.audited = True
                    unused.remove(row)
                    break
        return all(a.audited for a in self.attempts if a.refused)


def _batch_outcome(response) -> str:
    """The audit outcome of a PostBatch answered OK with refused items."""
    errors = [r.error.reason for r in response.results if r.WhichOneof("result") == "error"]
    return f"ok:items_refused={len(errors)}:{','.join(sorted(set(errors)))}"


# ------------------------------------------------------------------------------------------ the attempts


def bad_credentials(world: World) -> dict[str, tuple[tuple[tuple[str, str], ...], str]]:
    """Credential name -> (metadata, the UNAUTHENTICATED reason it must get)."""
    now = int(time.time())
    a_key_id = world.keys["a-admin"].split("_")[1]
    valid = mint(claims(A))
    header, payload, _ = valid.split(".")
    forged_payload = _b64(json.dumps(claims(B)).encode())  # A's signature, B's claims
    return {
        "missing": ((), "CREDENTIALS_MISSING"),
        "empty header": ((("authorization", ""),), "CREDENTIALS_MISSING"),
        "Basic scheme": ((("authorization", "Basic x"),), "CREDENTIALS_MALFORMED"),
        "Bearer without credential": ((("authorization", "Bearer"),), "CREDENTIALS_MALFORMED"),
        "garbage header": ((("authorization", "garbage!!"),), "CREDENTIALS_MALFORMED"),
        "garbage bearer": (bearer("garbage!!"), "CREDENTIALS_INVALID"),
        "malformed API key": (bearer("tly_xyz"), "CREDENTIALS_MALFORMED"),
        "unknown API key": (bearer("tly_0123456789abcdef_" + "A" * 43), "CREDENTIALS_INVALID"),
        "wrong secret for a real key id": (bearer(f"tly_{a_key_id}_" + "B" * 43), "CREDENTIALS_INVALID"),
        "revoked API key": (bearer(world.keys["a-revoked"]), "KEY_REVOKED"),
        "jwt expired": (bearer(mint(claims(exp=now - 3600))), "TOKEN_EXPIRED"),
        "jwt wrongly signed": (bearer(mint(claims(), secret=OTHER_SECRET)), "TOKEN_SIGNATURE_INVALID"),
        "jwt altered after signing": (bearer(f"{header}.{forged_payload}.{valid.split('.')[2]}"),
                                      "TOKEN_SIGNATURE_INVALID"),
        "jwt alg=none unsigned": (bearer(mint(claims(), alg="none")), "TOKEN_ALGORITHM_NOT_ALLOWED"),
        "jwt alg=none with a valid HS256 signature": (bearer(mint(claims(), alg="none", sign_as="HS256")),
                                                      "TOKEN_ALGORITHM_NOT_ALLOWED"),
        "jwt alg=None": (bearer(mint(claims(), alg="None", sign_as="none")), "TOKEN_ALGORITHM_NOT_ALLOWED"),
        "jwt HS512 not configured": (bearer(mint(claims(), alg="HS512")), "TOKEN_ALGORITHM_NOT_ALLOWED"),
        "jwt HS384 not configured": (bearer(mint(claims(), alg="HS384")), "TOKEN_ALGORITHM_NOT_ALLOWED"),
        "jwt RS256 (public-key confusion)": (bearer(mint(claims(), alg="RS256", sign_as="HS256")),
                                             "TOKEN_ALGORITHM_NOT_ALLOWED"),
        "jwt without alg": (bearer(mint(claims(), header={"typ": "JWT"}, sign_as="HS256")),
                            "TOKEN_ALGORITHM_NOT_ALLOWED"),
        "jwt wrong issuer": (bearer(mint(claims(iss="https://evil.test"))), "TOKEN_ISSUER_INVALID"),
        "jwt without issuer": (bearer(mint(claims(iss=None))), "TOKEN_ISSUER_INVALID"),
        "jwt wrong audience": (bearer(mint(claims(aud="another-service"))), "TOKEN_AUDIENCE_INVALID"),
        "jwt wrong audience list": (bearer(mint(claims(aud=["x", "y"]))), "TOKEN_AUDIENCE_INVALID"),
        "jwt without exp": (bearer(mint(claims(exp=None))), "TOKEN_INVALID"),
        "jwt not yet valid": (bearer(mint(claims(nbf=now + 3600))), "TOKEN_NOT_YET_VALID"),
        "jwt unknown tenant": (bearer(mint(claims(tenant="iso-nobody"))), "TOKEN_INVALID"),
        "jwt unknown role": (bearer(mint(claims(role="root"))), "TOKEN_INVALID"),
        "jwt without subject": (bearer(mint(claims(sub=None))), "TOKEN_INVALID"),
        "jwt not base64": (bearer("a.b.c"), "TOKEN_INVALID"),
    }


def run_bad_credentials(world: World, baseline: dict) -> list[Attempt]:
    attempts: list[Attempt] = []
    channel = raw_channel(world.server)
    try:
        for credential, (metadata, reason) in bad_credentials(world).items():
            batch = Batch(world, baseline)
            for path in METHOD_PERMISSIONS:
                request = request_for(path, world)
                code, got, _ = call(channel, path, request, metadata)
                # The body of a caller not admitted is never read: its row has no request id; a well-formed
                # API key names its key id (not a secret) as the actor.
                batch.add(Attempt(
                    "credentials", credential, path.rsplit("/", 1)[1], code, got,
                    expected=f"UNAUTHENTICATED {reason}", as_expected=(code, got) == (UNAUTHENTICATED, reason),
                    refused=code in REFUSED, actor=_claimed_key(metadata), audit_outcome=f"denied:{reason}"))
            attempts += batch.close()
    finally:
        channel.close()
    return attempts


def _claimed_key(metadata: tuple[tuple[str, str], ...]) -> str:
    match = re.fullmatch(r"Bearer tly_([0-9a-f]{16})_[A-Za-z0-9_-]{43}", dict(metadata).get("authorization", ""))
    return f"key:{match.group(1)}" if match else ""


def cross_tenant_variants(world: World) -> list[tuple[str, Message]]:
    """Requests of B's that name A's ids beyond the one built for each RPC: money into or out of A's
    accounts in every flow that names an account id, A's hold in a usage and a capture, a mixed stream."""
    a, b = world.a, world.b
    rid = world.request_id

    def post(**flow) -> post_pb.PostRequest:
        return post_pb.PostRequest(request_id=rid("x-post"), **flow)

    adjustment = flows_pb2.AdjustmentFlow(reason="isolation", lines=[
        types_pb2.LineInput(account=types_pb2.AccountRef(id=b["wallet"]), side=types_pb2.SIDE_DEBIT, amount=1,
                            currency="USD"),
        types_pb2.LineInput(account=types_pb2.AccountRef(id=a["alice"]), side=types_pb2.SIDE_CREDIT, amount=1,
                            currency="USD")])
    service = "/tally.v1.AccountingService/"
    return [
        (f"{service}Post", post(transfer=_transfer(*_ids(b["wallet"], a["bob"])))),  # into A's account
        (f"{service}Post", post(transfer=_transfer(types_pb2.AccountRef(code="wallet"),
                                                   types_pb2.AccountRef(id=a["alice"])))),
        (f"{service}Post", post(adjustment=adjustment)),
        (f"{service}Post", post(usage=flows_pb2.UsageFlow(consumer="bu", merchant="m1", amount=10, currency="USD",
                                                          hold_id=a["hold"]))),
        (f"{service}PostBatch", post_pb.PostBatchRequest(atomic=True, requests=[
            post(transfer=_transfer(*_ids(b["wallet"], b["shop"]))),  # B's own: must not post either
            post(transfer=_transfer(*_ids(b["wallet"], a["bob"])))])),
        (f"{service}CaptureHold", post_pb.CaptureHoldRequest(
            request_id=rid("x-capture"), hold_id=a["hold"], amount=1, destination=types_pb2.AccountRef(id=b["shop"]))),
        (f"{service}CaptureHold", post_pb.CaptureHoldRequest(
            request_id=rid("x-capture"), hold_id=b["hold"], amount=1, destination=types_pb2.AccountRef(id=a["bob"]))),
        (f"{service}CreateHold", post_pb.CreateHoldRequest(
            request_id=rid("x-hold"), account=types_pb2.AccountRef(id=a["bob"]), amount=1, currency="USD")),
        (f"{service}ReleaseHold", post_pb.ReleaseHoldRequest(request_id=rid("x-release"), hold_id=a["released"])),
        (f"{service}ReverseVoucher", post_pb.ReverseVoucherRequest(request_id=rid("x-reverse"),
                                                                  voucher_id=a["fund"], reason="isolation")),
        (f"{service}GetVoucher", post_pb.GetVoucherRequest(voucher_id=a["fund"])),
        (f"{service}StreamBalanceChanges", post_pb.StreamBalanceChangesRequest(
            account_ids=[b["wallet"], a["alice"]], from_sequence=0)),
    ]


def b_credentials(world: World) -> dict[str, tuple[tuple[tuple[str, str], ...], str]]:
    """B's valid credentials: name -> (metadata, the audit actor)."""
    return {
        "B admin key": (bearer(world.keys["b-admin"]), actor_of_key(world.keys["b-admin"])),
        "B admin jwt": (bearer(mint(claims(B))), f"jwt:svc-{B}"),
        "B admin key with x-tenant-id A": ((("x-tenant-id", A), *bearer(world.keys["b-admin"])),
                                           actor_of_key(world.keys["b-admin"])),
    }


def _batch_refused(response: Message) -> bool:
    results = getattr(response, "results", None)
    return bool(results) and all(r.WhichOneof("result") == "error" for r in results) and any(
        r.error.code == DENIED.value[0] and r.error.reason.endswith("_NOT_ACCESSIBLE") for r in results)


def run_cross_tenant(world: World, baseline: dict) -> tuple[list[Attempt], int, list[str]]:
    """B's valid credentials naming A's ids. Returns the attempts, the number of B's calls that name
    nothing of A's as a target (they answer, but must show nothing of A's) and their problems."""
    attempts, own, leaks = [], 0, []
    channel = raw_channel(world.server)
    try:
        for credential, (metadata, actor) in b_credentials(world).items():
            batch = Batch(world, baseline)
            requests = [(path, request_for(path, world)) for path in METHOD_PERMISSIONS]
            for path, request in requests + cross_tenant_variants(world):
                code, reason, response = call(channel, path, request, metadata)
                method = path.rsplit("/", 1)[1]
                if not names_foreign_target(request, world):
                    # Names nothing of A's (or only as a list filter): answers for B alone.
                    own += 1
                    # B's audit log records what B's own calls sent, A's ids among them: it must show none
                    # of A's calls (A's actors), not none of the ids B named.
                    shown = [*world.a_ids, A] if method != "ListAuditLog" else [
                        actor_of_key(k) for n, k in world.keys.items() if n.startswith("a-")]
                    if code is not OK or _mentions(response.SerializeToString(), shown):
                        leaks.append(f"{credential} {method}: {code.name} {reason} {response}"[:300])
                    continue
                batch_items = code is OK and _batch_refused(response)
                refused = code is DENIED or batch_items
                batch.add(Attempt(
                    "cross-tenant", credential, method, code, reason,
                    expected="PERMISSION_DENIED <KIND>_NOT_ACCESSIBLE",
                    as_expected=(code is DENIED and reason.endswith("_NOT_ACCESSIBLE")) or batch_items,
                    refused=refused, request_id=getattr(request, "request_id", ""), tenant=B, actor=actor,
                    role="admin", audit_outcome=(_batch_outcome(response) if batch_items
                                                 else f"error:PERMISSION_DENIED:{reason}")))
            attempts += batch.close()
    finally:
        channel.close()
    return attempts, own, leaks


@dataclasses.dataclass(frozen=True)
class RoleCase:
    credential: str
    metadata: tuple
    actor: str
    role: Role
    path: str
    request: Message
    by_handler: bool = False  # refused by the handler (a flow the role may not post), not the interceptor


def role_cases(world: World) -> list[RoleCase]:
    """A's keys and tokens whose role lacks the RPC's permission, and flows a role may not post."""
    cases = []
    for name, role in (("a-reader", Role.READER), ("a-poster", Role.POSTER), ("a-operator", Role.OPERATOR),
                       ("a-auditor", Role.AUDITOR)):
        key = world.keys[name]
        for path, permission in METHOD_PERMISSIONS.items():
            if permission not in GRANTS[role]:
                cases.append(RoleCase(f"{role.value} key", bearer(key), actor_of_key(key), role, path,
                                      request_for(path, world)))
    reader_jwt = mint(claims(A, role="reader"))
    for path, permission in METHOD_PERMISSIONS.items():
        if permission not in GRANTS[Role.READER]:
            cases.append(RoleCase("reader jwt", bearer(reader_jwt), f"jwt:svc-{A}", Role.READER, path,
                                  request_for(path, world)))
    # A poster posts business flows, not adjustments (money moved without a business fact).
    poster = world.keys["a-poster"]
    adjustment = flows_pb2.AdjustmentFlow(reason="poster tries", lines=[
        types_pb2.LineInput(account=types_pb2.AccountRef(id=world.a["funding"]), side=types_pb2.SIDE_DEBIT,
                            amount=1, currency="USD"),
        types_pb2.LineInput(account=types_pb2.AccountRef(id=world.a["alice"]), side=types_pb2.SIDE_CREDIT,
                            amount=1, currency="USD")])
    service = "/tally.v1.AccountingService/"
    cases.append(RoleCase("poster key", bearer(poster), actor_of_key(poster), Role.POSTER, f"{service}Post",
                          post_pb.PostRequest(request_id=world.request_id("poster-adjust"), adjustment=adjustment),
                          by_handler=True))
    cases.append(RoleCase("poster key", bearer(poster), actor_of_key(poster), Role.POSTER, f"{service}PostBatch",
                          post_pb.PostBatchRequest(requests=[
                              post_pb.PostRequest(request_id=world.request_id("poster-ok"),
                                                  transfer=_transfer(*_ids(world.a["alice"], world.a["bob"]))),
                              post_pb.PostRequest(request_id=world.request_id("poster-adjust"),
                                                  adjustment=adjustment)]),
                          by_handler=True))
    return cases


def run_roles(world: World, baseline: dict) -> list[Attempt]:
    channel = raw_channel(world.server)
    batch = Batch(world, baseline)
    try:
        for case in role_cases(world):
            code, reason, _ = call(channel, case.path, case.request, case.metadata)
            batch.add(Attempt(
                "role", case.credential, case.path.rsplit("/", 1)[1], code, reason,
                expected="PERMISSION_DENIED ROLE_NOT_ALLOWED",
                as_expected=(code, reason) == (DENIED, "ROLE_NOT_ALLOWED"), refused=code in REFUSED,
                request_id=getattr(case.request, "request_id", ""), tenant=A, actor=case.actor, role=case.role.value,
                audit_outcome=f"error:PERMISSION_DENIED:{reason}" if case.by_handler else f"denied:{reason}"))
    finally:
        channel.close()
    return batch.close()


@dataclasses.dataclass
class Matrix:
    credentials: list[Attempt]
    cross_tenant: list[Attempt]
    roles: list[Attempt]
    b_own_calls: int  # B's calls naming nothing of A's: answered, for B alone
    leaks: list[str]

    @property
    def all(self) -> list[Attempt]:
        return self.credentials + self.cross_tenant + self.roles


@pytest.fixture(scope="module")
def matrix(world: World) -> Matrix:
    baseline = snapshot(world.server.database_url)
    credentials = run_bad_credentials(world, baseline)
    cross_tenant, b_own_calls, leaks = run_cross_tenant(world, baseline)
    roles = run_roles(world, baseline)
    return Matrix(credentials, cross_tenant, roles, b_own_calls, leaks)


def _failures(attempts: list[Attempt], check: Callable[[Attempt], bool]) -> list[str]:
    return [f"{a.group} / {a.credential} / {a.method}: got {a.code.name} {a.reason}, expected {a.expected}"
            for a in attempts if not check(a)]


# ------------------------------------------------------------------------------------------ the tests


def test_every_rpc_has_a_permission_and_is_attempted(world: World, matrix: Matrix) -> None:
    served = {f"/{service}/{method.name}"
              for service in SERVICE_NAMES
              for method in descriptor_pool.Default().FindServiceByName(service).methods}
    assert served == set(METHOD_PERMISSIONS), "an RPC without a permission (refused) or a permission without RPC"
    methods = {path.rsplit("/", 1)[1] for path in METHOD_PERMISSIONS}
    per_credential = collections.defaultdict(set)
    for attempt in matrix.credentials:
        per_credential[attempt.credential].add(attempt.method)
    assert per_credential and all(tried == methods for tried in per_credential.values())
    assert set(per_credential) == set(bad_credentials(world))
    targeted = {a.method for a in matrix.cross_tenant}
    naming = {path.rsplit("/", 1)[1] for path in METHOD_PERMISSIONS
              if names_foreign_target(request_for(path, world), world)}
    assert naming <= targeted
    # Every RPC that can name an account, voucher or hold id is tried across tenants.
    assert naming == {"GetAccount", "GetBalance", "BatchGetBalances", "ListEntries", "CreateAccount",
                      "UpdateAccount", "Post", "PostBatch", "ReverseVoucher", "GetVoucher", "CreateHold",
                      "CaptureHold", "ReleaseHold", "GetHold", "StreamBalanceChanges", "CreateWebhook",
                      "GetWebhook", "UpdateWebhook", "DeleteWebhook", "RotateWebhookSecret", "ReplayWebhook",
                      "ListDeliveries", "Redeliver", "GetTrialBalance", "ListStatements", "GetStatement",
                      "ImportStatement", "GetReconciliation", "ListReconciliationItems", "ResolveItem",
                      "LinkBankAccount", "UpdateBankAccountStatus", "RequestPayout", "ExportPayoutBatch",
                      "SendPayoutBatch", "SettlePayoutBatch", "GetPayoutBatch", "ReturnPayout", "MergeAccounts",
                      "SetAccountSecurity", "GetAccountSecurity", "SetAccountControls", "GetAccountControls"}


def test_bad_credentials_are_unauthenticated_for_every_rpc(matrix: Matrix) -> None:
    assert not _failures(matrix.credentials, lambda a: a.as_expected)


def test_tenant_b_naming_a_ids_is_permission_denied(matrix: Matrix) -> None:
    assert not _failures(matrix.cross_tenant, lambda a: a.as_expected)
    assert not matrix.leaks, "B's calls that name nothing of A's showed A's data:\n" + "\n".join(matrix.leaks)


def test_roles_are_enforced(matrix: Matrix) -> None:
    assert not _failures(matrix.roles, lambda a: a.as_expected)
    refused = {(a.credential, a.method) for a in matrix.roles}
    assert ("reader key", "Post") in refused and ("reader key", "CreateAccount") in refused
    assert {("poster key", m) for m in ("CreateAccount", "ReverseVoucher", "Post", "PostBatch")} <= refused
    assert ("operator key", "ValidateRuleSet") in refused


def test_refused_attempts_change_nothing(matrix: Matrix) -> None:
    changed = sorted({f"{a.group} / {a.credential}" for a in matrix.all if a.changed})
    assert not changed, f"the database changed during: {changed}"


def test_every_refusal_is_in_the_audit_log(matrix: Matrix) -> None:
    """Credentials and roles refused by the interceptor, ids refused by handlers, refused batch items."""
    assert all(a.refused for a in matrix.all)
    missing = _failures([a for a in matrix.all if a.refused], lambda a: a.audited)
    assert not missing, f"{len(missing)} refusals without an audit row:\n" + "\n".join(missing)


def test_a_token_whose_alg_is_not_a_string_is_unauthenticated(world: World) -> None:
    baseline = snapshot(world.server.database_url)
    watermark = audit_watermark(world.server.database_url)
    channel = raw_channel(world.server)
    path = "/tally.v1.AccountService/ListAccounts"
    try:
        outcomes = [call(channel, path, request_for(path, world),
                         bearer(mint(claims(), header={"alg": alg}, sign_as="HS256")))[:2]
                    for alg in (["HS256"], {"name": "HS256"})]
    finally:
        channel.close()
    rows = audit_rows_after(world, watermark)
    assert snapshot(world.server.database_url) == baseline
    assert outcomes == [(UNAUTHENTICATED, "TOKEN_ALGORITHM_NOT_ALLOWED")] * 2, outcomes
    assert [r.outcome for r in rows] == ["denied:TOKEN_ALGORITHM_NOT_ALLOWED"] * 2


def test_the_same_requests_work_with_a_valid_key(world: World, matrix: Matrix) -> None:
    """Control, run last (it changes the ledger): the requests the matrix sent are valid ones, so each
    refusal above was the credential's doing; and B's own key works on B's own resources."""
    channel = raw_channel(world.server)
    try:
        for path in METHOD_PERMISSIONS:
            code, reason, response = call(channel, path, request_for(path, world), bearer(world.keys["a-admin"]))
            assert code is OK, f"{path}: {code.name} {reason}"
            if path.endswith("/PostBatch"):
                assert all(r.WhichOneof("result") == "posted" for r in response.results), response
        own = post_pb.CaptureHoldRequest(request_id="b-own-capture", hold_id=world.b["hold"], amount=1,
                                         destination=types_pb2.AccountRef(id=world.b["shop"]))
        code, reason, _ = call(channel, "/tally.v1.AccountingService/CaptureHold", own, bearer(world.keys["b-admin"]))
        assert code is OK, reason
    finally:
        channel.close()


def test_summary(world: World, matrix: Matrix) -> None:
    """Prints the counts (pytest -s) for the closing note."""
    attempts = matrix.all
    refused = [a for a in attempts if a.refused]
    by_group = collections.Counter(a.group for a in attempts)
    refused_by_group = collections.Counter(a.group for a in refused)
    gaps = collections.Counter(a.group for a in refused if not a.audited)
    print(f"\n[isolation/{world.backend}] attempts {len(attempts)}, refused {len(refused)} "
          f"(UNAUTHENTICATED {sum(a.code is UNAUTHENTICATED for a in refused)}, "
          f"PERMISSION_DENIED {sum(a.code is DENIED for a in refused)}, "
          f"batch items PERMISSION_DENIED {sum(a.code is OK for a in refused)}); "
          f"audited {sum(a.audited for a in refused)}, database changed: {any(a.changed for a in attempts)}")
    for group in ("credentials", "cross-tenant", "role"):
        print(f"[isolation/{world.backend}]   {group}: {by_group[group]} attempts, {refused_by_group[group]} refused")
    for gap, count in gaps.items():
        print(f"[isolation/{world.backend}]   refused but not audited: {count} ({gap or 'no known reason'})")
    print(f"[isolation/{world.backend}]   besides: {matrix.b_own_calls} calls of B naming nothing of A's "
          f"(or A's ids only as list filters), answered for B alone, {len(matrix.leaks)} showing anything of A's")
    assert len(refused) == len(attempts)
