"""Spending controls: setting and reading them (ControlBook), and checking them inside the batch writer's
transaction (BatchControls).

A posting to a tenant without controls costs nothing extra: the book remembers, per process, which tenants
had none when last asked and reads nothing for them for ABSENT_RECHECK_S. A change made through this process
forgets that at once; one made through another replica is seen here within ABSENT_RECHECK_S. A tenant with
controls costs one read of its controls and one of the counters of the accounts the batch moves, per batch.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from sqlalchemy import Connection

from tally.domain.accounts import Account, BalanceState, FloorPolicy
from tally.domain.controls import (
    SWEEP_FLOW,
    Controls,
    CounterKey,
    Scope,
    Sweep,
    SweepKind,
    Velocity,
    check_controls,
    check_voucher,
    counter_keys,
    earliest_bucket_us,
    evidence,
    moves_of,
    sweep_amount,
)
from tally.domain.errors import ErrorKind, LedgerError, invalid, precondition
from tally.domain.fields import check_request_id, check_tenant
from tally.domain.vouchers import AccountRef, LineDraft, Voucher, VoucherDraft
from tally.rules.engine import RuleSet
from tally.service.posting.undo import Revertible
from tally.service.queries import require_account
from tally.storage import controls_repo
from tally.storage.uow import UnitOfWork

ABSENT_RECHECK_S = 1.0
TEMPLATE_CODES_CACHED_MAX = 100_000  # account codes whose template's controls are remembered
CONTROLLED_ACCOUNTS_MAX = 10_000  # accounts with controls, per tenant: each batch of the tenant reads them all


@dataclass(frozen=True)
class WindowUse:
    scope: Scope
    velocity: Velocity
    spent: int  # in the window that ends now


@dataclass(frozen=True)
class ControlsView:
    account: Account
    controls: Controls
    usage: list[WindowUse]
    updated_us: int


TemplateControls = Callable[[str], Controls | None]  # account code -> its rule-set template's controls


def template_controls(rules: RuleSet) -> TemplateControls | None:
    """The controls the rule set's account templates give the accounts they open; None when none has any."""
    if not any(template.controls for template in rules.templates):
        return None

    @functools.lru_cache(maxsize=TEMPLATE_CODES_CACHED_MAX)
    def lookup(code: str) -> Controls | None:
        found = rules.template_for(code)
        return found[0].controls if found else None

    return lookup


class ControlBook:
    def __init__(self, uow: UnitOfWork, clock: Callable[[], int], templates: TemplateControls | None = None) -> None:
        self.uow, self.clock, self.templates = uow, clock, templates
        self._absent: dict[str, float] = {}  # tenant -> monotonic time it was seen without controls
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the batch writer's side

    def open_batch(self, conn: Connection, tenant_ids: set[str]) -> BatchControls:
        """The controls of the batch's tenants: no read at all for tenants recently seen without any."""
        now = time.monotonic()
        with self._lock:
            ask = {t for t in tenant_ids if now - self._absent.get(t, -ABSENT_RECHECK_S) >= ABSENT_RECHECK_S}
        found = controls_repo.tenant_controls(conn, ask) if ask else {}
        with self._lock:
            for tenant_id in ask - found.keys():
                self._absent[tenant_id] = now
        if self.templates is not None:
            return BatchControls(found, self.templates)
        return BatchControls(found) if found else NO_CONTROLS

    def _changed(self, tenant_id: str) -> None:
        with self._lock:
            self._absent.pop(tenant_id, None)

    # ------------------------------------------------------------------ the API's side

    def set_controls(self, tenant_id: str, ref: AccountRef, controls: Controls, sweeps: list[SweepSpec],
                     request_id: str) -> ControlsView:
        """Replaces an account's controls (an empty set clears them); `sweeps` name their other account by
        id or code. Setting the same controls again changes nothing, so a resend is safe; the request_id of the
        account's last change sent with other controls is ALREADY_EXISTS. It runs under the write gate, so the
        next batch sees it."""
        check_tenant(tenant_id)
        check_request_id(request_id)

        def work(conn: Connection) -> ControlsView:
            account = require_account(conn, tenant_id, ref)
            wanted = replace(controls, sweeps=tuple(_sweep_in(conn, account, spec) for spec in sweeps))
            return self._store(conn, account, check_controls(wanted, account.id), request_id)

        try:
            return self.uow.write({tenant_id}, work)
        finally:
            self._changed(tenant_id)

    def _store(self, conn: Connection, account: Account, controls: Controls, request_id: str) -> ControlsView:
        tenant_id = account.tenant_id
        stored = controls_repo.get_controls(conn, tenant_id, account.id)
        if stored is not None and stored[1] == request_id and stored[0] != controls:
            # The account's last change came with this request_id and other controls (AIP-155).
            raise LedgerError(ErrorKind.ALREADY_EXISTS, "REQUEST_ID_REUSED",
                              f"request_id {request_id!r} already set other controls on {account.code}",
                              request_id=request_id, fields="controls")
        if stored is None or stored[0] != controls:
            if (stored is None or stored[0].empty) and not controls.empty:
                _check_room(conn, tenant_id)
            controls_repo.save_controls(conn, tenant_id, account.id, controls, request_id, self.clock(),
                                        exists=stored is not None)
        return _view(conn, account, controls, self.clock())

    def get_controls(self, tenant_id: str, ref: AccountRef) -> ControlsView:
        check_tenant(tenant_id)

        def work(conn: Connection) -> ControlsView:
            account = require_account(conn, tenant_id, ref)
            stored = controls_repo.get_controls(conn, tenant_id, account.id)
            controls, updated_us = (stored[0], stored[2]) if stored else (Controls(), 0)
            return replace(_view(conn, account, controls, self.clock()), updated_us=updated_us)

        return self.uow.read({tenant_id}, work)


def _check_room(conn: Connection, tenant_id: str) -> None:
    if controls_repo.count_controlled(conn, tenant_id) >= CONTROLLED_ACCOUNTS_MAX:
        raise precondition("CONTROLLED_ACCOUNTS_TOO_MANY",
                           f"a tenant may control at most {CONTROLLED_ACCOUNTS_MAX} accounts",
                           limit=CONTROLLED_ACCOUNTS_MAX)


@dataclass(frozen=True)
class SweepSpec:
    kind: SweepKind
    trigger: int
    target: int
    counter_account: AccountRef


def _sweep_in(conn: Connection, account: Account, spec: SweepSpec) -> Sweep:
    """A sweep moves money between two accounts of one currency kept on the same side: a transfer."""
    other = require_account(conn, account.tenant_id, spec.counter_account)
    if other.currency != account.currency or other.normal_side is not account.normal_side:
        raise invalid("CONTROL_INVALID", f"sweep account {other.code} must hold {account.currency} on the "
                      f"{account.normal_side.value} side, as {account.code} does", field="sweeps")
    return Sweep(spec.kind, spec.trigger, spec.target, other.id)


def _view(conn: Connection, account: Account, controls: Controls, now_us: int) -> ControlsView:
    wanted = [(Scope.OWN, v) for v in controls.velocity] + [(Scope.TEAM, v) for v in controls.team_velocity]
    keys = {(scope, v): counter_keys(account.id, scope, v, now_us) for scope, v in wanted}
    counters = controls_repo.window_counters(conn, account.tenant_id, [k for ks in keys.values() for k in ks])
    usage = [WindowUse(scope, v, sum(counters.get(k, 0) for k in keys[(scope, v)])) for scope, v in wanted]
    return ControlsView(account, controls, usage, now_us)


class BatchControls:
    """One batch's view of its tenants' controls and spend counters, reverted with a refused submission."""

    def __init__(self, controls: Mapping[str, dict[str, Controls]], templates: TemplateControls | None = None) -> None:
        self.controls = {tenant_id: dict(by_account) for tenant_id, by_account in controls.items()}
        self.templates = templates  # the rule set's controls, for accounts without their own
        self.used: Revertible = Revertible()  # (tenant, counter) -> spent
        self.stored: set = set()

    def extra_refs(self) -> dict[str, list[AccountRef]]:
        """Accounts a sweep may move, read with the batch's own."""
        return {tenant_id: [AccountRef(id=s.counter_account_id) for c in by_account.values() for s in c.sweeps]
                for tenant_id, by_account in self.controls.items()}

    def load_usage(self, conn: Connection, accounts: Mapping[str, Mapping[str, Account]], now_us: int) -> None:
        """The counters of the controlled accounts the batch moves and of their parents' team budgets."""
        if self.templates is not None:
            self._add_template_controls(accounts)
        for tenant_id, by_account in self.controls.items():
            present = accounts.get(tenant_id, {})
            ids = {a for a in present if a in by_account and by_account[a].velocity}
            ids |= {a.parent_id for a in present.values()
                    if a.parent_id in by_account and by_account[a.parent_id].team_velocity}
            self.used.update(controls_repo.load_counters(conn, tenant_id, ids, earliest_bucket_us(now_us)))
        self.stored = set(self.used)
        self.used.checkpoint()

    def _add_template_controls(self, accounts: Mapping[str, Mapping[str, Account]]) -> None:
        for tenant_id, present in accounts.items():
            by_account = self.controls.setdefault(tenant_id, {})
            for account in present.values():
                if account.id not in by_account:
                    found = self.templates(account.code)
                    if found is not None:
                        by_account[account.id] = found

    def check(self, tenant_id: str, vouchers: list[Voucher], accounts: Mapping[str, Account],
              now_us: int) -> list[Voucher]:
        """Each voucher checked in turn (refusing the submission at the first failed control); those that
        passed controls carry the evidence in their metadata."""
        controls = self.controls.get(tenant_id)
        if not controls:
            return vouchers
        checked = []
        for voucher in vouchers:
            used = _TenantCounters(self.used, tenant_id)
            decision = check_voucher(voucher.flow_type, moves_of(voucher.lines, accounts), controls, used, now_us)
            for key, spend in decision.spent.items():
                self.used[(tenant_id, key)] = self.used.get((tenant_id, key), 0) + spend
            marks = evidence(decision.checked)
            checked.append(replace(voucher, metadata={**voucher.metadata, **marks}) if marks else voucher)
        return checked

    def sweep(self, tenant_id: str, vouchers: list[Voucher], accounts: Mapping[str, Account],
              balances: Mapping[str, BalanceState], apply: Callable[[VoucherDraft], Voucher]) -> list[Voucher]:
        """The sweep vouchers the accounts these vouchers moved call for now, each applied in turn. A sweep
        that cannot run (its other account frozen, say) is left for the next posting: it never refuses the
        posting that called for it."""
        controls = self.controls.get(tenant_id)
        if not controls:
            return []
        swept = []
        for account_id in dict.fromkeys(line.account_id for v in vouchers for line in v.lines):
            for sweep in controls.get(account_id, Controls()).sweeps:
                draft = sweep_draft(sweep, accounts[account_id], accounts.get(sweep.counter_account_id), balances)
                if draft is None:
                    continue
                try:
                    swept.append(apply(draft))
                except LedgerError:
                    continue
        return swept

    def write(self, conn: Connection) -> None:
        changed = {k: self.used[k] for k in self.used if k in self.stored}
        created = {k: v for k, v in self.used.items() if k not in self.stored}
        controls_repo.save_counters(conn, created, changed)


class _NoControls(BatchControls):
    def __init__(self) -> None:
        super().__init__({})

    def load_usage(self, conn: Connection, accounts, now_us: int) -> None:
        return None

    def write(self, conn: Connection) -> None:
        return None


NO_CONTROLS = _NoControls()


class _TenantCounters(Mapping):
    """One tenant's counters out of the batch's, keyed as the domain keys them."""

    def __init__(self, used: Mapping, tenant_id: str) -> None:
        self.used, self.tenant_id = used, tenant_id

    def __getitem__(self, key: CounterKey) -> int:
        return self.used[(self.tenant_id, key)]

    def __iter__(self):
        return (k for t, k in self.used if t == self.tenant_id)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def sweep_draft(sweep, account: Account, other: Account | None,
                 balances: Mapping[str, BalanceState]) -> VoucherDraft | None:
    if other is None:
        return None
    current = balances[account.id].current
    giver = other if sweep.kind is SweepKind.TOP_UP else account
    room = None  # what the giving account can give without passing its floor
    if giver.floor_policy is FloorPolicy.NON_NEGATIVE:
        room = max(0, balances[giver.id].available(giver.credit_limit))
    amount = sweep_amount(sweep, current, room)
    if amount <= 0:
        return None
    up = account.normal_side  # the side that raises the swept account's balance
    side, other_side = (up, up.opposite()) if sweep.kind is SweepKind.TOP_UP else (up.opposite(), up)
    return VoucherDraft(SWEEP_FLOW, (
        LineDraft(AccountRef(id=account.id), side, amount, account.currency),
        LineDraft(AccountRef(id=other.id), other_side, amount, account.currency)),
        memo=f"{sweep.kind.value} sweep of {account.code}", metadata={"sweep": sweep.kind.value})
