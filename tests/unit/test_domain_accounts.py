"""Unit tests for tally.domain.accounts: opening, changing, and the balance row arithmetic."""

from __future__ import annotations

import dataclasses

import pytest

from tally.domain import limits
from tally.domain.accounts import (
    CUSTOMER_TYPES,
    Account,
    AccountChange,
    AccountStatus,
    AccountType,
    BalanceState,
    FloorPolicy,
    NewAccount,
    Side,
    change_account,
    open_account,
)
from tally.domain.errors import ErrorKind, LedgerError

CURRENCIES = frozenset({"USD", "EUR", "JPY"})


def _open(spec: NewAccount, **kwargs) -> Account:
    args = {"account_id": "acc-1", "tenant_id": "acme", "now_us": 1_000, "currencies": CURRENCIES}
    args.update(kwargs)
    return open_account(spec, **args)


def _open_error(spec: NewAccount) -> LedgerError:
    with pytest.raises(LedgerError) as info:
        _open(spec)
    return info.value


def test_side_opposite():
    assert Side.DEBIT.opposite() is Side.CREDIT
    assert Side.CREDIT.opposite() is Side.DEBIT


def test_customer_types_are_the_three_non_internal_types():
    assert {AccountType.DEPOSIT, AccountType.CREDIT, AccountType.SECURITY_DEPOSIT} == CUSTOMER_TYPES


# --- open_account ---------------------------------------------------------------------------------


@pytest.mark.parametrize("account_type", sorted(CUSTOMER_TYPES, key=lambda t: t.value), ids=lambda t: t.value)
def test_customer_accounts_default_to_credit_normal_non_negative(account_type):
    account = _open(NewAccount("cust.1", account_type, "USD"))
    assert account.normal_side is Side.CREDIT
    assert account.floor_policy is FloorPolicy.NON_NEGATIVE
    assert account.status is AccountStatus.ACTIVE
    assert account.credit_limit == 0


@pytest.mark.parametrize("account_type", sorted(CUSTOMER_TYPES, key=lambda t: t.value), ids=lambda t: t.value)
def test_customer_accounts_accept_their_defaults_given_explicitly(account_type):
    account = _open(NewAccount("cust.1", account_type, "USD", normal_side=Side.CREDIT,
                               floor_policy=FloorPolicy.NON_NEGATIVE))
    assert (account.normal_side, account.floor_policy) == (Side.CREDIT, FloorPolicy.NON_NEGATIVE)


def test_open_account_copies_every_field():
    metadata = {"owner": "u-42"}
    spec = NewAccount("wallet:u-42", AccountType.CREDIT, "EUR", name="Card", parent_id="p-1", credit_limit=5_000,
                      metadata=metadata)
    account = _open(spec, account_id="id-9", tenant_id="t1", now_us=123_456)
    assert account == Account(
        id="id-9", tenant_id="t1", code="wallet:u-42", type=AccountType.CREDIT, normal_side=Side.CREDIT,
        currency="EUR", status=AccountStatus.ACTIVE, name="Card", parent_id="p-1", credit_limit=5_000,
        floor_policy=FloorPolicy.NON_NEGATIVE, metadata={"owner": "u-42"}, created_us=123_456, updated_us=123_456,
    )
    assert account.metadata is not metadata


@pytest.mark.parametrize("side", [Side.DEBIT, Side.CREDIT], ids=["debit", "credit"])
def test_internal_account_takes_its_side_and_defaults_to_unbounded(side):
    account = _open(NewAccount("cash", AccountType.INTERNAL, "USD", normal_side=side))
    assert account.normal_side is side
    assert account.floor_policy is FloorPolicy.UNBOUNDED


def test_internal_account_may_ask_for_a_floor():
    account = _open(NewAccount("cash", AccountType.INTERNAL, "USD", normal_side=Side.DEBIT,
                               floor_policy=FloorPolicy.NON_NEGATIVE))
    assert account.floor_policy is FloorPolicy.NON_NEGATIVE


def test_credit_account_may_have_the_largest_credit_limit():
    assert _open(NewAccount("c", AccountType.CREDIT, "USD", credit_limit=limits.CREDIT_LIMIT_MAX)).credit_limit == (
        limits.CREDIT_LIMIT_MAX)


def test_the_largest_credit_limit_leaves_available_room_to_grow():
    """With the largest limit, a balance may still grow by 2^62 - 1 before available leaves int64: a limit of
    2^63 - 1 left no room at all, and every credit was refused."""
    balance = BalanceState("a", current=limits.AMOUNT_MAX - limits.CREDIT_LIMIT_MAX)
    assert balance.available(limits.CREDIT_LIMIT_MAX) == limits.AMOUNT_MAX


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (NewAccount("", AccountType.DEPOSIT, "USD"), "ACCOUNT_CODE_INVALID"),
        (NewAccount("bad code", AccountType.DEPOSIT, "USD"), "ACCOUNT_CODE_INVALID"),
        (NewAccount("c", AccountType.DEPOSIT, "USD", name="n" * (limits.ACCOUNT_NAME_LENGTH_MAX + 1)),
         "TEXT_TOO_LONG"),
        (NewAccount("c", AccountType.DEPOSIT, "USD", metadata={"bad key": "v"}), "METADATA_INVALID"),
        (NewAccount("c", AccountType.DEPOSIT, "CHF"), "CURRENCY_UNKNOWN"),
        (NewAccount("c", AccountType.DEPOSIT, "usd"), "CURRENCY_UNKNOWN"),
        (NewAccount("c", AccountType.DEPOSIT, ""), "CURRENCY_UNKNOWN"),
        (NewAccount("c", AccountType.DEPOSIT, "USD", normal_side=Side.DEBIT), "NORMAL_SIDE_INVALID"),
        (NewAccount("c", AccountType.CREDIT, "USD", normal_side=Side.DEBIT), "NORMAL_SIDE_INVALID"),
        (NewAccount("c", AccountType.SECURITY_DEPOSIT, "USD", normal_side=Side.DEBIT), "NORMAL_SIDE_INVALID"),
        (NewAccount("c", AccountType.DEPOSIT, "USD", floor_policy=FloorPolicy.UNBOUNDED), "FLOOR_POLICY_INVALID"),
        (NewAccount("c", AccountType.CREDIT, "USD", floor_policy=FloorPolicy.UNBOUNDED), "FLOOR_POLICY_INVALID"),
        (NewAccount("c", AccountType.INTERNAL, "USD"), "NORMAL_SIDE_REQUIRED"),
        (NewAccount("c", AccountType.INTERNAL, "USD", floor_policy=FloorPolicy.UNBOUNDED), "NORMAL_SIDE_REQUIRED"),
        (NewAccount("c", AccountType.DEPOSIT, "USD", credit_limit=1), "CREDIT_LIMIT_NOT_ALLOWED"),
        (NewAccount("c", AccountType.SECURITY_DEPOSIT, "USD", credit_limit=100), "CREDIT_LIMIT_NOT_ALLOWED"),
        (NewAccount("c", AccountType.INTERNAL, "USD", normal_side=Side.DEBIT, credit_limit=1),
         "CREDIT_LIMIT_NOT_ALLOWED"),
        (NewAccount("c", AccountType.CREDIT, "USD", credit_limit=-1), "CREDIT_LIMIT_INVALID"),
        (NewAccount("c", AccountType.CREDIT, "USD", credit_limit=limits.AMOUNT_MAX + 1), "CREDIT_LIMIT_TOO_LARGE"),
        (NewAccount("c", AccountType.CREDIT, "USD", credit_limit=limits.AMOUNT_MAX), "CREDIT_LIMIT_TOO_LARGE"),
        (NewAccount("c", AccountType.CREDIT, "USD", credit_limit=limits.CREDIT_LIMIT_MAX + 1),
         "CREDIT_LIMIT_TOO_LARGE"),
        (NewAccount("c", AccountType.DEPOSIT, "USD", credit_limit=-1), "CREDIT_LIMIT_INVALID"),
    ],
    ids=[
        "empty-code", "code-with-space", "name-too-long", "bad-metadata", "currency-unknown",
        "currency-lowercase", "currency-empty", "deposit-debit-side", "credit-debit-side",
        "security-deposit-debit-side", "deposit-unbounded", "credit-unbounded", "internal-no-side",
        "internal-floor-no-side", "deposit-credit-limit", "security-deposit-credit-limit",
        "internal-credit-limit", "negative-credit-limit", "credit-limit-over-int64", "credit-limit-int64-max",
        "credit-limit-over-its-max", "deposit-negative-limit",
    ],
)
def test_open_account_rejects(spec, reason):
    error = _open_error(spec)
    assert error.reason == reason
    assert error.kind is ErrorKind.INVALID_ARGUMENT


def test_unknown_currency_names_it():
    assert _open_error(NewAccount("c", AccountType.DEPOSIT, "CHF")).metadata == {"currency": "CHF"}


# --- change_account -------------------------------------------------------------------------------


def _account(**overrides) -> Account:
    base = Account(id="a1", tenant_id="acme", code="cust.1", type=AccountType.CREDIT, normal_side=Side.CREDIT,
                   currency="USD", credit_limit=100, created_us=1, updated_us=1)
    return dataclasses.replace(base, **overrides)


def _change_error(account: Account, change: AccountChange, balance: BalanceState) -> LedgerError:
    with pytest.raises(LedgerError) as info:
        change_account(account, change, balance, 99)
    return info.value


def test_empty_change_only_touches_updated_us():
    account = _account()
    changed = change_account(account, AccountChange(), BalanceState("a1", current=5), 99)
    assert changed == dataclasses.replace(account, updated_us=99)


def test_change_every_field():
    account = _account()
    changed = change_account(
        account, AccountChange(status=AccountStatus.FROZEN, credit_limit=7, name="New", metadata={"k": "v"}),
        BalanceState("a1", current=50), 99)
    assert (changed.status, changed.credit_limit, changed.name, changed.metadata, changed.updated_us) == (
        AccountStatus.FROZEN, 7, "New", {"k": "v"}, 99)
    assert account.status is AccountStatus.ACTIVE  # the original is untouched


def test_credit_limit_may_be_cut_below_what_is_used():
    changed = change_account(_account(credit_limit=1_000), AccountChange(credit_limit=0),
                             BalanceState("a1", current=-500), 2)
    assert changed.credit_limit == 0


def test_non_credit_account_may_set_credit_limit_to_zero():
    account = _account(type=AccountType.DEPOSIT, credit_limit=0)
    assert change_account(account, AccountChange(credit_limit=0), BalanceState("a1"), 2).credit_limit == 0


@pytest.mark.parametrize("status", [AccountStatus.ACTIVE, AccountStatus.FROZEN], ids=["active", "frozen"])
def test_close_at_zero_current_and_locked(status):
    account = _account(status=status)
    balance = BalanceState("a1", current=0, locked=0, previous_day=123, entry_count=7)
    assert change_account(account, AccountChange(status=AccountStatus.CLOSED), balance, 5).status is (
        AccountStatus.CLOSED)


def test_freeze_and_unfreeze_with_a_balance():
    frozen = change_account(_account(), AccountChange(status=AccountStatus.FROZEN), BalanceState("a1", 10, 5), 5)
    assert frozen.status is AccountStatus.FROZEN
    active = change_account(frozen, AccountChange(status=AccountStatus.ACTIVE), BalanceState("a1", 10, 5), 6)
    assert active.status is AccountStatus.ACTIVE


@pytest.mark.parametrize(
    ("balance", "reason", "kind"),
    [
        (BalanceState("a1", current=1), "ACCOUNT_BALANCE_NOT_ZERO", ErrorKind.FAILED_PRECONDITION),
        (BalanceState("a1", current=-1), "ACCOUNT_BALANCE_NOT_ZERO", ErrorKind.FAILED_PRECONDITION),
        (BalanceState("a1", current=0, locked=1), "ACCOUNT_BALANCE_NOT_ZERO", ErrorKind.FAILED_PRECONDITION),
        (BalanceState("a1", current=5, locked=5), "ACCOUNT_BALANCE_NOT_ZERO", ErrorKind.FAILED_PRECONDITION),
    ],
    ids=["positive-current", "negative-current", "locked", "current-equals-locked"],
)
def test_close_refused_unless_zero(balance, reason, kind):
    error = _change_error(_account(), AccountChange(status=AccountStatus.CLOSED), balance)
    assert (error.reason, error.kind) == (reason, kind)
    assert error.metadata == {"account_id": "a1"}


@pytest.mark.parametrize(
    "change",
    [AccountChange(), AccountChange(name="x"), AccountChange(status=AccountStatus.ACTIVE),
     AccountChange(status=AccountStatus.CLOSED), AccountChange(metadata={}), AccountChange(credit_limit=0)],
    ids=["empty", "name", "reopen", "close-again", "metadata", "credit-limit"],
)
def test_closed_account_cannot_change(change):
    error = _change_error(_account(status=AccountStatus.CLOSED), change, BalanceState("a1"))
    assert (error.reason, error.kind) == ("ACCOUNT_CLOSED", ErrorKind.FAILED_PRECONDITION)


@pytest.mark.parametrize(
    ("account", "change", "reason"),
    [
        (_account(), AccountChange(name="n" * (limits.ACCOUNT_NAME_LENGTH_MAX + 1)), "TEXT_TOO_LONG"),
        (_account(), AccountChange(metadata={"": "v"}), "METADATA_INVALID"),
        (_account(), AccountChange(credit_limit=-1), "CREDIT_LIMIT_INVALID"),
        (_account(), AccountChange(credit_limit=limits.AMOUNT_MAX + 1), "CREDIT_LIMIT_TOO_LARGE"),
        (_account(), AccountChange(credit_limit=limits.AMOUNT_MAX), "CREDIT_LIMIT_TOO_LARGE"),
        (_account(type=AccountType.DEPOSIT, credit_limit=0), AccountChange(credit_limit=1),
         "CREDIT_LIMIT_NOT_ALLOWED"),
        (_account(type=AccountType.INTERNAL, normal_side=Side.DEBIT, credit_limit=0), AccountChange(credit_limit=5),
         "CREDIT_LIMIT_NOT_ALLOWED"),
    ],
    ids=["name-too-long", "bad-metadata", "negative-limit", "limit-over-int64", "limit-int64-max", "deposit-limit",
         "internal-limit"],
)
def test_change_account_rejects(account, change, reason):
    error = _change_error(account, change, BalanceState("a1"))
    assert error.reason == reason
    assert error.kind is ErrorKind.INVALID_ARGUMENT


# --- BalanceState ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "locked", "credit_limit", "available"),
    [(0, 0, 0, 0), (100, 30, 0, 70), (100, 30, 50, 120), (-40, 0, 50, 10), (10, 20, 0, -10),
     (-(2**63), 0, 2**63 - 1, -1)],
    ids=["empty", "locked", "with-limit", "using-limit", "over-locked", "extremes"],
)
def test_available(current, locked, credit_limit, available):
    assert BalanceState("a", current=current, locked=locked).available(credit_limit) == available


@pytest.mark.parametrize(
    ("last_date", "as_of", "expected"),
    [
        ("", "2024-03-01", 7),                # never posted: the stored value
        ("2024-03-01", "2024-03-01", 7),      # same day: still yesterday's close
        ("2024-03-01", "2024-03-02", 100),    # next day: today's current is yesterday's close
        ("2024-03-01", "2024-03-10", 100),    # days later, nothing posted in between
        ("2024-03-01", "2024-02-28", 7),      # asking about an earlier day leaves it
        ("2024-12-31", "2025-01-01", 100),    # across a year
    ],
    ids=["never-posted", "same-day", "next-day", "days-later", "earlier-day", "new-year"],
)
def test_previous_day_as_of(last_date, as_of, expected):
    state = BalanceState("a", current=100, previous_day=7, last_date=last_date)
    assert state.previous_day_as_of(as_of) == expected
