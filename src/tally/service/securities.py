"""SetAccountSecurity and GetAccountSecurity: credit accounts and the security deposits that secure them.

Linking is checked against the balances as they stand, in the write transaction: a link whose deposit
does not already cover the credit's outstanding amount is refused (DEPOSIT_SECURES_CREDIT).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from tally.domain.accounts import Account, AccountType, BalanceState
from tally.domain.errors import LedgerError, missing_account
from tally.domain.fields import check_request_id, check_tenant
from tally.domain.security import (
    DEPOSIT_CREDITS_MAX,
    Security,
    check_deposit,
    check_link,
    effective_limit,
    outstanding,
    required_deposit,
)
from tally.domain.vouchers import AccountRef
from tally.service.posting.events import append_event
from tally.service.posting.idempotency import (
    FINAL_REFUSALS,
    canonical,
    fingerprint,
    refusal_from,
    refusal_result,
    reused_request_id,
)
from tally.storage import accounts_repo, ledger_repo, securities_repo
from tally.storage.ledger_repo import IdempotencyRecord
from tally.storage.uow import UnitOfWork


@dataclass(frozen=True)
class SetAccountSecurity:
    tenant_id: str
    request_id: str
    credit: AccountRef
    deposit: AccountRef
    ratio_bps: int
    bound: bool
    actor: str = ""

    operation = "set_account_security"

    def body(self) -> dict:
        return {"credit": canonical(self.credit), "deposit": canonical(self.deposit), "ratio_bps": self.ratio_bps,
                "bound": self.bound}


@dataclass(frozen=True)
class SecurityView:
    """A link with what the balances make of it now."""

    security: Security
    outstanding: int
    required_deposit: int
    credit_limit: int


@dataclass(frozen=True)
class SecurityReport:
    securities: tuple[SecurityView, ...]
    required_deposit: int  # of the deposit asked for (0 for a credit account)
    replayed: bool = False


def set_security(cmd: SetAccountSecurity, uow: UnitOfWork, clock: Callable[[], int]) -> SecurityReport:
    check_tenant(cmd.tenant_id)
    check_request_id(cmd.request_id)

    def work(conn: Connection) -> SecurityReport | LedgerError:
        replay = _replay(conn, cmd)
        if replay is not None:
            return replay
        now = clock()
        try:
            security, exists = _checked(conn, cmd, now)
        except LedgerError as error:
            if error.kind not in FINAL_REFUSALS:
                raise
            _record(conn, cmd, refusal_result(error), now)
            return error
        securities_repo.save_security(conn, security, exists=exists)
        append_event(conn, cmd.tenant_id, "account.updated",
                     {"account_id": security.credit_id, "change": {"security": canonical(security)}}, now,
                     account_id=security.credit_id)
        report = _report(conn, cmd.tenant_id, [security], None)
        _record(conn, cmd, {"security": canonical(security)}, now)
        return report

    result = uow.write({cmd.tenant_id}, work)
    if isinstance(result, LedgerError):
        raise result
    return result


def get_security(uow: UnitOfWork, tenant_id: str, ref: AccountRef) -> SecurityReport:
    def work(conn: Connection) -> SecurityReport:
        account = _existing(conn, tenant_id, ref)
        # Another type of account is linked to nothing: an empty report.
        found = securities_repo.touching(conn, tenant_id, [account.id], DEPOSIT_CREDITS_MAX)
        deposit = account if account.type is AccountType.SECURITY_DEPOSIT else None
        return _report(conn, tenant_id, found, deposit)

    return uow.read({tenant_id}, work)


def _checked(conn: Connection, cmd: SetAccountSecurity, now: int) -> tuple[Security, bool]:
    credit = _existing(conn, cmd.tenant_id, cmd.credit)
    deposit = _existing(conn, cmd.tenant_id, cmd.deposit)
    current = {s.credit_id: s for s in securities_repo.touching(conn, cmd.tenant_id, [credit.id], 1)}.get(credit.id)
    moving = current is None or current.deposit_id != deposit.id
    check_link(credit, deposit, cmd.ratio_bps,
               securities_repo.count_secured(conn, cmd.tenant_id, deposit.id) if moving else 0)
    security = Security(cmd.tenant_id, credit.id, deposit.id, cmd.ratio_bps, cmd.bound, cmd.request_id, now)
    # The deposit must already cover what it would secure, this credit included.
    secured = [s for s in securities_repo.touching(conn, cmd.tenant_id, [deposit.id], DEPOSIT_CREDITS_MAX)
               if s.deposit_id == deposit.id and s.credit_id != credit.id] + [security]
    states = accounts_repo.load_balances(conn, cmd.tenant_id, {deposit.id, *(s.credit_id for s in secured)},
                                         for_update=True)
    check_deposit(deposit, states[deposit.id], sum(required_deposit(s, states[s.credit_id]) for s in secured))
    return security, current is not None


def _report(conn: Connection, tenant_id: str, found: list[Security], deposit: Account | None) -> SecurityReport:
    ids = {i for s in found for i in (s.credit_id, s.deposit_id)}
    states = accounts_repo.load_balances(conn, tenant_id, ids)
    by_id, _ = accounts_repo.find_accounts(conn, tenant_id, [AccountRef(id=s.credit_id) for s in found])
    views = tuple(_view(s, states[s.credit_id], states[s.deposit_id], by_id[s.credit_id]) for s in found
                  if deposit is None or s.deposit_id == deposit.id)
    required = sum(v.required_deposit for v in views) if deposit is not None else 0
    return SecurityReport(views, required)


def _view(security: Security, credit: BalanceState, deposit: BalanceState, account: Account) -> SecurityView:
    limit = effective_limit(security, account, deposit)
    return SecurityView(security, outstanding(credit), required_deposit(security, credit), limit)


def _existing(conn: Connection, tenant_id: str, ref: AccountRef) -> Account:
    account = accounts_repo.get_account(conn, tenant_id, ref)
    if account is None:
        raise missing_account(ref)
    return account


def _replay(conn: Connection, cmd: SetAccountSecurity) -> SecurityReport | None:
    key = (cmd.tenant_id, cmd.request_id)
    record = ledger_repo.load_records(conn, [key]).get(key)
    if record is None:
        return None
    if record.operation != cmd.operation or record.fingerprint != fingerprint(cmd.operation, cmd.body()):
        raise reused_request_id(cmd.request_id, cmd.operation, record.operation, record.body, cmd.body())
    if "error" in record.result:
        raise refusal_from(record.result["error"])
    report = _report(conn, cmd.tenant_id, [Security(**record.result["security"])], None)
    return SecurityReport(report.securities, report.required_deposit, replayed=True)


def _record(conn: Connection, cmd: SetAccountSecurity, result: dict, now: int) -> None:
    ledger_repo.insert_records(conn, [IdempotencyRecord(
        cmd.tenant_id, cmd.request_id, cmd.operation, fingerprint(cmd.operation, cmd.body()), cmd.body(),
        result, now, actor=cmd.actor)])
