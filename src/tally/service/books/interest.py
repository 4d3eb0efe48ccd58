"""Interest accrual at day close, for the accounts the rule set's `[[interest]]` policies cover.

After a day D closes, each covered account earns interest on its closing balance of every day since its
last accrual (normally just D), in whole units, the fraction carried on (domain/interest.py). The accrual is
computed from the closed day's journal in a snapshot and stored in one transaction (`interest_accruals`, one
row per account and closed day): a second run finds the rows and computes nothing. Then the vouchers are
posted through the posting pipeline, each with a request id derived from the account and the day, so a run
stopped halfway and run again posts each voucher exactly once:

- accrual: debit `interest_expense:{currency}`, credit `interest_accrued:{account id}` (the payable);
- at the close of a month's last day (capitalize = "monthly"): debit `interest_accrued:{account id}`, credit
  the account, by everything accrued since the last capitalization.

The vouchers carry the open accounting day (a closed day never changes); their metadata `accrued_for`
names the day they accrue for. Only credit-normal accounts (customer money, a liability of the platform)
earn interest; the two internal accounts are opened on first use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from tally.domain.accounts import AccountType, FloorPolicy, NewAccount, Side
from tally.domain.days import next_date
from tally.domain.errors import LedgerError
from tally.domain.flows import AdjustmentFlow
from tally.domain.interest import InterestPolicy, accrue_day, is_month_end
from tally.domain.vouchers import AccountRef, LineDraft
from tally.rules.interest import InterestRule, policy_for
from tally.service import accounts as account_service
from tally.service.commands import CreateAccount, PostFlow
from tally.storage import accounts_repo, interest_repo
from tally.storage.interest_repo import AccrualRow, PolicyAccount
from tally.storage.uow import UnitOfWork

log = logging.getLogger("tally.interest")
ACCOUNTS_PAGE_SIZE = 500
ACCOUNTS_PER_CLOSE_MAX = 100_000  # covered accounts one close accrues for
CATCH_UP_DAYS_MAX = 366  # days since an account's last accrual that one close makes up for
INTEREST_ACTOR = "system:interest"


@dataclass(frozen=True)
class PostedAccruals:
    accrued: int  # vouchers posted (or replayed) for accruals
    capitalized: int
    refused: int = 0


class InterestBook:
    def __init__(self, uow: UnitOfWork, posting, rules: tuple[InterestRule, ...], currencies: frozenset[str],
                 clock: Callable[[], int]) -> None:
        self.uow, self.posting, self.rules, self.currencies, self.clock = uow, posting, rules, currencies, clock
        self.types = sorted({r.account_type.value for r in rules if r.account_type is not None})
        self.codes = sorted({r.code for r in rules if r.code})

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    # ------------------------------------------------------------------------------------------ accrue

    def accrue(self, tenant_id: str, date: str) -> list[AccrualRow]:
        """The accruals of the closed day `date`: computed and stored once, read back after."""
        if not self.enabled:
            return []
        stored = self.uow.read([tenant_id], lambda conn: interest_repo.accruals_of(conn, tenant_id, date))
        if stored:
            return stored
        if self.uow.read([tenant_id], lambda conn: interest_repo.last_date(conn, tenant_id)) > date:
            return []  # a day closed along with a later one: that one's accrual covers it
        rows = self.uow.read([tenant_id], lambda conn: self._compute(conn, tenant_id, date))
        return self.uow.write([tenant_id], lambda conn: _store_once(conn, tenant_id, date, rows))

    def _compute(self, conn: Connection, tenant_id: str, date: str) -> list[AccrualRow]:
        rows, after = [], ""
        while len(rows) < ACCOUNTS_PER_CLOSE_MAX:
            page = interest_repo.policy_accounts(conn, tenant_id, self.types, self.codes, after_id=after,
                                                 limit=ACCOUNTS_PAGE_SIZE)
            for account in page:
                policy = policy_for(self.rules, account.code, account.type)
                if policy is not None and account.normal_side == Side.CREDIT.value:
                    rows.append(_accrual(conn, tenant_id, account, policy, date))
            if len(page) < ACCOUNTS_PAGE_SIZE:
                return rows
            after = page[-1].id
        log.warning("interest for %s of tenant %s: more than %d accounts, the rest skipped", date, tenant_id,
                    ACCOUNTS_PER_CLOSE_MAX)
        return rows

    # ------------------------------------------------------------------------------------------ post

    async def post(self, tenant_id: str, rows: list[AccrualRow]) -> PostedAccruals:
        """Posts the vouchers of these accruals, up to POSTS_IN_FLIGHT_MAX at a time; each has a fixed request
        id, so a rerun replays it. A refusal (a frozen account, say) is logged and counted, not raised: it is
        recorded under its request id, and the accrued interest stays in the payable account."""
        await self._open_accounts(tenant_id, rows)
        posts = [post for row in rows for post in _vouchers(tenant_id, row)]
        refused = 0
        for start in range(0, len(posts), POSTS_IN_FLIGHT_MAX):
            chunk = posts[start:start + POSTS_IN_FLIGHT_MAX]
            results = await asyncio.gather(*(self.posting.post(cmd) for cmd in chunk), return_exceptions=True)
            for cmd, result in zip(chunk, results, strict=True):
                if isinstance(result, LedgerError):
                    refused += 1
                    log.warning("interest voucher %s of tenant %s refused: %s %s", cmd.request_id, tenant_id,
                                result.reason, result.message)
                elif isinstance(result, BaseException):
                    raise result
        capitalized = sum(1 for cmd in posts if cmd.request_id.startswith(CAPITALIZED))
        return PostedAccruals(len(posts) - capitalized, capitalized, refused)

    async def _open_accounts(self, tenant_id: str, rows: list[AccrualRow]) -> None:
        """Opens the internal accounts the vouchers need and the tenant does not have yet."""
        wanted = {f"interest_expense:{r.currency}": (Side.DEBIT, r.currency) for r in rows if r.units}
        wanted |= {f"interest_accrued:{r.account_id}": (Side.CREDIT, r.currency) for r in rows if r.units}
        if not wanted:
            return
        refs = [AccountRef(code=code) for code in sorted(wanted)]
        _, found = await asyncio.to_thread(self.uow.read, [tenant_id],
                                           lambda conn: accounts_repo.find_accounts(conn, tenant_id, refs))
        for code in sorted(set(wanted) - set(found)):
            side, currency = wanted[code]
            await asyncio.to_thread(self._open, tenant_id, code, side, currency)

    def _open(self, tenant_id: str, code: str, side: Side, currency: str) -> None:
        spec = NewAccount(code, AccountType.INTERNAL, currency, normal_side=side, floor_policy=FloorPolicy.UNBOUNDED,
                          name="interest")
        try:
            account_service.create_account(CreateAccount(tenant_id, f"open:{code}", spec), self.uow,
                                           self.currencies, self.clock)
        except LedgerError as error:
            if error.reason != "ACCOUNT_CODE_TAKEN":  # another run opened it first
                raise


CAPITALIZED = "interest-capitalized:"
POSTS_IN_FLIGHT_MAX = 500


def _vouchers(tenant_id: str, row: AccrualRow) -> list[PostFlow]:
    """The accrual voucher (when the days earned a unit) and the capitalization (at a month's end)."""
    accrued = AccountRef(code=f"interest_accrued:{row.account_id}")
    flows = []
    if row.units:
        expense = AccountRef(code=f"interest_expense:{row.currency}")
        flows.append((f"interest:{row.account_id}:{row.accounting_date}", "interest accrued", (
            LineDraft(expense, Side.DEBIT, row.units, row.currency),
            LineDraft(accrued, Side.CREDIT, row.units, row.currency))))
    if row.capitalized:
        flows.append((f"{CAPITALIZED}{row.account_id}:{row.accounting_date}", "interest capitalized", (
            LineDraft(accrued, Side.DEBIT, row.capitalized, row.currency),
            LineDraft(AccountRef(id=row.account_id), Side.CREDIT, row.capitalized, row.currency))))
    return [PostFlow(tenant_id, request_id, AdjustmentFlow(lines, f"{reason} for {row.accounting_date}"),
                     metadata={"accrued_for": row.accounting_date}, actor=INTEREST_ACTOR)
            for request_id, reason, lines in flows]


def _accrual(conn: Connection, tenant_id: str, account: PolicyAccount, policy: InterestPolicy,
             date: str) -> AccrualRow:
    """What `account` earns for the days since its last accrual, through `date`."""
    last = interest_repo.last_accrual(conn, account.id, date)
    days = _days_after(last.accounting_date, date) if last else [date]
    carry = last.carry if last and last.denominator == policy.denominator else 0  # a new day count starts afresh
    units = balance = 0
    for day in days:
        balance, _ = accounts_repo.balance_at(conn, account.id, accounting_date_max=day)
        accrual = accrue_day(policy, balance, carry)
        units, carry = units + accrual.units, accrual.carry
    accrued_open = (last.accrued_open if last else 0) + units
    capitalized = accrued_open if policy.capitalize_monthly and any(map(is_month_end, days)) else 0
    return AccrualRow(account.id, date, tenant_id, account.currency, balance, len(days), policy.rate_bp,
                      policy.denominator, units, carry, accrued_open - capitalized, capitalized)


def _days_after(last: str, through: str) -> list[str]:
    days, day = [], next_date(last)
    while day <= through and len(days) < CATCH_UP_DAYS_MAX:
        days.append(day)
        day = next_date(day)
    return days or [through]


def _store_once(conn: Connection, tenant_id: str, date: str, rows: list[AccrualRow]) -> list[AccrualRow]:
    """Stores the rows unless another run stored the day's first; returns what is stored."""
    stored = interest_repo.accruals_of(conn, tenant_id, date)
    if stored:
        return stored
    interest_repo.insert_accruals(conn, rows)
    return sorted(rows, key=lambda r: r.account_id)
