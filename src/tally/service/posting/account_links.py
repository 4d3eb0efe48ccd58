"""What the batch writer learns from account structures, under the batch's own locks.

Merged accounts: a merged account is closed, and its code leads to the account it was merged into, so a
rule or a caller that names the old code posts to the target (the answer names the target's id). Naming
the merged account by id still refuses (ACCOUNT_CLOSED): an id is one account, for good.

Secured credit (domain/security.py): when a batch names a credit account or a security deposit, the
other side of each link is loaded and locked too. A bound credit account is checked against the limit its
deposit carries at the start of the batch, and again, after each submission, against the deposit as the
batch left it; a deposit a submission lowers must still cover the outstanding credit it secures.
Costs nothing unless the batch names a closed, credit or security-deposit account.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, MutableMapping
from dataclasses import replace

from sqlalchemy import Connection

from tally.domain.accounts import Account, AccountStatus, AccountType, BalanceState
from tally.domain.security import (
    DEPOSIT_CREDITS_MAX,
    Security,
    check_credit,
    check_deposit,
    effective_limit,
    linked_room,
    required_deposit,
)
from tally.domain.vouchers import AccountRef
from tally.storage import accounts_repo, merges_repo, securities_repo

MERGE_HOPS_MAX = 8  # a chain of merges (a into b, later b into c) is followed this far
SECURITIES_LOADED_MAX = 100 * DEPOSIT_CREDITS_MAX  # links one batch reads
_CLOSED, _CREDIT, _SECURITY_DEPOSIT = AccountStatus.CLOSED, AccountType.CREDIT, AccountType.SECURITY_DEPOSIT

Accounts = dict[str, dict[str, Account]]  # tenant -> key -> account


class AccountLinks:
    def __init__(self, conn: Connection, by_id: Accounts, by_code: Accounts,
                 balances: MutableMapping[str, BalanceState]) -> None:
        self.by_id = by_id
        self.own_limits: dict[str, int] = {}  # bound credit account id -> its stored credit limit
        self.credit: dict[str, Security] = {}  # credit account id -> its security
        self.deposit: dict[str, list[Security]] = defaultdict(list)  # deposit id -> what it secures
        for tenant_id, accounts in by_id.items():
            # One pass of identity checks (the batch's accounts are thousands): most batches stop here.
            flagged = [a for a in accounts.values()
                       if a.status is _CLOSED or a.type is _CREDIT or a.type is _SECURITY_DEPOSIT]
            if any(a.status is _CLOSED for a in flagged):
                _follow_merges(conn, tenant_id, accounts, by_code[tenant_id], balances)
            if any(a.type is _CREDIT or a.type is _SECURITY_DEPOSIT for a in flagged):
                self._load_securities(conn, tenant_id, by_code[tenant_id], balances)

    def _load_securities(self, conn: Connection, tenant_id: str, codes: dict[str, Account],
                         balances: MutableMapping[str, BalanceState]) -> None:
        accounts = self.by_id[tenant_id]
        linked = [a.id for a in accounts.values() if a.type is _CREDIT or a.type is _SECURITY_DEPOSIT]
        found = securities_repo.touching(conn, tenant_id, linked, SECURITIES_LOADED_MAX) if linked else []
        if not found:
            return
        # Every deposit of a credit named, and every credit of a deposit named: deposits' requirements need them.
        found += securities_repo.touching(conn, tenant_id, {s.deposit_id for s in found}, SECURITIES_LOADED_MAX)
        _load(conn, tenant_id, {i for s in found for i in (s.credit_id, s.deposit_id)}, accounts, balances)
        for security in {s.credit_id: s for s in found}.values():
            self.credit[security.credit_id] = security
            self.deposit[security.deposit_id].append(security)
            credit = accounts[security.credit_id]
            if security.bound:
                bound = replace(credit, credit_limit=effective_limit(security, credit, balances[security.deposit_id]))
                self.own_limits[credit.id] = credit.credit_limit
                accounts[credit.id] = bound
                if codes.get(credit.code) is credit:
                    codes[credit.code] = bound

    def check(self, tenant_id: str, vouchers: Iterable, hold_changes: Iterable,
              balances: MutableMapping[str, BalanceState]) -> None:
        """Refuses a submission that lowered a bound credit account past its deposit's cover, or a deposit
        below what it secures. Raises or returns; checks only what the submission made smaller."""
        if not self.credit:
            return
        for account_id in _lowered(self.by_id[tenant_id], vouchers, hold_changes):
            security = self.credit.get(account_id)
            if security is not None and security.bound:
                own = replace(self.by_id[tenant_id][account_id], credit_limit=self.own_limits[account_id])
                check_credit(own, balances[account_id], effective_limit(security, own, balances[security.deposit_id]))
            secured = self.deposit.get(account_id)
            if secured:
                required = sum(required_deposit(s, balances[s.credit_id]) for s in secured)
                check_deposit(self.by_id[tenant_id][account_id], balances[account_id], required)

    def room(self, account: Account, balances: MutableMapping[str, BalanceState]) -> int | None:
        """How far a voucher may lower the account now (None: unbounded): its floor against the credit limit
        its deposit carries now, and what it must keep as a deposit. A sweep moves at most this much."""
        security = self.credit.get(account.id)
        own = replace(account, credit_limit=self.own_limits[account.id]) if security and security.bound else account
        return linked_room(own, balances, security, self.deposit.get(account.id, ()))


def _lowered(accounts: dict[str, Account], vouchers: Iterable, hold_changes: Iterable) -> list[str]:
    """The accounts whose available balance the vouchers and hold changes lowered."""
    moved: dict[str, int] = defaultdict(int)
    for line in (line for v in vouchers for line in v.lines):
        moved[line.account_id] += line.side.signed(line.amount, accounts[line.account_id].normal_side)
    for change in hold_changes:
        moved[change.hold.account_id] -= change.locked_delta
    return [account_id for account_id, delta in moved.items() if delta < 0]


def _load(conn: Connection, tenant_id: str, ids: set[str], accounts: dict[str, Account],
          balances: MutableMapping[str, BalanceState]) -> None:
    """Reads (and locks) the accounts of `ids` the batch has not read yet."""
    missing = [i for i in ids if i not in accounts]
    if missing:
        found, _ = accounts_repo.find_accounts(conn, tenant_id, [AccountRef(id=i) for i in missing])
        accounts.update(found)
    states = accounts_repo.load_balances(conn, tenant_id, [i for i in ids if i not in balances], for_update=True)
    for account_id, state in states.items():
        balances[account_id] = state


def _follow_merges(conn: Connection, tenant_id: str, accounts: dict[str, Account], codes: dict[str, Account],
                   balances: MutableMapping[str, BalanceState]) -> None:
    """Points each merged account's code at the account it now leads to, loading and locking that one."""
    for _ in range(MERGE_HOPS_MAX):
        closed = {a.id: code for code, a in codes.items() if a.status is _CLOSED}
        targets = merges_repo.targets_of(conn, tenant_id, closed) if closed else {}
        if not targets:
            return
        _load(conn, tenant_id, set(targets.values()), accounts, balances)
        for source_id, target_id in targets.items():
            codes[closed[source_id]] = accounts[target_id]
