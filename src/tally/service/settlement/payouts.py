"""Payout handlers: linked bank accounts, payout requests, batches per bank account and currency, sending,
settling, returns and failures. Money moves only through the rule set (flows payout_request and
payout_step), each posting under a request id that makes a retry replay it; the payout's state is written
after its posting, so a retry of the same call completes what a crash interrupted.

No posting reads these rows, so their transactions skip the posting gate (`UnitOfWork.append`): an import or
a batch never makes postings wait; they are still SERIALIZABLE (BEGIN IMMEDIATE on SQLite)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from tally.domain.calendar import AccountingCalendar
from tally.domain.errors import ErrorKind, LedgerError, invalid, missing_account, not_accessible, precondition
from tally.domain.facts import Facts, check_facts
from tally.domain.fields import check_request_id, check_tenant
from tally.domain.flows import RuleFlow
from tally.domain.money import Currency
from tally.domain.payouts import (
    PAYOUTS_PER_BATCH_MAX,
    BankAccountStatus,
    BatchState,
    PayoutState,
    check_reason,
    check_transition,
    settlement_date,
    undo_state,
)
from tally.domain.vouchers import AccountRef
from tally.rules.engine import RuleSet
from tally.service.commands import PostFlow
from tally.service.posting.handlers import Posting
from tally.service.settlement.bank_details import BankDetails, checked
from tally.storage import accounts_repo, payouts_repo
from tally.storage.payouts_repo import BankAccount, Batch, Payout
from tally.storage.tables import matchable
from tally.storage.uow import UnitOfWork

_IDS = uuid.UUID("6f1c2a8e-25a5-4c35-9a52-2f0c1f4f0b25")  # namespace of ids derived from request ids


def derived_id(tenant_id: str, kind: str, request_id: str) -> str:
    """The same request always names the same record, so a retry finds what the first attempt made."""
    return str(uuid.uuid5(_IDS, f"{tenant_id}\x00{kind}\x00{request_id}"))


@dataclass(frozen=True)
class PayoutConfig:
    settlement_days: int = 1
    holidays: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Batched:
    batches: list[Batch]
    failed: list[Payout]


class Payouts:
    def __init__(self, uow: UnitOfWork, posting: Posting, rules: RuleSet, currencies: dict[str, Currency],
                 calendar: AccountingCalendar, clock: Callable[[], int], config: PayoutConfig) -> None:
        self.uow, self.posting, self.rules, self.currencies = uow, posting, rules, currencies
        self.calendar, self.clock, self.config = calendar, clock, config

    # -- linked bank accounts ------------------------------------------------------------------

    def link_bank_account(self, tenant_id: str, request_id: str, merchant_account: AccountRef, currency: str,
                          details: BankDetails, verified: bool) -> tuple[BankAccount, bool]:
        """Links a bank account to the merchant whose settled account (merchant:MERCHANT:CURRENCY/settled) is named."""
        check_tenant(tenant_id)
        check_request_id(request_id)
        self._currency(currency)
        merchant = self.uow.read({tenant_id}, lambda c: _merchant_of(c, tenant_id, merchant_account))
        details = checked(details)
        now = self.clock()
        account = BankAccount(derived_id(tenant_id, "bank_account", request_id), tenant_id, merchant, currency,
                              details.holder_name, details.iban, details.bic, details.aba_routing,
                              details.account_number,
                              BankAccountStatus.VERIFIED if verified else BankAccountStatus.UNVERIFIED, request_id,
                              now, now)

        def work(conn: Connection) -> tuple[BankAccount, bool]:
            found = payouts_repo.get_bank_account(conn, tenant_id, account.id)
            if found is not None:
                _same_request(found, account, ("merchant", "currency", "holder_name", "iban", "bic", "aba_routing",
                                               "account_number"))
                return found, True
            payouts_repo.insert_bank_account(conn, account)
            return account, False

        return self.uow.append({tenant_id}, work)

    def set_bank_account_status(self, tenant_id: str, account_id: str, status: BankAccountStatus) -> BankAccount:
        check_tenant(tenant_id)

        def work(conn: Connection) -> BankAccount:
            self._bank_account(conn, tenant_id, account_id)
            payouts_repo.set_bank_account_status(conn, account_id, status, self.clock())
            return payouts_repo.get_bank_account(conn, tenant_id, account_id)

        return self.uow.append({tenant_id}, work)

    # -- requests ------------------------------------------------------------------------------

    async def request(self, tenant_id: str, request_id: str, bank_account_id: str, amount: int, currency: str,
                      actor: str = "") -> tuple[Payout, bool]:
        """A payout to the merchant whose linked bank account is named."""
        check_tenant(tenant_id)
        check_request_id(request_id)
        self._currency(currency)
        payout_id = derived_id(tenant_id, "payout", request_id)
        found = await self._read(tenant_id, lambda c: payouts_repo.get_payout(c, tenant_id, payout_id))
        if found is not None:
            if (found.bank_account_id, found.currency) != (bank_account_id, currency):
                raise _reused(request_id)
            return found, True
        account = await self._read(tenant_id, lambda c: self._bank_account(c, tenant_id, bank_account_id))
        merchant = account.merchant
        _check_payable(account, currency)
        facts = check_facts(Facts("payout_request", currency, {"amount": amount}, {"merchant": merchant}))
        posted = await self.posting.post(PostFlow(
            tenant_id, request_id, RuleFlow(facts), memo=f"payout {payout_id} requested",
            metadata={"payout_id": payout_id, "bank_account_id": bank_account_id}, actor=actor))
        voucher = posted.vouchers[0]
        now = self.clock()
        payout = Payout(payout_id, tenant_id, request_id, merchant, bank_account_id, currency,
                        voucher.lines[0].amount, PayoutState.REQUESTED, "", "", (voucher.id,), now, now)
        try:
            await asyncio.to_thread(self.uow.append, {tenant_id}, lambda c: payouts_repo.insert_payout(c, payout))
        except IntegrityError:  # the same request, concurrently: the other one wrote it
            payout = await self._read(tenant_id, lambda c: payouts_repo.get_payout(c, tenant_id, payout_id))
            return payout, True
        return payout, posted.replayed

    # -- batches -------------------------------------------------------------------------------

    async def create_batches(self, tenant_id: str, request_id: str, currency: str) -> Batched:
        """Every requested payout of the currency up to now (the cut-off) in one batch per bank account; the
        prerequisites are checked again, and a payout that no longer meets them fails (money back)."""
        check_tenant(tenant_id)
        check_request_id(request_id)
        self._currency(currency)
        cutoff = self.clock()

        def work(conn: Connection) -> tuple[list[Batch], list[tuple[Payout, str]]]:
            earlier = payouts_repo.batches_of_request(conn, tenant_id, request_id)
            if earlier:  # a retry of this cut-off: its batches, and nothing new
                return earlier, []
            waiting = payouts_repo.list_payouts(conn, tenant_id, state=PayoutState.REQUESTED, currency=currency,
                                                created_before_us=cutoff, limit=PAYOUTS_PER_BATCH_MAX)
            accounts = payouts_repo.bank_accounts_by_id(conn, tenant_id, [p.bank_account_id for p in waiting])
            failing, by_account = [], {}
            for payout in waiting:
                why = self._still_payable(conn, payout, accounts.get(payout.bank_account_id))
                if why:
                    failing.append((payout, why))
                else:
                    by_account.setdefault(payout.bank_account_id, []).append(payout)
            batches = [self._batch(conn, tenant_id, request_id, account_id, currency, cutoff, group)
                       for account_id, group in sorted(by_account.items())]
            return batches, failing

        batches, failing = await asyncio.to_thread(self.uow.append, {tenant_id}, work)
        failed = [await self._give_back(p, why, PayoutState.REQUESTED) for p, why in failing]
        return Batched(batches, failed)

    def _batch(self, conn: Connection, tenant_id: str, request_id: str, account_id: str, currency: str,
               cutoff: int, group: list[Payout]) -> Batch:
        batch = Batch(derived_id(tenant_id, f"batch:{account_id}", request_id), tenant_id, account_id, currency,
                      BatchState.BATCHED, len(group), sum(p.amount for p in group), cutoff, "", "", "", "",
                      request_id, cutoff, cutoff)
        payouts_repo.insert_batch(conn, batch)
        for payout in group:
            check_transition(payout.state, PayoutState.BATCHED, payout.id)
            payouts_repo.save_payout(conn, dataclasses.replace(payout, state=PayoutState.BATCHED, batch_id=batch.id,
                                                               updated_us=cutoff), PayoutState.REQUESTED)
        return batch

    def _still_payable(self, conn: Connection, payout: Payout, account: BankAccount | None) -> str:
        """Why a requested payout can no longer be sent ("" when it can): the prerequisites, again."""
        if account is None or account.status is not BankAccountStatus.VERIFIED:
            return "BANK_ACCOUNT_NOT_VERIFIED"
        code = settled_code(payout.merchant, payout.currency)
        settled = accounts_repo.get_account(conn, payout.tenant_id, AccountRef(code=code))
        if settled is None or settled.metadata.get("kyc_status") != "verified":
            return "KYC_NOT_VERIFIED"
        minimum = settled.metadata.get("payout_minimum", "")
        floor = int(minimum) if minimum.isdigit() else self._minimum_param()
        return "BELOW_PAYOUT_MINIMUM" if payout.amount < floor else ""

    def _minimum_param(self) -> int:
        rule = self.rules.rule_for(Facts("payout_request", "USD", {"amount": 1}, {"merchant": "m"}))
        return int(rule.params.get("payout_minimum", 0))

    async def send_batch(self, tenant_id: str, request_id: str, batch_id: str, actor: str = "") -> tuple[Batch, bool]:
        """The bank sent the batch: its total leaves bank_deposit (refused whole when the platform does not hold
        it); its payouts are sent, with the expected settlement date."""
        check_tenant(tenant_id)
        check_request_id(request_id)
        batch = await self._read(tenant_id, lambda c: self._batch_row(c, tenant_id, batch_id))
        if batch.state is not BatchState.BATCHED:
            if batch.send_request_id != request_id:
                raise precondition("PAYOUT_BATCH_STATE_INVALID", f"batch {batch_id} is {batch.state.value}",
                                   batch_id=batch_id, state=batch.state.value)
            return batch, True
        claimed = dataclasses.replace(batch, send_request_id=request_id, updated_us=self.clock())
        if batch.send_request_id not in ("", request_id) or not await self._write(
                tenant_id, lambda c: payouts_repo.save_batch(c, claimed, BatchState.BATCHED, batch.send_request_id)):
            raise LedgerError(ErrorKind.ABORTED, "PAYOUT_BATCH_BUSY", f"batch {batch_id} is being sent by another "
                              "request", batch_id=batch_id)
        facts = Facts("payout_step", batch.currency, {"amount": batch.total}, {}, {"step": "send"})
        try:
            posted = await self.posting.post(PostFlow(tenant_id, request_id, RuleFlow(facts),
                                                      memo=f"payout batch {batch_id} sent",
                                                      metadata={"payout_batch_id": batch_id}, actor=actor))
        except LedgerError:
            released = dataclasses.replace(claimed, send_request_id="")
            await self._write(tenant_id, lambda c: payouts_repo.save_batch(c, released, BatchState.BATCHED, request_id))
            raise
        sent_date = self.calendar.date_of(self.clock())
        done = dataclasses.replace(claimed, state=BatchState.SENT, send_voucher_id=posted.vouchers[0].id,
                                   sent_date=sent_date, updated_us=self.clock(),
                                   expected_date=settlement_date(sent_date, self.config.settlement_days,
                                                                 self.config.holidays))

        def finish(conn: Connection) -> None:
            if payouts_repo.save_batch(conn, done, BatchState.BATCHED, request_id):
                payouts_repo.set_batch_payouts(conn, batch_id, PayoutState.BATCHED, PayoutState.SENT, done.updated_us)

        await self._write(tenant_id, finish)
        return done, posted.replayed

    async def settle_batch(self, tenant_id: str, batch_id: str) -> Batch:
        """The bank settled the batch: its sent payouts are settled. Nothing moves: the money left at send."""
        check_tenant(tenant_id)

        def work(conn: Connection) -> Batch:
            batch = self._batch_row(conn, tenant_id, batch_id)
            if batch.state is BatchState.SETTLED:
                return batch
            if batch.state is not BatchState.SENT:
                raise precondition("PAYOUT_BATCH_STATE_INVALID", f"batch {batch_id} is {batch.state.value}, not sent",
                                   batch_id=batch_id, state=batch.state.value)
            done = dataclasses.replace(batch, state=BatchState.SETTLED, updated_us=self.clock())
            payouts_repo.save_batch(conn, done, BatchState.SENT, batch.send_request_id)
            payouts_repo.set_batch_payouts(conn, batch_id, PayoutState.SENT, PayoutState.SETTLED, done.updated_us)
            return done

        return await self._write(tenant_id, work)

    # -- returns and failures ------------------------------------------------------------------

    async def give_back(self, tenant_id: str, payout_id: str, reason: str) -> Payout:
        """A requested payout fails, a sent or settled one is returned by the bank: the money goes back to the
        merchant with the bank's reason. At most once per payout (its posting's request id says so)."""
        check_tenant(tenant_id)
        check_reason(reason)
        payout = await self._read(tenant_id, lambda c: payouts_repo.get_payout(c, tenant_id, payout_id)) \
            if _usable(payout_id) else None
        if payout is None:
            raise not_accessible("payout", payout_id)
        if payout.state in (PayoutState.FAILED, PayoutState.RETURNED):
            return payout
        return await self._give_back(payout, reason, payout.state)

    async def _give_back(self, payout: Payout, reason: str, expected: PayoutState) -> Payout:
        target = undo_state(payout.state)
        check_transition(payout.state, target, payout.id)
        step = "fail" if target is PayoutState.FAILED else "return"
        facts = Facts("payout_step", payout.currency, {"amount": payout.amount}, {"merchant": payout.merchant},
                      {"step": step})
        posted = await self.posting.post(PostFlow(
            payout.tenant_id, f"payout-{step}:{payout.id}", RuleFlow(facts), memo=f"payout {payout.id} {target.value}",
            metadata={"payout_id": payout.id, "bank_reason": reason}))
        done = dataclasses.replace(payout, state=target, reason=reason, updated_us=self.clock(),
                                   voucher_ids=(*payout.voucher_ids, posted.vouchers[0].id))
        await self._write(payout.tenant_id, lambda c: payouts_repo.save_payout(c, done, expected))
        return done

    # -- reads ---------------------------------------------------------------------------------

    def get_payout(self, tenant_id: str, payout_id: str) -> Payout:
        found = self.uow.read({tenant_id}, lambda c: payouts_repo.get_payout(c, tenant_id, payout_id)) \
            if _usable(payout_id) else None
        if found is None:
            raise not_accessible("payout", payout_id)
        return found

    def batch_with_payouts(self, tenant_id: str, batch_id: str) -> tuple[Batch, list[Payout], BankAccount]:
        check_tenant(tenant_id)

        def read(conn: Connection):
            batch = self._batch_row(conn, tenant_id, batch_id)
            items = payouts_repo.list_payouts(conn, tenant_id, batch_id=batch_id, limit=PAYOUTS_PER_BATCH_MAX)
            return batch, items, payouts_repo.get_bank_account(conn, tenant_id, batch.bank_account_id)

        return self.uow.read({tenant_id}, read)

    def list_payouts(self, tenant_id: str, state: PayoutState | None, batch_id: str, after_id: str,
                     limit: int) -> list[Payout]:
        check_tenant(tenant_id)
        if not matchable(batch_id) or not matchable(after_id):
            return []  # no id holds a NUL
        return self.uow.read({tenant_id}, lambda c: payouts_repo.list_payouts(
            c, tenant_id, state=state, batch_id=batch_id, after_id=after_id, limit=limit))

    # -- helpers -------------------------------------------------------------------------------

    def _currency(self, code: str) -> Currency:
        if code not in self.currencies:
            raise invalid("CURRENCY_UNKNOWN", f"currency {code!r} is not configured", field="currency")
        return self.currencies[code]

    def _bank_account(self, conn: Connection, tenant_id: str, account_id: str) -> BankAccount:
        found = payouts_repo.get_bank_account(conn, tenant_id, account_id) if _usable(account_id) else None
        if found is None:
            raise not_accessible("bank_account", account_id)
        return found

    def _batch_row(self, conn: Connection, tenant_id: str, batch_id: str) -> Batch:
        found = payouts_repo.get_batch(conn, tenant_id, batch_id) if _usable(batch_id) else None
        if found is None:
            raise not_accessible("payout_batch", batch_id)
        return found

    async def _read(self, tenant_id: str, work):
        return await asyncio.to_thread(self.uow.read, {tenant_id}, work)

    async def _write(self, tenant_id: str, work):
        return await asyncio.to_thread(self.uow.append, {tenant_id}, work)


def _usable(identifier: str) -> bool:
    """Whether an id can name a row: not empty, and no NUL (which PostgreSQL refuses in a text parameter)."""
    return bool(identifier) and matchable(identifier)


def settled_code(merchant: str, currency: str) -> str:
    """A merchant's settled account in the default rules: a sub-account of its main account in that currency."""
    return f"{SETTLED_PREFIX}{merchant}:{currency}{SETTLED_SUFFIX}"


SETTLED_PREFIX, SETTLED_SUFFIX = "merchant:", "/settled"


def _merchant_of(conn: Connection, tenant_id: str, ref: AccountRef) -> str:
    account = accounts_repo.get_account(conn, tenant_id, ref)
    if account is None:
        raise missing_account(ref)
    merchant = _merchant_in(account.code, account.currency)
    if not merchant:
        raise invalid("MERCHANT_ACCOUNT_INVALID", f"{account.code} is not a merchant's settled account "
                      "(merchant:MERCHANT:CURRENCY/settled)", field="merchant_account")
    return merchant


def _merchant_in(code: str, currency: str) -> str:
    tail = f":{currency}{SETTLED_SUFFIX}"
    if not (code.startswith(SETTLED_PREFIX) and code.endswith(tail)):
        return ""
    merchant = code[len(SETTLED_PREFIX):-len(tail)]
    return merchant if merchant and ":" not in merchant else ""


def _check_payable(account: BankAccount, currency: str) -> None:
    if account.currency != currency:
        raise invalid("BANK_ACCOUNT_MISMATCH", f"bank account {account.id} takes {account.currency}, not {currency}",
                      bank_account_id=account.id)
    if account.status is not BankAccountStatus.VERIFIED:
        raise precondition("BANK_ACCOUNT_NOT_VERIFIED", f"bank account {account.id} is {account.status.value}",
                           bank_account_id=account.id)


def _same_request(found, wanted, names: tuple[str, ...]) -> None:
    differing = [n for n in names if getattr(found, n) != getattr(wanted, n)]
    if differing:
        raise _reused(found.request_id, differing)


def _reused(request_id: str, differing: list[str] | None = None) -> LedgerError:
    return LedgerError(ErrorKind.ALREADY_EXISTS, "REQUEST_ID_REUSED", f"request_id {request_id!r} was used with "
                       "another body", request_id=request_id, **({"fields": ",".join(differing)} if differing else {}))
