"""The batch writer's opening reads: the ledger heads of its tenants, the idempotency records of its
requests, and the accounts it names with their balance rows.

On PostgreSQL they go out together, in one round trip (one multi-statement query, through the driver).
Every round trip of a write transaction is time the write gate is held, and for the writer thread another
wait for the GIL when the answer comes. On SQLite, where a statement costs no round trip, the repositories
read them one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import Connection

from tally.domain.accounts import Account, BalanceState
from tally.domain.vouchers import AccountRef
from tally.storage import accounts_repo, ledger_repo
from tally.storage.bulk import text_array
from tally.storage.engine import fetch_together
from tally.storage.ledger_repo import IdempotencyRecord, LedgerHead

RecordKey = tuple[str, str]  # (tenant, request_id)


@dataclass
class TenantAccounts:
    by_id: dict[str, Account]
    by_code: dict[str, Account]


@dataclass
class Opening:
    heads: dict[str, LedgerHead]  # every tenant asked for: missing heads are created
    records: dict[RecordKey, IdempotencyRecord]
    accounts: dict[str, TenantAccounts]  # by tenant
    balances: dict[str, BalanceState]  # by account id, of every account found
    epochs: dict[str, int] = field(default_factory=dict)  # by tenant, as read (storage/epochs.py)
    remembered: bool = False  # recalled from the writer's memory, not read: its epochs must be checked
    created_heads: bool = False  # a tenant's first write: its head was created (written) here

    def add_accounts(self, found: dict[str, TenantAccounts], states: dict[str, BalanceState]) -> None:
        """Accounts read beside those recalled (WriterMemory.recall)."""
        for tenant_id, accounts in found.items():
            known = self.accounts.setdefault(tenant_id, TenantAccounts({}, {}))
            known.by_id.update(accounts.by_id)
            known.by_code.update(accounts.by_code)
        self.balances.update(states)


def read_opening(conn: Connection, tenant_ids: Iterable[str], record_keys: Iterable[RecordKey],
                 refs: dict[str, list[AccountRef]]) -> Opening:
    tenant_ids = sorted(set(tenant_ids))
    if conn.dialect.name == "postgresql":
        opening = _read_together(conn, tenant_ids, record_keys, refs)
    else:
        opening = _read_one_by_one(conn, tenant_ids, record_keys, refs)
    missing = [t for t in tenant_ids if t not in opening.heads]
    opening.heads.update(ledger_repo.create_heads(conn, missing))
    opening.epochs.update((t, 0) for t in missing)
    opening.created_heads = bool(missing)
    return opening


def _read_one_by_one(conn: Connection, tenant_ids: list[str], record_keys: Iterable[RecordKey],
                     refs: dict[str, list[AccountRef]]) -> Opening:
    heads, epochs = ledger_repo.load_heads_with_epochs(conn, tenant_ids)
    records = ledger_repo.load_records(conn, record_keys)
    return Opening(heads, records, *_accounts_one_by_one(conn, refs), epochs)


def read_accounts(conn: Connection, refs: dict[str, list[AccountRef]]) -> tuple[dict[str, TenantAccounts],
                                                                                dict[str, BalanceState]]:
    """The accounts the references name (by tenant) and their balance rows; on PostgreSQL in one round trip,
    with whatever the transaction deferred."""
    if conn.dialect.name != "postgresql":
        return _accounts_one_by_one(conn, refs)
    keys = _account_keys(refs)
    return _accounts_from(keys, iter(fetch_together(conn, _account_queries(keys))))


def _accounts_one_by_one(conn: Connection, refs: dict[str, list[AccountRef]]
                         ) -> tuple[dict[str, TenantAccounts], dict[str, BalanceState]]:
    found: dict[str, TenantAccounts] = {}
    states: dict[str, BalanceState] = {}
    for tenant_id, tenant_refs in refs.items():
        by_id, by_code = accounts_repo.find_accounts(conn, tenant_id, tenant_refs)
        found[tenant_id] = TenantAccounts(by_id, by_code)
        ids = {a.id for a in (*by_id.values(), *by_code.values())}
        states.update(accounts_repo.load_balances(conn, tenant_id, ids, for_update=True))
    return found, states


def _read_together(conn: Connection, tenant_ids: list[str], record_keys: Iterable[RecordKey],
                   refs: dict[str, list[AccountRef]]) -> Opening:
    request_ids = ledger_repo.request_ids_by_tenant(record_keys)
    keys = _account_keys(refs)
    queries = [(_HEADS_SQL, (text_array(tenant_ids),))]
    queries += [(_RECORDS_SQL, (tenant_id, text_array(ids))) for tenant_id, ids in request_ids.items()]
    results = iter(fetch_together(conn, queries + _account_queries(keys)))
    heads, epochs = ledger_repo.heads_and_epochs(next(results))
    records = {}
    for _ in request_ids:
        records.update({(r.tenant_id, r.request_id): r for r in map(ledger_repo.to_record, next(results))})
    return Opening(heads, records, *_accounts_from(keys, results), epochs)


_Keys = dict[str, tuple[list[str], list[str]]]  # by tenant: (ids, codes)


def _account_keys(refs: dict[str, list[AccountRef]]) -> _Keys:
    return {tenant_id: accounts_repo.ref_keys(tenant_refs) for tenant_id, tenant_refs in refs.items()}


def _account_queries(keys: _Keys) -> list[tuple[str, tuple]]:
    return [(_ACCOUNTS_SQL, (tenant_id, text_array(ids), text_array(codes))) for tenant_id, (ids, codes)
            in keys.items()]


def _accounts_from(keys: _Keys, results: Iterator[list[tuple]]
                   ) -> tuple[dict[str, TenantAccounts], dict[str, BalanceState]]:
    """The rows of `_account_queries(keys)`, in order."""
    found: dict[str, TenantAccounts] = {}
    states: dict[str, BalanceState] = {}
    for tenant_id, (ids, codes) in keys.items():
        rows = next(results)
        named = [accounts_repo.to_account(row[:_STATE_AT]) for row in rows]
        wanted_ids, wanted_codes = set(ids), set(codes)
        found[tenant_id] = TenantAccounts({a.id: a for a in named if a.id in wanted_ids},
                                          {a.code: a for a in named if a.code in wanted_codes})
        states.update((row[_STATE_AT], accounts_repo.to_state(row[_STATE_AT:])) for row in rows
                      if row[_STATE_AT] is not None)
    return found, states


def _columns(names: Iterable[str], table: str = "") -> str:
    return ", ".join(f'{table}"{name}"' for name in names)


_HEADS_SQL = (f"SELECT {_columns(ledger_repo.HEAD_COLUMNS)}, epoch FROM ledger_heads "
              "WHERE tenant_id = ANY(%s::text[])")
_RECORDS_SQL = (f"SELECT {_columns(ledger_repo.RECORD_COLUMNS)} FROM idempotency "
                "WHERE tenant_id = %s AND request_id = ANY(%s::text[])")
# The accounts named, each with its balance row, in one statement. Not FOR UPDATE: every writer of balances
# holds the write gate for its whole transaction, so a row lock would only cost a heap and WAL write per row,
# written again by the batch's UPDATE; a writer that skipped the gate still fails at that UPDATE (a row
# changed since its snapshot).
_ACCOUNTS_SQL = (f"SELECT {_columns(accounts_repo.ACCOUNT_COLUMNS, 'a.')}, "
                 f"{_columns(accounts_repo.STATE_COLUMNS, 'b.')} "
                 "FROM accounts AS a LEFT JOIN balances AS b ON b.account_id = a.id "
                 "WHERE a.tenant_id = %s AND (a.id = ANY(%s::text[]) OR a.code = ANY(%s::text[]))")
_STATE_AT = len(accounts_repo.ACCOUNT_COLUMNS)  # where a row's balance columns start
