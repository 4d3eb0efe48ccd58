"""Handlers that open and change accounts. Each runs in one write transaction with its idempotency record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import Connection

from tally.domain import limits
from tally.domain.accounts import (
    Account,
    AccountStatus,
    AccountType,
    FloorPolicy,
    Side,
    change_account,
    open_account,
)
from tally.domain.errors import ErrorKind, LedgerError, invalid, missing_account, precondition
from tally.domain.fields import check_request_id, check_tenant
from tally.domain.hierarchy import check_child, check_depth
from tally.domain.ids import new_id
from tally.domain.subaccounts import main_code_of
from tally.domain.vouchers import AccountRef
from tally.service.commands import CreateAccount, UpdateAccount
from tally.service.posting.events import account_payload, append_event
from tally.service.posting.idempotency import (
    FINAL_REFUSALS,
    canonical,
    fingerprint,
    refusal_from,
    refusal_result,
    reused_request_id,
)
from tally.storage import accounts_repo, hierarchy_repo, ledger_repo
from tally.storage.engine import deferring
from tally.storage.ledger_repo import IdempotencyRecord
from tally.storage.uow import UnitOfWork


@dataclass(frozen=True)
class AccountResult:
    account: Account
    replayed: bool = False


def create_account(cmd: CreateAccount, uow: UnitOfWork, currencies: frozenset[str],
                   clock: Callable[[], int]) -> AccountResult:
    check_tenant(cmd.tenant_id)
    check_request_id(cmd.request_id)
    now = clock()
    # Checked before any I/O, so bad input costs nothing and changes nothing.
    draft = open_account(cmd.spec, account_id=new_id(), tenant_id=cmd.tenant_id, now_us=now, currencies=currencies)

    def work(conn: Connection) -> AccountResult | LedgerError:
        replay = _replay(conn, cmd)
        if replay is not None:
            return replay
        account = draft
        try:
            parent_ref = _parent_ref(conn, cmd)
            if parent_ref is not None:
                parent = _parent(conn, cmd.tenant_id, parent_ref, draft)
                account = replace(draft, parent_id=parent.id)
        except LedgerError as error:
            return _refused(conn, cmd, error, now)
        if accounts_repo.get_account(conn, cmd.tenant_id, AccountRef(code=account.code)) is not None:
            raise LedgerError(ErrorKind.ALREADY_EXISTS, "ACCOUNT_CODE_TAKEN",
                              f"an account with code {account.code!r} exists", code=account.code)
        # Every write goes out with the COMMIT, in its round trip; the event's head is read first, before
        # anything is deferred (a read sends what is deferred ahead of it, in a round trip of its own).
        with deferring(conn):
            append_event(conn, cmd.tenant_id, "account.created", account_payload(account), now,
                         account_id=account.id)
            accounts_repo.insert_accounts(conn, [account])
            _record(conn, cmd, {"account": canonical(account)}, now)
        return AccountResult(account)

    return _answer(uow.write({cmd.tenant_id}, work))


def update_account(cmd: UpdateAccount, uow: UnitOfWork, clock: Callable[[], int]) -> AccountResult:
    check_tenant(cmd.tenant_id)
    check_request_id(cmd.request_id)

    def work(conn: Connection) -> AccountResult | LedgerError:
        replay = _replay(conn, cmd)
        if replay is not None:
            return replay
        now = clock()
        try:
            account = _existing(conn, cmd.tenant_id, cmd.account)
            balance = accounts_repo.load_balances(conn, cmd.tenant_id, [account.id], for_update=True)[account.id]
            updated = change_account(account, cmd.change, balance, now)
        except LedgerError as error:
            return _refused(conn, cmd, error, now)
        accounts_repo.update_account(conn, updated)
        append_event(conn, cmd.tenant_id, "account.updated",
                     {**account_payload(updated), "change": canonical(cmd.change)}, now, account_id=account.id)
        _record(conn, cmd, {"account": canonical(updated)}, now)
        return AccountResult(updated)

    return _answer(uow.write({cmd.tenant_id}, work))


def _refused(conn: Connection, cmd: CreateAccount | UpdateAccount, error: LedgerError, now: int) -> LedgerError:
    """A refusal that depends on the ledger's state (say, closing an account that still holds money) is
    the request's final answer, kept as an acceptance is: a resend cannot succeed later. Nothing has been
    written yet, so the transaction commits just the record. Other refusals roll back and record nothing."""
    if error.kind not in FINAL_REFUSALS:
        raise error
    _record(conn, cmd, refusal_result(error), now)
    return error


def _answer(result: AccountResult | LedgerError) -> AccountResult:
    if isinstance(result, LedgerError):
        raise result  # recorded and committed: now the caller hears it
    return result


def _existing(conn: Connection, tenant_id: str, ref) -> Account:
    account = accounts_repo.get_account(conn, tenant_id, ref)
    if account is None:
        raise missing_account(ref)
    return account


def _parent_ref(conn: Connection, cmd: CreateAccount) -> AccountRef | None:
    """The parent asked for; a sub-account (code MAIN/NAME of an existing MAIN) is its main account's child."""
    main_code = main_code_of(cmd.spec.code)
    main = accounts_repo.get_account(conn, cmd.tenant_id, AccountRef(code=main_code)) if main_code else None
    if main is None:
        return cmd.parent
    if cmd.parent is not None and cmd.parent not in (AccountRef(id=main.id), AccountRef(code=main.code)):
        raise invalid("SUB_ACCOUNT_PARENT_MISMATCH", f"{cmd.spec.code} is a sub-account of {main.code}: its parent "
                      "is that account", field="parent", main_account_id=main.id)
    return AccountRef(id=main.id)


def _parent(conn: Connection, tenant_id: str, ref: AccountRef, child: Account) -> Account:
    parent = accounts_repo.get_account(conn, tenant_id, ref)
    if parent is None:
        raise missing_account(ref)
    if parent.status is AccountStatus.CLOSED:
        raise precondition("ACCOUNT_CLOSED", "a closed account cannot be a parent", account_id=parent.id)
    check_depth(accounts_repo.parent_depth(conn, tenant_id, parent.id, limits.ACCOUNT_DEPTH_MAX))
    check_child(parent, child, hierarchy_repo.count_children(conn, tenant_id, parent.id))
    return parent


def _replay(conn: Connection, cmd: CreateAccount | UpdateAccount) -> AccountResult | None:
    record = ledger_repo.load_records(conn, [(cmd.tenant_id, cmd.request_id)]).get((cmd.tenant_id, cmd.request_id))
    if record is None:
        return None
    if record.operation != cmd.operation or record.fingerprint != fingerprint(cmd.operation, cmd.body()):
        raise reused_request_id(cmd.request_id, cmd.operation, record.operation, record.body, cmd.body())
    if "error" in record.result:
        raise refusal_from(record.result["error"])
    return AccountResult(account_from(record.result["account"]), replayed=True)


def _record(conn: Connection, cmd: CreateAccount | UpdateAccount, result: dict, now: int) -> None:
    # The result is the account exactly as this request left it, or its refusal, so a retry answers the same.
    ledger_repo.insert_records(conn, [IdempotencyRecord(
        cmd.tenant_id, cmd.request_id, cmd.operation, fingerprint(cmd.operation, cmd.body()), cmd.body(),
        result, now, actor=cmd.actor)])


def account_from(data: dict) -> Account:
    return Account(**{**data, "type": AccountType(data["type"]), "normal_side": Side(data["normal_side"]),
                      "status": AccountStatus(data["status"]), "floor_policy": FloorPolicy(data["floor_policy"])})
