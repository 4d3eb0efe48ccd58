"""Accounts and balance rows. Every query names the tenant: no query can cross tenants."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cache

from sqlalchemy import Connection, Row, Select, and_, bindparam, case, func, select, update

from tally.domain.accounts import Account, AccountStatus, AccountType, BalanceState, FloorPolicy, Side
from tally.domain.vouchers import AccountRef
from tally.storage import bulk, journal_repo, merges_repo
from tally.storage.engine import locking
from tally.storage.tables import accounts, balances, matchable, voucher_lines

# Column text -> enum member: a dict lookup is several times cheaper than calling the enum class, and a
# batch reads thousands of accounts. An unknown value still fails (KeyError), as the enum call would.
_TYPES = {t.value: t for t in AccountType}
_SIDES = {s.value: s for s in Side}
_STATUSES = {s.value: s for s in AccountStatus}
_FLOORS = {f.value: f for f in FloorPolicy}


# The columns an Account is read from, in the order `to_account` unpacks them: a batch reads thousands of
# accounts, and unpacking a row is several times cheaper than reading its columns by name.
ACCOUNT_COLUMNS = ("id", "tenant_id", "code", "type", "normal_side", "currency", "status", "name", "parent_id",
                   "credit_limit", "floor_policy", "metadata", "created_us", "updated_us")
_ACCOUNT_COLUMNS = tuple(accounts.c[name] for name in ACCOUNT_COLUMNS)


def _select_accounts() -> Select:
    return select(*_ACCOUNT_COLUMNS)


def to_account(row: Row) -> Account:
    (id_, tenant_id, code, type_, normal_side, currency, status, name, parent_id, credit_limit, floor_policy,
     metadata, created_us, updated_us) = row
    return Account(  # by position, in the order of Account's fields: keywords cost more, per account read
        id_, tenant_id, code, _TYPES[type_], _SIDES[normal_side], currency, _STATUSES[status], name, parent_id,
        credit_limit, _FLOORS[floor_policy], json.loads(metadata) if metadata != "{}" else {}, created_us,
        updated_us,
    )


def _account_values(account: Account) -> dict:
    return {
        "id": account.id, "tenant_id": account.tenant_id, "code": account.code, "name": account.name,
        "type": account.type.value, "normal_side": account.normal_side.value, "currency": account.currency,
        "status": account.status.value, "parent_id": account.parent_id, "credit_limit": account.credit_limit,
        "floor_policy": account.floor_policy.value, "metadata": json.dumps(account.metadata, sort_keys=True),
        "created_us": account.created_us, "updated_us": account.updated_us,
    }


BALANCE_COLUMNS = ("current", "locked", "previous_day", "last_date", "entry_count", "updated_us")
NEW_BALANCE_COLUMNS = ("account_id", "tenant_id", *BALANCE_COLUMNS)  # a new account: its keys, then the balance


def insert_accounts(conn: Connection, items: Sequence[Account]) -> None:
    """New accounts and their zero balance rows, two statements however many (through the driver on
    PostgreSQL, so that inside `deferring` they go out with the COMMIT)."""
    if not items:
        return
    bulk.insert_rows(conn, accounts, ACCOUNT_COLUMNS, account_rows(items))
    bulk.insert_rows(conn, balances, NEW_BALANCE_COLUMNS, new_balance_rows(items))


def account_rows(items: Iterable[Account]) -> list[tuple]:
    """Each account's `ACCOUNT_COLUMNS`, in that order."""
    return [tuple(values[name] for name in ACCOUNT_COLUMNS) for values in map(_account_values, items)]


def new_balance_rows(items: Iterable[Account]) -> list[tuple]:
    """The zero balance row of each new account: its `NEW_BALANCE_COLUMNS`."""
    return [(a.id, a.tenant_id, 0, 0, 0, "", 0, a.created_us) for a in items]


# What an account change may write (UpdateAccount's mask, and the ledger audit's status): what it was opened
# as (code, type, side, currency, parent, floor) never changes, and the service role may not update it.
CHANGED_ACCOUNT_COLUMNS = ("name", "status", "credit_limit", "metadata", "updated_us")


def update_account(conn: Connection, account: Account) -> None:
    values = _account_values(account)
    values = {name: values[name] for name in CHANGED_ACCOUNT_COLUMNS}
    conn.execute(update(accounts)
                 .where(accounts.c.id == account.id, accounts.c.tenant_id == account.tenant_id)
                 .values(values))


# Metadata of the closed account migration 0020 left with a renamed account's old code (`merchant_settled:m1`
# -> `merchant:m1:USD/settled`): a lookup by that code answers the renamed account.
RENAMED_TO = "renamed_to"


def get_account(conn: Connection, tenant_id: str, ref: AccountRef) -> Account | None:
    if not matchable(ref.id or ref.code):
        return None
    key = accounts.c.id == ref.id if ref.id else accounts.c.code == ref.code
    row = conn.execute(_select_accounts().where(accounts.c.tenant_id == tenant_id, key)).first()
    account = to_account(row) if row else None
    if account is not None and ref.code and is_renamed(account):
        return _renamed(conn, tenant_id, account) or account
    return account


def is_renamed(account: Account) -> bool:
    """Whether the account is the closed one migration 0020 left with a renamed account's old code."""
    return account.status is AccountStatus.CLOSED and RENAMED_TO in account.metadata


def _renamed(conn: Connection, tenant_id: str, old: Account) -> Account | None:
    """The account an old code was renamed to: the one its closed placeholder is merged into (0020)."""
    target = merges_repo.targets_of(conn, tenant_id, [old.id]).get(old.id)
    return get_account(conn, tenant_id, AccountRef(id=target)) if target else None


def find_accounts(conn: Connection, tenant_id: str, refs: Iterable[AccountRef]
                  ) -> tuple[dict[str, Account], dict[str, Account]]:
    """Resolves many references in at most two queries: (by id, by code)."""
    ids, codes = ref_keys(refs)
    by_id: dict[str, Account] = {}
    by_code: dict[str, Account] = {}
    dialect = conn.dialect.name
    if ids:
        for row in conn.execute(_accounts_by(dialect, "id"), {"tenant_id": tenant_id,
                                                               "keys": bulk.keys_value(dialect, ids)}):
            account = to_account(row)
            by_id[account.id] = account
    if codes:
        for row in conn.execute(_accounts_by(dialect, "code"), {"tenant_id": tenant_id,
                                                                 "keys": bulk.keys_value(dialect, codes)}):
            account = to_account(row)
            by_code[account.code] = account
    return by_id, by_code


def ref_keys(refs: Iterable[AccountRef]) -> tuple[list[str], list[str]]:
    """The distinct ids and codes the references name, sorted; values no stored text can match are left out."""
    refs = list(refs)
    ids = sorted({r.id for r in refs if r.id and matchable(r.id)})
    codes = sorted({r.code for r in refs if r.code and matchable(r.code)})
    return ids, codes


# The batch writer's reads are built once per dialect: building a statement and its cache key costs as
# much Python time as running it.
@cache
def _accounts_by(dialect: str, key: str) -> Select:
    return _select_accounts().where(accounts.c.tenant_id == bindparam("tenant_id"),
                                    bulk.one_of(dialect, accounts.c[key], "keys"))


def list_accounts(conn: Connection, tenant_id: str, *, after_id: str, limit: int,
                  type_: str | None = None, status: str | None = None, currency: str | None = None,
                  parent_id: str | None = None) -> list[Account]:
    if not all(matchable(v) for v in (after_id, type_, status, currency, parent_id)):
        return []
    conditions = [accounts.c.tenant_id == tenant_id, accounts.c.id > after_id]
    for column, value in ((accounts.c.type, type_), (accounts.c.status, status),
                          (accounts.c.currency, currency), (accounts.c.parent_id, parent_id)):
        if value:
            conditions.append(column == value)
    rows = conn.execute(_select_accounts().where(and_(*conditions)).order_by(accounts.c.id).limit(limit))
    return [to_account(r) for r in rows]


def codes_starting(conn: Connection, tenant_id: str, prefix: str, limit: int) -> list[Account]:
    """Accounts whose code starts with `prefix` (taken literally), at most `limit`, by id."""
    rows = conn.execute(_select_accounts().where(accounts.c.tenant_id == tenant_id,
                                                 accounts.c.code.startswith(prefix, autoescape=True))
                        .order_by(accounts.c.id).limit(limit))
    return [to_account(r) for r in rows]


def parent_depth(conn: Connection, tenant_id: str, parent_id: str, depth_max: int) -> int:
    """How many ancestors the parent has, counting itself; stops past depth_max."""
    depth, current = 0, parent_id
    while current and depth <= depth_max:
        current = conn.execute(select(accounts.c.parent_id).where(
            accounts.c.tenant_id == tenant_id, accounts.c.id == current)).scalar()
        depth += 1
    return depth


STATE_COLUMNS = ("account_id", "current", "locked", "previous_day", "last_date", "entry_count")
_STATE_COLUMNS = tuple(balances.c[name] for name in STATE_COLUMNS)


def to_state(row: Row) -> BalanceState:
    account_id, current, locked, previous_day, last_date, entry_count = row
    return BalanceState(account_id, current, locked, previous_day, last_date, entry_count)  # fields' order


def load_balances(conn: Connection, tenant_id: str, account_ids: Iterable[str], *,
                  for_update: bool = False) -> dict[str, BalanceState]:
    """Loads balance rows; for a write, locks them in account-id order so writers never deadlock."""
    ids = set(account_ids)
    if not ids:
        return {}
    dialect = conn.dialect.name
    query = _balances_of(dialect, for_update and locking(conn))
    rows = conn.execute(query, {"tenant_id": tenant_id, "keys": bulk.keys_value(dialect, ids)})
    return {state.account_id: state for state in map(to_state, rows)}


@cache
def _balances_of(dialect: str, for_update: bool) -> Select:
    query = (select(*_STATE_COLUMNS)
             .where(balances.c.tenant_id == bindparam("tenant_id"), bulk.one_of(dialect, balances.c.account_id, "keys"))
             .order_by(balances.c.account_id))
    return query.with_for_update() if for_update else query


def save_balances(conn: Connection, states: Iterable[BalanceState], now_us: int) -> None:
    bulk.update_rows(conn, balances, "account_id", BALANCE_COLUMNS, balance_rows(states, now_us))


def balance_rows(states: Iterable[BalanceState], now_us: int) -> list[tuple]:
    """Each balance row's key, then its `BALANCE_COLUMNS`."""
    return [(s.account_id, s.current, s.locked, s.previous_day, s.last_date, s.entry_count, now_us) for s in states]


def balance_at(conn: Connection, account_id: str, *, posted_us_max: int | None = None,
               accounting_date_max: str | None = None) -> tuple[int, int]:
    """(balance, entry count) after the last entry posted at or before a time, or on or before a day."""
    column, bound = ((voucher_lines.c.posted_us, posted_us_max) if posted_us_max is not None
                     else (voucher_lines.c.accounting_date, accounting_date_max))
    last = journal_repo.last_entry_where(conn, account_id, column, bound)
    if last == 0:
        return 0, 0
    after = conn.execute(select(voucher_lines.c.balance_after).where(
        voucher_lines.c.account_id == account_id, voucher_lines.c.entry_number == last)).scalar_one()
    return after, last


def trial_balance_rows(conn: Connection, tenant_id: str) -> list[tuple[str, str, int, int, int]]:
    """Per (currency, normal side): the sum of positive balances, of negative ones (as a positive
    number), and the account count. Exact integers of any size: PostgreSQL sums bigint as numeric;
    SQLite's SUM stops at int64, so there the balances are summed here."""
    if conn.dialect.name == "sqlite":
        return _trial_balance_rows_summed_here(conn, tenant_id)
    positive = func.sum(case((balances.c.current > 0, balances.c.current), else_=0))
    negative = func.sum(case((balances.c.current < 0, -balances.c.current), else_=0))
    query = (select(accounts.c.currency, accounts.c.normal_side, positive, negative, func.count())
             .join(balances, balances.c.account_id == accounts.c.id)
             .where(accounts.c.tenant_id == tenant_id)
             .group_by(accounts.c.currency, accounts.c.normal_side)
             .order_by(accounts.c.currency, accounts.c.normal_side))
    return [(r[0], r[1], int(r[2] or 0), int(r[3] or 0), int(r[4])) for r in conn.execute(query)]


def _trial_balance_rows_summed_here(conn: Connection, tenant_id: str) -> list[tuple[str, str, int, int, int]]:
    sums: dict[tuple[str, str], list[int]] = {}
    query = (select(accounts.c.currency, accounts.c.normal_side, balances.c.current)
             .join(balances, balances.c.account_id == accounts.c.id).where(accounts.c.tenant_id == tenant_id))
    for currency, side, current in conn.execute(query):
        total = sums.setdefault((currency, side), [0, 0, 0])
        total[0 if current > 0 else 1] += abs(current)
        total[2] += 1
    return [(c, side, p, n, k) for (c, side), (p, n, k) in sorted(sums.items())]


def normal_sides(conn: Connection, account_ids: Iterable[str]) -> dict[str, Side]:
    """Each account's normal side, by id."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    rows = conn.execute(select(accounts.c.id, accounts.c.normal_side).where(accounts.c.id.in_(ids)))
    return {account_id: Side(side) for account_id, side in rows}
