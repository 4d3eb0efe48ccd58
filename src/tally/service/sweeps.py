"""Sweeps at the day close: every account with a sweep is brought to its target once the day is closed, as
its own `sweep` voucher through the posting pipeline (sweeps also run in the posting that crosses the line,
see service/controls.py). Each voucher has a fixed request id per day, account and kind, so closing again
replays it; a refusal (a frozen account, say) is logged, not raised."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Connection

from tally.domain.controls import Controls
from tally.domain.errors import LedgerError
from tally.domain.vouchers import AccountRef
from tally.service.posting.batch import Submission
from tally.service.posting.controls import sweep_draft
from tally.service.posting.pipeline import PostingPipeline
from tally.storage import accounts_repo, controls_repo
from tally.storage.uow import UnitOfWork

log = logging.getLogger(__name__)
ACTOR = "day-close"
SWEEPS_IN_FLIGHT_MAX = 500  # well within a tenant's share of the posting queue


class DaySweeps:
    def __init__(self, uow: UnitOfWork, pipeline: PostingPipeline) -> None:
        self.uow, self.pipeline = uow, pipeline

    async def run(self, tenant_id: str, date: str) -> int:
        """Posts the day's sweeps of the tenant; returns how many were accepted (or replayed)."""
        subs = self.uow.read({tenant_id}, lambda conn: _submissions(conn, tenant_id, date))
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


def _submissions(conn: Connection, tenant_id: str, date: str) -> list[Submission]:
    """A sweep voucher for each sweep whose account is past its line now, from the balances read here."""
    swept = {account_id: c for account_id, c in controls_repo.tenant_controls(conn, [tenant_id]).get(
        tenant_id, {}).items() if c.sweeps}
    if not swept:
        return []
    ids = set(swept) | {s.counter_account_id for c in swept.values() for s in c.sweeps}
    accounts, _ = accounts_repo.find_accounts(conn, tenant_id, [AccountRef(id=i) for i in ids])
    balances = accounts_repo.load_balances(conn, tenant_id, accounts)
    subs = []
    for account_id, controls in sorted(swept.items()):
        subs += _account_sweeps(tenant_id, date, accounts, balances, account_id, controls)
    return subs


def _account_sweeps(tenant_id: str, date: str, accounts, balances, account_id: str,
                    controls: Controls) -> list[Submission]:
    found = []
    for sweep in controls.sweeps:
        account = accounts.get(account_id)
        draft = sweep_draft(sweep, account, accounts.get(sweep.counter_account_id), balances) if account else None
        if draft is None:
            continue
        body = {"account_id": account_id, "kind": sweep.kind.value, "date": date}
        found.append(Submission(tenant_id, f"sweep:{date}:{account_id}:{sweep.kind.value}", "DaySweep", body,
                                (draft,), actor=ACTOR))
    return found
