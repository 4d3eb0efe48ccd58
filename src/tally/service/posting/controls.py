"""Spending controls inside the batch writer's transaction: the controls and spend counters of one batch,
reverted with a refused submission; the sweeps a posting calls for; the rule set's template controls.

Pure bookkeeping over what the batch reads: the ControlBook (service/controls.py) decides whether a batch
reads anything at all, and writes nothing here but the counters the batch advanced.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import replace

from sqlalchemy import Connection

from tally.domain.accounts import Account, AccountStatus, BalanceState
from tally.domain.controls import (
    SWEEP_FLOW,
    Controls,
    CounterKey,
    Move,
    Sweep,
    SweepKind,
    check_voucher,
    earliest_bucket_us,
    evidence,
    is_swept_spend,
    least,
    moves_of,
    spend_room,
    sweep_amount,
)
from tally.domain.errors import LedgerError
from tally.domain.limits import ACCOUNT_DEPTH_MAX
from tally.domain.security import lowering_room
from tally.domain.vouchers import AccountRef, LineDraft, Voucher, VoucherDraft
from tally.rules.engine import RuleSet
from tally.rules.patterns import parse_pattern
from tally.service.posting.account_links import AccountLinks
from tally.service.posting.undo import Revertible
from tally.storage import accounts_repo, controls_repo, hierarchy_repo

TEMPLATE_CODES_CACHED_MAX = 100_000  # account codes whose template's controls are remembered


TemplateControls = Callable[[str], Controls | None]  # account code -> its rule-set template's controls


def template_controls(rules: RuleSet) -> TemplateControls | None:
    """The controls the rule set's account templates give the accounts they open; None when none has any."""
    if not any(template.controls for template in rules.templates):
        return None

    @functools.lru_cache(maxsize=TEMPLATE_CODES_CACHED_MAX)
    def lookup(code: str) -> Controls | None:
        found = rules.template_for(code)
        if not found or found[0].controls is None:
            return None
        controls, values = found[0].controls, found[1]
        if not controls.sweeps:
            return controls
        return replace(controls, sweeps=tuple(s for s in (_filled(s, values) for s in controls.sweeps) if s))

    def pattern_for(code: str) -> str:
        found = rules.template_for(code)
        return found[0].pattern.text if found else ""

    lookup.pattern_for = pattern_for  # the template's code pattern, for showing where controls come from
    lookup.teams = any(t.controls.team_velocity for t in rules.templates if t.controls)  # ancestors to read
    # The patterns whose accounts have sweeps: the day close looks for them.
    lookup.sweep_patterns = tuple(t.pattern for t in rules.templates if t.controls and t.controls.sweeps)
    lookup.sweeps = bool(lookup.sweep_patterns)  # other accounts for a batch to read
    return lookup


def _filled(sweep: Sweep, values: dict[str, str]) -> Sweep | None:
    """A template's sweep with its other account's code filled from the account's own placeholders."""
    try:
        return replace(sweep, counter_code=parse_pattern(sweep.counter_code, code=True).fill(values))
    except LedgerError:  # the filled code is too long to be one: the sweep cannot run
        return None


class BatchControls:
    """One batch's view of its tenants' controls and spend counters, reverted with a refused submission."""

    def __init__(self, controls: Mapping[str, dict[str, Controls]], templates: TemplateControls | None = None) -> None:
        self.controls = {tenant_id: dict(by_account) for tenant_id, by_account in controls.items()}
        self.templates = templates  # the rule set's controls, for accounts without their own
        self.used: Revertible = Revertible()  # (tenant, counter) -> spent
        self.stored: set = set()
        self.ancestors: dict[str, dict[str, tuple[str, ...]]] = {}  # tenant -> account id -> its ancestors
        self.by_code: Mapping[str, Mapping[str, Account]] = {}  # the batch's accounts by code, for template sweeps
        self.now_us = 0

    def extra_refs(self) -> dict[str, list[AccountRef]]:
        """Accounts a sweep may move, read with the batch's own."""
        return {tenant_id: [AccountRef(id=s.counter_account_id) for c in by_account.values() for s in c.sweeps]
                for tenant_id, by_account in self.controls.items()}

    def load_sweep_accounts(self, conn: Connection, by_id: dict[str, dict[str, Account]],
                            by_code: dict[str, dict[str, Account]],
                            balances: MutableMapping[str, BalanceState]) -> None:
        """The other accounts of the rule set's sweeps on the batch's accounts, read (and locked) before the
        batch's account links look at what it holds: one read, only when a template carries sweeps."""
        self.by_code = by_code
        if not getattr(self.templates, "sweeps", False):
            return
        for tenant_id, present in by_id.items():
            own = self.controls.get(tenant_id, {})
            wanted = {s.counter_code for a in present.values() if a.id not in own
                      for s in (self.templates(a.code) or Controls()).sweeps} - by_code[tenant_id].keys()
            if not wanted:
                continue
            _, found = accounts_repo.find_accounts(conn, tenant_id, [AccountRef(code=c) for c in sorted(wanted)])
            missing = [a.id for a in found.values() if a.id not in balances]
            balances.update(accounts_repo.load_balances(conn, tenant_id, missing, for_update=True))
            for account in found.values():
                by_id[tenant_id][account.id] = account
                by_code[tenant_id][account.code] = account

    def load_usage(self, conn: Connection, accounts: Mapping[str, Mapping[str, Account]], now_us: int) -> None:
        """The counters of the controlled accounts the batch moves and of the team budgets above them."""
        self.now_us = now_us
        if self.templates is not None:
            self._add_template_controls(accounts)
        for tenant_id, by_account in self.controls.items():
            present = accounts.get(tenant_id, {})
            ids = {a for a in present if a in by_account and by_account[a].velocity}
            if self._has_team_budgets(by_account):
                chains = self._load_ancestors(conn, tenant_id, present, by_account)
                ids |= {t for chain in chains.values() for t in chain
                        if t in by_account and by_account[t].team_velocity}
            self.used.update(controls_repo.load_counters(conn, tenant_id, ids, earliest_bucket_us(now_us)))
        self.stored = set(self.used)
        self.used.checkpoint()

    def _has_team_budgets(self, by_account: Mapping[str, Controls]) -> bool:
        return getattr(self.templates, "teams", False) or any(c.team_velocity for c in by_account.values())

    def _load_ancestors(self, conn: Connection, tenant_id: str, present: Mapping[str, Account],
                        by_account: dict[str, Controls]) -> dict[str, tuple[str, ...]]:
        """Every ancestor of the batch's accounts (one read), with the rule set's controls of those a
        template opened: a team budget binds its whole subtree."""
        parents = {a.parent_id for a in present.values() if a.parent_id}
        found = hierarchy_repo.ancestors(conn, tenant_id, parents)
        # A main account this batch opens with its sub-account (issue 21) is not stored yet: the batch holds it.
        found.update({p: (present[p].parent_id, present[p].code) for p in parents - found.keys() if p in present})
        if self.templates is not None:
            for account_id, (_, code) in found.items():
                if account_id not in by_account and (controls := self.templates(code)) is not None:
                    by_account[account_id] = replace(controls, sweeps=())  # not moved here: budgets only
        chains = ancestor_chains(present.values(), found)
        self.ancestors[tenant_id] = chains
        return chains

    def _add_template_controls(self, accounts: Mapping[str, Mapping[str, Account]]) -> None:
        for tenant_id, present in accounts.items():
            by_account = self.controls.setdefault(tenant_id, {})
            for account in present.values():
                if account.id not in by_account:
                    found = self.templates(account.code)
                    if found is not None:
                        by_account[account.id] = self._resolved(tenant_id, account, found)

    def _resolved(self, tenant_id: str, account: Account, controls: Controls) -> Controls:
        return resolve_sweeps(controls, account, self.by_code.get(tenant_id, {})) if controls.sweeps else controls

    def check(self, tenant_id: str, vouchers: list[Voucher], accounts: Mapping[str, Account],
              now_us: int) -> list[Voucher]:
        """Each voucher checked in turn (refusing the submission at the first failed control); those that
        passed controls carry the evidence in their metadata. An excess sweep is not held to the controls of
        the account it sweeps, its only spender."""
        controls = self.controls.get(tenant_id)
        if not controls:
            return vouchers
        checked = []
        ancestors = self.ancestors.get(tenant_id)
        for voucher in vouchers:
            if is_swept_spend(voucher.flow_type, voucher.metadata):
                checked.append(voucher)
                continue
            used = _TenantCounters(self.used, tenant_id)
            moves = moves_of(voucher.lines, accounts, ancestors)
            decision = check_voucher(voucher.flow_type, moves, controls, used, now_us)
            for key, spend in decision.spent.items():
                self.used[(tenant_id, key)] = self.used.get((tenant_id, key), 0) + spend
            marks = evidence(decision.checked)
            checked.append(replace(voucher, metadata={**voucher.metadata, **marks}) if marks else voucher)
        return checked

    def sweep(self, tenant_id: str, vouchers: list[Voucher], accounts: Mapping[str, Account],
              balances: MutableMapping[str, BalanceState], apply: Callable[[VoucherDraft], Voucher],
              links: AccountLinks | None = None) -> list[Voucher]:
        """The sweep vouchers the accounts these vouchers moved call for now, each applied in turn. A sweep
        moves at most what every check a posting passes allows (floors, what a deposit secures, a bound
        credit limit, the funding account's controls); one that still cannot run (its other account frozen,
        say) is left for the next posting: it never refuses the posting that called for it."""
        controls = self.controls.get(tenant_id)
        if not controls:
            return []
        swept = []
        for account_id in dict.fromkeys(line.account_id for v in vouchers for line in v.lines):
            for sweep in controls.get(account_id, Controls()).sweeps:
                voucher = self._sweep_one(tenant_id, sweep, accounts[account_id], accounts, balances, apply, links)
                if voucher is not None:
                    swept.append(voucher)
        return swept

    def _sweep_one(self, tenant_id: str, sweep: Sweep, account: Account, accounts: Mapping[str, Account],
                   balances: MutableMapping[str, BalanceState], apply: Callable[[VoucherDraft], Voucher],
                   links: AccountLinks | None) -> Voucher | None:
        other = accounts.get(sweep.counter_account_id)
        if other is None:
            return None

        def room(giver: Account) -> int | None:
            floor = links.room(giver, balances) if links is not None else floor_room(giver, balances)
            return giver_room(sweep, account, giver, floor, self.controls[tenant_id],
                              _TenantCounters(self.used, tenant_id), self.now_us,
                              self.ancestors.get(tenant_id, {}).get(giver.id))

        draft = sweep_draft(sweep, account, other, balances, room)
        if draft is None:
            return None
        before = {account.id: balances[account.id], other.id: balances[other.id]}
        try:
            voucher = apply(draft)
            if links is not None:
                links.check(tenant_id, [voucher], (), balances)
            [voucher] = self.check(tenant_id, [voucher], accounts, self.now_us)
        except LedgerError:
            balances.update(before)  # this sweep only: the posting that called for it stands
            return None
        return voucher

    def write(self, conn: Connection) -> None:
        changed = {k: self.used[k] for k in self.used if k in self.stored}
        created = {k: v for k, v in self.used.items() if k not in self.stored}
        controls_repo.save_counters(conn, created, changed)


class _NoControls(BatchControls):
    def __init__(self) -> None:
        super().__init__({})

    def load_sweep_accounts(self, conn: Connection, by_id, by_code, balances) -> None:
        return None  # shared by every batch: keeps nothing of one

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


def resolve_sweeps(controls: Controls, account: Account, codes: Mapping[str, Account]) -> Controls:
    """A template's controls with each sweep naming its other account by id: a sweep whose account is not
    there, or holds another currency or side, cannot run and is left out."""
    sweeps = []
    for sweep in controls.sweeps:
        other = codes.get(sweep.counter_code)
        if (other is not None and other.id != account.id and other.currency == account.currency
                and other.normal_side is account.normal_side):
            sweeps.append(replace(sweep, counter_account_id=other.id))
    return replace(controls, sweeps=tuple(sweeps))


def ancestor_chains(accounts: Iterable[Account],
                    found: Mapping[str, tuple[str | None, str]]) -> dict[str, tuple[str, ...]]:
    """Each account's ancestors, the parent first, from `hierarchy_repo.ancestors`."""
    chains = {}
    for account in accounts:
        chain, parent = [], account.parent_id
        while parent and parent in found and len(chain) < ACCOUNT_DEPTH_MAX:
            chain.append(parent)
            parent = found[parent][0]
        chains[account.id] = tuple(chain)
    return chains


GiverRoom = Callable[[Account], int | None]  # how far the giving account may be lowered now (None: unbounded)


def giver_room(sweep: Sweep, account: Account, giver: Account, floor: int | None, controls: Mapping[str, Controls],
               used: Mapping[CounterKey, int], now_us: int, ancestors: tuple[str, ...] | None) -> int | None:
    """What the sweep of `account` may take from `giver` (whose `floor` is known): an excess sweep is held to the
    floor alone (the swept account's own controls do not hold a sweep), a top-up to the funding account's
    controls and the team budgets above it too."""
    if sweep.kind is SweepKind.EXCESS:
        return floor
    spender = Move(giver.id, giver.code, giver.parent_id, 0, ancestors)
    gainer = Move(account.id, account.code, account.parent_id, 1)
    return least(floor, spend_room(SWEEP_FLOW, spender, [gainer], controls, used, now_us))


def floor_room(account: Account, balances: Mapping[str, BalanceState]) -> int | None:
    return lowering_room(account, balances[account.id], account.credit_limit, 0)


def sweep_draft(sweep: Sweep, account: Account, other: Account | None, balances: Mapping[str, BalanceState],
                room: GiverRoom | None = None) -> VoucherDraft | None:
    """The sweep's voucher now, moving at most what the giving account has room for; None when it moves
    nothing or one of its accounts cannot post."""
    if other is None or account.status is not AccountStatus.ACTIVE or other.status is not AccountStatus.ACTIVE:
        return None
    current = balances[account.id].current
    giver = other if sweep.kind is SweepKind.TOP_UP else account
    amount = sweep_amount(sweep, current, room(giver) if room is not None else floor_room(giver, balances))
    if amount <= 0:
        return None
    up = account.normal_side  # the side that raises the swept account's balance
    side, other_side = (up, up.opposite()) if sweep.kind is SweepKind.TOP_UP else (up.opposite(), up)
    return VoucherDraft(SWEEP_FLOW, (
        LineDraft(AccountRef(id=account.id), side, amount, account.currency),
        LineDraft(AccountRef(id=other.id), other_side, amount, account.currency)),
        memo=f"{sweep.kind.value} sweep of {account.code}", metadata={"sweep": sweep.kind.value})
