"""Sweeps at the day close: every account with a sweep (set through the API, or by its rule-set template) is
brought to its target once the day is closed, as its own `sweep` voucher through the posting pipeline (sweeps
also run in the posting that crosses the line, see service/posting/controls.py), moving at most what the
checks every posting passes allow. Each voucher has a fixed request id per day, account and kind, so closing
again replays it; a refusal (the balances moved since they were read, say) is logged, not raised."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

from sqlalchemy import Connection

from tally.domain.accounts import Account, AccountType, BalanceState
from tally.domain.controls import Controls, Sweep, earliest_bucket_us
from tally.domain.errors import LedgerError
from tally.domain.security import Security, linked_room
from tally.domain.vouchers import AccountRef
from tally.service.controls import CONTROLLED_ACCOUNTS_MAX
from tally.service.posting.account_links import SECURITIES_LOADED_MAX
from tally.service.posting.batch import Submission
from tally.service.posting.controls import TemplateControls, ancestor_chains, giver_room, resolve_sweeps, sweep_draft
from tally.service.posting.pipeline import PostingPipeline
from tally.storage import accounts_repo, controls_repo, hierarchy_repo, securities_repo
from tally.storage.uow import UnitOfWork

log = logging.getLogger(__name__)
ACTOR = "day-close"
SWEEPS_IN_FLIGHT_MAX = 500  # well within a tenant's share of the posting queue


class DaySweeps:
    def __init__(self, uow: UnitOfWork, pipeline: PostingPipeline) -> None:
        self.uow, self.pipeline = uow, pipeline

    async def run(self, tenant_id: str, date: str) -> int:
        """Posts the day's sweeps of the tenant; returns how many were accepted (or replayed)."""
        now_us = self.pipeline.clock()  # the writer's clock, which the batch will check the counters at
        templates = self.pipeline.controls.templates if self.pipeline.controls is not None else None
        subs = self.uow.read({tenant_id}, lambda conn: _submissions(conn, tenant_id, date, now_us, templates))
        if not subs:
            return 0
        accepted = 0
        for start in range(0, len(subs), SWEEPS_IN_FLIGHT_MAX):
            chunk = subs[start:start + SWEEPS_IN_FLIGHT_MAX]
            outcomes = await asyncio.gather(*(self.pipeline.submit(sub) for sub in chunk))
            for sub, outcome in zip(chunk, outcomes, strict=True):
                if isinstance(outcome, LedgerError):
                    log.warning("day-close sweep %s of tenant %s refused: %s", sub.request_id, tenant_id,
                                outcome.reason)
                else:
                    accepted += 1
        return accepted


def _submissions(conn: Connection, tenant_id: str, date: str, now_us: int,
                 templates: TemplateControls | None = None) -> list[Submission]:
    """A sweep voucher for each sweep whose account is past its line now, from the balances read here, moving
    at most what the checks allow (the batch checks it again as it posts)."""
    controlled = controls_repo.tenant_controls(conn, [tenant_id]).get(tenant_id, {})
    swept = {account_id: c for account_id, c in controlled.items() if c.sweeps}
    found = _template_swept(conn, tenant_id, templates, controlled) if templates is not None else {}
    swept |= {a.id: c for a, c in found.values()}
    if not swept:
        return []
    ids = set(swept) | {s.counter_account_id for c in swept.values() for s in c.sweeps if s.counter_account_id}
    accounts, _ = accounts_repo.find_accounts(conn, tenant_id, [AccountRef(id=i) for i in ids])
    wanted = [AccountRef(code=s.counter_code) for _, c in found.values() for s in c.sweeps]
    _, by_code = accounts_repo.find_accounts(conn, tenant_id, wanted)
    accounts |= {a.id: a for a in by_code.values()}
    for account, controls in found.values():
        swept[account.id] = resolve_sweeps(controls, account, by_code)
    balances = accounts_repo.load_balances(conn, tenant_id, accounts)
    spending = dict(controlled)  # the controls a top-up's funding account spends under, its template's too
    if templates is not None:
        spending |= {a.id: c for a in accounts.values() if a.id not in controlled and (c := templates(a.code))}
    room = _GiverRoom(conn, tenant_id, accounts, balances, spending, now_us)
    subs = []
    for account_id, controls in sorted(swept.items()):
        subs += _account_sweeps(tenant_id, date, accounts, balances, account_id, controls, room)
    return subs


def _account_sweeps(tenant_id: str, date: str, accounts, balances, account_id: str, controls: Controls,
                    room: _GiverRoom) -> list[Submission]:
    found = []
    account = accounts.get(account_id)
    for sweep in controls.sweeps:
        other = accounts.get(sweep.counter_account_id)
        draft = sweep_draft(sweep, account, other, balances, room.for_sweep(sweep, account)) if account else None
        if draft is None:
            continue
        body = {"account_id": account_id, "kind": sweep.kind.value, "date": date}
        found.append(Submission(tenant_id, f"sweep:{date}:{account_id}:{sweep.kind.value}", "DaySweep", body,
                                (draft,), actor=ACTOR))
    return found


def _template_swept(conn: Connection, tenant_id: str, templates: TemplateControls,
                    controlled: dict[str, Controls]) -> dict[str, tuple[Account, Controls]]:
    """The accounts the rule set's templates give sweeps (the API's controls on one replace them), at most
    CONTROLLED_ACCOUNTS_MAX: each template's accounts are found by the literal start of its pattern."""
    found: dict[str, tuple[Account, Controls]] = {}
    for pattern in getattr(templates, "sweep_patterns", ()):
        prefix = pattern.parts[0] if pattern.parts and isinstance(pattern.parts[0], str) else ""
        for account in accounts_repo.codes_starting(conn, tenant_id, prefix, CONTROLLED_ACCOUNTS_MAX):
            controls = templates(account.code) if account.id not in controlled else None
            if controls is not None and controls.sweeps and len(found) < CONTROLLED_ACCOUNTS_MAX:
                found[account.id] = (account, controls)
    return found


class _GiverRoom:
    """How far each giving account may be lowered, as the batch writer would bound it (account_links.py and
    BatchControls): its floor against a bound credit limit, what it keeps as a security deposit, and for a
    top-up the funding account's controls. Read once for the tenant's day-close sweeps."""

    def __init__(self, conn: Connection, tenant_id: str, accounts: dict[str, Account],
                 balances: dict[str, BalanceState], controlled: dict[str, Controls], now_us: int) -> None:
        self.accounts, self.controlled, self.now_us = accounts, controlled, now_us
        linked = [a.id for a in accounts.values() if a.type in (AccountType.CREDIT, AccountType.SECURITY_DEPOSIT)]
        found = securities_repo.touching(conn, tenant_id, linked, SECURITIES_LOADED_MAX) if linked else []
        if found:
            found += securities_repo.touching(conn, tenant_id, {s.deposit_id for s in found}, SECURITIES_LOADED_MAX)
        self.credit = {s.credit_id: s for s in found}
        self.secured: dict[str, list[Security]] = defaultdict(list)
        for security in self.credit.values():
            self.secured[security.deposit_id].append(security)
        wanted = {i for s in found for i in (s.credit_id, s.deposit_id)} - balances.keys()
        self.balances = {**balances, **accounts_repo.load_balances(conn, tenant_id, wanted)}
        self.chains, self.used = self._counters(conn, tenant_id)

    def _counters(self, conn: Connection, tenant_id: str) -> tuple[dict[str, tuple[str, ...]], dict]:
        controlled, accounts = self.controlled, self.accounts
        chains = {}
        if any(c.team_velocity for c in controlled.values()):
            parents = {a.parent_id for a in accounts.values() if a.parent_id}
            chains = ancestor_chains(accounts.values(), hierarchy_repo.ancestors(conn, tenant_id, parents))
        ids = {i for i in accounts if i in controlled and controlled[i].velocity}
        ids |= {t for chain in chains.values() for t in chain if t in controlled and controlled[t].team_velocity}
        found = controls_repo.load_counters(conn, tenant_id, ids, earliest_bucket_us(self.now_us))
        return chains, {key: spent for (_, key), spent in found.items()}

    def for_sweep(self, sweep: Sweep, account: Account) -> Callable[[Account], int | None]:
        return lambda giver: giver_room(sweep, account, giver, self.floor(giver), self.controlled, self.used,
                                        self.now_us, self.chains.get(giver.id))

    def floor(self, giver: Account) -> int | None:
        return linked_room(giver, self.balances, self.credit.get(giver.id), self.secured.get(giver.id, ()))
