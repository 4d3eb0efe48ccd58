"""What a batch of postings writes, in one call: new accounts, vouchers and their lines, idempotency
records, events, and the balance rows and ledger heads the batch moved.

PostgreSQL: one call of `tally_write_journal` (migration 0011), whose statements keep their plans for
the session, where the same rows as separate statements were parsed, planned and read back one by one on
every transaction. The parts travel as JSON arrays (one orjson encoding each) in the columns' order below,
which `tests/integration/test_journal_write.py` holds to the function's. Through the driver, so that inside
`deferring` the call goes out with the COMMIT.
SQLite: the repositories' own statements, one `executemany` each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection

from tally.domain.accounts import Account, BalanceState
from tally.domain.vouchers import Voucher
from tally.storage import accounts_repo, journal_repo, ledger_repo
from tally.storage.bulk import text_array
from tally.storage.compact import bytea_json
from tally.storage.engine import driver_execute
from tally.storage.ledger_repo import Event, IdempotencyRecord, LedgerHead

# The function's parts, in its parameters' order, each with the columns of its rows.
PARTS = (
    ("p_accounts", accounts_repo.ACCOUNT_COLUMNS),
    ("p_new_balances", accounts_repo.NEW_BALANCE_COLUMNS),
    ("p_vouchers", journal_repo.VOUCHER_COLUMNS),
    ("p_lines", journal_repo.LINE_COLUMNS),
    ("p_records", ledger_repo.INSERTED_RECORD_COLUMNS),
    ("p_events", ledger_repo.EVENT_COLUMNS),
    ("p_balances", ("account_id", *accounts_repo.BALANCE_COLUMNS)),  # then its keys: text[]
    ("p_heads", ledger_repo.HEAD_COLUMNS),  # then its keys: text[]
)
_CALL = ("SELECT tally_write_journal(%s::jsonb, %s::jsonb, %s::jsonb, %s::jsonb, %s::jsonb, %s::jsonb, "
         "%s::jsonb, %s::text[], %s::jsonb, %s::text[])")


@dataclass(frozen=True, slots=True)
class JournalRows:
    accounts: Sequence[Account] = ()
    vouchers: Sequence[Voucher] = ()
    records: Sequence[IdempotencyRecord] = ()
    events: Sequence[Event] = ()
    balances: Sequence[BalanceState] = ()  # written at `now_us`
    heads: Sequence[LedgerHead] = ()
    now_us: int = 0

    def __bool__(self) -> bool:
        return any((self.accounts, self.vouchers, self.records, self.events, self.balances, self.heads))


def write(conn: Connection, rows: JournalRows) -> None:
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        _write_one_by_one(conn, rows)
        return
    balances = accounts_repo.balance_rows(rows.balances, rows.now_us)
    heads = ledger_repo.head_rows(rows.heads)
    driver_execute(conn, _CALL, (
        _json(accounts_repo.account_rows(rows.accounts)), _json(accounts_repo.new_balance_rows(rows.accounts)),
        _json(journal_repo.voucher_rows(rows.vouchers)), _json(journal_repo.line_rows(rows.vouchers)),
        _json(ledger_repo.record_rows(rows.records)), _json(ledger_repo.event_rows(conn, rows.events)),
        _json(balances), _keys(balances), _json(heads), _keys(heads)))


def _write_one_by_one(conn: Connection, rows: JournalRows) -> None:
    accounts_repo.insert_accounts(conn, rows.accounts)
    journal_repo.insert_vouchers(conn, rows.vouchers)
    ledger_repo.insert_records(conn, rows.records)
    ledger_repo.insert_events(conn, rows.events)
    accounts_repo.save_balances(conn, rows.balances, rows.now_us)
    ledger_repo.save_heads(conn, rows.heads)


def _json(rows: list[tuple]) -> str:
    return orjson.dumps(rows, default=bytea_json).decode()


def _keys(rows: list[tuple]) -> str:
    """The keys of rows to update, which must be distinct: an UPDATE joined with two rows for one key would
    apply just one of them."""
    keys = [row[0] for row in rows]
    if len(set(keys)) != len(keys):
        raise ValueError("journal_write: a balance row or ledger head appears twice")
    return text_array(keys)
