"""Statements: an account's cycles (monthly, from the statement day in its metadata), each with its opening
balance (the previous statement's closing balance), closing balance, totals and entries.

A statement is issued once its cycle's last day is closed: from then on nothing dated in the cycle can
change (a closed day takes no posting), so a statement read twice reads the same. Before that, GetStatement
answers the cycle so far, marked not issued. Statements are read from
the journal, not stored: a cycle is a range of the account's entry numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import Connection

from tally.domain.accounts import Account
from tally.domain.calendar import AccountingCalendar
from tally.domain.days import parse_date
from tally.domain.errors import missing_account
from tally.domain.statements import Cycle, Statement, cycle_of, last_issued, statement_day
from tally.domain.vouchers import AccountRef
from tally.service import paging
from tally.service.queries import Entry
from tally.storage import accounts_repo, days_repo, journal_repo, statements_repo
from tally.storage.replica import LaggingReads
from tally.storage.uow import UnitOfWork


@dataclass(frozen=True)
class StatementPage:
    statement: Statement
    entries: list[Entry]
    next_page_token: str


class StatementBook:
    def __init__(self, uow: UnitOfWork, calendar: AccountingCalendar, lagging: LaggingReads | None = None) -> None:
        self.uow, self.calendar = uow, calendar
        self.lagging = lagging or LaggingReads(uow, None, wait_ms_max=0)  # statements may come from the replica

    def list(self, tenant_id: str, ref: AccountRef, page_size: int, page_token: str,
             min_voucher_sequence: int = 0) -> tuple[list[Statement], str]:
        """Issued statements, newest first, back to the cycle the account was opened in."""
        limit = paging.page_size(page_size)

        def read(conn: Connection) -> tuple[list[Statement], str]:
            account = _require(conn, tenant_id, ref)
            day = statement_day(account.metadata)
            query = {"list": "statements", "account": account.id, "day": day}
            newest = last_issued(days_repo.last_closed_date(conn, tenant_id), day)
            before = paging.decode(page_token, query, "")
            cycle = cycle_of(before, day).previous(day) if before else newest
            opened = self.calendar.date_of(account.created_us)
            found = []
            while cycle is not None and cycle.end >= opened and len(found) < limit:
                found.append(_statement(conn, account, cycle))
                cycle = cycle.previous(day)
            more = cycle is not None and cycle.end >= opened and bool(found)
            return found, paging.encode(found[-1].cycle.start, query) if more else ""

        return self.lagging.read(tenant_id, read, min_voucher_sequence)

    def get(self, tenant_id: str, ref: AccountRef, date_text: str, page_size: int, page_token: str,
            min_voucher_sequence: int = 0) -> StatementPage:
        """The statement whose cycle holds `date`, with a page of its entries: issued (final) once the cycle's
        last day is closed, else provisional (what the cycle holds so far)."""
        limit = paging.page_size(page_size)

        def read(conn: Connection) -> StatementPage:
            account = _require(conn, tenant_id, ref)  # authorization (the account is the caller's) first
            cycle = cycle_of(parse_date(date_text, "date"), statement_day(account.metadata))
            issued = cycle.end <= days_repo.last_closed_date(conn, tenant_id)
            statement = replace(_statement(conn, account, cycle), issued=issued)
            query = {"list": "statement", "account": account.id, "start": cycle.start}
            after = paging.decode(page_token, query, 0)
            rows = journal_repo.list_entries(conn, tenant_id, account.id, after_entry=after, limit=limit + 1,
                                             start_date=cycle.start, end_date=cycle.end)
            entries = [Entry(r.entry_number, r.voucher_id, r.line_no, r.account_id, r.side, r.amount, r.currency,
                             r.balance_after, r.flow_type, r.memo, r.accounting_date, r.posted_us) for r in rows]
            token = paging.encode(entries[limit - 1].entry_number, query) if len(entries) > limit else ""
            return StatementPage(statement, entries[:limit], token)

        return self.lagging.read(tenant_id, read, min_voucher_sequence)

    def previous_balance(self, tenant_id: str, account_id: str) -> tuple[str, int]:
        """(the last issued statement's end date, its closing balance); ("", 0) before the first."""

        def read(conn: Connection) -> tuple[str, int]:
            account = _require(conn, tenant_id, AccountRef(id=account_id))
            cycle = last_issued(days_repo.last_closed_date(conn, tenant_id), statement_day(account.metadata))
            if cycle is None:
                return "", 0
            _, last = statements_repo.entry_range(conn, account.id, cycle)
            return cycle.end, statements_repo.balance_after(conn, account.id, last)

        return self.uow.read([tenant_id], read)


def _statement(conn: Connection, account: Account, cycle: Cycle) -> Statement:
    before, last = statements_repo.entry_range(conn, account.id, cycle)
    debits, credits = statements_repo.totals(conn, account.id, before, last)
    return Statement(account.id, account.currency, cycle, statements_repo.balance_after(conn, account.id, before),
                     statements_repo.balance_after(conn, account.id, last), debits, credits, last - before, True)


def _require(conn: Connection, tenant_id: str, ref: AccountRef) -> Account:
    account = accounts_repo.get_account(conn, tenant_id, ref)
    if account is None:
        raise missing_account(ref)
    return account
