"""Spending controls, team budgets and sweeps: what an account's owner may spend, checked on each voucher.

Pure: the batch writer hands in a posted voucher's lines, the controls of the accounts it moves and the
spend counters it read under the write gate; `check_voucher` refuses the voucher or says which controls it
passed and how much each counter grows. A spend is what a voucher lowers an account's balance by (on its
normal side). Velocity limits count spend per window: a calendar window (the UTC hour, day or month the
posting falls in) is one counter; a sliding window is counted in SLIDING_BUCKETS buckets of a bucket width,
and the buckets that overlap the window are summed, so a sliding limit is never passed over any window of
its length (it may refuse up to one bucket's worth early).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from tally.domain import limits
from tally.domain.accounts import Side
from tally.domain.errors import invalid, precondition
from tally.domain.fields import check_code

VELOCITIES_MAX = 6  # velocity limits per account, own and team each
FLOWS_MAX = 32
COUNTERPARTIES_MAX = 32  # account codes or patterns (`*`, `?`)
SWEEPS_MAX = 2  # a top-up and an excess sweep
SLIDING_BUCKETS = 24
EVIDENCE_LENGTH_MAX = limits.METADATA_VALUE_LENGTH_MAX
POLICY_PASSED = "limit_check.passed"
SWEEP_FLOW = "sweep"


class Window(enum.Enum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


# A sliding month is 30 days; a calendar month is the month the posting falls in.
WINDOW_S = {Window.HOUR: 3600, Window.DAY: 86_400, Window.MONTH: 30 * 86_400}


class Scope(enum.Enum):
    OWN = "own"  # the account's own spend
    TEAM = "team"  # the spend of every account under it, summed (a team budget on a parent)


class SweepKind(enum.Enum):
    TOP_UP = "top_up"  # below `trigger`: brought up to `target` from `counter_account_id`
    EXCESS = "excess"  # above `trigger`: brought down to `target`, the excess to `counter_account_id`


@dataclass(frozen=True, slots=True)
class Velocity:
    window: Window
    limit: int
    sliding: bool = False

    @property
    def label(self) -> str:
        return f"{'sliding' if self.sliding else 'calendar'}_{self.window.value}"


@dataclass(frozen=True, slots=True)
class Sweep:
    kind: SweepKind
    trigger: int
    target: int
    counter_account_id: str  # "" in a rule set's template, which names the other account by `counter_code`
    counter_code: str = ""  # a template's code pattern of the other account, filled for each account it opens


@dataclass(frozen=True, slots=True)
class Controls:
    """One account's controls; an empty one controls nothing."""

    per_voucher_max: int = 0  # 0: no limit per voucher
    velocity: tuple[Velocity, ...] = ()
    flows: tuple[str, ...] = ()  # the flow types it may spend in; empty: any
    counterparties: tuple[str, ...] = ()  # codes (or patterns) its spend may go to; empty: any
    team_velocity: tuple[Velocity, ...] = ()  # binds the sum of its whole subtree's spend
    sweeps: tuple[Sweep, ...] = ()

    @property
    def empty(self) -> bool:
        return self == Controls()

    @property
    def guards_spend(self) -> bool:
        return bool(self.per_voucher_max or self.velocity or self.flows or self.counterparties)


def check_controls(controls: Controls, account_id: str) -> Controls:
    """Refuses a malformed control set (INVALID_ARGUMENT, CONTROL_INVALID), with the field at fault."""
    if controls.per_voucher_max < 0:
        raise _bad("per_voucher_max", "must not be negative")
    for name, velocities in (("velocity", controls.velocity), ("team_velocity", controls.team_velocity)):
        if len(velocities) > VELOCITIES_MAX:
            raise _bad(name, f"at most {VELOCITIES_MAX} limits")
        if len({(v.window, v.sliding) for v in velocities}) != len(velocities):
            raise _bad(name, "one limit per window and kind")
        if any(v.limit <= 0 or v.limit > limits.AMOUNT_MAX for v in velocities):
            raise _bad(name, "a limit is a positive amount")
    if len(controls.flows) > FLOWS_MAX or any(not f or len(f) > 64 for f in controls.flows):
        raise _bad("flows", f"at most {FLOWS_MAX} flow types of 1..64 characters")
    if len(controls.counterparties) > COUNTERPARTIES_MAX:
        raise _bad("counterparties", f"at most {COUNTERPARTIES_MAX} codes or patterns")
    for pattern in controls.counterparties:
        check_code(pattern.replace("*", "x").replace("?", "x"), "counterparties")
    _check_sweeps(controls.sweeps, account_id)
    return controls


def _check_sweeps(sweeps: tuple[Sweep, ...], account_id: str) -> None:
    if len(sweeps) > SWEEPS_MAX or len({s.kind for s in sweeps}) != len(sweeps):
        raise _bad("sweeps", "at most one top-up and one excess sweep")
    for sweep in sweeps:
        if sweep.counter_account_id and sweep.counter_account_id == account_id:
            raise _bad("sweeps", "a sweep moves money to or from another account")
        low_ok = sweep.kind is SweepKind.TOP_UP and sweep.trigger <= sweep.target
        high_ok = sweep.kind is SweepKind.EXCESS and sweep.trigger >= sweep.target
        if not (low_ok or high_ok):
            raise _bad("sweeps", "a top-up's target is at or above its threshold, an excess sweep's at or below "
                                 "its ceiling")
    by_kind = {s.kind: s for s in sweeps}
    if len(by_kind) == 2 and by_kind[SweepKind.TOP_UP].target > by_kind[SweepKind.EXCESS].target:
        raise _bad("sweeps", "the top-up target must not lie above the excess target")


def _bad(field_name: str, why: str):
    return invalid("CONTROL_INVALID", f"controls.{field_name}: {why}", field=field_name)


# ------------------------------------------------------------------------------------------ windows

CounterKey = tuple[str, str, str, int]  # (account id, scope, granularity, bucket start in us)
_US = 1_000_000


def granularity(velocity: Velocity) -> str:
    return f"{velocity.window.value}/{SLIDING_BUCKETS}" if velocity.sliding else velocity.window.value


def bucket_start_us(velocity: Velocity, now_us: int) -> int:
    """The start of the counter a spend at `now_us` goes to."""
    if velocity.sliding:
        width = WINDOW_S[velocity.window] * _US // SLIDING_BUCKETS
        return now_us - now_us % width
    at = datetime.fromtimestamp(now_us // _US, UTC)
    if velocity.window is Window.HOUR:
        at = at.replace(minute=0, second=0)
    elif velocity.window is Window.DAY:
        at = at.replace(hour=0, minute=0, second=0)
    else:
        at = at.replace(day=1, hour=0, minute=0, second=0)
    return int(at.timestamp()) * _US


def window_buckets(velocity: Velocity, now_us: int) -> list[int]:
    """The bucket starts whose counters add up to the spend in the window that ends at `now_us`."""
    current = bucket_start_us(velocity, now_us)
    if not velocity.sliding:
        return [current]
    width = WINDOW_S[velocity.window] * _US // SLIDING_BUCKETS
    return [current - i * width for i in range(SLIDING_BUCKETS + 1)]


def earliest_bucket_us(now_us: int) -> int:
    """No window reaches further back than this: counters before it need not be read."""
    return min(now_us - (WINDOW_S[Window.MONTH] * _US * (SLIDING_BUCKETS + 1)) // SLIDING_BUCKETS,
               bucket_start_us(Velocity(Window.MONTH, 1), now_us))


def counter_keys(account_id: str, scope: Scope, velocity: Velocity, now_us: int) -> list[CounterKey]:
    return [(account_id, scope.value, granularity(velocity), start) for start in window_buckets(velocity, now_us)]


# ------------------------------------------------------------------------------------------ checking


@dataclass(frozen=True, slots=True)
class Move:
    """One account's part in a voucher: who it is and how far the voucher moves its balance."""

    account_id: str
    code: str
    parent_id: str | None
    delta: int  # on the account's normal side: negative lowers the balance
    ancestors: tuple[str, ...] | None = None  # every ancestor, the parent first; None: the parent only

    @property
    def teams(self) -> tuple[str, ...]:
        """The accounts whose team budgets this account's spend counts toward."""
        if self.ancestors is not None:
            return self.ancestors
        return (self.parent_id,) if self.parent_id else ()


@dataclass(slots=True)
class Decision:
    checked: list[str] = field(default_factory=list)  # "code:control" for each control passed
    spent: dict[CounterKey, int] = field(default_factory=dict)  # counter -> spend to add


Ancestors = Mapping[str, tuple[str, ...]]  # account id -> its ancestors, the parent first


def moves_of(lines, accounts: Mapping[str, object], ancestors: Ancestors | None = None) -> list[Move]:
    """The net move of each account a voucher's lines touch (lines carry account_id, side, amount)."""
    deltas: dict[str, int] = {}
    for line in lines:
        account = accounts[line.account_id]
        deltas[line.account_id] = deltas.get(line.account_id, 0) + Side(line.side).signed(line.amount,
                                                                                             account.normal_side)
    found = ancestors or {}
    return [Move(aid, accounts[aid].code, accounts[aid].parent_id, d, found.get(aid)) for aid, d in deltas.items()]


def is_swept_spend(flow_type: str, metadata: Mapping[str, str]) -> bool:
    """An excess sweep: its only spender is the swept account, which its own controls do not hold (the key
    `sweep` is one only the server sets)."""
    return flow_type == SWEEP_FLOW and metadata.get("sweep") == SweepKind.EXCESS.value


def check_voucher(flow_type: str, moves: list[Move], controls: Mapping[str, Controls],
                  used: Mapping[CounterKey, int], now_us: int) -> Decision:
    """Every control on the accounts a voucher spends from (and every team budget above them, up the whole
    hierarchy), in a fixed order; the first one that fails refuses the voucher with its FAILED_PRECONDITION
    reason."""
    decision = Decision()
    gainers = [m for m in moves if m.delta > 0]
    for move in moves:
        spend = -move.delta
        if spend <= 0:
            continue
        own = controls.get(move.account_id)
        if own is not None and own.guards_spend:
            _check_own(flow_type, move, spend, own, gainers, used, now_us, decision)
        for depth, team_id in enumerate(move.teams, start=1):
            team = controls.get(team_id)
            if team is not None and team.team_velocity:
                _check_velocity(team_id, Scope.TEAM, team.team_velocity, spend, used, now_us, decision,
                                team_label(depth, move.code))
    return decision


def team_label(depth: int, code: str) -> str:
    """`team:CODE` for the parent's budget, `team2:CODE` for the grandparent's, and so on."""
    return f"team:{code}" if depth == 1 else f"team{depth}:{code}"


def spend_room(flow_type: str, spender: Move, gainers: list[Move], controls: Mapping[str, Controls],
               used: Mapping[CounterKey, int], now_us: int) -> int | None:
    """The most `spender` may spend in one voucher of `flow_type` to `gainers` now without a control refusing
    it (None: no control bounds it; 0: a control refuses any): what a top-up draws at most."""
    room = None
    own = controls.get(spender.account_id)
    if own is not None and own.guards_spend:
        if own.flows and flow_type not in own.flows:
            return 0
        if own.counterparties and not all(any(fnmatchcase(g.code, p) for p in own.counterparties)
                                          for g in gainers):
            return 0
        if own.per_voucher_max:
            room = own.per_voucher_max
        room = least(room, _velocity_room(spender.account_id, Scope.OWN, own.velocity, used, now_us))
    for team_id in spender.teams:
        team = controls.get(team_id)
        if team is not None and team.team_velocity:
            room = least(room, _velocity_room(team_id, Scope.TEAM, team.team_velocity, used, now_us))
    return room


def _velocity_room(account_id: str, scope: Scope, velocities: tuple[Velocity, ...],
                   used: Mapping[CounterKey, int], now_us: int) -> int | None:
    room = None
    for velocity in velocities:
        spent = sum(used.get(k, 0) for k in counter_keys(account_id, scope, velocity, now_us))
        room = least(room, max(0, velocity.limit - spent))
    return room


def least(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _check_own(flow_type: str, move: Move, spend: int, own: Controls, gainers: list[Move],
               used: Mapping[CounterKey, int], now_us: int, decision: Decision) -> None:
    code = move.code
    if own.flows:
        if flow_type not in own.flows:
            raise precondition("FLOW_NOT_ALLOWED", f"account {code} may not spend in flow {flow_type!r}",
                               account=code, flow_type=flow_type)
        decision.checked.append(f"{code}:flows")
    if own.per_voucher_max:
        if spend > own.per_voucher_max:
            raise precondition("SPEND_LIMIT_EXCEEDED", f"account {code} may spend at most {own.per_voucher_max} "
                               f"per voucher, this one spends {spend}", account=code, limit=own.per_voucher_max,
                               spend=spend)
        decision.checked.append(f"{code}:per_voucher_max")
    if own.counterparties:
        for gainer in gainers:
            if not any(fnmatchcase(gainer.code, p) for p in own.counterparties):
                raise precondition("COUNTERPARTY_NOT_ALLOWED", f"account {code} may not pay {gainer.code}",
                                   account=code, counterparty=gainer.code)
        decision.checked.append(f"{code}:counterparties")
    _check_velocity(move.account_id, Scope.OWN, own.velocity, spend, used, now_us, decision, code)


def _check_velocity(account_id: str, scope: Scope, velocities: tuple[Velocity, ...], spend: int,
                    used: Mapping[CounterKey, int], now_us: int, decision: Decision, label: str) -> None:
    for velocity in velocities:
        keys = counter_keys(account_id, scope, velocity, now_us)
        spent = sum(used.get(k, 0) + decision.spent.get(k, 0) for k in keys)
        if spent + spend > velocity.limit:
            reason = "TEAM_BUDGET_EXCEEDED" if scope is Scope.TEAM else "VELOCITY_LIMIT_EXCEEDED"
            raise precondition(reason, f"{label}: {velocity.label} spend would reach {spent + spend}, the limit is "
                               f"{velocity.limit}", account=label, window=velocity.label, spent=spent,
                               limit=velocity.limit, spend=spend)
        decision.spent[keys[0]] = decision.spent.get(keys[0], 0) + spend
        decision.checked.append(f"{label}:{'team_' if scope is Scope.TEAM else ''}{velocity.label}")


def evidence(checked: list[str]) -> dict[str, str]:
    """The metadata a voucher carries when controls were checked: the seed's policy mark and which passed."""
    if not checked:
        return {}
    text = ",".join(checked)
    if len(text) > EVIDENCE_LENGTH_MAX:
        text = text[:EVIDENCE_LENGTH_MAX - 3] + "..."
    return {"policy": POLICY_PASSED, "controls_checked": text}


# ------------------------------------------------------------------------------------------ sweeps


def sweep_amount(sweep: Sweep, current: int, room: int | None) -> int:
    """How much the sweep moves now (0: nothing): a top-up up to its target, an excess sweep down to its
    target, either bounded by what the giving account can give (`room`; None: unbounded)."""
    if sweep.kind is SweepKind.TOP_UP:
        wanted = sweep.target - current if current < sweep.trigger else 0
    else:
        wanted = current - sweep.target if current > sweep.trigger else 0
    return max(0, wanted if room is None else min(wanted, room))
