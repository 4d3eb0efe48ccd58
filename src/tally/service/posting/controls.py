"""Spending controls inside the batch writer's transaction: the controls and spend counters of one batch,
reverted with a refused submission; the sweeps a posting calls for; the rule set's template controls.

Pure bookkeeping over what the batch reads: the ControlBook (service/controls.py) decides whether a batch
reads anything at all, and writes nothing here but the counters the batch advanced.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import replace

from sqlalchemy import Connection

from tally.domain.accounts import Account, BalanceState, FloorPolicy
from tally.domain.controls import (
    SWEEP_FLOW,
    Controls,
    CounterKey,
    Sweep,
    SweepKind,
    check_voucher,
    earliest_bucket_us,
    evidence,
    moves_of,
    sweep_amount,
)
from tally.domain.errors import LedgerError
from tally.domain.vouchers import AccountRef, LineDraft, Voucher, VoucherDraft
from tally.rules.engine import RuleSet
from tally.service.posting.undo import Revertible
from tally.storage import controls_repo

TEMPLATE_CODES_CACHED_MAX = 100_000  # account codes whose template's controls are remembered


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


def sweep_draft(sweep: Sweep, account: Account, other: Account | None,
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
