"""Proto <-> domain. Nothing here decides anything: it translates, and refuses what cannot be translated."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from tally.domain.accounts import Account, AccountChange, AccountStatus, AccountType, FloorPolicy, NewAccount, Side
from tally.domain.errors import invalid
from tally.domain.facts import Facts, Share, check_facts
from tally.domain.flows import AdjustmentFlow, Flow, RefundFlow, RuleFlow, TransferFlow
from tally.domain.fx import FxFlow
from tally.domain.hierarchy import RollUp
from tally.domain.holds import Hold, HoldStatus
from tally.domain.subaccounts import SubAccountTransferFlow
from tally.domain.vouchers import AccountRef, LineDraft, Voucher
from tally.service.queries import BalanceView, Entry
from tally.v1 import flows_pb2 as flows_pb
from tally.v1 import types_pb2 as pb

ACCOUNT_TYPES = {pb.ACCOUNT_TYPE_DEPOSIT: AccountType.DEPOSIT, pb.ACCOUNT_TYPE_CREDIT: AccountType.CREDIT,
                 pb.ACCOUNT_TYPE_SECURITY_DEPOSIT: AccountType.SECURITY_DEPOSIT,
                 pb.ACCOUNT_TYPE_INTERNAL: AccountType.INTERNAL}
SIDES = {pb.SIDE_DEBIT: Side.DEBIT, pb.SIDE_CREDIT: Side.CREDIT}
STATUSES = {pb.ACCOUNT_STATUS_ACTIVE: AccountStatus.ACTIVE, pb.ACCOUNT_STATUS_FROZEN: AccountStatus.FROZEN,
            pb.ACCOUNT_STATUS_CLOSED: AccountStatus.CLOSED, pb.ACCOUNT_STATUS_INCONSISTENT: AccountStatus.INCONSISTENT}
FLOORS = {pb.FLOOR_POLICY_NON_NEGATIVE: FloorPolicy.NON_NEGATIVE, pb.FLOOR_POLICY_UNBOUNDED: FloorPolicy.UNBOUNDED}


def _reverse(table: dict) -> dict:
    return {v: k for k, v in table.items()}


ACCOUNT_TYPES_PB, SIDES_PB = _reverse(ACCOUNT_TYPES), _reverse(SIDES)
STATUSES_PB, FLOORS_PB = _reverse(STATUSES), _reverse(FLOORS)


def enum_in(table: dict, value: int, field: str, *, required: bool = True):
    if value in table:
        return table[value]
    if value == 0 and not required:
        return None
    raise invalid("ENUM_INVALID" if value else "FIELD_REQUIRED", f"{field} must be set to a known value", field=field)


# --- times -------------------------------------------------------------------------------------------

# The range google.protobuf.Timestamp defines: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
TIMESTAMP_SECONDS_MIN = -62_135_596_800
TIMESTAMP_SECONDS_MAX = 253_402_300_799


def us_from_timestamp(ts: timestamp_pb2.Timestamp, field: str) -> int:
    if not TIMESTAMP_SECONDS_MIN <= ts.seconds <= TIMESTAMP_SECONDS_MAX or not 0 <= ts.nanos < 1_000_000_000:
        raise invalid("TIMESTAMP_INVALID", f"{field} is outside 0001-01-01..9999-12-31", field=field)
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def timestamp_from_us(us: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


# --- requests ----------------------------------------------------------------------------------------

def ref_in(ref: pb.AccountRef, field: str = "account") -> AccountRef:
    which = ref.WhichOneof("ref")
    if which is None:
        raise invalid("ACCOUNT_REF_INVALID", f"{field} must name an account by id or code", field=field)
    return AccountRef(id=ref.id) if which == "id" else AccountRef(code=ref.code)


def new_account_in(request) -> tuple[NewAccount, AccountRef | None]:
    spec = NewAccount(
        code=request.code, type=enum_in(ACCOUNT_TYPES, request.type, "type"), currency=request.currency,
        normal_side=enum_in(SIDES, request.normal_side, "normal_side", required=False), name=request.name,
        credit_limit=request.credit_limit,
        floor_policy=enum_in(FLOORS, request.floor_policy, "floor_policy", required=False),
        metadata=dict(request.metadata),
    )
    parent = ref_in(request.parent, "parent") if request.HasField("parent") else None
    return spec, parent


UPDATABLE = ("status", "credit_limit", "name", "metadata")


def account_change_in(request) -> AccountChange:
    paths = list(request.update_mask.paths)
    if not paths:
        raise invalid("UPDATE_MASK_EMPTY", f"update_mask must name at least one of {', '.join(UPDATABLE)}")
    unknown = [p for p in paths if p not in UPDATABLE]
    if unknown:
        raise invalid("UPDATE_MASK_INVALID", f"cannot update {', '.join(unknown)}", fields=",".join(unknown))
    new = request.account_update
    return AccountChange(
        status=enum_in(STATUSES, new.status, "account_update.status") if "status" in paths else None,
        credit_limit=new.credit_limit if "credit_limit" in paths else None,
        name=new.name if "name" in paths else None,
        metadata=dict(new.metadata) if "metadata" in paths else None,
    )


def line_in(line: pb.LineInput, i: int) -> LineDraft:
    return LineDraft(ref_in(line.account, f"lines[{i}].account"), enum_in(SIDES, line.side, f"lines[{i}].side"),
                     line.amount, line.currency, line.memo)


def flow_in(request) -> Flow:
    which = request.WhichOneof("flow")
    if which is None:
        raise invalid("FLOW_MISSING", "the request must carry one business flow")
    flow = getattr(request, which)
    if which == "transfer":
        return TransferFlow(ref_in(getattr(flow, "from"), "transfer.from"), ref_in(flow.to, "transfer.to"),
                            flow.amount, flow.currency, flow.memo)
    if which == "fx":
        return FxFlow(ref_in(getattr(flow, "from"), "fx.from"), ref_in(flow.to, "fx.to"), flow.amount,
                      flow.from_currency, flow.to_currency, flow.rate_numerator, flow.rate_denominator, flow.memo)
    if which == "adjustment":
        return AdjustmentFlow(tuple(line_in(ln, i) for i, ln in enumerate(flow.lines)), flow.reason)
    if which == "sub_account_transfer":
        return SubAccountTransferFlow(flow.account, flow.from_sub, flow.to_sub, flow.amount, flow.currency,
                                      flow.memo)
    if which == "refund":
        return RefundFlow(flow.original_request_id, flow.amount, flow.currency, flow.reason)
    if which == "usage":
        return RuleFlow(_usage_facts(flow), hold_id=flow.hold_id)
    return RuleFlow(_FACTS[which](flow))


def _facts(flow_type: str, flow, values: dict[str, int], parties: tuple[str, ...], tags: dict[str, str] | None = None,
           shares: tuple[Share, ...] = ()) -> Facts:
    return check_facts(Facts(flow_type, flow.currency, values=values,
                             parties={p: getattr(flow, p) for p in parties}, tags=tags or {}, shares=shares))


def _usage_facts(flow) -> Facts:
    shares = tuple(Share(s.party, s.share_bps) for s in flow.shares)
    return _facts("usage", flow, {"amount": flow.amount}, ("consumer", "merchant", "affiliate"), shares=shares)


COUPON_ISSUERS = {flows_pb.COUPON_ISSUER_PLATFORM: "platform", flows_pb.COUPON_ISSUER_MERCHANT: "merchant",
                  flows_pb.COUPON_ISSUER_SHARED: "shared", flows_pb.COUPON_ISSUER_PURCHASED: "purchased"}
SETTLEMENT_KINDS = {flows_pb.SETTLEMENT_KIND_MERCHANT: "merchant", flows_pb.SETTLEMENT_KIND_CHANNEL: "channel",
                    flows_pb.SETTLEMENT_KIND_BANK: "bank", flows_pb.SETTLEMENT_KIND_PROCESSOR: "processor"}


def _acquisition_facts(flow) -> Facts:
    coupon = flow.coupon
    issuer = enum_in(COUPON_ISSUERS, coupon.issuer, "acquisition.coupon.issuer", required=False) or ""
    values = {"amount": flow.amount, "coupon_amount": coupon.amount,
              "coupon_merchant_share_bps": coupon.merchant_share_bps}
    return _facts("acquisition", flow, values, ("merchant", "channel"), {"coupon_issuer": issuer})


GUARANTEE_MODES = {flows_pb.GUARANTEE_MODE_UNSPECIFIED: "", flows_pb.GUARANTEE_MODE_SETTLEMENT_ORDER: "",
                   flows_pb.GUARANTEE_MODE_ACCOUNT: "account",
                   flows_pb.GUARANTEE_MODE_ACCOUNT_COLLECTION: "account_collection"}


def _settlement_facts(flow) -> Facts:
    kind = enum_in(SETTLEMENT_KINDS, flow.kind, "settlement.kind")
    actual = flow.actual_amount if flow.HasField("actual_amount") else flow.amount
    return _facts("settlement", flow, {"amount": flow.amount, "actual_amount": actual},
                  ("merchant", "channel", "processor"),
                  {"kind": kind})


_FACTS = {
    "funding": lambda f: _facts("funding", f, {"amount": f.amount}, ("consumer", "processor")),
    "acquisition": _acquisition_facts,
    "settlement": _settlement_facts,
    "payout": lambda f: _facts("payout", f, {"amount": f.amount}, ("merchant",)),
    "guarantee": lambda f: _facts("guarantee", f, {"amount": f.amount}, ("merchant",),
                                  {"mode": GUARANTEE_MODES.get(f.mode, "?")}),
}


# --- responses ---------------------------------------------------------------------------------------

def account_out(a: Account) -> pb.Account:
    return pb.Account(
        id=a.id, tenant_id=a.tenant_id, code=a.code, name=a.name, type=ACCOUNT_TYPES_PB[a.type],
        normal_side=SIDES_PB[a.normal_side], currency=a.currency, status=STATUSES_PB[a.status],
        parent_id=a.parent_id or "", credit_limit=a.credit_limit, floor_policy=FLOORS_PB[a.floor_policy],
        metadata=a.metadata, create_time=timestamp_from_us(a.created_us), update_time=timestamp_from_us(a.updated_us),
    )


def balance_out(b: BalanceView) -> pb.Balance:
    return pb.Balance(
        account_id=b.account_id, currency=b.currency, current=b.current, locked=b.locked, available=b.available,
        credit_limit=b.credit_limit, previous_day=b.previous_day, previous_day_date=b.previous_day_date,
        accounting_date=b.accounting_date, entry_count=b.entry_count,
    )


def rollup_out(r: RollUp) -> pb.RollUp:
    return pb.RollUp(currency=r.currency, own=r.own, descendants=r.descendants, total=r.total, own_locked=r.own_locked,
                     descendants_locked=r.descendants_locked, total_locked=r.total_locked,
                     descendant_accounts=r.descendant_accounts)


def voucher_out(v: Voucher) -> pb.Voucher:
    return pb.Voucher(**voucher_fields(v))


def add_voucher(vouchers, v: Voucher) -> None:
    """Appends `v` to a repeated Voucher field, built in place: a message built apart is copied whole into
    its parent (and a response nests three deep), which cost as much again as building it."""
    vouchers.add(**voucher_fields(v))


def voucher_fields(v: Voucher) -> dict:
    """A voucher's message fields, nested messages as dicts (the message is built in one call)."""
    return dict(
        id=v.id, tenant_id=v.tenant_id, sequence=v.sequence, flow_type=v.flow_type, request_id=v.request_id,
        rule_id=v.rule_id, rule_set_version=v.rule_set_version, accounting_date=v.accounting_date,
        effective_time=_timestamp_fields(v.effective_us), post_time=_timestamp_fields(v.posted_us),
        lines=[{"line_no": ln.line_no, "account_id": ln.account_id, "account_code": ln.account_code,
                "side": SIDES_PB[ln.side], "amount": ln.amount, "currency": ln.currency, "memo": ln.memo}
               for ln in v.lines],
        memo=v.memo, metadata=v.metadata, reverses_voucher_id=v.reverses_id or "",
        reversed_by_voucher_id=v.reversed_by_id or "", hash=v.hash, previous_hash=v.previous_hash,
    )


def _timestamp_fields(us: int) -> dict[str, int]:
    seconds, micros = divmod(us, 1_000_000)
    return {"seconds": seconds, "nanos": micros * 1000}


HOLD_STATUSES = {pb.HOLD_STATUS_ACTIVE: HoldStatus.ACTIVE, pb.HOLD_STATUS_CAPTURED: HoldStatus.CAPTURED,
                 pb.HOLD_STATUS_RELEASED: HoldStatus.RELEASED, pb.HOLD_STATUS_EXPIRED: HoldStatus.EXPIRED}
HOLD_STATUSES_PB = _reverse(HOLD_STATUSES)


def hold_out(h: Hold) -> pb.Hold:
    hold = pb.Hold(
        id=h.id, tenant_id=h.tenant_id, account_id=h.account_id, currency=h.currency, amount=h.amount,
        captured=h.captured, remaining=h.remaining, status=HOLD_STATUSES_PB[h.status],
        create_time=timestamp_from_us(h.created_us), update_time=timestamp_from_us(h.updated_us),
        request_id=h.request_id, created_by=h.created_by, memo=h.memo, metadata=h.metadata,
        capture_voucher_ids=h.capture_voucher_ids,
    )
    if h.expires_us is not None:
        hold.expire_time.CopyFrom(timestamp_from_us(h.expires_us))
    return hold


def entry_out(e: Entry) -> pb.Entry:
    return pb.Entry(
        entry_number=e.entry_number, voucher_id=e.voucher_id, line_no=e.line_no, account_id=e.account_id,
        side=SIDES_PB[Side(e.side)], amount=e.amount, currency=e.currency, balance_after=e.balance_after,
        flow_type=e.flow_type, memo=e.memo, accounting_date=e.accounting_date,
        post_time=timestamp_from_us(e.posted_us), account_code=e.account_code,
    )
