"""The holds a batch touches: loaded and locked once, changed in memory, written at the end.

Every hold operation runs in the batch writer, in the same transaction and under the same locks as the
postings of the account it reserves on: a capture, a release and an expiry of one hold are applied one
after another, and the hold's status lets exactly one of them win.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass, replace

from sqlalchemy import Connection

from tally.domain.accounts import Account, BalanceState
from tally.domain.holds import Hold, capture, open_hold, release, require_active, require_open
from tally.domain.vouchers import AccountRef
from tally.service.posting.undo import Revertible
from tally.storage import holds_repo


class HoldAction(enum.Enum):
    CREATE = "create"
    CAPTURE = "capture"  # the submission carries the capture voucher
    CONSUME = "consume"  # a usage flow spends from the hold: its vouchers debit the hold's account
    RELEASE = "release"
    EXPIRE = "expire"


@dataclass(frozen=True)
class HoldOp:
    action: HoldAction
    hold_id: str
    amount: int = 0
    final: bool = False
    account: AccountRef | None = None  # CREATE: the account to reserve on
    new_hold: Hold | None = None  # CREATE: the hold to open (its account_id is filled in here)


@dataclass(frozen=True)
class HoldChange:
    """What one operation did, for the events and the caller's answer."""

    op: HoldOp
    hold: Hold
    locked_delta: int


class HoldBook:
    def __init__(self, conn: Connection, ops_by_tenant: dict[str, list[HoldOp]]) -> None:
        self.holds: Revertible = Revertible()
        for tenant_id, ops in ops_by_tenant.items():
            ids = [op.hold_id for op in ops if op.action is not HoldAction.CREATE]
            self.holds.update(holds_repo.load_holds(conn, tenant_id, ids, for_update=True))
        self.stored = set(self.holds)

    def account_ids(self) -> dict[str, set[str]]:
        """Accounts of the loaded holds, by tenant: their balance rows must be loaded too."""
        ids: dict[str, set[str]] = defaultdict(set)
        for hold in self.holds.values():
            ids[hold.tenant_id].add(hold.account_id)
        return ids

    def checkpoint(self) -> None:
        self.holds.checkpoint()

    def revert(self) -> None:
        """Takes back every change since the checkpoint."""
        self.holds.revert()

    def apply(self, op: HoldOp, tenant_id: str, resolve, balances: dict[str, BalanceState],
              now_us: int) -> HoldChange:
        """Applies one operation to the hold and to its account's locked balance, or raises."""
        if op.action is HoldAction.CREATE:
            account: Account = resolve(op.account)
            hold = replace(op.new_hold, account_id=account.id)
            balances[account.id] = open_hold(hold, account, balances[account.id])
            self.holds[hold.id] = hold
            return HoldChange(op, hold, hold.amount)
        hold = self._own(tenant_id, op.hold_id)
        if op.action is HoldAction.EXPIRE:
            changed, unlocked = release(require_open(hold, op.hold_id), now_us, expired=True)
        elif op.action is HoldAction.RELEASE:
            changed, unlocked = release(require_active(hold, op.hold_id, now_us), now_us)
        else:
            changed, unlocked = capture(require_active(hold, op.hold_id, now_us), op.amount, op.final, now_us)
        state = balances[hold.account_id]
        balances[hold.account_id] = replace(state, locked=state.locked - unlocked)
        self.holds[hold.id] = changed
        return HoldChange(op, changed, -unlocked)

    def _own(self, tenant_id: str, hold_id: str) -> Hold | None:
        hold = self.holds.get(hold_id)
        return hold if hold is not None and hold.tenant_id == tenant_id else None

    def record_vouchers(self, hold_id: str, voucher_ids: list[str]) -> Hold:
        hold = self.holds[hold_id]
        self.holds[hold_id] = replace(hold, capture_voucher_ids=hold.capture_voucher_ids + tuple(voucher_ids))
        return self.holds[hold_id]

    def write(self, conn: Connection, touched: set[str]) -> None:
        new = [self.holds[i] for i in sorted(touched) if i not in self.stored]
        changed = [self.holds[i] for i in sorted(touched) if i in self.stored]
        holds_repo.insert_holds(conn, new)
        holds_repo.update_holds(conn, changed)
