"""Roll-ups of account subtrees and their trial balance, each from one read snapshot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from tally.domain import limits
from tally.domain.accounts import Account, Side
from tally.domain.calendar import AccountingCalendar
from tally.domain.errors import precondition
from tally.domain.fields import check_tenant
from tally.domain.hierarchy import Node, RollUp, roll_up
from tally.domain.vouchers import AccountRef
from tally.service import subtree_entries
from tally.service.queries import (
    BalanceView,
    Page,
    TrialBalanceTotal,
    check_read_count,
    check_trial_balance,
    live_balance,
    read_named,
    require_account,
)
from tally.storage import accounts_repo, hierarchy_repo, ledger_repo, replica
from tally.storage.replica import check_min_sequence
from tally.storage.uow import UnitOfWork


@dataclass(frozen=True)
class AccountRollUp:
    balance: BalanceView  # the account's own live balance
    rollups: list[RollUp]


@dataclass(frozen=True)
class RollUpSnapshot:
    accounts: list[AccountRollUp]  # in the order asked
    voucher_sequence: int
    event_sequence: int


class Hierarchy:
    def __init__(self, uow: UnitOfWork, calendar: AccountingCalendar, clock: Callable[[], int]) -> None:
        self.uow, self.calendar, self.clock = uow, calendar, clock

    def get_rollups(self, tenant_id: str, refs: list[AccountRef]) -> RollUpSnapshot:
        """Each account's live balance with its subtree's, all from one snapshot: at most
        `SUBTREE_ACCOUNTS_MAX` descendants are read for the whole request."""
        check_tenant(tenant_id)
        check_read_count(refs)
        today = self.calendar.date_of(self.clock())

        def read(conn: Connection) -> RollUpSnapshot:
            budget = _Budget()
            found = []
            accounts, states = read_named(conn, tenant_id, refs)
            for account in accounts:
                state = states[account.id]
                nodes = budget.take(hierarchy_repo.descendants(conn, tenant_id, account.id, budget.left + 1))
                found.append(AccountRollUp(live_balance(account, state, today),
                                           roll_up(account, state.current, state.locked, nodes)))
            head = ledger_repo.load_heads_readonly(conn, tenant_id)
            return RollUpSnapshot(found, head.voucher_sequence if head else 0, head.event_sequence if head else 0)

        return self.uow.read({tenant_id}, read)

    def trial_balance(self, tenant_id: str, root: AccountRef) -> list[TrialBalanceTotal]:
        """The trial balance of an account and everything under it."""
        check_tenant(tenant_id)

        def read(conn: Connection) -> list[TrialBalanceTotal]:
            account = require_account(conn, tenant_id, root)
            state = accounts_repo.load_balances(conn, tenant_id, [account.id])[account.id]
            nodes = _Budget().take(hierarchy_repo.descendants(conn, tenant_id, account.id,
                                                              limits.SUBTREE_ACCOUNTS_MAX + 1))
            return _trial_balance([_own(account, state.current, state.locked), *nodes])

        return self.uow.read({tenant_id}, read)


    def list_entries(self, tenant_id: str, root: AccountRef, *, page_size: int, page_token: str,
                     start_date: str = "", end_date: str = "", min_voucher_sequence: int = 0) -> Page:
        """The statement of an account and everything under it, in posting order (see subtree_entries). It
        reads the primary, which holds every voucher a caller has seen: `min_voucher_sequence` is only
        refused when the tenant never posted it."""
        if min_voucher_sequence:
            check_min_sequence(min_voucher_sequence)
            replica.read_primary(self.uow, tenant_id, lambda conn: None, min_voucher_sequence)
        return subtree_entries.list_subtree_entries(self.uow, tenant_id, root, page_size=page_size,
                                                    page_token=page_token, start_date=start_date,
                                                    end_date=end_date)


class _Budget:
    """How many descendants a request may still read."""

    def __init__(self) -> None:
        self.left = limits.SUBTREE_ACCOUNTS_MAX

    def take(self, nodes: list[Node]) -> list[Node]:
        if len(nodes) > self.left:
            raise precondition("SUBTREE_TOO_LARGE", f"a roll-up reads at most {limits.SUBTREE_ACCOUNTS_MAX} "
                               "descendant accounts per request", accounts_max=limits.SUBTREE_ACCOUNTS_MAX)
        self.left -= len(nodes)
        return nodes


def _own(account: Account, current: int, locked: int) -> Node:
    return Node(account.currency, account.normal_side, current, locked)


def _trial_balance(nodes: list[Node]) -> list[TrialBalanceTotal]:
    """Per currency: each balance on the side it stands (a debit-normal account's positive balance is a
    debit, its negative one a credit, and the other way round)."""
    totals: dict[str, list[int]] = {}
    for node in nodes:
        total = totals.setdefault(node.currency, [0, 0, 0])
        debit_positive = Side.DEBIT.signed(node.current, node.normal_side)
        total[0 if debit_positive > 0 else 1] += abs(debit_positive)
        total[2] += 1
    return check_trial_balance([TrialBalanceTotal(c, d, cr, n) for c, (d, cr, n) in sorted(totals.items())])
