"""Spending controls: setting and reading them, and which batches need to read them (ControlBook); the
checks inside the batch writer's transaction are in service/posting/controls.py.

A posting to a tenant without controls costs nothing extra: the book remembers, per process, which tenants
had none when last asked and reads nothing for them for ABSENT_RECHECK_S. A change made through this process
forgets that at once; one made through another replica is seen here within ABSENT_RECHECK_S. A tenant with
controls costs one read of its controls and one of the counters of the accounts the batch moves, per batch.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import Connection

from tally.domain.accounts import Account
from tally.domain.controls import Controls, Scope, Sweep, SweepKind, Velocity, check_controls, counter_keys
from tally.domain.errors import ErrorKind, LedgerError, invalid, precondition
from tally.domain.fields import check_request_id, check_tenant
from tally.domain.vouchers import AccountRef
from tally.service.posting.controls import NO_CONTROLS, BatchControls, TemplateControls
from tally.service.queries import require_account
from tally.storage import controls_repo
from tally.storage.uow import UnitOfWork

ABSENT_RECHECK_S = 1.0
CONTROLLED_ACCOUNTS_MAX = 10_000  # accounts with controls, per tenant: each batch of the tenant reads them all


@dataclass(frozen=True)
class WindowUse:
    scope: Scope
    velocity: Velocity
    spent: int  # in the window that ends now


class ControlsSource(enum.Enum):
    NONE = "none"
    API = "api"  # set through SetAccountControls: they replace the rule set's
    RULE_SET = "rule_set"  # the account template that opened the account


@dataclass(frozen=True)
class ControlsView:
    account: Account
    controls: Controls
    usage: list[WindowUse]
    updated_us: int
    source: ControlsSource = ControlsSource.API
    template_pattern: str = ""  # with RULE_SET: the template's code pattern


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
            source, pattern = self._source(account, controls)
            if source is ControlsSource.RULE_SET:
                controls = self.templates(account.code)  # type: ignore[misc]  # _source found them
            return replace(_view(conn, account, controls, self.clock()), updated_us=updated_us, source=source,
                           template_pattern=pattern)

        return self.uow.read({tenant_id}, work)

    def _source(self, account: Account, stored: Controls) -> tuple[ControlsSource, str]:
        """Which controls the batch writer checks on the account: the API's when set (cleared ones count as
        unset), else its template's."""
        if not stored.empty:
            return ControlsSource.API, ""
        found = self.templates(account.code) if self.templates is not None else None
        if found is None or found.empty:
            return ControlsSource.NONE, ""
        return ControlsSource.RULE_SET, self.templates.pattern_for(account.code)  # type: ignore[union-attr]


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

