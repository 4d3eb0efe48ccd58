"""The batch writer's rows in one call (storage/journal_write.py; on PostgreSQL the function of migration
0011): the function takes the columns the writer sends, in its order; a balance row inserted in a call is
updated by the same call; a bad row refuses the whole call; a key twice is refused before anything goes."""

from __future__ import annotations

import importlib.util

import pytest
import sqlalchemy as sa

from tally.domain.accounts import AccountType, BalanceState, NewAccount, open_account
from tally.storage import journal_write, ledger_repo
from tally.storage import tables as t
from tally.storage.journal_write import JournalRows
from tally.storage.migrate import MIGRATIONS
from tests.integration.conftest import TENANT


def _migration_0011():
    path = next((MIGRATIONS / "versions").glob("0011_*.py"))
    spec = importlib.util.spec_from_file_location("migration_0011", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_function_takes_the_columns_the_writer_sends_in_its_order():
    migration = _migration_0011()
    function_parts = [(part, tuple(name for name, _ in columns)) for part, (_, columns) in migration.INSERTS.items()]
    function_parts += [(part, (key, *(name for name, _ in columns)))
                       for part, (_, key, _, columns) in migration.UPDATES.items()]
    assert function_parts == list(journal_write.PARTS)
    # Each cast is the column's own type class (text for strings: the column's assignment cast checks length).
    tables = {table: getattr(t, "voucher_lines" if table == "voucher_lines" else table)
              for table, _ in migration.INSERTS.values()}
    for table, columns in migration.INSERTS.values():
        for name, cast in columns:
            type_ = tables[table].c[name].type
            expected = ("bigint" if isinstance(type_, sa.BigInteger) else
                        "integer" if isinstance(type_, sa.Integer) else "text")
            assert cast == expected, (table, name)


def _account(code: str, now: int):
    return open_account(NewAccount(code, AccountType.DEPOSIT, "USD"), account_id=f"00000000-0000-4000-8000-{now:012d}",
                        tenant_id=TENANT, now_us=now, currencies=frozenset({"USD"}))


def _balance(conn: sa.Connection, account_id: str) -> tuple:
    return tuple(conn.execute(sa.select(t.balances.c.current, t.balances.c.entry_count, t.balances.c.updated_us)
                              .where(t.balances.c.account_id == account_id)).one())


def test_a_balance_row_inserted_by_a_call_is_updated_by_the_same_call(database_url, make_ledger):
    """The inserts run before the updates and the updates see them, as the separate statements did: an
    account opened in a batch's last chunk gets its moved balance, not zero."""
    ledger = make_ledger(database_url, start=False)
    account = _account("fresh", 1)
    head = ledger_repo.LedgerHead(TENANT, 0, 0, "0" * 64, "2026-12-07", 5)
    ledger.uow.write({TENANT}, lambda conn: ledger_repo.create_heads(conn, [TENANT]))
    moved = BalanceState(account.id, current=700, entry_count=1)
    ledger.uow.write({TENANT}, lambda conn: journal_write.write(
        conn, JournalRows(accounts=[account], balances=[moved], heads=[head], now_us=42)))
    with ledger.engines.read.connect() as conn:
        assert _balance(conn, account.id) == (700, 1, 42)
        assert conn.execute(sa.select(t.ledger_heads.c.posted_us, t.ledger_heads.c.accounting_date)
                            .where(t.ledger_heads.c.tenant_id == TENANT)).one() == (5, "2026-12-07")


def test_a_bad_row_refuses_the_whole_call(database_url, make_ledger):
    ledger = make_ledger(database_url, start=False)
    account = _account("kept-out", 2)
    same_key = [ledger_repo.Event(TENANT, 1, "test.event", {}, 1)] * 2  # the events' primary key twice
    with pytest.raises(sa.exc.IntegrityError):
        ledger.uow.write({TENANT}, lambda conn: journal_write.write(
            conn, JournalRows(accounts=[account], events=same_key)))
    with ledger.engines.read.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.accounts)
                            .where(t.accounts.c.code == "kept-out")).scalar_one() == 0


def test_a_key_twice_is_refused_before_anything_is_sent(database_url, make_ledger):
    ledger = make_ledger(database_url, start=False)
    twice = [BalanceState("a", current=1), BalanceState("a", current=2)]
    with pytest.raises(ValueError, match="twice"):
        ledger.uow.write({TENANT}, lambda conn: journal_write.write(conn, JournalRows(balances=twice, now_us=1)))
