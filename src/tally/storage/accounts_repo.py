"""Accounts and balance rows. Every query names the tenant: no query can cross tenants."""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import Connection, Row, and_, case, func, insert, select, update

from tally.domain.accounts import Account, AccountStatus, AccountType, BalanceState, FloorPolicy, Side
from tally.domain.vouchers import AccountRef
from tally.storage import bulk
from tally.storage.engine import locking
from tally.storage.tables import accounts, balances, voucher_lines


def _to_account(row: Row) -> Account:
    return Account(
        id=row.id, tenant_id=row.tenant_id, code=row.code, type=AccountType(row.type),
        normal_side=Side(row.normal_side), currency=row.currency, status=AccountStatus(row.status),
        name=row.name, parent_id=row.parent_id, credit_limit=row.credit_limit,
        floor_policy=FloorPolicy(row.floor_policy), metadata=json.loads(row.metadata),
        created_us=row.created_us, updated_us=row.updated_us,
    )


def _account_values(account: Account) -> dict:
    return {
        "id": account.id, "tenant_id": account.tenant_id, "code": account.code, "name": account.name,
        "type": account.type.value, "normal_side": account.normal_side.value, "currency": account.currency,
        "status": account.status.value, "parent_id": account.parent_id, "credit_limit": account.credit_limit,
        "floor_policy": account.floor_policy.value, "metadata": json.dumps(account.metadata, sort_keys=True),
        "created_us": account.created_us, "updated_us": account.updated_us,
    }


def insert_account(conn: Connection, account: Account) -> None:
    conn.execute(insert(accounts).values(_account_values(account)))
    conn.execute(insert(balances).values(
        account_id=account.id, tenant_id=account.tenant_id, current=0, locked=0, previous_day=0,
        last_date="", entry_count=0, updated_us=account.created_us,
    ))


def update_account(conn: Connection, account: Account) -> None:
    values = _account_values(account)
    del values["id"], values["tenant_id"], values["created_us"]
    conn.execute(update(accounts)
                 .where(accounts.c.id == account.id, accounts.c.tenant_id == account.tenant_id)
                 .values(values))


def get_account(conn: Connection, tenant_id: str, ref: AccountRef) -> Account | None:
    key = accounts.c.id == ref.id if ref.id else accounts.c.code == ref.code
    row = conn.execute(select(accounts).where(accounts.c.tenant_id == tenant_id, key)).first()
    return _to_account(row) if row else None


def find_accounts(conn: Connection, tenant_id: str, refs: Iterable[AccountRef]
                  ) -> tuple[dict[str, Account], dict[str, Account]]:
    """Resolves many references in at most two queries: (by id, by code)."""
    refs = list(refs)
    ids = sorted({r.id for r in refs if r.id})
    codes = sorted({r.code for r in refs if r.code})
    by_id: dict[str, Account] = {}
    by_code: dict[str, Account] = {}
    if ids:
        for row in conn.execute(select(accounts).where(accounts.c.tenant_id == tenant_id,
                                                       accounts.c.id.in_(ids))):
            by_id[row.id] = _to_account(row)
    if codes:
        for row in conn.execute(select(accounts).where(accounts.c.tenant_id == tenant_id,
                                                       accounts.c.code.in_(codes))):
            by_code[row.code] = _to_account(row)
    return by_id, by_code


def list_accounts(conn: Connection, tenant_id: str, *, after_id: str, limit: int,
                  type_: str | None = None, status: str | None = None, currency: str | None = None,
                  parent_id: str | None = None) -> list[Account]:
    conditions = [accounts.c.tenant_id == tenant_id, accounts.c.id > after_id]
    for column, value in ((accounts.c.type, type_), (accounts.c.status, status),
                          (accounts.c.currency, currency), (accounts.c.parent_id, parent_id)):
        if value:
            conditions.append(column == value)
    rows = conn.execute(select(accounts).where(and_(*conditions)).order_by(accounts.c.id).limit(limit))
    return [_to_account(r) for r in rows]


def parent_depth(conn: Connection, tenant_id: str, parent_id: str, depth_max: int) -> int:
    """How many ancestors the parent has, counting itself; stops past depth_max."""
    depth, current = 0, parent_id
    while current and depth <= depth_max:
        current = conn.execute(select(accounts.c.parent_id).where(
            accounts.c.tenant_id == tenant_id, accounts.c.id == current)).scalar()
        depth += 1
    return depth


def _to_state(row: Row) -> BalanceState:
    return BalanceState(account_id=row.account_id, current=row.current, locked=row.locked,
                        previous_day=row.previous_day, last_date=row.last_date, entry_count=row.entry_count)


def load_balances(conn: Connection, tenant_id: str, account_ids: Iterable[str], *,
                  for_update: bool = False) -> dict[str, BalanceState]:
    """Loads balance rows; for a write, locks them in account-id order so writers never deadlock."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    query = (select(balances).where(balances.c.tenant_id == tenant_id, balances.c.account_id.in_(ids))
             .order_by(balances.c.account_id))
    if for_update and locking(conn):
        query = query.with_for_update()
    return {row.account_id: _to_state(row) for row in conn.execute(query)}


BALANCE_COLUMNS = ("current", "locked", "previous_day", "last_date", "entry_count", "updated_us")


def save_balances(conn: Connection, states: Iterable[BalanceState], now_us: int) -> None:
    rows = [(s.account_id, s.current, s.locked, s.previous_day, s.last_date, s.entry_count, now_us) for s in states]
    bulk.update_rows(conn, balances, "account_id", BALANCE_COLUMNS, rows)


def balance_at(conn: Connection, account_id: str, *, posted_us_max: int | None = None,
               accounting_date_max: str | None = None) -> tuple[int, int]:
    """(balance, entry count) after the last entry posted at or before a time, or on or before a day."""
    condition = (voucher_lines.c.posted_us <= posted_us_max if posted_us_max is not None
                 else voucher_lines.c.accounting_date <= accounting_date_max)
    last = conn.execute(select(func.max(voucher_lines.c.entry_number))
                        .where(voucher_lines.c.account_id == account_id, condition)).scalar()
    if last is None:
        return 0, 0
    after = conn.execute(select(voucher_lines.c.balance_after).where(
        voucher_lines.c.account_id == account_id, voucher_lines.c.entry_number == last)).scalar_one()
    return after, last


def trial_balance_rows(conn: Connection, tenant_id: str) -> list[tuple[str, str, int, int, int]]:
    """Per (currency, normal side): the sum of positive balances, of negative ones (as a positive
    number), and the account count. Exact integers on both engines (PostgreSQL sums bigint as numeric)."""
    positive = func.sum(case((balances.c.current > 0, balances.c.current), else_=0))
    negative = func.sum(case((balances.c.current < 0, -balances.c.current), else_=0))
    query = (select(accounts.c.currency, accounts.c.normal_side, positive, negative, func.count())
             .join(balances, balances.c.account_id == accounts.c.id)
             .where(accounts.c.tenant_id == tenant_id)
             .group_by(accounts.c.currency, accounts.c.normal_side)
             .order_by(accounts.c.currency, accounts.c.normal_side))
    return [(r[0], r[1], int(r[2] or 0), int(r[3] or 0), int(r[4])) for r in conn.execute(query)]
