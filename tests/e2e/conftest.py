"""End-to-end fixtures: the real Tally server (``tally.bootstrap.start``) over the real gRPC wire.

The server runs in a background thread with its own asyncio event loop, listening on a free port of
127.0.0.1; tests talk to it with ordinary *synchronous* gRPC stubs, exactly like an outside client.

* ``server``: one server per test, once per ``database_url`` backend (SQLite and PostgreSQL).
* ``postgres_server``: one server per test on PostgreSQL only (for the concurrency test).

Both yield a :class:`Server` with stub factories and a few client helpers (``create_account``,
``fund``, ``transfer``, ``balance``, ``error_info``...). Money is always an ``int``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from tally import bootstrap
from tally.config import Settings
from tally.domain.auth import Role
from tally.domain.errors import LedgerError
from tally.service.auth import keys
from tally.service.posting.pipeline import now_us
from tally.storage.engine import make_engines
from tally.storage.uow import UnitOfWork
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import flows_pb2, types_pb2
from tests.migrated import make_migrated
from tests.pgserver import unique_database_name

TENANT_HEADER = "x-tenant-id"
ERROR_DOMAIN = "tally.v1"
CALL_TIMEOUT_S = 30.0  # every call gets a deadline, so a wedged server fails a test instead of hanging it
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
FUNDING_PREFIX = "funding"

TALLY_SERVICES = ("tally.v1.AccountingService", "tally.v1.AccountService")
HEALTH_SERVICE = "grpc.health.v1.Health"

ACCOUNT_TYPES = {
    "deposit": types_pb2.ACCOUNT_TYPE_DEPOSIT,
    "credit": types_pb2.ACCOUNT_TYPE_CREDIT,
    "security_deposit": types_pb2.ACCOUNT_TYPE_SECURITY_DEPOSIT,
    "internal": types_pb2.ACCOUNT_TYPE_INTERNAL,
}
SIDES = {"debit": types_pb2.SIDE_DEBIT, "credit": types_pb2.SIDE_CREDIT}
FLOORS = {"non_negative": types_pb2.FLOOR_POLICY_NON_NEGATIVE, "unbounded": types_pb2.FLOOR_POLICY_UNBOUNDED}


# ------------------------------------------------------------------------------------------ wire helpers


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                                            "compression")),
    grpc.ClientCallDetails,
):
    pass


class _DefaultDeadline(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                       grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Gives every call without an explicit timeout a deadline of ``CALL_TIMEOUT_S``."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def _details(self, d):
        if d.timeout is not None:
            return d
        return _CallDetails(d.method, self.timeout_s, d.metadata, d.credentials,
                            getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


class TenantKeys:
    """Admin API keys for test tenants, created on first use directly in a server's database, the way an
    operator's `tally tenants create` / `tally keys create` would."""

    _by_url: dict[str, TenantKeys] = {}
    _urls_by_target: dict[str, str] = {}
    _lock = threading.Lock()

    def __init__(self, database_url: str) -> None:
        self.engines = make_engines(database_url, pool_size=1)
        self.uow = UnitOfWork(self.engines)
        self.keys: dict[str, str] = {}

    @classmethod
    def register(cls, target: str, database_url: str) -> None:
        with cls._lock:
            cls._urls_by_target[target] = database_url

    @classmethod
    def for_target(cls, target: str) -> TenantKeys | None:
        with cls._lock:
            url = cls._urls_by_target.get(target)
            if url is None:
                return None
            if url not in cls._by_url:
                cls._by_url[url] = TenantKeys(url)
            return cls._by_url[url]

    def key_for(self, tenant: str) -> str:
        with self._lock:
            if tenant not in self.keys:
                with contextlib.suppress(LedgerError):
                    keys.create_tenant(self.uow, tenant, f"test tenant {tenant}", now_us)
                self.keys[tenant] = keys.create_key(self.uow, tenant, Role.ADMIN, "e2e", "tests", now_us).secret_key
            return self.keys[tenant]


class _TenantCredentials(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Turns the tests' ``x-tenant-id`` metadata into that tenant's admin API key, so every test call
    goes through real authentication. A call without it carries no credentials at all."""

    def __init__(self, target: str) -> None:
        self.target = target

    def _details(self, d):
        metadata = list(d.metadata or ())
        tenants = [v for k, v in metadata if k == TENANT_HEADER]
        if not tenants:
            return d
        provisioner = TenantKeys.for_target(self.target)
        if provisioner is None:
            raise RuntimeError(f"no database registered for {self.target}: call TenantKeys.register")
        metadata = [(k, v) for k, v in metadata if k != TENANT_HEADER]
        metadata.append(("authorization", f"Bearer {provisioner.key_for(tenants[0])}"))
        return _CallDetails(d.method, d.timeout, metadata, d.credentials, getattr(d, "wait_for_ready", None),
                            getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)


def open_channel(target: str, timeout_s: float = CALL_TIMEOUT_S) -> grpc.Channel:
    """A ``grpc.insecure_channel`` whose calls carry a default deadline and, for ``md(tenant)`` calls, the
    tenant's API key (the target's database must be registered with ``TenantKeys.register``)."""
    return grpc.intercept_channel(grpc.insecure_channel(target), _DefaultDeadline(timeout_s),
                                  _TenantCredentials(target))


def with_credentials(channel: grpc.Channel, target: str) -> grpc.Channel:
    """A channel of the test's own making whose ``md(tenant)`` calls carry the tenant's API key."""
    return grpc.intercept_channel(channel, _TenantCredentials(target))


def md(tenant: str | None) -> tuple[tuple[str, str], ...]:
    """Call metadata naming the tenant, turned into its API key by the channel (none at all for ``None``)."""
    return () if tenant is None else ((TENANT_HEADER, tenant),)


def error_info(err: grpc.RpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    """``(status code, ErrorInfo.reason, ErrorInfo.metadata)`` of a failed call.

    Fails the test if the status does not carry exactly the google.rpc.Status/ErrorInfo contract.
    """
    status = rpc_status.from_call(err)
    assert status is not None, f"{err.code()} {err.details()!r}: no google.rpc.Status in the trailers"
    assert status.code == err.code().value[0]
    assert len(status.details) >= 1, f"{err.code()} {err.details()!r}: no detail"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info), f"details[0] is {status.details[0].type_url}, not ErrorInfo"
    assert info.domain == ERROR_DOMAIN
    return err.code(), info.reason, dict(info.metadata)


def ref(code_or_id: str | types_pb2.AccountRef | None = None, *, id: str | None = None) -> types_pb2.AccountRef:
    """An AccountRef: ``ref("alice")`` by code, ``ref(id=...)`` by id, ``ref()`` names nothing."""
    if isinstance(code_or_id, types_pb2.AccountRef):
        return code_or_id
    if id is not None:
        return types_pb2.AccountRef(id=id)
    if code_or_id is None:
        return types_pb2.AccountRef()
    return types_pb2.AccountRef(code=code_or_id)


def transfer_request(request_id: str, source, destination, amount: int, currency: str = "USD",
                     **extra) -> post_pb.PostRequest:
    assert isinstance(amount, int) and not isinstance(amount, bool)
    flow = flows_pb2.TransferFlow(to=ref(destination), amount=amount, currency=currency)
    getattr(flow, "from").CopyFrom(ref(source))  # `from` is a Python keyword
    return post_pb.PostRequest(request_id=request_id, transfer=flow, **extra)


def line(account, side: str, amount: int, currency: str = "USD", memo: str = "") -> types_pb2.LineInput:
    assert isinstance(amount, int) and not isinstance(amount, bool)
    return types_pb2.LineInput(account=ref(account), side=SIDES[side] if isinstance(side, str) else side,
                               amount=amount, currency=currency, memo=memo)


def adjustment_request(request_id: str, lines: Iterable[types_pb2.LineInput], reason: str = "e2e",
                       **extra) -> post_pb.PostRequest:
    return post_pb.PostRequest(request_id=request_id,
                               adjustment=flows_pb2.AdjustmentFlow(lines=list(lines), reason=reason), **extra)


def signed(entry: types_pb2.Entry, normal_side: int) -> int:
    """An entry's effect on its account's balance (balances are signed on the normal side)."""
    return entry.amount if entry.side == normal_side else -entry.amount


# ------------------------------------------------------------------------------------------ the server


@dataclasses.dataclass
class Server:
    """A running server and a client for it. Stub helpers use one shared channel; ``channel()`` opens
    another (closed at teardown), e.g. one per client thread."""

    target: str
    port: int
    database_url: str
    app: bootstrap.App
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    _channels: list = dataclasses.field(default_factory=list)
    _ids: Iterator[int] = dataclasses.field(default_factory=itertools.count)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    # --- channels and stubs ---------------------------------------------------------------------

    def channel(self) -> grpc.Channel:
        ch = open_channel(self.target)
        with self._lock:
            self._channels.append(ch)
        return ch

    @property
    def _default(self) -> grpc.Channel:
        with self._lock:
            if not self._channels:
                self._channels.append(open_channel(self.target))
            return self._channels[0]

    def accounts(self, channel: grpc.Channel | None = None) -> acc_grpc.AccountServiceStub:
        return acc_grpc.AccountServiceStub(channel or self._default)

    def accounting(self, channel: grpc.Channel | None = None) -> post_grpc.AccountingServiceStub:
        return post_grpc.AccountingServiceStub(channel or self._default)

    def health(self, channel: grpc.Channel | None = None) -> health_pb2_grpc.HealthStub:
        return health_pb2_grpc.HealthStub(channel or self._default)

    def reflection(self, channel: grpc.Channel | None = None) -> reflection_pb2_grpc.ServerReflectionStub:
        return reflection_pb2_grpc.ServerReflectionStub(channel or self._default)

    def close_channels(self) -> None:
        with self._lock:
            channels, self._channels = self._channels, []
        for ch in channels:
            ch.close()

    # --- client helpers -------------------------------------------------------------------------

    def request_id(self, prefix: str = "req") -> str:
        with self._lock:
            return f"{prefix}-{next(self._ids)}"

    def listed_services(self) -> set[str]:
        return listed_services(self.reflection())

    def create_account(self, tenant: str, code: str, type: str | int = "deposit", *, currency: str = "USD",
                       normal_side: str | int = 0, credit_limit: int = 0, floor_policy: str | int = 0,
                       name: str = "", metadata: dict[str, str] | None = None,
                       request_id: str | None = None) -> types_pb2.Account:
        request = acc_pb.CreateAccountRequest(
            request_id=request_id or self.request_id(f"create-{code}"), code=code, name=name,
            type=ACCOUNT_TYPES.get(type, type), currency=currency,
            normal_side=SIDES.get(normal_side, normal_side), credit_limit=credit_limit,
            floor_policy=FLOORS.get(floor_policy, floor_policy), metadata=metadata or {})
        return self.accounts().CreateAccount(request, metadata=md(tenant)).account

    def funding_account(self, tenant: str, currency: str = "USD") -> types_pb2.Account:
        """The tenant's internal, debit-normal, UNBOUNDED funding account for ``currency`` (made once)."""
        code = f"{FUNDING_PREFIX}-{currency.lower()}"
        try:
            return self.accounts().GetAccount(acc_pb.GetAccountRequest(account=ref(code)),
                                              metadata=md(tenant)).account
        except grpc.RpcError as err:
            if err.code() is not grpc.StatusCode.NOT_FOUND:
                raise
        return self.create_account(tenant, code, "internal", currency=currency, normal_side="debit",
                                   floor_policy="unbounded", request_id=f"create-{code}")

    def fund(self, tenant: str, code: str, amount: int, currency: str = "USD",
             request_id: str | None = None) -> types_pb2.Voucher:
        """Adjustment: debit the internal funding account, credit ``code`` by ``amount``."""
        source = self.funding_account(tenant, currency)
        request = adjustment_request(request_id or self.request_id(f"fund-{code}"),
                                     [line(source.code, "debit", amount, currency),
                                      line(code, "credit", amount, currency)], reason="e2e funding")
        response = self.accounting().Post(request, metadata=md(tenant))
        assert len(response.vouchers) == 1
        return response.vouchers[0]

    def transfer(self, tenant: str, source, destination, amount: int, currency: str = "USD",
                 request_id: str | None = None, **extra) -> post_pb.PostResponse:
        request = transfer_request(request_id or self.request_id("transfer"), source, destination, amount,
                                   currency, **extra)
        return self.accounting().Post(request, metadata=md(tenant))

    def balance(self, tenant: str, account) -> types_pb2.Balance:
        return self.accounts().GetBalance(acc_pb.GetBalanceRequest(account=ref(account)),
                                          metadata=md(tenant)).balance

    def current(self, tenant: str, account) -> int:
        return self.balance(tenant, account).current

    def set_status(self, tenant: str, account, status: int, request_id: str | None = None) -> types_pb2.Account:
        request = acc_pb.UpdateAccountRequest(
            request_id=request_id or self.request_id("status"), account=ref(account),
            account_update=types_pb2.Account(status=status),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]))
        return self.accounts().UpdateAccount(request, metadata=md(tenant)).account

    def all_accounts(self, tenant: str, page_size: int = 500, **filters) -> list[types_pb2.Account]:
        return list(walk(lambda token: self.accounts().ListAccounts(
            acc_pb.ListAccountsRequest(page_size=page_size, page_token=token, **filters), metadata=md(tenant)),
            "accounts"))

    def all_vouchers(self, tenant: str, page_size: int = 500, **filters) -> list[types_pb2.Voucher]:
        return list(walk(lambda token: self.accounting().ListVouchers(
            post_pb.ListVouchersRequest(page_size=page_size, page_token=token, **filters), metadata=md(tenant)),
            "vouchers"))

    def all_entries(self, tenant: str, account, page_size: int = 500) -> list[types_pb2.Entry]:
        return list(walk(lambda token: self.accounts().ListEntries(
            acc_pb.ListEntriesRequest(account=ref(account), page_size=page_size, page_token=token),
            metadata=md(tenant)), "entries"))

    @staticmethod
    def error_info(err: grpc.RpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
        return error_info(err)


def walk(call, field: str, pages_max: int = 10_000) -> Iterator:
    """Every item of a paged list: calls ``call(page_token)`` until the token comes back empty."""
    token, seen_tokens = "", set()
    for _ in range(pages_max):
        response = call(token)
        yield from getattr(response, field)
        token = response.next_page_token
        if not token:
            return
        assert token not in seen_tokens, "the server handed out the same page token twice"
        seen_tokens.add(token)
    raise AssertionError(f"more than {pages_max} pages")


def listed_services(stub: reflection_pb2_grpc.ServerReflectionStub) -> set[str]:
    responses = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    assert len(responses) == 1
    return {s.name for s in responses[0].list_services_response.service}


def health_status(stub: health_pb2_grpc.HealthStub, service: str = "") -> int:
    return stub.Check(health_pb2.HealthCheckRequest(service=service)).status


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 30.0, interval_s: float = 0.01) -> None:
    """Polls `predicate` every `interval_s` until it holds; fails naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval_s)


def timestamp_in(seconds: float) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp `seconds` from now (negative: in the past), e.g. a hold's expiry."""
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(time.time_ns() + int(seconds * 1_000_000_000))
    return ts


def e2e_settings(database_url: str, **overrides) -> Settings:
    defaults = {"listen_address": "127.0.0.1:0", "log_level": "WARNING", "shutdown_grace_s": 5,
                "bootstrap_admin": False}
    return dataclasses.replace(Settings(), database_url=database_url, **(defaults | overrides))


@contextlib.contextmanager
def running_server(settings: Settings) -> Iterator[Server]:
    """Runs ``bootstrap.start(settings)`` on an event loop in a background thread until the block ends."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, object] = {}

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            try:
                box["app"] = loop.run_until_complete(bootstrap.start(settings))
            except BaseException as exc:  # noqa: BLE001 - reported to the fixture
                box["error"] = exc
                return
            finally:
                started.set()
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=main, name="tally-e2e-server", daemon=True)
    thread.start()
    assert started.wait(START_TIMEOUT_S), f"server did not start within {START_TIMEOUT_S}s"
    if "error" in box:
        thread.join(STOP_TIMEOUT_S)
        raise box["error"]  # type: ignore[misc]
    app: bootstrap.App = box["app"]  # type: ignore[assignment]
    server = Server(target=f"127.0.0.1:{app.port}", port=app.port, database_url=settings.database_url,
                    app=app, loop=loop, thread=thread)
    TenantKeys.register(server.target, settings.database_url)
    try:
        yield server
    finally:
        server.close_channels()
        try:
            asyncio.run_coroutine_threadsafe(app.stop(), loop).result(STOP_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(STOP_TIMEOUT_S)
        assert not thread.is_alive(), "the server thread did not stop"


@pytest.fixture
def server(request: pytest.FixtureRequest, database_url: str) -> Iterator[Server]:
    """The real server on a fresh database, once per backend (sqlite, postgresql)."""
    make_migrated(request, database_url)
    with running_server(e2e_settings(database_url)) as srv:
        yield srv


@pytest.fixture
def postgres_server(request: pytest.FixtureRequest, postgres_url: str) -> Iterator[Server]:
    """The real server on a fresh PostgreSQL database."""
    make_migrated(request, postgres_url)
    with running_server(e2e_settings(postgres_url)) as srv:
        yield srv


BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def module_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  **overrides) -> Iterator[Server]:
    """A real server for a module-scoped fixture parametrized by BACKENDS, on a fresh database (dropped
    afterwards on PostgreSQL), with these settings over the e2e defaults."""
    hint = request.module.__name__.rsplit(".", 1)[-1]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp(hint) / 'tally.db'}"
        with running_server(e2e_settings(url, **overrides)) as srv:
            yield srv
        return
    pg = request.getfixturevalue("pg_server")  # the session's throwaway PostgreSQL, started lazily
    name = unique_database_name(f"e2e_{hint}")
    url = pg.create_database(name)
    try:
        with running_server(e2e_settings(url, **overrides)) as srv:
            yield srv
    finally:
        try:
            pg.drop_database(name)
        except Exception as exc:  # noqa: BLE001 - a failed cleanup must not fail the tests
            warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=1)


@pytest.fixture(scope="module", params=BACKENDS)
def shared_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server per module and backend, on a fresh database. For table-driven tests whose cases
    each work in tenants of their own, so the cases cannot see one another."""
    with module_server(request, tmp_path_factory) as srv:
        yield srv
