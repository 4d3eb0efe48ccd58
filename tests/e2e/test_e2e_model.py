"""Model-based test of the ledger over the real gRPC wire, on SQLite and PostgreSQL.

A Hypothesis state machine drives the real server with random sequences of adjustments, funding flows,
transfers, holds (create, partial and final capture, release), reversals, account freezes, closes and
credit-limit changes, exact resends and resends with a changed body, amounts in range and far out of it.
Next to the server it keeps a small pure-Python model of every account (current, locked, available,
entry count, status, credit limit), every hold and every voucher. Before each call the model predicts
the answer: accepted (with the exact lines, hold and voucher links it must carry), a replay of an earlier
answer, or a refusal with its exact gRPC code and ErrorInfo reason. After every step every balance,
hold, voucher and the trial balance are read back and compared with the model.

Each Hypothesis example works in a tenant of its own, so examples cannot see one another on the shared
server. A failure prints the shrunk step sequence and a ``@reproduce_failure`` blob: add it as a decorator
on ``LedgerMachine`` to replay the example. ``EXAMPLES`` x ``STEPS`` bound the cost (about 25 s on SQLite
and 40-60 s on PostgreSQL on two busy cores). Money is always an exact int.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

import grpc
from google.protobuf import field_mask_pb2
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import bookkeeping_service_pb2 as bk_pb
from tally.v1 import bookkeeping_service_pb2_grpc as bk_grpc
from tally.v1 import flows_pb2, types_pb2
from tests.e2e.conftest import Server, adjustment_request, error_info, line, md, ref, walk

USD = "USD"
AMOUNT_MAX = 2**63 - 1  # amounts and balances live in signed 64-bit
BALANCE_MIN = -(2**63)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED
EXISTS = grpc.StatusCode.ALREADY_EXISTS
RETRY_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)

DEBIT, CREDIT = "debit", "credit"
SIDE_PB = {DEBIT: types_pb2.SIDE_DEBIT, CREDIT: types_pb2.SIDE_CREDIT}
ACTIVE, FROZEN, CLOSED = (types_pb2.ACCOUNT_STATUS_ACTIVE, types_pb2.ACCOUNT_STATUS_FROZEN,
                          types_pb2.ACCOUNT_STATUS_CLOSED)
HOLD_ACTIVE, HOLD_CAPTURED, HOLD_RELEASED = (types_pb2.HOLD_STATUS_ACTIVE, types_pb2.HOLD_STATUS_CAPTURED,
                                             types_pb2.HOLD_STATUS_RELEASED)
HOLD_STATUS_NAMES = {HOLD_CAPTURED: "CAPTURED", HOLD_RELEASED: "RELEASED"}

# The accounts of every example. `consumer:` codes are what the default rule set's funding flow credits.
FUND = "fund"  # internal, debit-normal, unbounded: where adjustments take money from
INCOME = "income"  # internal, credit-normal, non-negative
DEPOSITS = ("consumer:d0:USD", "consumer:d1:USD", "consumer:d2:USD")  # deposit accounts, floor 0
CREDIT_ACCOUNT = "consumer:c0:USD"  # credit account with a credit limit
CREDIT_LIMIT_START = 1_000
OPENING = 1_000  # each deposit account's opening balance
NEW_CONSUMER = "consumer:n0:USD"  # opened from the rule set's template by its first accepted funding
PROCESSOR = "processor_clearing:card:USD"  # opened from a template by the first accepted funding
GHOST = "consumer:ghost:USD"  # never exists
CODES = (FUND, INCOME, *DEPOSITS, CREDIT_ACCOUNT, NEW_CONSUMER, PROCESSOR, GHOST)
CUSTOMERS = (*DEPOSITS, CREDIT_ACCOUNT, NEW_CONSUMER)
GHOST_ID = "00000000-0000-7000-8000-000000000000"  # a well-formed id nothing has

EXAMPLES = 25
STEPS = 30


# ------------------------------------------------------------------------------------------ requests
# Holds and vouchers are named by their index in the model (-1: one that does not exist), so a request is
# the same value in every run of an example, whatever ids the server hands out.


@dataclasses.dataclass(frozen=True)
class Transfer:
    rid: str
    src: str
    dst: str
    amount: int
    memo: str = ""
    op = "post"
    paths = {"src": "flow.source.code", "dst": "flow.destination.code", "amount": "flow.amount",
             "memo": "flow.memo"}


@dataclasses.dataclass(frozen=True)
class Adjust:
    rid: str
    lines: tuple[tuple[str, str, int], ...]  # (code, side, amount)
    reason: str = "model"
    op = "post"
    paths = {"reason": "flow.reason"}  # lines: per line and field, see `differing_paths`


@dataclasses.dataclass(frozen=True)
class Funding:
    rid: str
    consumer: str  # the account code, `consumer:<name>:USD`
    amount: int
    op = "post"
    paths = {"consumer": "flow.facts.parties.consumer", "amount": "flow.facts.values.amount"}


@dataclasses.dataclass(frozen=True)
class HoldCreate:
    rid: str
    account: str
    amount: int
    memo: str = ""
    op = "create_hold"
    paths = {"account": "account.code", "amount": "amount", "memo": "memo"}


@dataclasses.dataclass(frozen=True)
class Capture:
    rid: str
    hold: int
    amount: int
    dst: str
    final: bool
    op = "capture_hold"
    paths = {"hold": "hold_id", "amount": "amount", "dst": "destination.code", "final": "final"}


@dataclasses.dataclass(frozen=True)
class Release:
    rid: str
    hold: int
    reason: str = ""
    op = "release_hold"
    paths = {"hold": "hold_id", "reason": "reason"}


@dataclasses.dataclass(frozen=True)
class Reverse:
    rid: str
    voucher: int
    reason: str = ""
    op = "reverse"
    paths = {"voucher": "voucher_id", "reason": "reason"}


@dataclasses.dataclass(frozen=True)
class Update:
    rid: str
    account: str
    status: int | None = None
    credit_limit: int | None = None
    op = "update_account"
    paths = {"account": "account.code", "status": "change.status", "credit_limit": "change.credit_limit"}


Request = Transfer | Adjust | Funding | HoldCreate | Capture | Release | Reverse | Update


def body(req: Request) -> Request:
    return dataclasses.replace(req, rid="")


def differing_paths(first: Request, second: Request) -> list[str] | None:
    """The body paths the server names in REQUEST_ID_REUSED for two requests of one kind (None: another
    kind of the same operation, whose paths are not worth spelling out here)."""
    if type(first) is not type(second):
        return None
    paths = []
    for f in dataclasses.fields(first):
        a, b = getattr(first, f.name), getattr(second, f.name)
        if f.name == "rid" or a == b:
            continue
        if f.name == "lines":
            if len(a) != len(b):
                paths.append("flow.lines")
                continue
            for i, (la, lb) in enumerate(zip(a, b, strict=True)):
                paths += [f"flow.lines[{i}].{name}" for name, x, y in
                          zip(("account.code", "side", "amount"), la, lb, strict=True) if x != y]
            continue
        paths.append(first.paths[f.name])
    return sorted(paths)


# ------------------------------------------------------------------------------------------ the model


@dataclasses.dataclass
class MAccount:
    code: str
    type: str  # deposit, credit, internal
    normal_side: str
    floored: bool  # non-negative floor policy: a voucher lowering the balance keeps available >= 0
    credit_limit: int = 0
    status: int = ACTIVE
    current: int = 0
    locked: int = 0
    entries: int = 0
    id: str = ""

    @property
    def available(self) -> int:
        return self.current - self.locked + self.credit_limit

    @property
    def representable(self) -> bool:
        """Every figure of its balance fits the API's int64 fields."""
        return fits_int64(self.current) and fits_int64(self.available)

    @property
    def debit_balance(self) -> int:
        return self.current if self.normal_side == DEBIT else -self.current


@dataclasses.dataclass
class MHold:
    account: str
    amount: int
    captured: int = 0
    status: int = HOLD_ACTIVE
    id: str = ""
    capture_vouchers: list[int] = dataclasses.field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.amount - self.captured if self.status == HOLD_ACTIVE else 0


@dataclasses.dataclass
class MVoucher:
    id: str
    flow_type: str
    lines: tuple[tuple[str, str, int], ...]
    reverses: int | None = None
    reversed_by: int | None = None


@dataclasses.dataclass(frozen=True)
class Refused:
    code: grpc.StatusCode
    reason: str
    fields: list[str] | None = None  # REQUEST_ID_REUSED: the differing paths (None: just some)
    recorded: bool = False  # the refusal is the request's final answer, kept under its request id
    metadata: dict[str, str] | None = None  # a replayed refusal: the first one's ErrorInfo metadata


@dataclasses.dataclass(frozen=True)
class Replay:
    first: object  # the first answer


Accept = Callable[[object], None]  # checks an accepted answer against the model and applies it


@dataclasses.dataclass(frozen=True)
class Either:
    """Acceptance, or (just as right) `refusal`. For a change after which a figure the API reports in int64
    would leave it although every balance stays inside: an account's available balance (current - locked
    + credit limit) or a side of the trial balance. Whether the server refuses such a change or accepts it
    and answers the reads some other way is its choice (see `check_balances`, `check_trial_balance`)."""

    accept: Accept
    refusal: Refused


Outcome = Refused | Replay | Accept | Either


def fits_int64(value: int) -> bool:
    return BALANCE_MIN <= value <= AMOUNT_MAX


def refused(code: grpc.StatusCode, reason: str) -> Refused:
    return Refused(code, reason)


def check_amount(amount: int) -> Refused | None:
    return refused(INVALID, "AMOUNT_NOT_POSITIVE") if amount <= 0 else None


def check_lines(lines: tuple[tuple[str, str, int], ...]) -> Refused | None:
    """The server's pure voucher checks, in its order: amounts, totals, balance, one side per account."""
    for _, _, amount in lines:
        if amount <= 0:
            return refused(INVALID, "AMOUNT_NOT_POSITIVE")
    debits = sum(a for _, side, a in lines if side == DEBIT)
    credits = sum(a for _, side, a in lines if side == CREDIT)
    if debits > AMOUNT_MAX or credits > AMOUNT_MAX:
        return refused(INVALID, "AMOUNT_TOO_LARGE")
    if debits != credits:
        return refused(INVALID, "VOUCHER_UNBALANCED")
    sides: dict[str, str] = {}
    for code, side, _ in lines:
        if sides.setdefault(code, side) != side:
            return refused(INVALID, "SAME_ACCOUNT_BOTH_SIDES")
    return None


def bump(amount: int) -> int:
    """Another amount that still fits int64."""
    return amount + 1 if amount < AMOUNT_MAX else amount - 1


def swapped(lines: tuple[tuple[str, str, int], ...]) -> tuple[tuple[str, str, int], ...]:
    return tuple((code, CREDIT if side == DEBIT else DEBIT, amount) for code, side, amount in lines)


class Ledger:
    """What the books must look like: balances, holds, vouchers and the idempotency records."""

    def __init__(self) -> None:
        self.accounts: dict[str, MAccount] = {}
        self.holds: list[MHold] = []
        self.vouchers: list[MVoucher] = []
        # request id -> (request, first answer: a response, or the Refused it recorded)
        self.records: dict[str, tuple[Request, object]] = {}

    # --- posting arithmetic -----------------------------------------------------------------------

    def post_check(self, lines, unlocked: dict[str, int] | None = None,
                   opened: frozenset[str] = frozenset()) -> Refused | dict[str, int]:
        """The signed change of each account a voucher makes, or its refusal, in the server's order:
        resolve every account, then per line status and side, then per account overflow and floor.
        `unlocked`: locked amounts a hold operation of the same request frees first. `opened`: codes
        the rule set opens from a template when missing."""
        for code, _, _ in lines:
            if code not in self.accounts and code not in opened:
                return refused(NOT_FOUND, "ACCOUNT_NOT_FOUND")
        sides: dict[str, str] = {}
        deltas: dict[str, int] = {}
        for code, side, amount in lines:
            account = self.accounts.get(code) or self.opened(code)
            if account.status != ACTIVE:
                return refused(PRECONDITION, "ACCOUNT_FROZEN" if account.status == FROZEN else "ACCOUNT_CLOSED")
            if sides.setdefault(code, side) != side:
                return refused(INVALID, "SAME_ACCOUNT_BOTH_SIDES")
            deltas[code] = deltas.get(code, 0) + (amount if side == account.normal_side else -amount)
        for code, delta in deltas.items():
            account = self.accounts.get(code) or self.opened(code)
            current = account.current + delta
            locked = account.locked - (unlocked or {}).get(code, 0)
            if not fits_int64(current):
                return refused(INVALID, "BALANCE_OVERFLOW")
            # Only a voucher that lowers a balance is held to the floor (README, "API at a glance").
            if delta < 0 and account.floored and current - locked + account.credit_limit < 0:
                return refused(PRECONDITION, "INSUFFICIENT_FUNDS")
        return deltas

    def beyond_int64(self, deltas: dict[str, int], unlocked: dict[str, int] | None = None) -> bool:
        """Whether applying `deltas` (and `unlocked`) leaves a figure the API reports beyond int64: an
        account's available balance, or a side of the trial balance."""
        debit_balances = {code: a.debit_balance for code, a in self.accounts.items()}
        for code, delta in deltas.items():
            account = self.accounts.get(code) or self.opened(code)
            locked = account.locked - (unlocked or {}).get(code, 0)
            if not fits_int64(account.current + delta - locked + account.credit_limit):
                return True
            debit_balances[code] = debit_balances.get(code, 0) + (delta if account.normal_side == DEBIT else -delta)
        return not (fits_int64(sum(b for b in debit_balances.values() if b > 0))
                    and fits_int64(sum(b for b in debit_balances.values() if b < 0)))

    def either(self, accept: Accept, deltas: dict[str, int], unlocked: dict[str, int] | None = None) -> Outcome:
        if self.beyond_int64(deltas, unlocked):
            return Either(accept, refused(INVALID, "BALANCE_OVERFLOW"))
        return accept

    @staticmethod
    def opened(code: str) -> MAccount:
        """An account the default rule set opens from its template on first use."""
        if code == PROCESSOR:
            return MAccount(code, "internal", DEBIT, floored=False)
        return MAccount(code, "deposit", CREDIT, floored=True)

    def book(self, req: Request, response_voucher: types_pb2.Voucher, flow_type: str, lines,
             deltas: dict[str, int], reverses: int | None = None) -> int:
        """Checks a posted voucher against the predicted one and applies it; returns its index."""
        got = tuple((ln.account_code, DEBIT if ln.side == types_pb2.SIDE_DEBIT else CREDIT, ln.amount)
                    for ln in response_voucher.lines)
        assert got == tuple(lines), f"voucher lines {got} != predicted {lines}"
        assert (response_voucher.flow_type, response_voucher.request_id) == (flow_type, req.rid), response_voucher
        assert response_voucher.sequence == len(self.vouchers) + 1, response_voucher
        assert all(ln.currency == USD for ln in response_voucher.lines)
        assert response_voucher.id not in {v.id for v in self.vouchers}, "a voucher id was handed out twice"
        for ln in response_voucher.lines:
            if ln.account_code not in self.accounts:
                self.accounts[ln.account_code] = self.opened(ln.account_code)
            account = self.accounts[ln.account_code]
            assert account.id in ("", ln.account_id)
            account.id = ln.account_id
            account.entries += 1
        for code, delta in deltas.items():
            self.accounts[code].current += delta
        self.vouchers.append(MVoucher(response_voucher.id, flow_type, tuple(lines), reverses=reverses))
        return len(self.vouchers) - 1

    # --- conservation -----------------------------------------------------------------------------

    def trial_totals(self) -> tuple[int, int, int]:
        """(debit total, credit total, account count) as GetTrialBalance reports them for USD."""
        debit = sum(a.debit_balance for a in self.accounts.values() if a.debit_balance > 0)
        credit = sum(-a.debit_balance for a in self.accounts.values() if a.debit_balance < 0)
        return debit, credit, len(self.accounts)


# ------------------------------------------------------------------------------------------ the machine


@st.composite
def amounts(draw, high: int = 3_000) -> int:
    """Mostly amounts near the balances at play (zero and negative included); now and then one at the
    edge of int64."""
    if draw(st.integers(0, 24)) == 0:
        return draw(st.sampled_from([2**62, AMOUNT_MAX]))
    return draw(st.integers(-2, high))


# Accounts that exist from the start come up more often than those that may not exist yet (or ever).
codes = st.sampled_from((*DEPOSITS, CREDIT_ACCOUNT, FUND, INCOME, *DEPOSITS, CREDIT_ACCOUNT, NEW_CONSUMER,
                         PROCESSOR, GHOST))
picks = st.integers(0, 1_000)  # which hold or voucher; one in 20 names one that does not exist
# An amount relative to what the model says is there (available, or a hold's remaining), or `amount`.
portions = st.sampled_from(["all", "half", "over", "zero", "any", "any", "any"])


def portion_of(portion: str, base: int, amount: int) -> int:
    if portion == "zero":
        return 0
    relative = {"all": base, "half": base // 2, "over": base + 1}.get(portion, amount)
    return relative if 0 < relative <= AMOUNT_MAX else amount


class LedgerMachine(RuleBasedStateMachine):
    """Drives `server` (set by `machine_for`) in a fresh tenant and compares every answer with `Ledger`."""

    server: Server

    def __init__(self) -> None:
        super().__init__()
        self.tenant = f"model-{uuid.uuid4().hex[:16]}"
        self.md = md(self.tenant)
        self.post = self.server.accounting()
        self.acc = self.server.accounts()
        self.books = bk_grpc.BookkeepingServiceStub(self.server.channel())
        self.model = Ledger()
        self.sent: list[Request] = []
        self.ids = 0
        self._open(FUND, "internal", DEBIT, floored=False, floor_policy="unbounded")
        self._open(INCOME, "internal", CREDIT, floored=True, floor_policy="non_negative")
        for code in DEPOSITS:
            self._open(code, "deposit", CREDIT, floored=True)
        self._open(CREDIT_ACCOUNT, "credit", CREDIT, floored=True, credit_limit=CREDIT_LIMIT_START)
        opening = ((FUND, DEBIT, OPENING * len(DEPOSITS)), *((code, CREDIT, OPENING) for code in DEPOSITS))
        self.execute(Adjust("opening", opening, "opening balances"))

    def _open(self, code: str, type_: str, side: str, *, floored: bool, credit_limit: int = 0,
              floor_policy: str | int = 0) -> None:
        created = self.server.create_account(
            self.tenant, code, type_, normal_side=side if type_ == "internal" else 0, credit_limit=credit_limit,
            floor_policy=floor_policy, request_id=f"open-{code}")
        self.model.accounts[code] = MAccount(code, type_, side, floored, credit_limit, id=created.id)

    def rid(self) -> str:
        self.ids += 1
        return f"r{self.ids}"

    # --- rules ----------------------------------------------------------------------------------

    @rule(credits=st.lists(st.tuples(codes, amounts()), min_size=1, max_size=3),
          skew=st.sampled_from([0, 0, 0, 0, 0, 0, 1, -1]), withdraw=st.booleans())
    def adjust(self, credits, skew, withdraw):
        """Funds accounts from FUND (or takes money back to it with `withdraw`); `skew` unbalances it."""
        total = min(max(sum(a for _, a in credits) + skew, BALANCE_MIN), AMOUNT_MAX)
        if withdraw:
            lines = (*((c, DEBIT, a) for c, a in credits), (FUND, CREDIT, total))
        else:
            lines = ((FUND, DEBIT, total), *((c, CREDIT, a) for c, a in credits))
        self.execute(Adjust(self.rid(), tuple(lines)))

    @rule(consumer=st.sampled_from(CUSTOMERS), amount=amounts())
    def funding(self, consumer, amount):
        self.execute(Funding(self.rid(), consumer, amount))

    @rule(src=codes, dst=codes, portion=portions, amount=amounts(), memo=st.sampled_from(["", "rent"]))
    def transfer(self, src, dst, portion, amount, memo):
        self.execute(Transfer(self.rid(), src, dst, portion_of(portion, self._available(src), amount), memo))

    @rule(account=codes, portion=portions, amount=amounts(1_500))
    def create_hold(self, account, portion, amount):
        self.execute(HoldCreate(self.rid(), account, portion_of(portion, self._available(account), amount)))

    @precondition(lambda self: self.model.holds)
    @rule(pick=picks, active=st.booleans(), portion=portions, amount=amounts(), dst=codes, final=st.booleans())
    def capture(self, pick, active, portion, amount, dst, final):
        index = self._hold(pick, active)
        remaining = self.model.holds[index].remaining if index >= 0 else 0
        self.execute(Capture(self.rid(), index, portion_of(portion, remaining, amount), dst, final))

    @precondition(lambda self: self.model.holds)
    @rule(pick=picks, active=st.booleans())
    def release(self, pick, active):
        self.execute(Release(self.rid(), self._hold(pick, active)))

    @precondition(lambda self: self.model.vouchers)
    @rule(pick=picks, unreversed=st.booleans())
    def reverse(self, pick, unreversed):
        vouchers = self.model.vouchers
        candidates = [i for i, v in enumerate(vouchers) if v.reverses is None and v.reversed_by is None]
        if not unreversed or not candidates:
            candidates = list(range(len(vouchers)))
        self.execute(Reverse(self.rid(), candidates[pick % len(candidates)] if pick % 20 else -1))

    @rule(account=codes, to=st.sampled_from(["freeze", "unfreeze", "freeze", "unfreeze", "close"]))
    def set_status(self, account, to):
        """Freezes an account, unfreezes one (mostly one that is frozen; unfreezing an active account
        changes nothing) or closes one (only one with nothing on it closes, and for good: a closed account
        takes no posting and no change; the credit account is spared)."""
        frozen = sorted(c for c, a in self.model.accounts.items() if a.status == FROZEN)
        if to == "unfreeze" and frozen and account != GHOST:
            account = frozen[CODES.index(account) % len(frozen)]
        if to == "close" and account == CREDIT_ACCOUNT:
            account = INCOME
        status = {"freeze": FROZEN, "unfreeze": ACTIVE, "close": CLOSED}[to]
        self.execute(Update(self.rid(), account, status=status))

    @rule(account=st.sampled_from([CREDIT_ACCOUNT, CREDIT_ACCOUNT, CREDIT_ACCOUNT, CREDIT_ACCOUNT, DEPOSITS[0], FUND]),
          limit=st.sampled_from([-1, 0, 300, 1_000, 5_000]))
    def set_credit_limit(self, account, limit):
        self.execute(Update(self.rid(), account, credit_limit=limit))

    @rule(pick=picks, how=st.sampled_from(["same", "same", "same", 0, 1, 2]))
    def resend(self, pick, how):
        """An earlier request again: the same (its first answer again, when it has one), with another body
        (0, 1) or as another operation (2)."""
        earlier = self.sent[pick % len(self.sent)]
        self.execute(earlier if how == "same" else self._changed(earlier, how))

    def _available(self, code: str) -> int:
        account = self.model.accounts.get(code)
        return account.available if account is not None else 0

    def _hold(self, pick: int, active: bool) -> int:
        holds = self.model.holds
        candidates = [i for i, h in enumerate(holds) if h.status == HOLD_ACTIVE] if active else []
        candidates = candidates or list(range(len(holds)))
        return candidates[pick % len(candidates)] if candidates and pick % 20 else -1

    @staticmethod
    def _changed(req: Request, how: int) -> Request:
        if how == 2:  # the same request id for another operation
            return Release(req.rid, -1) if req.op != "release_hold" else Update(req.rid, FUND, status=ACTIVE)
        match req:
            case Transfer():
                return dataclasses.replace(req, amount=bump(req.amount)) if how else \
                    dataclasses.replace(req, memo=req.memo + "x")
            case Adjust():
                if how:
                    first, last = req.lines[0], req.lines[-1]
                    return dataclasses.replace(req, lines=((*first[:2], bump(first[2])), *req.lines[1:-1],
                                                           (*last[:2], bump(last[2]))))
                return dataclasses.replace(req, reason=req.reason + "x")
            case Funding() | HoldCreate():
                return dataclasses.replace(req, amount=bump(req.amount))
            case Capture():
                return dataclasses.replace(req, amount=bump(req.amount)) if how else \
                    dataclasses.replace(req, final=not req.final)
            case Release() | Reverse():
                return dataclasses.replace(req, reason=req.reason + "x")
            case Update(status=None):
                return dataclasses.replace(req, credit_limit=req.credit_limit + 1)
            case Update():
                return dataclasses.replace(req, status=ACTIVE if req.status != ACTIVE else FROZEN)
        raise AssertionError(req)

    # --- one request: predict, send, compare ----------------------------------------------------

    def execute(self, req: Request) -> None:
        outcome = self.predict(req)
        self.sent.append(req)
        try:
            response = self.send(req)
        except grpc.RpcError as err:
            code, reason, meta = error_info(err)
            if isinstance(outcome, Either):
                outcome = outcome.refusal
            assert isinstance(outcome, Refused), f"{req}: the model expected acceptance, got {code} {reason}"
            assert (code, reason) == (outcome.code, outcome.reason), \
                f"{req}: expected {outcome.code} {outcome.reason}, got {code} {reason} {meta}"
            assert outcome.metadata is None or meta == outcome.metadata, \
                f"{req}: replayed refusal carries {meta}, the first carried {outcome.metadata}"
            if outcome.reason == "REQUEST_ID_REUSED":
                fields = sorted(meta.get("fields", "").split(","))
                assert outcome.fields is None or fields == outcome.fields, f"{req}: fields {fields}"
                assert fields != [""], f"{req}: REQUEST_ID_REUSED names no differing field"
            if outcome.recorded:
                self.model.records[req.rid] = (req, Refused(code, reason, metadata=meta))
            return
        assert not isinstance(outcome, Refused), f"{req}: expected {outcome.code} {outcome.reason}, was accepted"
        if isinstance(outcome, Replay):
            assert response.replayed, f"{req}: a resent request was not answered as a replay"
            self.check_replay(req, outcome.first, response)
            return
        assert not response.replayed, f"{req}: a new request was answered as a replay"
        (outcome.accept if isinstance(outcome, Either) else outcome)(response)
        self.model.records[req.rid] = (req, response)

    def predict(self, req: Request) -> Outcome:
        """The answer the server must give, in the order it checks: the request on its own, then (in the
        write transaction) the idempotency record, then the ledger's state."""
        m = self.model
        early = self.check_request(req)
        if early is not None:
            return early
        if req.rid in m.records:
            first, answer = m.records[req.rid]
            if first.op == req.op and body(first) == body(req):
                return answer if isinstance(answer, Refused) else Replay(answer)
            paths = ["operation"] if first.op != req.op else differing_paths(first, req)
            return Refused(EXISTS, "REQUEST_ID_REUSED", paths)
        outcome = self.judge(req)
        if isinstance(outcome, Refused) and outcome.code in (PRECONDITION, NOT_FOUND):
            # README, Idempotency: a refusal that depends on the ledger's state (of a posting, a hold operation
            # or an account change) is the request's final answer, recorded like an acceptance; a resend
            # answers it again even if it would now succeed. Bad input and ids the caller may not see record
            # nothing.
            return dataclasses.replace(outcome, recorded=True)
        return outcome

    def judge(self, req: Request) -> Outcome:
        """The answer to a request the server has no record of."""
        match req:
            case Transfer():
                return self.predict_post(req, "transfer", ((req.src, DEBIT, req.amount), (req.dst, CREDIT, req.amount)))
            case Adjust():
                return self.predict_post(req, "adjustment", req.lines)
            case Funding():
                lines = ((PROCESSOR, DEBIT, req.amount), (req.consumer, CREDIT, req.amount))
                return self.predict_post(req, "funding", lines, opened=frozenset({PROCESSOR, req.consumer}))
            case HoldCreate():
                return self.predict_hold(req)
            case Capture():
                return self.predict_capture(req)
            case Release():
                return self.predict_release(req)
            case Reverse():
                return self.predict_reverse(req)
            case Update():
                return self.predict_update(req)
        raise AssertionError(req)

    def check_request(self, req: Request) -> Refused | None:
        """What the server refuses before it looks at idempotency records."""
        m = self.model
        match req:
            case Transfer():
                if req.src == req.dst:
                    return refused(INVALID, "SAME_ACCOUNT_BOTH_SIDES")
                return check_lines(((req.src, DEBIT, req.amount), (req.dst, CREDIT, req.amount)))
            case Adjust():
                return check_lines(req.lines)
            case Funding() | HoldCreate():
                return check_amount(req.amount)
            case Capture():
                if req.hold < 0:
                    return refused(DENIED, "HOLD_NOT_ACCESSIBLE")  # read before the capture is queued
                return check_amount(req.amount)
            case Reverse():
                if req.voucher < 0:
                    return refused(DENIED, "VOUCHER_NOT_ACCESSIBLE")
                if m.vouchers[req.voucher].reverses is not None:
                    return refused(PRECONDITION, "VOUCHER_IS_REVERSAL")
        return None

    def predict_post(self, req: Request, flow_type: str, lines, opened: frozenset[str] = frozenset()) -> Outcome:
        deltas = self.model.post_check(lines, opened=opened)
        if isinstance(deltas, Refused):
            return deltas

        def accept(response: post_pb.PostResponse) -> None:
            assert len(response.vouchers) == 1, response
            self.model.book(req, response.vouchers[0], flow_type, lines, deltas)

        return self.model.either(accept, deltas)

    def predict_hold(self, req: HoldCreate) -> Outcome:
        account = self.model.accounts.get(req.account)
        if account is None:
            return refused(NOT_FOUND, "ACCOUNT_NOT_FOUND")
        if account.status != ACTIVE:
            return refused(PRECONDITION, "ACCOUNT_FROZEN" if account.status == FROZEN else "ACCOUNT_CLOSED")
        # A hold reserves available funds, whatever the account's floor policy.
        if req.amount > account.available:
            return refused(PRECONDITION, "INSUFFICIENT_FUNDS")

        def accept(response: post_pb.CreateHoldResponse) -> None:
            hold = MHold(req.account, req.amount, id=response.hold.id)
            self.check_hold(response.hold, hold)
            account.locked += req.amount
            self.model.holds.append(hold)

        return accept

    def predict_capture(self, req: Capture) -> Outcome:
        hold = self.model.holds[req.hold]
        if hold.status != HOLD_ACTIVE:
            return refused(PRECONDITION, f"HOLD_{HOLD_STATUS_NAMES[hold.status]}")
        if req.amount > hold.remaining:
            return refused(PRECONDITION, "HOLD_AMOUNT_EXCEEDED")
        closes = req.final or hold.captured + req.amount == hold.amount
        unlocked = hold.remaining if closes else req.amount
        lines = ((hold.account, DEBIT, req.amount), (req.dst, CREDIT, req.amount))
        deltas = self.model.post_check(lines, unlocked={hold.account: unlocked})
        if isinstance(deltas, Refused):
            return deltas

        def accept(response: post_pb.CaptureHoldResponse) -> None:
            self.model.accounts[hold.account].locked -= unlocked
            hold.captured += req.amount
            hold.status = HOLD_CAPTURED if closes else HOLD_ACTIVE
            hold.capture_vouchers.append(self.model.book(req, response.voucher, "hold_capture", lines, deltas))
            self.check_hold(response.hold, hold)

        return self.model.either(accept, deltas, {hold.account: unlocked})

    def predict_release(self, req: Release) -> Outcome:
        if req.hold < 0:
            return refused(DENIED, "HOLD_NOT_ACCESSIBLE")
        hold = self.model.holds[req.hold]
        if hold.status != HOLD_ACTIVE:
            return refused(PRECONDITION, f"HOLD_{HOLD_STATUS_NAMES[hold.status]}")

        def accept(response: post_pb.ReleaseHoldResponse) -> None:
            self.model.accounts[hold.account].locked -= hold.remaining
            hold.status = HOLD_RELEASED
            self.check_hold(response.hold, hold)

        return self.model.either(accept, {hold.account: 0}, {hold.account: hold.remaining})

    def predict_reverse(self, req: Reverse) -> Outcome:
        original = self.model.vouchers[req.voucher]
        if original.reversed_by is not None:
            return refused(PRECONDITION, "VOUCHER_ALREADY_REVERSED")
        lines = swapped(original.lines)
        deltas = self.model.post_check(lines)
        if isinstance(deltas, Refused):
            return deltas

        def accept(response: post_pb.ReverseVoucherResponse) -> None:
            assert response.voucher.reverses_voucher_id == original.id
            original.reversed_by = self.model.book(req, response.voucher, "reversal", lines, deltas,
                                                   reverses=req.voucher)

        return self.model.either(accept, deltas)

    def predict_update(self, req: Update) -> Outcome:
        account = self.model.accounts.get(req.account)
        if account is None:
            return refused(NOT_FOUND, "ACCOUNT_NOT_FOUND")
        if account.status == CLOSED:
            return refused(PRECONDITION, "ACCOUNT_CLOSED")
        if req.credit_limit is not None:
            if req.credit_limit < 0:
                return refused(INVALID, "CREDIT_LIMIT_INVALID")
            if req.credit_limit and account.type != "credit":
                return refused(INVALID, "CREDIT_LIMIT_NOT_ALLOWED")
        if req.status == CLOSED and (account.current or account.locked):
            return refused(PRECONDITION, "ACCOUNT_BALANCE_NOT_ZERO")

        def accept(response: acc_pb.UpdateAccountResponse) -> None:
            if req.status is not None:
                account.status = req.status
            if req.credit_limit is not None:
                account.credit_limit = req.credit_limit
            got = response.account
            assert (got.id, got.code, got.status, got.credit_limit) == \
                (account.id, account.code, account.status, account.credit_limit), got

        if req.credit_limit is not None and not fits_int64(account.current - account.locked + req.credit_limit):
            return Either(accept, refused(INVALID, "CREDIT_LIMIT_INVALID"))
        return accept

    # --- the wire -------------------------------------------------------------------------------

    def send(self, req: Request):
        m = self.model

        def hold_id(index: int) -> str:
            return m.holds[index].id if index >= 0 else GHOST_ID

        match req:
            case Transfer():
                flow = flows_pb2.TransferFlow(to=ref(req.dst), amount=req.amount, currency=USD, memo=req.memo)
                getattr(flow, "from").CopyFrom(ref(req.src))
                return self.post.Post(post_pb.PostRequest(request_id=req.rid, transfer=flow), metadata=self.md)
            case Adjust():
                request = adjustment_request(req.rid, [line(c, s, a) for c, s, a in req.lines], reason=req.reason)
                return self.post.Post(request, metadata=self.md)
            case Funding():
                flow = flows_pb2.FundingFlow(consumer=req.consumer.removeprefix("consumer:").removesuffix(":USD"),
                                             processor="card",
                                             amount=req.amount, currency=USD)
                return self.post.Post(post_pb.PostRequest(request_id=req.rid, funding=flow), metadata=self.md)
            case HoldCreate():
                return self.post.CreateHold(post_pb.CreateHoldRequest(
                    request_id=req.rid, account=ref(req.account), amount=req.amount, currency=USD, memo=req.memo),
                    metadata=self.md)
            case Capture():
                return self.post.CaptureHold(post_pb.CaptureHoldRequest(
                    request_id=req.rid, hold_id=hold_id(req.hold), amount=req.amount, destination=ref(req.dst),
                    final=req.final), metadata=self.md)
            case Release():
                return self.post.ReleaseHold(post_pb.ReleaseHoldRequest(
                    request_id=req.rid, hold_id=hold_id(req.hold), reason=req.reason), metadata=self.md)
            case Reverse():
                voucher_id = m.vouchers[req.voucher].id if req.voucher >= 0 else GHOST_ID
                return self.post.ReverseVoucher(post_pb.ReverseVoucherRequest(
                    request_id=req.rid, voucher_id=voucher_id, reason=req.reason), metadata=self.md)
            case Update():
                paths = [p for p, v in (("status", req.status), ("credit_limit", req.credit_limit)) if v is not None]
                update = types_pb2.Account(status=req.status or 0, credit_limit=req.credit_limit or 0)
                return self.acc.UpdateAccount(acc_pb.UpdateAccountRequest(
                    request_id=req.rid, account=ref(req.account), account_update=update,
                    update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=self.md)
        raise AssertionError(req)

    # --- comparisons ----------------------------------------------------------------------------

    def check_hold(self, got: types_pb2.Hold, hold: MHold) -> None:
        account = self.model.accounts[hold.account]
        captures = [self.model.vouchers[i].id for i in hold.capture_vouchers]
        assert (got.id, got.account_id, got.currency, got.amount, got.captured, got.remaining, got.status,
                list(got.capture_voucher_ids)) == \
            (hold.id, account.id, USD, hold.amount, hold.captured, hold.remaining, hold.status, captures), \
            f"hold {got} != model {hold}"

    def check_replay(self, req: Request, first, again) -> None:
        """A replay is the first answer again. Vouchers are read back from the journal, so the one link a
        voucher gains later, its reversal, shows in a replay: checked against the model apart."""
        if isinstance(req, Update):
            assert again.account == first.account, f"{req}: replayed account differs"
            return
        if hasattr(first, "hold"):
            assert again.hold == first.hold, f"{req}: replayed hold differs\n{again.hold}\n!=\n{first.hold}"
        vouchers = {"vouchers": lambda r: list(r.vouchers), "voucher": lambda r: [r.voucher]}
        for field, get in vouchers.items():
            if field not in first.DESCRIPTOR.fields_by_name:
                continue
            assert [v.id for v in get(again)] == [v.id for v in get(first)], f"{req}: replay names other vouchers"
            for v_first, v_again in zip(get(first), get(again), strict=True):
                model = next(v for v in self.model.vouchers if v.id == v_first.id)
                reversal = self.model.vouchers[model.reversed_by].id if model.reversed_by is not None else ""
                assert v_again.reversed_by_voucher_id == reversal, f"{req}: replayed voucher's reversal link"
                a, b = type(v_first)(), type(v_again)()
                a.CopyFrom(v_first)
                b.CopyFrom(v_again)
                a.ClearField("reversed_by_voucher_id")
                b.ClearField("reversed_by_voucher_id")
                assert a == b, f"{req}: replayed voucher differs\n{b}\n!=\n{a}"

    @invariant()
    def books_match_model(self) -> None:
        """After every step: accounts, balances (one snapshot), trial balance, holds and journal."""
        m = self.model
        listed = {a.code: a for a in self.server.all_accounts(self.tenant)}
        assert sorted(listed) == sorted(m.accounts), "the tenant's accounts differ from the model's"
        for code, account in m.accounts.items():
            got = listed[code]
            assert (got.id, got.status, got.credit_limit, got.normal_side) == \
                (account.id, account.status, account.credit_limit, SIDE_PB[account.normal_side]), got

        self.check_balances()

        self.check_trial_balance()

        holds = {h.id: h for h in walk(lambda token: self.post.ListHolds(
            post_pb.ListHoldsRequest(page_size=500, page_token=token), metadata=self.md), "holds")}
        assert sorted(holds) == sorted(h.id for h in m.holds), "the tenant's holds differ from the model's"
        for hold in m.holds:
            self.check_hold(holds[hold.id], hold)

        vouchers = {v.id: v for v in self.server.all_vouchers(self.tenant)}
        assert sorted(vouchers) == sorted(v.id for v in m.vouchers), "the journal differs from the model's"
        for voucher in m.vouchers:
            got = vouchers[voucher.id]
            reverses = m.vouchers[voucher.reverses].id if voucher.reverses is not None else ""
            reversed_by = m.vouchers[voucher.reversed_by].id if voucher.reversed_by is not None else ""
            assert (got.reverses_voucher_id, got.reversed_by_voucher_id) == (reverses, reversed_by), got
            assert [(ln.account_code, ln.side, ln.amount) for ln in got.lines] == \
                [(c, SIDE_PB[s], a) for c, s, a in voucher.lines], got

    def check_trial_balance(self) -> None:
        debit, credit, count = self.model.trial_totals()
        fits = debit <= AMOUNT_MAX and credit <= AMOUNT_MAX
        try:
            trial = self.books.GetTrialBalance(bk_pb.GetTrialBalanceRequest(), metadata=self.md)
        except grpc.RpcError as err:
            code, reason, _ = error_info(err)
            # Every balance fits int64, but the sum of one side need not, and the API's int64 totals cannot
            # carry it. How to answer that is the server's choice; a transient status that advises a
            # retry is not, since no retry can ever succeed (README: UNAVAILABLE is for outages).
            assert not fits, f"GetTrialBalance refused: {code} {reason}"
            assert code not in RETRY_CODES, \
                f"GetTrialBalance answers {code} {reason} (retry advised) for totals {debit} / {credit} beyond int64"
            return
        assert trial.balanced and all(t.difference == 0 for t in trial.totals), trial
        if fits:
            assert [(t.currency, t.debit_total, t.credit_total, t.difference, t.account_count)
                    for t in trial.totals] == [(USD, debit, credit, 0, count)], trial

    def check_balances(self) -> None:
        """Every balance from one snapshot, and money conserved: debit-positive balances sum to zero."""
        m = self.model
        codes = sorted(c for c, a in m.accounts.items() if a.representable)
        snapshot = self.acc.BatchGetBalances(acc_pb.BatchGetBalancesRequest(accounts=[ref(c) for c in codes]),
                                             metadata=self.md)
        assert snapshot.voucher_sequence == len(m.vouchers), snapshot
        conserved = sum(a.debit_balance for c, a in m.accounts.items() if c not in codes)  # read below
        for code, balance in zip(codes, snapshot.balances, strict=True):
            self.check_balance(code, balance)
            conserved += balance.current if m.accounts[code].normal_side == DEBIT else -balance.current
        assert conserved == 0, f"money not conserved: debit-positive balances sum to {conserved}"
        # An account the server let past int64 (available = current - locked + credit limit): its balance
        # cannot be answered in int64, but must not be refused with a status that advises a retry, which
        # can never succeed (README: UNAVAILABLE is for outages).
        for code in sorted(set(m.accounts) - set(codes)):
            try:
                balance = self.server.balance(self.tenant, code)
            except grpc.RpcError as err:
                status, reason, _ = error_info(err)
                assert status not in RETRY_CODES, f"GetBalance({code}) answers {status} {reason} (retry advised) " \
                    f"for available {m.accounts[code].available} beyond int64"
            else:
                raise AssertionError(f"GetBalance({code}) answered {balance} for available beyond int64")

    def check_balance(self, code: str, balance: types_pb2.Balance) -> None:
        account = self.model.accounts[code]
        assert (balance.account_id, balance.currency, balance.current, balance.locked, balance.available,
                balance.credit_limit, balance.entry_count) == \
            (account.id, USD, account.current, account.locked, account.available, account.credit_limit,
             account.entries), f"{code}: balance {balance} != model {account}"

    def teardown(self) -> None:
        """At the end of an example: each balance once more through GetBalance, each statement, and the
        hash chain."""
        for code, account in self.model.accounts.items():
            if account.representable:
                self.check_balance(code, self.server.balance(self.tenant, code))
            entries = self.server.all_entries(self.tenant, code)
            assert [e.entry_number for e in entries] == list(range(1, account.entries + 1)), code
            running = 0
            for entry in entries:
                running += entry.amount if entry.side == SIDE_PB[account.normal_side] else -entry.amount
                assert entry.balance_after == running, f"{code}: statement entry {entry}"
            assert running == account.current, f"{code}: the statement sums to {running}"
        chain = self.books.VerifyChain(bk_pb.VerifyChainRequest(), metadata=self.md)
        assert chain.intact and chain.vouchers_checked == len(self.model.vouchers), chain


def machine_for(server: Server) -> type[LedgerMachine]:
    return type("LedgerModel", (LedgerMachine,), {"server": server})


def test_ledger_agrees_with_model(server: Server) -> None:
    run_state_machine_as_test(machine_for(server), settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                               HealthCheck.large_base_example]))
