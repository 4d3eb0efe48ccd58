"""An account's statement for a cycle of accounting dates, from its journal. Never commits.

An account's entries follow its accounting dates, so a cycle is a range of entry numbers, found by binary
search (journal_repo.last_entry_where); its totals read only that range, by the (account, entry number) key.
"""

from __future__ import annotations

from sqlalchemy import Connection, case, func, select

from tally.domain.statements import Cycle
from tally.storage import journal_repo
from tally.storage.tables import voucher_lines

_l = voucher_lines.c


def entry_range(conn: Connection, account_id: str, cycle: Cycle) -> tuple[int, int]:
    """(the last entry before the cycle, the cycle's last entry)."""
    before = journal_repo.last_entry_where(conn, account_id, _l.accounting_date, cycle.start, inclusive=False)
    last = journal_repo.last_entry_where(conn, account_id, _l.accounting_date, cycle.end)
    return before, last


def balance_after(conn: Connection, account_id: str, entry_number: int) -> int:
    if entry_number == 0:
        return 0
    return conn.execute(select(_l.balance_after).where(_l.account_id == account_id,
                                                       _l.entry_number == entry_number)).scalar_one()


def totals(conn: Connection, account_id: str, after_entry: int, last_entry: int) -> tuple[int, int]:
    """(debits, credits) of the entries after `after_entry` through `last_entry`."""
    if last_entry <= after_entry:
        return 0, 0
    row = conn.execute(select(func.sum(case((_l.side == "debit", _l.amount), else_=0)),
                              func.sum(case((_l.side == "credit", _l.amount), else_=0)))
                       .where(_l.account_id == account_id, _l.entry_number > after_entry,
                              _l.entry_number <= last_entry)).first()
    return int(row[0] or 0), int(row[1] or 0)
