"""Read-side handlers: accounts, balances, statements and vouchers, each in one read snapshot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection

from tally.domain import limits
from tally.domain.accounts import Account, AccountStatus, AccountType, BalanceState, Side
from tally.domain.calendar import AccountingCalendar, previous_date
from tally.domain.errors import invalid, missing_account, not_accessible, precondition
from tally.domain.fields import check_tenant
from tally.domain.holds import Hold, HoldStatus
from tally.domain.money import fits_int64
from tally.domain.vouchers import AccountRef, Voucher
from tally.service import paging
from tally.storage import accounts_repo, holds_repo, journal_repo, ledger_repo
from tally.storage.replica import LaggingReads, check_min_sequence
from tally.storage.uow import UnitOfWork


@dataclass(frozen=True)
class BalanceView:
    account_id: str
    currency: str
    current: int
    locked: int
    available: int
    credit_limit: int
    previous_day: int
    previous_day_date: str
    accounting_date: str
    entry_count: int


@dataclass(frozen=True)
class BalanceSnapshot:
    balances: list[BalanceView]
    voucher_sequence: int
    event_sequence: int


@dataclass(frozen=True)
class Entry:
    entry_number: int
    voucher_id: str
    line_no: int
    account_id: str
    side: str
    amount: int
    currency: str
    balance_after: int
    flow_type: str
    memo: str
    accounting_date: str
    posted_us: int
    account_code: str = ""


@dataclass(frozen=True)
class TrialBalanceTotal:
    currency: str
    debit_total: int
    credit_total: int
    account_count: int

    @property
    def difference(self) -> int:
        return self.debit_total - self.credit_total


@dataclass(frozen=True)
class Page:
    items: list
    next_page_token: str
    opening_balance: int = 0
    resume_after: Callable[[object], str] = lambda item: ""  # the token of the page that follows `item`


class Queries:
    def __init__(self, uow: UnitOfWork, calendar: AccountingCalendar, clock: Callable[[], int],
                 lagging: LaggingReads | None = None) -> None:
        self.uow, self.calendar, self.clock = uow, calendar, clock
        # History (balances as of a time or day, entries) may come from the read replica: it never changes.
        self.lagging = lagging or LaggingReads(uow, None, wait_ms_max=0)

    def get_account(self, tenant_id: str, ref: AccountRef) -> tuple[Account, BalanceView]:
        check_tenant(tenant_id)
        return self.uow.read({tenant_id}, lambda conn: self._account_and_balance(conn, tenant_id, ref))

    def get_balance(self, tenant_id: str, ref: AccountRef, *, as_of_us: int | None = None,
                    as_of_date: str | None = None, min_voucher_sequence: int = 0) -> BalanceView:
        """Live from the primary (which holds every sequence a caller can have seen); as of a time or a day
        from the read replica when there is one, once it holds `min_voucher_sequence`."""
        check_tenant(tenant_id)
        if as_of_date:
            _check_date(as_of_date, "as_of_date")

        def read(conn: Connection) -> BalanceView:
            account, live = self._account_and_balance(conn, tenant_id, ref)
            if as_of_us is None and not as_of_date:
                return live
            return _historic(conn, account, as_of_us, as_of_date, self.calendar)

        if as_of_us is None and not as_of_date:
            check_min_sequence(min_voucher_sequence)
            return self.uow.read({tenant_id}, read)
        return self.lagging.read(tenant_id, read, min_voucher_sequence)

    def get_balances(self, tenant_id: str, refs: list[AccountRef]) -> BalanceSnapshot:
        """Many live balances from one snapshot, in the order asked, with the sequences it ends at."""
        check_tenant(tenant_id)
        check_read_count(refs)
        today = self.calendar.date_of(self.clock())

        def read(conn: Connection) -> BalanceSnapshot:
            found, states = read_named(conn, tenant_id, refs)
            head = ledger_repo.load_heads_readonly(conn, tenant_id)
            return BalanceSnapshot([live_balance(a, states[a.id], today) for a in found],
                                   head.voucher_sequence if head else 0, head.event_sequence if head else 0)

        return self.uow.read({tenant_id}, read)

    def list_accounts(self, tenant_id: str, *, page_size: int, page_token: str, type_: AccountType | None,
                      status: AccountStatus | None, currency: str, parent_id: str) -> Page:
        check_tenant(tenant_id)
        size = paging.page_size(page_size)
        filters = {"type": type_.value if type_ else None, "status": status.value if status else None,
                   "currency": currency or None, "parent_id": parent_id or None}
        query = {"list": "accounts", "tenant": tenant_id, **filters}
        after = paging.decode(page_token, query, "")
        rows = self.uow.read({tenant_id}, lambda conn: accounts_repo.list_accounts(
            conn, tenant_id, after_id=after, limit=size + 1, type_=filters["type"], status=filters["status"],
            currency=filters["currency"], parent_id=filters["parent_id"]))
        return _page(rows, size, lambda a: a.id, query)

    def list_entries(self, tenant_id: str, ref: AccountRef, *, page_size: int, page_token: str,
                     start_date: str = "", end_date: str = "", min_voucher_sequence: int = 0) -> Page:
        check_tenant(tenant_id)
        check_dates(start_date, end_date)
        size = paging.page_size(page_size)

        def read(conn: Connection) -> Page:
            account = require_account(conn, tenant_id, ref)
            query = {"list": "entries", "tenant": tenant_id, "account": account.id, "start": start_date,
                     "end": end_date}
            after = paging.decode(page_token, query, 0)
            rows = journal_repo.list_entries(conn, tenant_id, account.id, after_entry=after, limit=size + 1,
                                             start_date=start_date or None, end_date=end_date or None)
            entries = [Entry(r.entry_number, r.voucher_id, r.line_no, r.account_id, r.side, r.amount, r.currency,
                             r.balance_after, r.flow_type, r.memo, r.accounting_date, r.posted_us, account.code)
                       for r in rows]
            page = _page(entries, size, lambda e: e.entry_number, query)
            opening = (journal_repo.balance_before_entry(conn, account.id, entries[0].entry_number)
                       if entries else 0)
            return Page(page.items, page.next_page_token, opening, page.resume_after)

        return self.lagging.read(tenant_id, read, min_voucher_sequence)

    def get_voucher(self, tenant_id: str, voucher_id: str) -> Voucher:
        check_tenant(tenant_id)
        found = self.uow.read({tenant_id}, lambda conn: journal_repo.get_vouchers(conn, tenant_id, [voucher_id]))
        if not found:
            raise not_accessible("voucher", voucher_id)
        return found[0]

    def list_vouchers(self, tenant_id: str, *, page_size: int, page_token: str, account_id: str = "",
                      flow_type: str = "") -> Page:
        check_tenant(tenant_id)
        size = paging.page_size(page_size)
        query = {"list": "vouchers", "tenant": tenant_id, "account": account_id, "flow": flow_type}
        after = paging.decode(page_token, query, 0)
        rows = self.uow.read({tenant_id}, lambda conn: journal_repo.list_vouchers(
            conn, tenant_id, after_sequence=after, limit=size + 1, account_id=account_id or None,
            flow_type=flow_type or None))
        return _page(rows, size, lambda v: v.sequence, query)

    def get_hold(self, tenant_id: str, hold_id: str) -> Hold:
        check_tenant(tenant_id)
        found = self.uow.read({tenant_id}, lambda conn: holds_repo.load_holds(conn, tenant_id, [hold_id]))
        if hold_id not in found:
            raise not_accessible("hold", hold_id)
        return found[hold_id]

    def list_holds(self, tenant_id: str, *, page_size: int, page_token: str, account_id: str = "",
                   status: HoldStatus | None = None) -> Page:
        check_tenant(tenant_id)
        size = paging.page_size(page_size)
        query = {"list": "holds", "tenant": tenant_id, "account": account_id,
                 "status": status.value if status else None}
        after = paging.decode(page_token, query, "")
        rows = self.uow.read({tenant_id}, lambda conn: holds_repo.list_holds(
            conn, tenant_id, after_id=after, limit=size + 1, account_id=account_id or None,
            status=status.value if status else None))
        return _page(rows, size, lambda h: h.id, query)

    def trial_balance(self, tenant_id: str) -> list[TrialBalanceTotal]:
        """Per currency: debit-positive balances summed on each side; balanced books differ by zero."""
        check_tenant(tenant_id)
        rows = self.uow.read({tenant_id}, lambda conn: accounts_repo.trial_balance_rows(conn, tenant_id))
        totals: dict[str, list[int]] = {}
        for currency, normal_side, positive, negative, count in rows:
            debit, credit = (positive, negative) if normal_side == Side.DEBIT.value else (negative, positive)
            total = totals.setdefault(currency, [0, 0, 0])
            total[0] += debit
            total[1] += credit
            total[2] += count
        return check_trial_balance([TrialBalanceTotal(c, d, cr, n) for c, (d, cr, n) in sorted(totals.items())])

    def _account_and_balance(self, conn: Connection, tenant_id: str, ref: AccountRef
                             ) -> tuple[Account, BalanceView]:
        account = require_account(conn, tenant_id, ref)
        state = accounts_repo.load_balances(conn, tenant_id, [account.id])[account.id]
        return account, live_balance(account, state, self.calendar.date_of(self.clock()))


def check_read_count(refs: list[AccountRef]) -> None:
    if not 1 <= len(refs) <= limits.BALANCES_PER_READ_MAX:
        raise invalid("ACCOUNTS_COUNT_INVALID", f"name 1 to {limits.BALANCES_PER_READ_MAX} accounts",
                      accounts_max=limits.BALANCES_PER_READ_MAX)


def read_named(conn: Connection, tenant_id: str, refs: list[AccountRef]
               ) -> tuple[list[Account], dict[str, BalanceState]]:
    """The accounts named, in the order asked, and their balance rows: two statements however many."""
    by_id, by_code = accounts_repo.find_accounts(conn, tenant_id, refs)
    found = [by_id.get(r.id) if r.id else by_code.get(r.code) for r in refs]
    found = [accounts_repo.get_account(conn, tenant_id, r) if a is not None and r.code and accounts_repo.is_renamed(a)
             else a for r, a in zip(refs, found, strict=True)]  # an old code of migration 0020: its account
    for ref, account in zip(refs, found, strict=True):
        if account is None:
            raise missing_account(ref)
    return found, accounts_repo.load_balances(conn, tenant_id, {a.id for a in found})


def check_trial_balance(totals: list[TrialBalanceTotal]) -> list[TrialBalanceTotal]:
    for total in totals:
        if not (fits_int64(total.debit_total) and fits_int64(total.credit_total)):
            # Every balance fits int64, the sum of one side need not; the API's totals cannot carry it.
            raise precondition("TRIAL_BALANCE_OUT_OF_RANGE",
                               f"the {total.currency} totals leave the int64 range of the answer",
                               currency=total.currency)
    return totals


def require_account(conn: Connection, tenant_id: str, ref: AccountRef) -> Account:
    account = accounts_repo.get_account(conn, tenant_id, ref)
    if account is None:
        raise missing_account(ref)
    return account


def live_balance(account: Account, state: BalanceState, today: str) -> BalanceView:
    return BalanceView(
        account.id, account.currency, state.current, state.locked, state.available(account.credit_limit),
        account.credit_limit, state.previous_day_as_of(today), previous_date(today), today, state.entry_count)


def _historic(conn: Connection, account: Account, as_of_us: int | None, as_of_date: str | None,
              calendar: AccountingCalendar) -> BalanceView:
    """A past balance, rebuilt from the statement. Holds are not historic: locked is reported as 0."""
    if as_of_date:
        current, count = accounts_repo.balance_at(conn, account.id, accounting_date_max=as_of_date)
        day = as_of_date
    else:
        current, count = accounts_repo.balance_at(conn, account.id, posted_us_max=as_of_us)
        day = calendar.date_of(as_of_us)
    previous, _ = accounts_repo.balance_at(conn, account.id, accounting_date_max=previous_date(day))
    return BalanceView(account.id, account.currency, current, 0, current + account.credit_limit,
                       account.credit_limit, previous, previous_date(day), day, count)


def check_dates(start_date: str, end_date: str) -> None:
    """A statement's optional date range, each bound an ISO date when given."""
    for value, name in ((start_date, "start_date"), (end_date, "end_date")):
        if value:
            _check_date(value, name)


def _check_date(value: str, field: str) -> None:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise invalid("DATE_INVALID", f"{field} must be an ISO date (YYYY-MM-DD)", field=field) from None
    if len(value) != 10:
        raise invalid("DATE_INVALID", f"{field} must be an ISO date (YYYY-MM-DD)", field=field)


def _page(rows: list, size: int, position: Callable, query: dict) -> Page:
    def resume_after(item: object) -> str:
        return paging.encode(position(item), query)

    if len(rows) <= size:
        return Page(rows, "", resume_after=resume_after)
    items = rows[:size]
    return Page(items, resume_after(items[-1]), resume_after=resume_after)
