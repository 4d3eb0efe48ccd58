"""Statement cycles on SQLite and PostgreSQL: monthly statements issued by the day close, each opening at the
previous one's closing balance, a statement day from the account's metadata, and the previous statement
balance."""

from __future__ import annotations

import pytest

from tally.domain.accounts import AccountType, NewAccount
from tally.domain.errors import LedgerError
from tally.domain.vouchers import AccountRef
from tally.service import accounts as account_service
from tally.service.books.days import DayBook
from tally.service.books.statements import StatementBook
from tally.service.commands import CreateAccount
from tally.storage import tables as t
from tests.integration.conftest import FUNDING, TENANT, check_ledger
from tests.integration.test_days_close import Clock, stored


@pytest.fixture
async def books(database_url, make_ledger):
    clock = Clock("2025-12-20T09:00:00")
    ledger = make_ledger(database_url, clock=clock)
    ledger.open_internal(FUNDING)
    ledger.open("alice")
    spec = NewAccount("bob", AccountType.DEPOSIT, "USD", metadata={"statement_day": "15"})
    account_service.create_account(CreateAccount(TENANT, "open-bob", spec), ledger.uow, ledger.currencies, clock)
    return ledger, DayBook(ledger.uow, ledger.calendar, clock), StatementBook(ledger.uow, ledger.calendar), clock


async def test_monthly_statements_chain_and_a_statement_day_shifts_the_cycle(books, database_url):
    ledger, days, statements, clock = books
    clock.set("2026-01-10T10:00:00")
    await ledger.fund("alice", 1_000)
    clock.set("2026-01-20T10:00:00")
    await ledger.transfer("alice", "bob", 300)
    clock.set("2026-02-03T10:00:00")
    await ledger.transfer("alice", "bob", 200)
    so_far = statements.get(TENANT, AccountRef(code="alice"), "2026-01-05", 0, "")  # no day closed yet
    assert (so_far.statement.issued, so_far.statement.closing_balance, [e.amount for e in so_far.entries]) == (
        False, 700, [1_000, 300])
    with pytest.raises(LedgerError) as refused:
        statements.get(TENANT, AccountRef(code="alice"), "2026-1-5", 0, "")
    assert refused.value.reason == "ACCOUNTING_DATE_INVALID"
    assert statements.previous_balance(TENANT, _id(ledger, "alice")) == ("", 0)

    days.close(TENANT, "2026-01-31")
    found, token = statements.list(TENANT, AccountRef(code="alice"), 0, "")
    assert token == "" and [(s.cycle.start, s.cycle.end, s.opening_balance, s.closing_balance, s.debit_total,
                             s.credit_total, s.entry_count) for s in found] == [
        ("2026-01-01", "2026-01-31", 0, 700, 300, 1_000, 2), ("2025-12-01", "2025-12-31", 0, 0, 0, 0, 0)]
    assert statements.previous_balance(TENANT, _id(ledger, "alice")) == ("2026-01-31", 700)
    # bob's cycles run from the 15th: the one of 2026-01-15..02-14 is not over, so the last issued one is
    # 2025-12-15..2026-01-14, before bob had anything.
    assert [(s.cycle.start, s.cycle.end) for s in statements.list(TENANT, AccountRef(code="bob"), 0, "")[0]] == [
        ("2025-12-15", "2026-01-14")]

    clock.set("2026-03-01T00:10:00")
    days.close(TENANT, "2026-02-28")
    page = statements.get(TENANT, AccountRef(code="alice"), "2026-02-14", 0, "")
    assert (page.statement.opening_balance, page.statement.closing_balance, page.statement.issued) == (
        700, 500, True)  # chained
    assert [e.amount for e in page.entries] == [200] and page.next_page_token == ""
    bob = statements.get(TENANT, AccountRef(code="bob"), "2026-02-14", 1, "")
    assert (bob.statement.cycle.start, bob.statement.opening_balance, bob.statement.closing_balance,
            bob.statement.credit_total, bob.statement.entry_count) == ("2026-01-15", 0, 500, 500, 2)
    more = statements.get(TENANT, AccountRef(code="bob"), "2026-02-14", 1, bob.next_page_token)
    assert [e.amount for e in bob.entries + more.entries] == [300, 200] and more.next_page_token == ""
    newest, token = statements.list(TENANT, AccountRef(code="alice"), 1, "")
    older, _ = statements.list(TENANT, AccountRef(code="alice"), 1, token)
    assert [s.cycle.start for s in newest + older] == ["2026-02-01", "2026-01-01"]
    assert stored(database_url, t.accounting_days, tenant_id=TENANT)  # statements follow the closes
    check_ledger(database_url)


def _id(ledger, code: str) -> str:
    return ledger.queries.get_account(TENANT, AccountRef(code=code))[0].id
