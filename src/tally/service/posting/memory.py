"""What a writer thread remembers of its tenants' ledgers from its own commits, so that a batch of a tenant
nobody else wrote to since can skip the opening reads: on PostgreSQL a lone Post then writes in one round
trip instead of two, and a batch reads only the accounts its writer does not know yet.

What is remembered is what a committed batch saw and left under the tenant's write gate: the ledger head,
the accounts the batch named and their balance rows, and the tenant's epoch after that commit. A batch
that starts from it checks that epoch in its own transaction (storage/epochs.py), which fails when any
other write transaction of the tenant committed meanwhile; the pipeline then forgets the tenant and writes
the batch again from fresh reads. So what is remembered is only ever used while it is still true.
An idempotency record is not remembered: a batch from memory takes every request as new, and a request
seen before fails the insert of its record, and so the transaction, which is then written again from fresh
reads; a refusal that writes no record does the same at once (UnrecordedRefusal).

Values are shared, never copied: accounts and balance states are replaced, never changed in place (ledger
heads are, so they are copied). One writer thread owns a memory; nothing here is thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from tally.domain.accounts import Account, BalanceState
from tally.domain.vouchers import AccountRef
from tally.storage.batch_reads import Opening, TenantAccounts
from tally.storage.ledger_repo import LedgerHead

# After a check failed, a tenant's batches read afresh for this many batches: another writer (another
# process) writes it too, and checks would keep failing, each costing a round trip.
COOLING_BATCHES = 64


class UnrecordedRefusal(Exception):
    """A batch started from memory refused a request without writing its record: whether the request was
    seen before is unknown, so the batch is written again from reads (service/posting/batch.py)."""


@dataclass
class TenantMemory:
    epoch: int
    head: LedgerHead
    by_id: dict[str, Account]
    by_code: dict[str, Account]
    balances: dict[str, BalanceState]


class WriterMemory:
    def __init__(self, accounts_max: int) -> None:
        self.accounts_max = accounts_max  # accounts remembered, over every tenant
        self._tenants: dict[str, TenantMemory] = {}  # least recently used first
        self._cooling: dict[str, int] = {}  # tenant -> batches left to read afresh
        self._pending: dict[str, TenantMemory] = {}  # learnt by the transaction under way
        self._started_from: dict[str, int] = {}  # the epochs it started from
        self.relied = False  # whether the transaction under way started from memory (set by `recall`)

    def tenants(self) -> dict[str, TenantMemory]:
        """What is remembered now, by tenant (for checks: the values are shared, not copies)."""
        return dict(self._tenants)

    def accounts(self) -> int:
        return sum(len(m.by_id) for m in self._tenants.values())

    def recall(self, tenant_ids: Iterable[str]) -> Opening | None:
        """The opening of a batch from memory, when every tenant is remembered: heads and epochs, no accounts
        yet (`recall_accounts`)."""
        tenant_ids = sorted(set(tenant_ids))
        if any(self._cooled(t) for t in tenant_ids):
            return None
        memories = [self._tenants.get(t) for t in tenant_ids]
        if None in memories:
            return None
        opening = Opening({}, {}, {}, {}, {}, remembered=True)
        for memory in memories:
            opening.heads[memory.head.tenant_id] = replace(memory.head)
            opening.epochs[memory.head.tenant_id] = memory.epoch
        self.relied = True
        return opening

    def recall_accounts(self, opening: Opening, refs: dict[str, list[AccountRef]]) -> dict[str, list[AccountRef]]:
        """Adds the accounts the references name to a recalled opening; returns those it does not know, to be read
        in the same transaction (and opened from a template if none is found)."""
        unknown: dict[str, list[AccountRef]] = {}
        for tenant_id in opening.heads:
            memory = self._tenants[tenant_id]
            found = opening.accounts.setdefault(tenant_id, TenantAccounts({}, {}))
            for ref in refs.get(tenant_id, ()):
                account = memory.by_id.get(ref.id) if ref.id else memory.by_code.get(ref.code)
                if account is None:
                    unknown.setdefault(tenant_id, []).append(ref)
                    continue
                (found.by_id if ref.id else found.by_code)[ref.id or ref.code] = account
                opening.balances[account.id] = memory.balances[account.id]
        return unknown

    def _cooled(self, tenant_id: str) -> bool:
        left = self._cooling.get(tenant_id)
        if left is None:
            return False
        if left <= 1:
            del self._cooling[tenant_id]
        else:
            self._cooling[tenant_id] = left - 1
        return True

    def learn(self, opening: Opening, heads: dict[str, LedgerHead], accounts: dict[str, dict[str, Account]],
              balances: dict[str, BalanceState], wrote: bool) -> None:
        """What the transaction under way leaves, once it commits (`settle`): its tenants' heads, the accounts it
        knew and their balances, as the database has them then. If it wrote, the commit moves each epoch by one."""
        self._pending, self._started_from = {}, dict(opening.epochs)
        for tenant_id, head in heads.items():
            known = {i: a for i, a in accounts.get(tenant_id, {}).items() if i in balances}
            self._pending[tenant_id] = TenantMemory(
                opening.epochs[tenant_id] + wrote, replace(head), dict(known),
                {a.code: a for a in known.values()}, {i: balances[i] for i in known})

    def settle(self) -> None:
        """The transaction committed: what it learnt is added to what was remembered of each tenant when the
        tenant's epoch was the one the transaction started from (nobody wrote between), else replaces it."""
        pending, self._pending = self._pending, {}
        for tenant_id, learnt in pending.items():
            earlier = self._tenants.pop(tenant_id, None)
            if earlier is not None and earlier.epoch == self._started_from.get(tenant_id):
                earlier.by_id.update(learnt.by_id)
                earlier.by_code.update(learnt.by_code)
                earlier.balances.update(learnt.balances)
                learnt = replace(learnt, by_id=earlier.by_id, by_code=earlier.by_code, balances=earlier.balances)
            self._tenants[tenant_id] = learnt  # the most recently used last
        self._shrink()

    def forget(self, tenant_ids: Iterable[str]) -> None:
        """A transaction failed: what it learnt, and what was remembered of its tenants, may not be true."""
        self._pending = {}
        for tenant_id in tenant_ids:
            self._tenants.pop(tenant_id, None)

    def cool(self, tenant_ids: Iterable[str]) -> None:
        """Another writer wrote these tenants: read them afresh for COOLING_BATCHES batches."""
        self._cooling.update((tenant_id, COOLING_BATCHES) for tenant_id in tenant_ids)

    def _shrink(self) -> None:
        """At most `accounts_max` accounts: the least recently written tenants go first."""
        total = self.accounts()
        while total > self.accounts_max and self._tenants:
            oldest = next(iter(self._tenants))
            total -= len(self._tenants.pop(oldest).by_id)
