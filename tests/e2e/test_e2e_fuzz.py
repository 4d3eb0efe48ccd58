"""Input fuzzing of every tally.v1 RPC over the real wire, from the message descriptors.

The RPCs are not listed here: they are read from the services of the generated ``*_pb2`` modules, so a
new RPC is fuzzed as soon as it exists. Requests come from ``tests.proto_strategies`` (every field type,
edge values, unknown enum numbers, nested and repeated fields, oneofs, Timestamp, FieldMask), mixed with
realistic values of a seeded fuzz tenant (its account ids and codes, vouchers, holds, request ids, page
tokens, currencies, balanced lines) so that requests also get past validation into the ledger.

Every call is made with the fuzz tenant's admin key, and must answer:
* never INTERNAL, UNKNOWN or DATA_LOSS, and never UNAVAILABLE either: the server is up and so is its
  database, so UNAVAILABLE here (INTERNAL_ERROR, DATABASE_UNAVAILABLE) is a crash in disguise;
* every non-OK status as a google.rpc.Status with an ErrorInfo of domain tally.v1 and a reason;
* a refused call changes nothing: the tenant's fingerprint (trial balance, accounts, balances, vouchers,
  holds) is the same after it, and another tenant's never changes at all. An accepted mutating call may
  change the fuzz tenant's state; the fingerprint then becomes the new baseline. A read changes nothing.

* an atomic PostBatch with a refused item changes nothing either, and a refused item of any batch carries
  its code (never a crash code) and reason;
* the audit log can write the rows of every call (the test waits for it to flush).

A deterministic pass sends each RPC the empty message and messages with every field at an extreme.
The answers seen per RPC (code:reason counts) are printed with ``pytest -s``; ``TALLY_FUZZ_SCALE=10``
runs ten times the examples. The server's background hold expiry is off: it would change holds between
two fingerprints.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import importlib
import itertools
import json
import os
import pkgutil
import time
from collections.abc import Iterable, Iterator
from importlib import resources

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import descriptor as _d
from google.protobuf import field_mask_pb2, text_format, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tally.v1
from tally.api import streams
from tally.domain.auth import METHOD_PERMISSIONS, Permission
from tally.storage import tables
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import bookkeeping_service_pb2 as book_pb
from tally.v1 import bookkeeping_service_pb2_grpc as book_grpc
from tally.v1 import flows_pb2, types_pb2
from tests.e2e.conftest import (
    BACKENDS,
    ERROR_DOMAIN,
    Server,
    TenantKeys,
    line,
    md,
    module_server,
    ref,
    walk,
)
from tests.proto_strategies import Hints, extreme_messages, message_class, messages

C = grpc.StatusCode
# A crash in disguise: the server is up and so is its database.
FORBIDDEN_CODES = frozenset({C.INTERNAL, C.UNKNOWN, C.DATA_LOSS, C.UNAVAILABLE})
UNARY_TIMEOUT_S = 30.0
STREAM_DEADLINE_S = 0.4
STREAM_MESSAGES_MAX = 3
# Per RPC and backend, in CI: five services and some eighty RPCs cost minutes at these counts.
EXAMPLES_READ = 12
EXAMPLES_MUTATING = 15
EXAMPLES_STREAM = 8
# Posting is where the most code is: more examples.
EXAMPLES_BY_METHOD = {"Post": 50, "PostBatch": 30}
# A longer hunt: TALLY_FUZZ_SCALE=10 runs ten times the examples.
EXAMPLES_SCALE = float(os.environ.get("TALLY_FUZZ_SCALE", "1"))
AUDIT_FLUSH_TIMEOUT_S = 20.0
HOLD_EXPIRY_OFF_S = 24 * 3600  # no background expiry during a run: it would change holds between snapshots
UNKNOWN_ID = "01900000-0000-7000-8000-000000000000"  # well-formed, never issued
_tenants = itertools.count(1)


# ------------------------------------------------------------------------------------------ the RPCs


@dataclasses.dataclass(frozen=True)
class Rpc:
    method: _d.MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def input(self) -> _d.Descriptor:
        return self.method.input_type

    @property
    def mutating(self) -> bool:
        """Anything but a plain read may change state (an RPC without a permission is refused anyway)."""
        return METHOD_PERMISSIONS.get(self.path) is not Permission.READ

    def __str__(self) -> str:
        return f"{self.method.containing_service.name}.{self.method.name}"


def tally_rpcs() -> list[Rpc]:
    """Every method of every service in the generated modules of tally.v1."""
    rpcs = []
    for info in sorted(pkgutil.iter_modules(tally.v1.__path__), key=lambda i: i.name):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{tally.v1.__name__}.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            rpcs.extend(Rpc(m) for m in service.methods)
    return rpcs


RPCS = tally_rpcs()


def test_every_rpc_of_the_package_is_fuzzed() -> None:
    names = {r.path for r in RPCS}
    assert len(RPCS) == len(names) >= 22
    # Each RPC the server gives a permission to is found here (and so fuzzed) from the descriptors.
    assert set(METHOD_PERMISSIONS) <= names, set(METHOD_PERMISSIONS) - names
    assert {r.method.containing_service.full_name for r in RPCS} >= {
        "tally.v1.AccountService", "tally.v1.AccountingService", "tally.v1.BookkeepingService"}


# ------------------------------------------------------------------------------------------ the server


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per backend for the module; each test works in tenants of its own."""
    with module_server(request, tmp_path_factory, hold_expiry_interval_s=HOLD_EXPIRY_OFF_S) as srv:
        yield srv


# ------------------------------------------------------------------------------------------ the world


@dataclasses.dataclass
class World:
    """A seeded fuzz tenant ``t`` and a rival tenant ``r`` whose state must never change."""

    srv: Server
    t: str
    r: str
    channel: grpc.Channel
    ids: dict[str, str] = dataclasses.field(default_factory=dict)  # account code -> id
    vouchers: dict[str, str] = dataclasses.field(default_factory=dict)
    holds: dict[str, str] = dataclasses.field(default_factory=dict)
    request_ids: list[str] = dataclasses.field(default_factory=list)
    page_tokens: list[str] = dataclasses.field(default_factory=list)
    page_tokens_of: dict[str, str] = dataclasses.field(default_factory=dict)  # request type -> a token
    flow_types: list[str] = dataclasses.field(default_factory=list)
    rival: dict[str, str] = dataclasses.field(default_factory=dict)
    known: list[str] = dataclasses.field(default_factory=list)  # account ids whose balances are fingerprinted
    now_s: int = 0

    def auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        key = TenantKeys.for_target(self.srv.target).key_for(tenant)
        return (("authorization", f"Bearer {key}"),)

    # --- seeding -----------------------------------------------------------------------------------

    def post(self, request_id: str, tenant: str | None = None, **flow) -> post_pb.PostResponse:
        response = self.srv.accounting().Post(post_pb.PostRequest(request_id=request_id, **flow),
                                              metadata=md(tenant or self.t))
        self.request_ids.append(request_id)
        return response

    def hold(self, request_id: str, account: str, amount: int, tenant: str | None = None, **extra) -> str:
        request = post_pb.CreateHoldRequest(request_id=request_id, account=ref(account), amount=amount,
                                            currency="USD", **extra)
        self.request_ids.append(request_id)
        return self.srv.accounting().CreateHold(request, metadata=md(tenant or self.t)).hold.id


WORLD_CODES = {
    "alice": ("deposit", {}), "bob": ("deposit", {}), "card": ("credit", {"credit_limit": 5_000}),
    "euro": ("deposit", {"currency": "EUR"}), "yen": ("deposit", {"currency": "JPY"}),
    "ice": ("deposit", {}), "shut": ("deposit", {}),
    "pool": ("internal", {"normal_side": "credit", "floor_policy": "non_negative"}),
    "kid": ("deposit", {"metadata": {"kyc_status": "verified"}}),
}


def build_world(srv: Server) -> World:
    n = next(_tenants)
    w = World(srv, t=f"fuzz-{n}", r=f"fuzzrival-{n}", channel=grpc.insecure_channel(srv.target),
              now_s=int(time.time()))
    t = w.t
    for code, (kind, extra) in WORLD_CODES.items():
        w.ids[code] = srv.create_account(t, code, kind, request_id=f"seed-create-{code}", **extra).id
        w.request_ids.append(f"seed-create-{code}")
    w.vouchers["fund-alice"] = srv.fund(t, "alice", 1_000_000, request_id="seed-fund-alice").id
    w.vouchers["fund-bob"] = srv.fund(t, "bob", 1_000, request_id="seed-fund-bob").id
    w.vouchers["fund-euro"] = srv.fund(t, "euro", 50_000, "EUR", request_id="seed-fund-euro").id
    srv.fund(t, "ice", 100, request_id="seed-fund-ice")
    w.request_ids += ["seed-fund-alice", "seed-fund-bob", "seed-fund-euro", "seed-fund-ice"]
    srv.set_status(t, "ice", types_pb2.ACCOUNT_STATUS_FROZEN, request_id="seed-freeze")
    srv.set_status(t, "shut", types_pb2.ACCOUNT_STATUS_CLOSED, request_id="seed-close")
    w.vouchers["t-1"] = srv.transfer(t, "alice", "bob", 100, request_id="seed-t-1").vouchers[0].id
    w.vouchers["t-2"] = srv.transfer(t, "alice", "bob", 200, request_id="seed-t-2").vouchers[0].id
    reversal = srv.accounting().ReverseVoucher(post_pb.ReverseVoucherRequest(
        request_id="seed-rv-2", voucher_id=w.vouchers["t-2"], reason="seed"), metadata=md(t))
    w.vouchers["rv-2"] = reversal.voucher.id
    w.request_ids += ["seed-t-1", "seed-t-2", "seed-rv-2", "seed-freeze", "seed-close"]

    # Business flows through the default rules; the rules open their accounts.
    w.post("seed-funding", funding=flows_pb2.FundingFlow(consumer="c1", processor="card", amount=500_000,
                                                         currency="USD"))
    usage = w.post("seed-usage", usage=flows_pb2.UsageFlow(consumer="c1", merchant="m1", amount=100_000,
                                                           currency="USD"))
    acquisition = w.post("seed-acquisition", acquisition=flows_pb2.AcquisitionFlow(
        merchant="m1", channel="visa", amount=200_000, currency="USD"))
    w.vouchers["usage"] = usage.vouchers[0].id
    w.vouchers["acquisition"] = acquisition.vouchers[0].id
    srv.accounts().UpdateAccount(acc_pb.UpdateAccountRequest(  # m1 may be paid out
        request_id="seed-kyc", account=ref("merchant:m1:USD/settled"),
        account_update=types_pb2.Account(metadata={"kyc_status": "verified", "bank_account": "DE00 1234"}),
        update_mask=field_mask_pb2.FieldMask(paths=["metadata"])), metadata=md(t))
    w.request_ids.append("seed-kyc")

    w.holds["active"] = w.hold("seed-hold-active", "alice", 5_000,
                               expire_time=timestamp_pb2.Timestamp(seconds=w.now_s + 30 * 86_400))
    w.holds["partial"] = w.hold("seed-hold-partial", "bob", 300)
    srv.accounting().CaptureHold(post_pb.CaptureHoldRequest(
        request_id="seed-capture", hold_id=w.holds["partial"], amount=100, destination=ref("alice")),
        metadata=md(t))
    w.holds["released"] = w.hold("seed-hold-released", "alice", 50)
    srv.accounting().ReleaseHold(post_pb.ReleaseHoldRequest(request_id="seed-release", hold_id=w.holds["released"]),
                                 metadata=md(t))
    w.request_ids += ["seed-capture", "seed-release"]

    for account in srv.all_accounts(t):
        w.ids[account.code] = account.id
    # Balances a fingerprint reads one by one (every account's change also shows in the trial balance, the
    # vouchers or the holds): the accounts made here, a consumer and a merchant the rules made.
    w.known = [w.ids[c] for c in (*WORLD_CODES, "funding-usd", "funding-eur", "consumer:c1:USD",
                                  "merchant:m1:USD/settled")]
    w.page_tokens_of = {
        "ListAccountsRequest": srv.accounts().ListAccounts(acc_pb.ListAccountsRequest(page_size=1),
                                                           metadata=md(t)).next_page_token,
        "ListVouchersRequest": srv.accounting().ListVouchers(post_pb.ListVouchersRequest(page_size=1),
                                                             metadata=md(t)).next_page_token,
        "ListHoldsRequest": srv.accounting().ListHolds(post_pb.ListHoldsRequest(page_size=1),
                                                       metadata=md(t)).next_page_token,
        "ListEntriesRequest": srv.accounts().ListEntries(acc_pb.ListEntriesRequest(account=ref("alice"), page_size=1),
                                                         metadata=md(t)).next_page_token,
    }
    w.page_tokens = list(w.page_tokens_of.values())
    assert all(w.page_tokens)
    w.flow_types = sorted({*_rule_flow_types(w), "transfer", "adjustment", "reversal", "capture", "hold"})

    # The rival: its ids are offered to the fuzzer, and must stay inaccessible and unchanged.
    w.rival["account"] = srv.create_account(w.r, "mallory", "deposit", request_id="rival-create").id
    w.rival["voucher"] = srv.fund(w.r, "mallory", 1_000, request_id="rival-fund").id
    w.rival["hold"] = w.hold("rival-hold", "mallory", 10, tenant=w.r)
    return w


def _rule_flow_types(w: World) -> list[str]:
    stub = book_grpc.BookkeepingServiceStub(w.channel)
    return list(stub.GetRuleSet(book_pb.GetRuleSetRequest(), metadata=w.auth(w.t), timeout=UNARY_TIMEOUT_S)
                .flow_types)


@pytest.fixture
def world(fuzz_server: Server) -> Iterator[World]:
    w = build_world(fuzz_server)
    try:
        yield w
    finally:
        w.channel.close()


# ------------------------------------------------------------------------------------------ realistic hints


DEFAULT_RULES = resources.files("tally.rules").joinpath("default.toml").read_text(encoding="utf-8")


def _fresh_ids(prefix: str) -> st.SearchStrategy[str]:
    return st.uuids().map(lambda u: f"{prefix}-{u.hex[:16]}")


def _texts() -> st.SearchStrategy[str]:
    return st.sampled_from(["", "fuzz", "seed", "a memo", "r\u00e9sum\u00e9 \U0001f600"])


def _dates(w: World) -> st.SearchStrategy[str]:
    today = time.strftime("%Y-%m-%d", time.gmtime(w.now_s))
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(w.now_s - 86_400))
    return st.sampled_from(["", today, yesterday, "2024-02-29", "2025-02-29", "0001-01-01", "9999-12-31",
                            "1970-01-01", "2026-1-1", "2026-01-01T00:00:00Z"])


def forged_tokens(token: str) -> st.SearchStrategy[str]:
    """Page tokens are opaque but not sealed: a real one with its position replaced by anything."""
    raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))

    def forge(position: object) -> str:
        data = json.dumps({**raw, "p": position}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    positions = st.one_of(st.sampled_from([-1, 0, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, True, None, 1.5,
                                           "", "\x00", "z" * 100, "\U0001f600", [], {}]), st.integers(), st.text())
    return positions.map(forge)


def _rule_set_texts() -> st.SearchStrategy[str]:
    """The default rule set, cut short or with something spliced in: valid and invalid TOML."""
    n = len(DEFAULT_RULES)
    cut = st.integers(0, n).map(lambda i: DEFAULT_RULES[:i])
    spliced = st.tuples(st.integers(0, n), st.sampled_from([
        "\n[[rules]]\n", "\nx = 1\n", "\"", "\n[params]\nplatform_fee_bps = -1\n", "= \"{nope}\"",
        "\namount = \"bps(amount, 99999999999999999999)\"\n", "\x00", "\U0001f600", "\n" * 3,
    ])).map(lambda p: DEFAULT_RULES[:p[0]] + p[1] + DEFAULT_RULES[p[0]:])
    whole = st.just(None).map(lambda _: DEFAULT_RULES)  # (st.just would show 30 kB in the strategy's repr)
    return st.one_of(whole, cut, spliced)


def hints(w: World) -> Hints:
    account_ids = st.sampled_from([*w.ids.values(), UNKNOWN_ID, w.rival["account"], ""])
    codes = st.sampled_from([*w.ids, "nobody", "mallory"])
    amounts = st.one_of(st.integers(1, 2_000), st.sampled_from([0, -1, 1_000_000, 2**63 - 1]))
    fresh_request_ids = _fresh_ids("fz")
    # Mostly new ids (so a good request posts), sometimes one already used (a replay, or a reuse).
    request_ids = st.integers(0, 3).flatmap(lambda n: st.sampled_from(w.request_ids) if n == 3
                                            else fresh_request_ids)
    parties = {"consumer": ["c1", "c2"], "merchant": ["m1", "m2"], "processor": ["card", "ach"],
               "channel": ["visa", "mc"], "affiliate": ["", "aff"], "party": ["m1", "m2", "p3"]}

    def balanced_lines(pair: tuple[str, str], amount: int, currency: str = "USD") -> list[types_pb2.LineInput]:
        return [line(pair[0], "debit", amount, currency), line(pair[1], "credit", amount, currency)]

    usd_pairs = st.sampled_from([("funding-usd", "alice"), ("alice", "bob"), ("bob", "alice"), ("card", "alice"),
                                 ("funding-usd", "pool"), ("alice", "ice"), ("alice", "shut"), ("alice", "alice")])
    share_tables = st.sampled_from([
        [], [("m1", 10_000)], [("m1", 6_000), ("m2", 4_000)], [("m1", 5_000), ("p3", 5_001)], [("m1", 0)],
        [("m1", 10_001)], [("m1", 3_333), ("m2", 3_333), ("p3", 3_334)], [("m1", 5_000), ("m1", 5_000)],
    ]).map(lambda table: [flows_pb2.RevenueShare(party=p, share_bps=b) for p, b in table])
    update_paths = st.lists(st.sampled_from(["status", "credit_limit", "name", "metadata"]), min_size=1,
                            max_size=4, unique=True)
    fields = {
        "tally.v1.AccountRef.id": account_ids,
        "tally.v1.AccountRef.code": codes,
        "account_id": account_ids,
        "account_ids": account_ids,
        "parent_id": account_ids,
        "voucher_id": st.sampled_from([*w.vouchers.values(), UNKNOWN_ID, w.rival["voucher"], "x"]),
        "hold_id": st.sampled_from([*w.holds.values(), UNKNOWN_ID, w.rival["hold"], ""]),
        "currency": st.sampled_from(["USD", "USD", "EUR", "JPY", "GBP", "XYZ", "usd", ""]),
        "request_id": request_ids,
        "original_request_id": st.sampled_from(["seed-usage", "seed-acquisition", "seed-funding", "seed-t-1",
                                                "nobody"]),
        "code": st.one_of(_fresh_ids("acct"), codes),
        "flow_type": st.sampled_from([*w.flow_types, "nope"]),
        "types": st.sampled_from(sorted(streams.EVENT_TYPES)),
        "page_token": st.sampled_from(["", *w.page_tokens]),
        **{f"tally.v1.{request}.page_token": st.one_of(st.sampled_from(["", "", token, *w.page_tokens]),
                                                        forged_tokens(token))
           for request, token in w.page_tokens_of.items()},
        "page_size": st.one_of(st.integers(0, 3), st.sampled_from([50, 500, 501])),
        "as_of_date": _dates(w),
        "start_date": _dates(w),
        "end_date": _dates(w),
        "amount": amounts,
        "actual_amount": amounts,
        "credit_limit": st.sampled_from([0, 0, 0, 1, 10_000]),
        "share_bps": st.sampled_from([0, 2_500, 5_000, 10_000]),
        "merchant_share_bps": st.sampled_from([0, 2_500, 10_000, 10_001]),
        "from_sequence": st.integers(0, 40),
        "content": _rule_set_texts(),
        **{name: st.sampled_from(values) for name, values in parties.items()},
        **{name: _texts() for name in ("memo", "reason", "name", "meter", "coupon_id", "order_ref", "batch_ref",
                                       "external_ref")},
        "metadata": st.sampled_from([{}, {"kyc_status": "verified", "bank_account": "DE00 1234"},
                                     {"payout_minimum": "10"}, {"k": "v"}]),
        "tally.v1.UpdateAccountRequest.update_mask": update_paths.map(lambda ps: field_mask_pb2.FieldMask(
            paths=ps)),
        "expire_time": st.integers(60, 30 * 86_400).map(lambda s: timestamp_pb2.Timestamp(seconds=w.now_s + s)),
        "effective_time": st.integers(-86_400, 0).map(lambda s: timestamp_pb2.Timestamp(seconds=w.now_s + s)),
        "as_of_time": st.integers(-86_400, 86_400).map(lambda s: timestamp_pb2.Timestamp(seconds=w.now_s + s)),
    }
    lists = {
        "tally.v1.UsageFlow.shares": share_tables,
        "tally.v1.AdjustmentFlow.lines": st.builds(balanced_lines, usd_pairs, st.integers(1, 1_000)),
    }
    return Hints(fields=fields, lists=lists, messages=message_hints(w, fresh_request_ids), now_s=w.now_s)


def message_hints(w: World, fresh_request_ids: st.SearchStrategy[str]) -> dict[str, st.SearchStrategy[Message]]:
    """Whole messages that make sense together (accounts of one currency, a consistent account spec), so
    that a good share of the requests is accepted and reaches the ledger."""
    usd = ["alice", "bob", "card", "pool", "funding-usd", "kid", "consumer:c1:USD"]
    refs = st.one_of(st.sampled_from(usd).map(ref), st.sampled_from([w.ids[c] for c in usd]).map(lambda i: ref(id=i)))
    small = st.integers(1, 1_000)
    transfer_pairs = st.sampled_from([("alice", "bob"), ("bob", "alice"), ("funding-usd", "alice"),
                                      ("card", "alice"), ("alice", "card"), ("alice", "kid"), ("pool", "bob")])

    def transfer(pair: tuple[str, str], amount: int) -> flows_pb2.TransferFlow:
        flow = flows_pb2.TransferFlow(to=ref(pair[1]), amount=amount, currency="USD")
        getattr(flow, "from").CopyFrom(ref(pair[0]))
        return flow

    consumers, merchants = st.sampled_from(["c1", "c1", "c2"]), st.sampled_from(["m1", "m1", "m2"])
    specs = st.one_of(
        st.builds(dict, type=st.just(types_pb2.ACCOUNT_TYPE_DEPOSIT), currency=st.sampled_from(["USD", "EUR"])),
        st.builds(dict, type=st.just(types_pb2.ACCOUNT_TYPE_CREDIT), currency=st.just("USD"),
                  credit_limit=st.integers(0, 10_000)),
        st.builds(dict, type=st.just(types_pb2.ACCOUNT_TYPE_INTERNAL), currency=st.just("USD"),
                  normal_side=st.sampled_from([types_pb2.SIDE_DEBIT, types_pb2.SIDE_CREDIT]),
                  floor_policy=st.sampled_from([0, types_pb2.FLOOR_POLICY_NON_NEGATIVE,
                                                types_pb2.FLOOR_POLICY_UNBOUNDED])),
    )
    return {
        "tally.v1.AccountRef": refs,
        "tally.v1.TransferFlow": st.builds(transfer, transfer_pairs, small),
        "tally.v1.FundingFlow": st.builds(flows_pb2.FundingFlow, consumer=consumers,
                                          processor=st.sampled_from(["card", "ach"]), amount=small,
                                          currency=st.just("USD")),
        "tally.v1.UsageFlow": st.builds(flows_pb2.UsageFlow, consumer=consumers, merchant=merchants, amount=small,
                                        currency=st.just("USD"), affiliate=st.sampled_from(["", "aff"])),
        "tally.v1.AcquisitionFlow": st.builds(flows_pb2.AcquisitionFlow, merchant=merchants,
                                              channel=st.sampled_from(["visa", "mc"]), amount=small,
                                              currency=st.just("USD")),
        "tally.v1.PayoutFlow": st.builds(flows_pb2.PayoutFlow, merchant=merchants, amount=small,
                                         currency=st.just("USD")),
        "tally.v1.GuaranteeFlow": st.builds(flows_pb2.GuaranteeFlow, merchant=merchants, amount=small,
                                            currency=st.just("USD")),
        "tally.v1.SettlementFlow": st.builds(flows_pb2.SettlementFlow, kind=st.sampled_from([1, 2, 3]),
                                             merchant=merchants, channel=st.just("visa"), amount=small,
                                             currency=st.just("USD")),
        "tally.v1.RefundFlow": st.builds(flows_pb2.RefundFlow, original_request_id=st.sampled_from(
            ["seed-usage", "seed-acquisition"]), amount=st.integers(1, 100), currency=st.just("USD"),
            reason=st.just("fuzz")),
        "tally.v1.CreateAccountRequest": st.builds(
            lambda rid, code, spec, parent: acc_pb.CreateAccountRequest(
                request_id=rid, code=code, **spec, **({"parent": ref(parent)} if parent else {})),
            fresh_request_ids, _fresh_ids("acct"), specs, st.sampled_from(["", "", "alice", "pool"])),
    }


# ------------------------------------------------------------------------------------------ calls


@dataclasses.dataclass
class Outcome:
    code: grpc.StatusCode
    responses: list[Message]
    error: grpc.RpcError | None = None


def call(w: World, rpc: Rpc, request: Message) -> Outcome:
    """Calls the RPC as the fuzz tenant's admin; a stream is read for a few messages, then cancelled."""
    response_class = message_class(rpc.method.output_type)
    kind = ("stream" if rpc.method.client_streaming else "unary") + "_" + (
        "stream" if rpc.method.server_streaming else "unary")
    multicallable = getattr(w.channel, kind)(rpc.path, request_serializer=lambda m: m.SerializeToString(),
                                             response_deserializer=response_class.FromString)
    argument = iter([request]) if rpc.method.client_streaming else request
    if not rpc.method.server_streaming:
        try:
            return Outcome(C.OK, [multicallable(argument, metadata=w.auth(w.t), timeout=UNARY_TIMEOUT_S)])
        except grpc.RpcError as err:
            return Outcome(err.code(), [], err)
    started = time.monotonic()
    stream = multicallable(argument, metadata=w.auth(w.t), timeout=STREAM_DEADLINE_S)
    received: list[Message] = []
    try:
        for response in stream:
            received.append(response)
            if len(received) >= STREAM_MESSAGES_MAX:
                stream.cancel()
                return Outcome(C.OK, received)
        return Outcome(C.OK, received)
    except grpc.RpcError as err:
        code = err.code()
        elapsed = time.monotonic() - started
        if code is C.DEADLINE_EXCEEDED and elapsed >= STREAM_DEADLINE_S * 0.9:
            return Outcome(C.OK, received)  # our own deadline: the stream was following live
        if code is C.CANCELLED and len(received) >= STREAM_MESSAGES_MAX:
            return Outcome(C.OK, received)
        return Outcome(code, received, err)


def describe(rpc: Rpc, request: Message, outcome: Outcome) -> str:
    text = text_format.MessageToString(request, as_one_line=True)
    details = outcome.error.details() if outcome.error is not None else ""
    return f"{rpc} {outcome.code.name} {details!r}\n  request: {text[:1500]}"


def check_status(rpc: Rpc, request: Message, outcome: Outcome) -> None:
    """Never a crash code; a refusal carries google.rpc.Status with an ErrorInfo and its reason."""
    assert outcome.code not in FORBIDDEN_CODES, describe(rpc, request, outcome)
    if outcome.error is not None:
        status = rpc_status.from_call(outcome.error)
        assert status is not None, f"no google.rpc.Status: {describe(rpc, request, outcome)}"
        assert status.code == outcome.code.value[0], describe(rpc, request, outcome)
        infos = []
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                infos.append(info)
        assert infos, f"no ErrorInfo: {describe(rpc, request, outcome)}"
        assert infos[0].reason and infos[0].domain == ERROR_DOMAIN, describe(rpc, request, outcome)
    for response in outcome.responses:  # PostBatch answers refused items inside an OK response
        for result in getattr(response, "results", ()):
            if isinstance(result, post_pb.PostBatchResult) and result.WhichOneof("result") == "error":
                code = next(c for c in C if c.value[0] == result.error.code)
                assert code not in FORBIDDEN_CODES and code is not C.OK and result.error.reason, \
                    f"batch item {text_format.MessageToString(result, as_one_line=True)}: " \
                    f"{describe(rpc, request, outcome)}"


def _batch_refused_whole(request: Message, outcome: Outcome) -> bool:
    """An atomic PostBatch with a refused item posts nothing at all."""
    if not isinstance(request, post_pb.PostBatchRequest) or not request.atomic or not outcome.responses:
        return False
    return any(r.WhichOneof("result") == "error" for r in outcome.responses[0].results)


# ------------------------------------------------------------------------------------------ state


class Fingerprint:
    """What a client can see of a tenant's books."""

    def __init__(self, w: World) -> None:
        self.w = w

    def of(self, tenant: str, known: Iterable[str]) -> dict:
        """Trial balance, every account, the balances of the ``known`` accounts (ids), vouchers, holds."""
        w, auth = self.w, self.w.auth(tenant)
        accounts_stub = acc_grpc.AccountServiceStub(w.channel)
        accounting_stub = post_grpc.AccountingServiceStub(w.channel)
        kw = {"metadata": auth, "timeout": UNARY_TIMEOUT_S}
        trial = _trial_balance(book_grpc.BookkeepingServiceStub(w.channel), kw)
        accounts = list(walk(lambda token: accounts_stub.ListAccounts(
            acc_pb.ListAccountsRequest(page_size=500, page_token=token), **kw), "accounts"))
        asked = {i: accounts_stub.GetBalance.future(acc_pb.GetBalanceRequest(account=ref(id=i)), **kw)
                 for i in sorted(known)}  # all at once: a fingerprint follows every mutating call
        balances = {}
        for account_id, answer in asked.items():
            b = answer.result().balance
            balances[account_id] = (b.current, b.locked, b.available, b.credit_limit, b.entry_count)
        vouchers = list(walk(lambda token: accounting_stub.ListVouchers(
            post_pb.ListVouchersRequest(page_size=500, page_token=token), **kw), "vouchers"))
        holds = list(walk(lambda token: accounting_stub.ListHolds(
            post_pb.ListHoldsRequest(page_size=500, page_token=token), **kw), "holds"))
        return {
            "trial_balance": trial,
            "accounts": sorted(a.SerializeToString(deterministic=True) for a in accounts),
            "balances": balances,
            "vouchers": [(v.id, v.sequence, v.reversed_by_voucher_id) for v in vouchers],
            "holds": sorted(h.SerializeToString(deterministic=True) for h in holds),
        }


def _trial_balance(stub: book_grpc.BookkeepingServiceStub, kw: dict) -> bytes | str:
    """The trial balance's bytes, or the reason it is refused: fuzzed amounts up to 2**63 - 1 can take a
    currency's totals past int64, which the server refuses with TRIAL_BALANCE_OUT_OF_RANGE (and nothing else)."""
    try:
        return stub.GetTrialBalance(book_pb.GetTrialBalanceRequest(), **kw).SerializeToString(deterministic=True)
    except grpc.RpcError as exc:
        info = error_details_pb2.ErrorInfo()
        rpc_status.from_call(exc).details[0].Unpack(info)
        assert (exc.code(), info.reason) == (C.FAILED_PRECONDITION, "TRIAL_BALANCE_OUT_OF_RANGE"), exc
        return info.reason


def _reason(outcome: Outcome) -> str:
    if outcome.error is None:
        return "OK"
    info = error_details_pb2.ErrorInfo()
    rpc_status.from_call(outcome.error).details[0].Unpack(info)
    return f"{outcome.code.name}:{info.reason}"


class Checker:
    """Calls RPCs and checks each answer and what it did to the books."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.fp = Fingerprint(w)
        self.rival = self.fp.of(w.r, [w.rival["account"]])
        self.baseline = self.of_t()
        self.calls: collections.Counter[str] = collections.Counter()

    def of_t(self) -> dict:
        return self.fp.of(self.w.t, self.w.known)

    def run(self, rpc: Rpc, request: Message) -> Outcome:
        outcome = call(self.w, rpc, request)
        check_status(rpc, request, outcome)
        self.calls[_reason(outcome)] += 1
        for response in outcome.responses:
            for result in getattr(response, "results", ()):
                which = result.WhichOneof("result")
                self.calls[f"item:{result.error.reason if which == 'error' else which}"] += 1
        if rpc.mutating:
            self.check_state(rpc, request, outcome)
        return outcome

    def check_state(self, rpc: Rpc, request: Message, outcome: Outcome) -> None:
        after = self.of_t()
        if outcome.code is not C.OK or _batch_refused_whole(request, outcome):
            assert after == self.baseline, f"a refused call changed the books: {describe(rpc, request, outcome)}"
        self.baseline = after

    def finish(self, rpc: Rpc) -> None:
        """Reads changed nothing; nobody touched the rival tenant; every audit row could be written."""
        assert self.of_t() == self.baseline, f"{rpc} changed the books"
        assert self.fp.of(self.w.r, [self.w.rival["account"]]) == self.rival, f"{rpc} changed another tenant's books"
        srv = self.w.srv
        flushed = asyncio.run_coroutine_threadsafe(srv.app.services.audit.flush(), srv.loop)
        try:
            flushed.result(AUDIT_FLUSH_TIMEOUT_S)
        except TimeoutError:
            flushed.cancel()
            raise AssertionError(f"the audit log could not write the rows of {rpc} calls") from None


# ------------------------------------------------------------------------------------------ the tests


@pytest.mark.parametrize("rpc", RPCS, ids=str)
def test_fuzz_rpc(world: World, rpc: Rpc) -> None:
    checker = Checker(world)
    requests = messages(rpc.input, hints(world))
    examples = EXAMPLES_BY_METHOD.get(rpc.method.name) or (
        EXAMPLES_STREAM if rpc.method.server_streaming else EXAMPLES_MUTATING if rpc.mutating else EXAMPLES_READ)
    examples = max(1, round(examples * EXAMPLES_SCALE))

    @settings(max_examples=examples, deadline=None, derandomize=False, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(request=requests)
    def fuzz(request: Message) -> None:
        checker.run(rpc, request)

    fuzz()
    checker.finish(rpc)
    assert checker.calls, "no request was sent"  # a message without fields has only a few distinct examples
    print(f"{rpc}: {dict(checker.calls.most_common())}")


@pytest.mark.parametrize("rpc", RPCS, ids=str)
def test_fixed_extremes(world: World, rpc: Rpc) -> None:
    """The empty message and messages with every field at an extreme value, for each oneof member."""
    checker = Checker(world)
    for label, request in extreme_messages(rpc.input):
        try:
            checker.run(rpc, request)
        except AssertionError as failure:
            raise AssertionError(f"[{label}] {failure}") from None
    checker.finish(rpc)



def test_refusals_naming_nul_are_audited(world: World) -> None:
    """Found by the fuzzer: an audit row carrying the caller's NUL (request id, target) could not be written
    on PostgreSQL; the writer retried that batch for ever, so no row after it was written either, and the
    server could not stop (it waits for the audit log)."""
    for rpc_name, request in (("Post", post_pb.PostRequest(request_id="r\x00")),
                              ("GetVoucher", post_pb.GetVoucherRequest(voucher_id="v\x00")),
                              ("CreateAccount", acc_pb.CreateAccountRequest(request_id="ok-1", code="a\x00"))):
        rpc = next(r for r in RPCS if r.method.name == rpc_name)
        outcome = call(world, rpc, request)
        check_status(rpc, request, outcome)
        assert outcome.code is not C.OK
    srv = world.srv
    asyncio.run_coroutine_threadsafe(srv.app.services.audit.flush(), srv.loop).result(AUDIT_FLUSH_TIMEOUT_S)
    engine = sa.create_engine(srv.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(tables.audit_log.c.action, tables.audit_log.c.target,
                                          tables.audit_log.c.request_id)
                                .where(tables.audit_log.c.tenant_id == world.t)).all()
    finally:
        engine.dispose()
    assert ("Post", "", "r\ufffd") in rows
    assert ("GetVoucher", "voucher_id:v\ufffd", "") in rows
    assert ("CreateAccount", "code:a\ufffd", "ok-1") in rows
