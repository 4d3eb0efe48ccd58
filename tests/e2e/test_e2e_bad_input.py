"""Bad input over the real wire: one table, each case with its exact gRPC status code and ErrorInfo
reason, and after each case proof that nothing changed (accounts, balances and vouchers of both tenants).

Every case runs in two tenants of its own (``w.t`` and a rival ``w.r``), made fresh for it, on a server
shared by the module (once on SQLite, once on PostgreSQL), so cases cannot see one another.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import field_mask_pb2, text_format, timestamp_pb2

from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import flows_pb2, types_pb2
from tests.e2e.conftest import (
    Server,
    adjustment_request,
    error_info,
    line,
    md,
    ref,
    transfer_request,
)

C = grpc.StatusCode
INT64_MAX = 2**63 - 1
UNKNOWN_ID = "01900000-0000-7000-8000-000000000000"  # well-formed, never issued
_tenants = itertools.count(1)


# ------------------------------------------------------------------------------------------ the world


@dataclass
class World:
    """Two fresh tenants. ``t``: funding-usd, alice 999, bob 11, ice 100 (frozen), euro (EUR, 0),
    card (credit, limit 500, 0), shut (closed), vouchers fund x3, t-1, t-2 and its reversal rv-2.
    ``r`` (the rival): funding-usd, mallory 100."""

    srv: Server
    t: str
    r: str
    ids: dict[str, str] = field(default_factory=dict)
    vouchers: dict[str, str] = field(default_factory=dict)
    _n: itertools.count = field(default_factory=itertools.count)

    def rid(self, prefix: str = "bad") -> str:
        return f"{prefix}-{next(self._n)}"

    # --- calls (they raise for a refusal) ----------------------------------------------------------

    def post(self, request: post_pb.PostRequest, tenant: str | None = ""):
        return self.srv.accounting().Post(request, metadata=md(self.t if tenant == "" else tenant))

    def transfer(self, source, destination, amount: int, currency: str = "USD", request_id: str | None = None,
                 tenant: str | None = "", **extra):
        return self.post(transfer_request(self.rid() if request_id is None else request_id, source, destination,
                                          amount, currency, **extra), tenant)

    def adjust(self, lines, reason: str = "correction", request_id: str | None = None, **extra):
        return self.post(adjustment_request(self.rid() if request_id is None else request_id, lines, reason,
                                            **extra))

    def create(self, **fields):
        fields.setdefault("request_id", self.rid("create"))
        fields.setdefault("code", "newbie")
        fields.setdefault("type", types_pb2.ACCOUNT_TYPE_DEPOSIT)
        fields.setdefault("currency", "USD")
        return self.srv.accounts().CreateAccount(acc_pb.CreateAccountRequest(**fields), metadata=md(self.t))

    def update(self, account, paths, request_id: str | None = None, tenant: str = "", **new):
        request = acc_pb.UpdateAccountRequest(
            request_id=self.rid("update") if request_id is None else request_id, account=ref(account),
            account_update=types_pb2.Account(**new), update_mask=field_mask_pb2.FieldMask(paths=paths))
        return self.srv.accounts().UpdateAccount(request, metadata=md(tenant or self.t))

    def reverse(self, voucher_id: str, request_id: str | None = None, tenant: str = ""):
        request = post_pb.ReverseVoucherRequest(request_id=self.rid("rev") if request_id is None else request_id,
                                                voucher_id=voucher_id, reason="undo")
        return self.srv.accounting().ReverseVoucher(request, metadata=md(tenant or self.t))

    def get_voucher(self, voucher_id: str, tenant: str = ""):
        return self.srv.accounting().GetVoucher(post_pb.GetVoucherRequest(voucher_id=voucher_id),
                                                metadata=md(tenant or self.t))

    def get_hold(self, hold_id: str):
        return self.srv.accounting().GetHold(post_pb.GetHoldRequest(hold_id=hold_id), metadata=md(self.t))

    def release(self, hold_id: str):
        return self.srv.accounting().ReleaseHold(post_pb.ReleaseHoldRequest(request_id=self.rid("release"),
                                                                            hold_id=hold_id), metadata=md(self.t))

    def get_account(self, account, tenant: str = ""):
        return self.srv.accounts().GetAccount(acc_pb.GetAccountRequest(account=ref(account)),
                                              metadata=md(tenant or self.t))

    def get_balance(self, account, **fields):
        return self.srv.accounts().GetBalance(acc_pb.GetBalanceRequest(account=ref(account), **fields),
                                              metadata=md(self.t))

    def list_accounts(self, **fields):
        return self.srv.accounts().ListAccounts(acc_pb.ListAccountsRequest(**fields), metadata=md(self.t))

    def list_vouchers(self, **fields):
        return self.srv.accounting().ListVouchers(post_pb.ListVouchersRequest(**fields), metadata=md(self.t))

    def list_entries(self, account, **fields):
        return self.srv.accounts().ListEntries(acc_pb.ListEntriesRequest(account=ref(account), **fields),
                                               metadata=md(self.t))

    # --- state -------------------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """Everything a client can see of both tenants: accounts, balances, statements' length, vouchers."""
        state = {}
        for tenant in (self.t, self.r):
            accounts = self.srv.all_accounts(tenant)
            balances = {}
            for a in accounts:
                b = self.srv.balance(tenant, ref(id=a.id))
                balances[a.code] = (b.current, b.locked, b.available, b.credit_limit, b.entry_count)
            vouchers = self.srv.all_vouchers(tenant)
            state[tenant] = {
                "accounts": sorted(a.SerializeToString(deterministic=True) for a in accounts),
                "balances": balances,
                "voucher_count": len(vouchers),
                "vouchers": [(v.id, v.sequence, v.reversed_by_voucher_id) for v in vouchers],
            }
        return state


def build_world(srv: Server) -> World:
    n = next(_tenants)
    w = World(srv, t=f"acme-{n}", r=f"rival-{n}")
    t, r = w.t, w.r
    for code, kind, extra in (("alice", "deposit", {}), ("bob", "deposit", {}), ("ice", "deposit", {}),
                              ("euro", "deposit", {"currency": "EUR"}), ("card", "credit", {"credit_limit": 500}),
                              ("shut", "deposit", {})):
        w.ids[code] = srv.create_account(t, code, kind, **extra).id
    w.vouchers["fund-alice"] = srv.fund(t, "alice", 1_000).id
    w.ids["funding-usd"] = srv.funding_account(t).id
    srv.fund(t, "bob", 10)
    srv.fund(t, "ice", 100)
    srv.set_status(t, "ice", types_pb2.ACCOUNT_STATUS_FROZEN)
    srv.set_status(t, "shut", types_pb2.ACCOUNT_STATUS_CLOSED)
    w.vouchers["t-1"] = srv.transfer(t, "alice", "bob", 1, request_id="t-1").vouchers[0].id
    w.vouchers["t-2"] = srv.transfer(t, "alice", "bob", 2, request_id="t-2").vouchers[0].id
    w.vouchers["rv-2"] = w.reverse(w.vouchers["t-2"], request_id="rv-2").voucher.id

    w.ids["mallory"] = srv.create_account(r, "mallory", "deposit").id
    w.vouchers["rival-fund"] = srv.fund(r, "mallory", 100).id
    assert (srv.current(t, "alice"), srv.current(t, "bob"), srv.current(r, "mallory")) == (999, 11, 100)
    return w


# ------------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Case:
    call: Callable[[World], object]
    code: grpc.StatusCode
    reason: str
    # A subset of the expected ErrorInfo metadata; a value may be a function of the world.
    meta: dict[str, object] = field(default_factory=dict)
    # The same call naming an account/voucher that does not exist: it must be answered alike (no leak).
    like_unknown: tuple[Callable[[World], object], Callable[[World], str], str] | None = None
    # Extra state the case needs, made before the "before" snapshot.
    prepare: Callable[[World], object] | None = None


def lines_usd(*spec) -> list[types_pb2.LineInput]:
    return [line(account, side, amount) for account, side, amount in spec]


def P(call, code, reason, *, id, meta=None, like_unknown=None, prepare=None):  # noqa: A002 - the pytest id
    return pytest.param(Case(call, code, reason, meta or {}, like_unknown, prepare), id=id)


def account_chain(w: World, depth: int) -> None:
    """Accounts chain-0 <- chain-1 <- ... <- chain-{depth-1}, each the parent of the next."""
    parent = None
    for i in range(depth):
        w.create(code=f"chain-{i}", **({"parent": ref(parent)} if parent else {}))
        parent = f"chain-{i}"


def forged_token(token: str, position: object) -> str:
    """A real page token with its position replaced (the token is base64 JSON; nothing seals it)."""
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    data["p"] = position
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def at(seconds: int) -> dict:
    return {"effective_time": timestamp_pb2.Timestamp(seconds=seconds)}


CASES = [
    # --- Post: amounts ---------------------------------------------------------------------------
    P(lambda w: w.transfer("alice", "bob", 0), C.INVALID_ARGUMENT, "AMOUNT_NOT_POSITIVE",
      id="post-transfer-zero-amount", meta={"field": "lines[0].amount"}),
    P(lambda w: w.transfer("alice", "bob", -5), C.INVALID_ARGUMENT, "AMOUNT_NOT_POSITIVE",
      id="post-transfer-negative-amount"),
    P(lambda w: w.adjust(lines_usd(("funding-usd", "debit", 5), ("alice", "credit", -5))),
      C.INVALID_ARGUMENT, "AMOUNT_NOT_POSITIVE", id="post-adjustment-negative-line",
      meta={"field": "lines[1].amount"}),
    P(lambda w: w.adjust(lines_usd(("funding-usd", "debit", 2**62), ("funding-usd", "debit", 2**62),
                                   ("alice", "credit", 2**62), ("bob", "credit", 2**62))),
      C.INVALID_ARGUMENT, "AMOUNT_TOO_LARGE", id="post-currency-total-over-int64", meta={"currency": "USD"}),
    P(lambda w: w.adjust(lines_usd(("funding-usd", "debit", INT64_MAX - 10), ("funding-usd", "debit", 11),
                                   ("alice", "credit", INT64_MAX))),
      C.INVALID_ARGUMENT, "AMOUNT_TOO_LARGE", id="post-debit-total-int64-max-plus-one"),
    P(lambda w: w.adjust(lines_usd(("funding-usd", "debit", INT64_MAX), ("alice", "credit", INT64_MAX))),
      C.INVALID_ARGUMENT, "BALANCE_OVERFLOW", id="post-int64-max-overflows-balance"),
    P(lambda w: w.transfer("card", "alice", INT64_MAX), C.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS",
      id="post-int64-max-from-credit-account"),
    P(lambda w: w.adjust(lines_usd(("funding-usd", "debit", 100), ("alice", "credit", 99))),
      C.INVALID_ARGUMENT, "VOUCHER_UNBALANCED", id="post-unbalanced",
      meta={"currency": "USD", "debits": "100", "credits": "99"}),
    P(lambda w: w.adjust([line("funding-usd", "debit", 5), line("euro", "credit", 5, "EUR")]),
      C.INVALID_ARGUMENT, "VOUCHER_UNBALANCED", id="post-balanced-only-across-currencies"),
    P(lambda w: w.transfer("bob", "alice", 1_000_000), C.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS",
      id="post-insufficient-funds", meta={"available": "11", "required": "1000000"}),
    P(lambda w: w.transfer("bob", "alice", 12), C.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS",
      id="post-insufficient-funds-by-one-unit", meta={"available": "11", "required": "12"}),
    P(lambda w: w.adjust(lines_usd(("funding-usd", "debit", 1), ("alice", "credit", 1),
                                   ("bob", "debit", 12), ("alice", "credit", 12))),
      C.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS", id="post-adjustment-refused-whole"),
    # --- Post: accounts ----------------------------------------------------------------------------
    P(lambda w: w.transfer("alice", "nobody", 5), C.NOT_FOUND, "ACCOUNT_NOT_FOUND",
      id="post-unknown-account-code", meta={"account": "code:nobody"}),
    P(lambda w: w.transfer(ref(id=UNKNOWN_ID), "bob", 5), C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE",
      id="post-unknown-account-id", meta={"account": UNKNOWN_ID}),
    P(lambda w: w.transfer("alice", ref(id=w.ids["mallory"]), 5), C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE",
      id="post-other-tenants-account-by-id",
      like_unknown=(lambda w: w.transfer("alice", ref(id=UNKNOWN_ID), 5), lambda w: w.ids["mallory"], UNKNOWN_ID)),
    P(lambda w: w.transfer("alice", "mallory", 5), C.NOT_FOUND, "ACCOUNT_NOT_FOUND",
      id="post-other-tenants-account-by-code",
      like_unknown=(lambda w: w.transfer("alice", "nobody1", 5), lambda w: "mallory", "nobody1")),
    P(lambda w: w.transfer(ref(id=w.ids["mallory"]), "alice", 5), C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE",
      id="post-from-other-tenants-account-by-id"),
    P(lambda w: w.transfer("ice", "bob", 5), C.FAILED_PRECONDITION, "ACCOUNT_FROZEN",
      id="post-from-frozen-account", meta={"account_id": lambda w: w.ids["ice"]}),
    P(lambda w: w.transfer("bob", "ice", 5), C.FAILED_PRECONDITION, "ACCOUNT_FROZEN",
      id="post-to-frozen-account"),
    P(lambda w: w.transfer("alice", "shut", 5), C.FAILED_PRECONDITION, "ACCOUNT_CLOSED",
      id="post-to-closed-account"),
    P(lambda w: w.transfer("alice", "euro", 5), C.FAILED_PRECONDITION, "CURRENCY_MISMATCH",
      id="post-currency-mismatch",
      meta={"account_currency": "EUR", "line_currency": "USD", "account_id": lambda w: w.ids["euro"]}),
    P(lambda w: w.transfer("alice", "bob", 5, "EUR"), C.FAILED_PRECONDITION, "CURRENCY_MISMATCH",
      id="post-currency-mismatch-both-sides"),
    P(lambda w: w.transfer("alice", "alice", 5), C.INVALID_ARGUMENT, "SAME_ACCOUNT_BOTH_SIDES",
      id="post-same-account-both-sides"),
    P(lambda w: w.transfer(ref(id=w.ids["alice"]), "alice", 5), C.INVALID_ARGUMENT, "SAME_ACCOUNT_BOTH_SIDES",
      id="post-same-account-both-sides-by-id-and-code"),
    P(lambda w: w.adjust(lines_usd(("alice", "debit", 5), ("alice", "credit", 5))),
      C.INVALID_ARGUMENT, "SAME_ACCOUNT_BOTH_SIDES", id="post-adjustment-same-account-both-sides"),
    P(lambda w: w.adjust([line(ref(id=w.ids["alice"]), "debit", 5), line("alice", "credit", 5)]),
      C.INVALID_ARGUMENT, "SAME_ACCOUNT_BOTH_SIDES", id="post-adjustment-same-account-both-sides-by-id-and-code"),
    P(lambda w: w.transfer(ref(), "bob", 5), C.INVALID_ARGUMENT, "ACCOUNT_REF_INVALID",
      id="post-missing-from-ref", meta={"field": "transfer.from"}),
    P(lambda w: w.transfer("alice", ref(), 5), C.INVALID_ARGUMENT, "ACCOUNT_REF_INVALID",
      id="post-missing-to-ref", meta={"field": "transfer.to"}),
    P(lambda w: w.transfer("alice", types_pb2.AccountRef(code=""), 5), C.INVALID_ARGUMENT, "ACCOUNT_REF_INVALID",
      id="post-empty-code-ref"),
    P(lambda w: w.adjust([line("funding-usd", "debit", 5), types_pb2.LineInput(
        side=types_pb2.SIDE_CREDIT, amount=5, currency="USD")]),
      C.INVALID_ARGUMENT, "ACCOUNT_REF_INVALID", id="post-adjustment-line-without-account",
      meta={"field": "lines[1].account"}),
    P(lambda w: w.transfer("alice", "bad code", 5), C.INVALID_ARGUMENT, "ACCOUNT_CODE_INVALID",
      id="post-malformed-account-code"),
    # --- Post: lines and flows ---------------------------------------------------------------------
    P(lambda w: w.adjust([line("funding-usd", "debit", 64)] + [line("alice", "credit", 1)] * 64),
      C.INVALID_ARGUMENT, "VOUCHER_TOO_MANY_LINES", id="post-65-lines"),
    P(lambda w: w.adjust([line("alice", "credit", 5)]), C.INVALID_ARGUMENT, "VOUCHER_TOO_FEW_LINES",
      id="post-one-line"),
    P(lambda w: w.adjust([]), C.INVALID_ARGUMENT, "VOUCHER_TOO_FEW_LINES", id="post-no-lines"),
    P(lambda w: w.adjust([line("funding-usd", "debit", 5), line("alice", types_pb2.SIDE_UNSPECIFIED, 5)]),
      C.INVALID_ARGUMENT, "FIELD_REQUIRED", id="post-unspecified-side", meta={"field": "lines[1].side"}),
    P(lambda w: w.adjust([line("funding-usd", "debit", 5), line("alice", 7, 5)]),
      C.INVALID_ARGUMENT, "ENUM_INVALID", id="post-unknown-side"),
    P(lambda w: w.adjust([line("funding-usd", "debit", 5), line("alice", "credit", 5, currency="")]),
      C.INVALID_ARGUMENT, "CURRENCY_MISSING", id="post-line-without-currency"),
    P(lambda w: w.adjust(lines_usd(("funding-usd", "debit", 5), ("alice", "credit", 5)), reason="  "),
      C.INVALID_ARGUMENT, "REASON_MISSING", id="post-adjustment-without-reason"),
    P(lambda w: w.post(post_pb.PostRequest(request_id="no-flow")), C.INVALID_ARGUMENT, "FLOW_MISSING",
      id="post-no-flow"),
    P(lambda w: w.transfer("alice", "bob", 5, memo="m" * 513), C.INVALID_ARGUMENT, "TEXT_TOO_LONG",
      id="post-memo-too-long"),
    P(lambda w: w.transfer("alice", "bob", 5, currency=""), C.INVALID_ARGUMENT, "CURRENCY_MISSING",
      id="post-transfer-without-currency"),
    # google.protobuf.Timestamp spans 0001-01-01..9999-12-31; seconds * 10**6 must also fit the int64 column.
    P(lambda w: w.transfer("alice", "bob", 5, **at(2**62)), C.INVALID_ARGUMENT, "TIMESTAMP_INVALID",
      id="post-effective-time-beyond-int64-microseconds"),
    P(lambda w: w.transfer("alice", "bob", 5, **at(253_402_300_800)), C.INVALID_ARGUMENT, "TIMESTAMP_INVALID",
      id="post-effective-time-after-year-9999"),
    # Valid Timestamps, but outside the window around now (400 days back, 7 days ahead by default).
    P(lambda w: w.transfer("alice", "bob", 5, **at(-62_135_596_800)), C.INVALID_ARGUMENT,
      "EFFECTIVE_TIME_OUT_OF_RANGE", id="post-effective-time-year-1",
      meta={"past_max_s": str(400 * 86_400), "future_max_s": str(7 * 86_400)}),
    P(lambda w: w.transfer("alice", "bob", 5, **at(253_402_300_799)), C.INVALID_ARGUMENT,
      "EFFECTIVE_TIME_OUT_OF_RANGE", id="post-effective-time-year-9999"),
    P(lambda w: w.transfer("alice", "bob", 5, **at(int(time.time()) - 401 * 86_400)), C.INVALID_ARGUMENT,
      "EFFECTIVE_TIME_OUT_OF_RANGE", id="post-effective-time-401-days-ago"),
    P(lambda w: w.transfer("alice", "bob", 5, **at(int(time.time()) + 8 * 86_400)), C.INVALID_ARGUMENT,
      "EFFECTIVE_TIME_OUT_OF_RANGE", id="post-effective-time-8-days-ahead"),
    P(lambda w: w.post(post_pb.PostRequest(request_id=w.rid(), **at(-62_135_596_800), funding=flows_pb2.FundingFlow(
        consumer="c1", processor="p1", amount=5, currency="USD"))), C.INVALID_ARGUMENT,
      "EFFECTIVE_TIME_OUT_OF_RANGE", id="post-rule-flow-effective-time-year-1"),
    P(lambda w: w.adjust(lines_usd(("funding-usd", "debit", 5), ("alice", "credit", 5)), **at(253_402_300_799)),
      C.INVALID_ARGUMENT, "EFFECTIVE_TIME_OUT_OF_RANGE", id="post-adjustment-effective-time-year-9999"),
    # --- Post: request id and metadata -------------------------------------------------------------
    P(lambda w: w.transfer("alice", "bob", 5, request_id=""), C.INVALID_ARGUMENT, "REQUEST_ID_MISSING",
      id="post-missing-request-id"),
    P(lambda w: w.transfer("alice", "bob", 5, request_id="has space"), C.INVALID_ARGUMENT, "REQUEST_ID_INVALID",
      id="post-request-id-with-space"),
    P(lambda w: w.transfer("alice", "bob", 5, request_id="r" * 129), C.INVALID_ARGUMENT, "REQUEST_ID_INVALID",
      id="post-request-id-too-long"),
    P(lambda w: w.transfer("alice", "bob", 5, request_id="ok\n"), C.INVALID_ARGUMENT, "REQUEST_ID_INVALID",
      id="post-request-id-trailing-newline"),
    P(lambda w: w.transfer("alice", "bob", 1, request_id="t-1", memo="changed"), C.ALREADY_EXISTS,
      "REQUEST_ID_REUSED", id="post-request-id-reused-other-body", meta={"fields": "memo", "request_id": "t-1"}),
    P(lambda w: w.transfer("alice", "bob", 5, metadata={f"k{i}": "v" for i in range(33)}),
      C.INVALID_ARGUMENT, "METADATA_TOO_LARGE", id="post-metadata-33-entries"),
    P(lambda w: w.transfer("alice", "bob", 5, metadata={"k": "v" * 513}), C.INVALID_ARGUMENT,
      "METADATA_TOO_LARGE", id="post-metadata-value-too-long"),
    P(lambda w: w.transfer("alice", "bob", 5, metadata={f"key{i}": "v" * 500 for i in range(9)}),
      C.INVALID_ARGUMENT, "METADATA_TOO_LARGE", id="post-metadata-over-4096-bytes"),
    P(lambda w: w.transfer("alice", "bob", 5, metadata={"bad key": "v"}), C.INVALID_ARGUMENT, "METADATA_INVALID",
      id="post-metadata-malformed-key", meta={"key": "bad key"}),
    P(lambda w: w.transfer("alice", "bob", 5, metadata={"key\n": "v"}), C.INVALID_ARGUMENT, "METADATA_INVALID",
      id="post-metadata-key-trailing-newline"),
    P(lambda w: w.transfer("alice", "bob", 5, metadata={"": "v"}), C.INVALID_ARGUMENT, "METADATA_INVALID",
      id="post-metadata-empty-key"),
    # The server's own voucher keys are not the caller's to set (a caller's `reason` replaced an adjustment's).
    P(lambda w: w.adjust(lines_usd(("funding-usd", "debit", 5), ("alice", "credit", 5)), metadata={"reason": "x"}),
      C.INVALID_ARGUMENT, "METADATA_KEY_RESERVED", id="post-adjustment-metadata-reason", meta={"key": "reason"}),
    P(lambda w: w.transfer("alice", "bob", 5, metadata={"rule_voucher": "x"}), C.INVALID_ARGUMENT,
      "METADATA_KEY_RESERVED", id="post-transfer-metadata-rule-voucher", meta={"key": "rule_voucher"}),
    P(lambda w: w.post(post_pb.PostRequest(request_id=w.rid(), metadata={"rule_voucher": "forged"},
                                           funding=flows_pb2.FundingFlow(consumer="c1", processor="p1", amount=5,
                                                                         currency="USD"))),
      C.INVALID_ARGUMENT, "METADATA_KEY_RESERVED", id="post-rule-flow-metadata-rule-voucher"),
    P(lambda w: w.post(post_pb.PostRequest(request_id=w.rid(), metadata={"refund_of": "t-1"},
                                           refund=flows_pb2.RefundFlow(original_request_id="t-1", amount=1,
                                                                       currency="USD", reason="r"))),
      C.INVALID_ARGUMENT, "METADATA_KEY_RESERVED", id="post-refund-metadata-refund-of"),
    # --- tenant --------------------------------------------------------------------------------------
    # The tenant comes from the credential; credentials themselves are covered by test_e2e_auth.
    P(lambda w: w.transfer("alice", "bob", 5, tenant=None), C.UNAUTHENTICATED, "CREDENTIALS_MISSING",
      id="post-no-credentials"),
    # --- ReverseVoucher ----------------------------------------------------------------------------
    P(lambda w: w.reverse(w.vouchers["t-2"]), C.FAILED_PRECONDITION, "VOUCHER_ALREADY_REVERSED",
      id="reverse-already-reversed"),
    P(lambda w: w.reverse(w.vouchers["rv-2"]), C.FAILED_PRECONDITION, "VOUCHER_IS_REVERSAL",
      id="reverse-a-reversal"),
    P(lambda w: w.reverse(UNKNOWN_ID), C.PERMISSION_DENIED, "VOUCHER_NOT_ACCESSIBLE", id="reverse-unknown-voucher"),
    P(lambda w: w.reverse(w.vouchers["rival-fund"]), C.PERMISSION_DENIED, "VOUCHER_NOT_ACCESSIBLE",
      id="reverse-other-tenants-voucher",
      like_unknown=(lambda w: w.reverse(UNKNOWN_ID), lambda w: w.vouchers["rival-fund"], UNKNOWN_ID)),
    P(lambda w: w.reverse(w.vouchers["t-1"], request_id=""), C.INVALID_ARGUMENT, "REQUEST_ID_MISSING",
      id="reverse-missing-request-id"),
    P(lambda w: w.reverse(w.vouchers["t-1"], request_id="t-1"), C.ALREADY_EXISTS, "REQUEST_ID_REUSED",
      id="reverse-with-a-post-request-id", meta={"fields": "operation"}),
    P(lambda w: w.reverse(w.vouchers["fund-alice"]), C.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS",
      id="reverse-would-overdraw"),
    # --- CreateAccount -----------------------------------------------------------------------------
    P(lambda w: w.create(currency="XYZ"), C.INVALID_ARGUMENT, "CURRENCY_UNKNOWN", id="create-unknown-currency",
      meta={"currency": "XYZ"}),
    P(lambda w: w.create(currency="usd"), C.INVALID_ARGUMENT, "CURRENCY_UNKNOWN", id="create-lowercase-currency"),
    P(lambda w: w.create(type=types_pb2.ACCOUNT_TYPE_INTERNAL), C.INVALID_ARGUMENT, "NORMAL_SIDE_REQUIRED",
      id="create-internal-without-normal-side"),
    P(lambda w: w.create(normal_side=types_pb2.SIDE_DEBIT), C.INVALID_ARGUMENT, "NORMAL_SIDE_INVALID",
      id="create-debit-normal-deposit"),
    P(lambda w: w.create(floor_policy=types_pb2.FLOOR_POLICY_UNBOUNDED), C.INVALID_ARGUMENT,
      "FLOOR_POLICY_INVALID", id="create-unbounded-deposit"),
    P(lambda w: w.create(credit_limit=100), C.INVALID_ARGUMENT, "CREDIT_LIMIT_NOT_ALLOWED",
      id="create-deposit-with-credit-limit"),
    P(lambda w: w.create(type=types_pb2.ACCOUNT_TYPE_CREDIT, credit_limit=-1), C.INVALID_ARGUMENT,
      "CREDIT_LIMIT_INVALID", id="create-negative-credit-limit"),
    # A limit of int64 max was accepted, and then available (current - locked + limit) overflowed on every credit.
    P(lambda w: w.create(type=types_pb2.ACCOUNT_TYPE_CREDIT, credit_limit=INT64_MAX), C.INVALID_ARGUMENT,
      "CREDIT_LIMIT_TOO_LARGE", id="create-credit-limit-int64-max", meta={"credit_limit_max": str(2**62)}),
    P(lambda w: w.create(type=types_pb2.ACCOUNT_TYPE_CREDIT, credit_limit=2**62 + 1), C.INVALID_ARGUMENT,
      "CREDIT_LIMIT_TOO_LARGE", id="create-credit-limit-past-its-max"),
    P(lambda w: w.create(code="alice"), C.ALREADY_EXISTS, "ACCOUNT_CODE_TAKEN", id="create-duplicate-code",
      meta={"code": "alice"}),
    P(lambda w: w.create(code="bad code"), C.INVALID_ARGUMENT, "ACCOUNT_CODE_INVALID", id="create-code-with-space"),
    P(lambda w: w.create(code=""), C.INVALID_ARGUMENT, "ACCOUNT_CODE_INVALID", id="create-empty-code"),
    P(lambda w: w.create(code="-lead"), C.INVALID_ARGUMENT, "ACCOUNT_CODE_INVALID", id="create-code-leading-dash"),
    P(lambda w: w.create(code="alice2\n"), C.INVALID_ARGUMENT, "ACCOUNT_CODE_INVALID",
      id="create-code-trailing-newline"),
    P(lambda w: w.create(code="c" * 129), C.INVALID_ARGUMENT, "ACCOUNT_CODE_INVALID", id="create-code-too-long"),
    P(lambda w: w.create(type=types_pb2.ACCOUNT_TYPE_UNSPECIFIED), C.INVALID_ARGUMENT, "FIELD_REQUIRED",
      id="create-unspecified-type", meta={"field": "type"}),
    P(lambda w: w.create(type=99), C.INVALID_ARGUMENT, "ENUM_INVALID", id="create-unknown-type"),
    P(lambda w: w.create(name="n" * 257), C.INVALID_ARGUMENT, "TEXT_TOO_LONG", id="create-name-too-long"),
    P(lambda w: w.create(metadata={"bad key": "v"}), C.INVALID_ARGUMENT, "METADATA_INVALID",
      id="create-metadata-malformed-key"),
    P(lambda w: w.create(request_id=""), C.INVALID_ARGUMENT, "REQUEST_ID_MISSING", id="create-missing-request-id"),
    P(lambda w: w.create(request_id="t-1"), C.ALREADY_EXISTS, "REQUEST_ID_REUSED",
      id="create-with-a-post-request-id"),
    P(lambda w: w.create(parent=ref("nobody")), C.NOT_FOUND, "ACCOUNT_NOT_FOUND", id="create-unknown-parent"),
    P(lambda w: w.create(parent=ref(id=w.ids["mallory"])), C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE",
      id="create-other-tenants-parent"),
    P(lambda w: w.create(parent=ref("shut")), C.FAILED_PRECONDITION, "ACCOUNT_CLOSED",
      id="create-closed-parent"),
    P(lambda w: w.create(code="chain-8", parent=ref("chain-7")), C.FAILED_PRECONDITION, "ACCOUNT_TOO_DEEP",
      id="create-ninth-level-of-hierarchy", prepare=lambda w: account_chain(w, 8)),
    # --- UpdateAccount -----------------------------------------------------------------------------
    P(lambda w: w.update("alice", [], name="x"), C.INVALID_ARGUMENT, "UPDATE_MASK_EMPTY", id="update-empty-mask"),
    P(lambda w: w.update("alice", ["currency"], currency="EUR"), C.INVALID_ARGUMENT, "UPDATE_MASK_INVALID",
      id="update-unknown-path", meta={"fields": "currency"}),
    P(lambda w: w.update("alice", ["name", "balance"], name="x"), C.INVALID_ARGUMENT, "UPDATE_MASK_INVALID",
      id="update-one-unknown-path-among-good"),
    P(lambda w: w.update("alice", ["status"]), C.INVALID_ARGUMENT, "FIELD_REQUIRED",
      id="update-status-unspecified"),
    P(lambda w: w.update("alice", ["status"], status=types_pb2.ACCOUNT_STATUS_CLOSED), C.FAILED_PRECONDITION,
      "ACCOUNT_BALANCE_NOT_ZERO", id="update-close-non-zero-balance"),
    P(lambda w: w.update("shut", ["status"], status=types_pb2.ACCOUNT_STATUS_ACTIVE), C.FAILED_PRECONDITION,
      "ACCOUNT_CLOSED", id="update-reopen-closed"),
    P(lambda w: w.update("alice", ["credit_limit"], credit_limit=10), C.INVALID_ARGUMENT,
      "CREDIT_LIMIT_NOT_ALLOWED", id="update-credit-limit-on-deposit"),
    P(lambda w: w.update("card", ["credit_limit"], credit_limit=-1), C.INVALID_ARGUMENT,
      "CREDIT_LIMIT_INVALID", id="update-negative-credit-limit"),
    P(lambda w: w.update("card", ["credit_limit"], credit_limit=INT64_MAX), C.INVALID_ARGUMENT,
      "CREDIT_LIMIT_TOO_LARGE", id="update-credit-limit-int64-max"),
    P(lambda w: w.update("alice", ["metadata"], metadata={"bad key": "v"}), C.INVALID_ARGUMENT,
      "METADATA_INVALID", id="update-metadata-malformed-key"),
    P(lambda w: w.update("alice", ["name"], name="n" * 257), C.INVALID_ARGUMENT, "TEXT_TOO_LONG",
      id="update-name-too-long"),
    P(lambda w: w.update("nobody", ["name"], name="x"), C.NOT_FOUND, "ACCOUNT_NOT_FOUND",
      id="update-unknown-account"),
    P(lambda w: w.update(ref(id=w.ids["mallory"]), ["status"], status=types_pb2.ACCOUNT_STATUS_FROZEN),
      C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE", id="update-freeze-other-tenants-account",
      like_unknown=(lambda w: w.update(ref(id=UNKNOWN_ID), ["status"], status=types_pb2.ACCOUNT_STATUS_FROZEN),
                    lambda w: w.ids["mallory"], UNKNOWN_ID)),
    P(lambda w: w.update("alice", ["name"], request_id="", name="x"), C.INVALID_ARGUMENT, "REQUEST_ID_MISSING",
      id="update-missing-request-id"),
    P(lambda w: w.update(ref(), ["name"], name="x"), C.INVALID_ARGUMENT, "ACCOUNT_REF_INVALID",
      id="update-missing-account-ref"),
    # --- reads -------------------------------------------------------------------------------------
    P(lambda w: w.get_voucher(UNKNOWN_ID), C.PERMISSION_DENIED, "VOUCHER_NOT_ACCESSIBLE", id="get-voucher-unknown"),
    P(lambda w: w.get_voucher(w.vouchers["rival-fund"]), C.PERMISSION_DENIED, "VOUCHER_NOT_ACCESSIBLE",
      id="get-voucher-other-tenants",
      like_unknown=(lambda w: w.get_voucher(UNKNOWN_ID), lambda w: w.vouchers["rival-fund"], UNKNOWN_ID)),
    P(lambda w: w.get_account(ref(id=w.ids["mallory"])), C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE",
      id="get-account-other-tenants-by-id",
      like_unknown=(lambda w: w.get_account(ref(id=UNKNOWN_ID)), lambda w: w.ids["mallory"], UNKNOWN_ID)),
    P(lambda w: w.get_balance("mallory"), C.NOT_FOUND, "ACCOUNT_NOT_FOUND", id="get-balance-other-tenants-by-code",
      like_unknown=(lambda w: w.get_balance("nobody1"), lambda w: "mallory", "nobody1")),
    P(lambda w: w.list_entries(ref(id=w.ids["mallory"])), C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE",
      id="list-entries-other-tenants-account"),
    P(lambda w: w.get_account(ref()), C.INVALID_ARGUMENT, "ACCOUNT_REF_INVALID", id="get-account-missing-ref"),
    P(lambda w: w.list_vouchers(page_token="not-a-token!"), C.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID",
      id="list-vouchers-bad-page-token"),
    P(lambda w: w.list_accounts(page_token="AAAA"), C.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID",
      id="list-accounts-bad-page-token"),
    P(lambda w: w.list_entries("alice", page_token="%%%"), C.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID",
      id="list-entries-bad-page-token"),
    P(lambda w: w.list_accounts(page_token=w.list_vouchers(page_size=1).next_page_token), C.INVALID_ARGUMENT,
      "PAGE_TOKEN_INVALID", id="list-accounts-with-a-voucher-page-token"),
    P(lambda w: w.list_vouchers(page_size=-1), C.INVALID_ARGUMENT, "PAGE_SIZE_INVALID",
      id="list-vouchers-negative-page-size"),
    P(lambda w: w.list_accounts(page_size=-5), C.INVALID_ARGUMENT, "PAGE_SIZE_INVALID",
      id="list-accounts-negative-page-size"),
    P(lambda w: w.list_entries("alice", page_size=-1), C.INVALID_ARGUMENT, "PAGE_SIZE_INVALID",
      id="list-entries-negative-page-size"),
    P(lambda w: w.list_accounts(type=99), C.INVALID_ARGUMENT, "ENUM_INVALID", id="list-accounts-unknown-type"),
    P(lambda w: w.get_balance("alice", as_of_date="2026-13-01"), C.INVALID_ARGUMENT, "DATE_INVALID",
      id="get-balance-month-13", meta={"field": "as_of_date"}),
    P(lambda w: w.get_balance("alice", as_of_date="20260101"), C.INVALID_ARGUMENT, "DATE_INVALID",
      id="get-balance-basic-format-date"),
    P(lambda w: w.list_entries("alice", start_date="yesterday"), C.INVALID_ARGUMENT, "DATE_INVALID",
      id="list-entries-bad-start-date"),
    # --- found by test_e2e_fuzz ----------------------------------------------------------------------
    # An id with NUL cannot exist, and is answered like one that does not; PostgreSQL refuses NUL in a
    # text parameter, and these answered UNAVAILABLE DATABASE_UNAVAILABLE there.
    P(lambda w: w.get_voucher("\x00"), C.PERMISSION_DENIED, "VOUCHER_NOT_ACCESSIBLE", id="get-voucher-nul-id",
      like_unknown=(lambda w: w.get_voucher(UNKNOWN_ID), lambda w: "\x00", UNKNOWN_ID)),
    P(lambda w: w.get_account(ref(id="a\x00b")), C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE",
      id="get-account-nul-id"),
    P(lambda w: w.transfer(ref(id="\x00"), "bob", 5), C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE",
      id="post-transfer-from-nul-id"),
    P(lambda w: w.reverse("\x00"), C.PERMISSION_DENIED, "VOUCHER_NOT_ACCESSIBLE", id="reverse-nul-voucher-id"),
    P(lambda w: w.get_hold("\x00"), C.PERMISSION_DENIED, "HOLD_NOT_ACCESSIBLE", id="get-hold-nul-id"),
    P(lambda w: w.release("h\x00"), C.PERMISSION_DENIED, "HOLD_NOT_ACCESSIBLE", id="release-hold-nul-id"),
    P(lambda w: w.post(post_pb.PostRequest(request_id=w.rid(), refund=flows_pb2.RefundFlow(
        original_request_id="t-1\x00", amount=1, currency="USD", reason="fuzz"))),
      C.NOT_FOUND, "ORIGINAL_NOT_FOUND", id="post-refund-of-nul-request-id"),
    # Page tokens are opaque but not sealed: a forged position past int64 reached the database (UNAVAILABLE).
    P(lambda w: w.list_vouchers(page_token=forged_token(w.list_vouchers(page_size=1).next_page_token, 2**63)),
      C.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID", id="list-vouchers-forged-token-past-int64"),
    P(lambda w: w.list_entries("alice", page_token=forged_token(
        w.list_entries("alice", page_size=1).next_page_token, -(2**63) - 1)),
      C.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID", id="list-entries-forged-token-below-int64"),
    # An error echoes what it names: echoed whole, a 20 kB id made trailers the client refused (it saw
    # RESOURCE_EXHAUSTED and no google.rpc.Status at all).
    P(lambda w: w.get_voucher("v" * 20_000), C.PERMISSION_DENIED, "VOUCHER_NOT_ACCESSIBLE",
      id="get-voucher-20k-id"),
    P(lambda w: w.get_hold("\U0001f600" * 5_000), C.PERMISSION_DENIED, "HOLD_NOT_ACCESSIBLE",
      id="get-hold-20k-bytes-id"),
]


def _refusal(call: Callable[[World], object], w: World) -> grpc.RpcError:
    try:
        answer = call(w)
    except grpc.RpcError as err:
        return err
    pytest.fail(f"accepted instead of refused; the server answered: "
                f"{text_format.MessageToString(answer, as_one_line=True)[:800]}")


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_and_changes_nothing(shared_server: Server, case: Case) -> None:
    w = build_world(shared_server)
    if case.prepare is not None:
        case.prepare(w)
    before = w.snapshot()

    err = _refusal(case.call, w)
    code, reason, meta = error_info(err)
    assert (code, reason) == (case.code, case.reason), f"{err.details()} {meta}"
    for key, expected in case.meta.items():
        value = expected(w) if callable(expected) else expected
        assert meta.get(key) == value, f"ErrorInfo.metadata[{key!r}]: {meta}"

    if case.like_unknown is not None:
        # Another tenant's account or voucher is answered exactly like one that does not exist.
        twin_call, name_of, unknown = case.like_unknown
        twin = _refusal(twin_call, w)
        twin_code, twin_reason, twin_meta = error_info(twin)
        hidden = name_of(w)
        assert (twin_code, twin_reason) == (code, reason)
        assert {k: v.replace(hidden, unknown) for k, v in meta.items()} == twin_meta
        assert err.details().replace(hidden, unknown) == twin.details()

    assert w.snapshot() == before, "a refused request changed the ledger"


def test_cases_have_unique_ids() -> None:
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids))
