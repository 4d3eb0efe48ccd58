"""Unit tests for tally.domain.posting.apply_voucher: balances, floors, refusals and statement numbering."""

from __future__ import annotations

import dataclasses

import pytest

from tally.domain import limits
from tally.domain.accounts import Account, AccountStatus, AccountType, BalanceState, FloorPolicy, Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.posting import Applied, apply_voucher, debit_balance, resolve
from tally.domain.vouchers import AccountRef, LineDraft, PostedLine, VoucherDraft

D, C = Side.DEBIT, Side.CREDIT
MAX = limits.AMOUNT_MAX
MIN = limits.BALANCE_MIN
DAY = "2024-03-01"


def account(aid: str, *, side: Side = Side.CREDIT, type_: AccountType = AccountType.DEPOSIT,
            floor: FloorPolicy = FloorPolicy.NON_NEGATIVE, currency: str = "USD", credit_limit: int = 0,
            status: AccountStatus = AccountStatus.ACTIVE) -> Account:
    return Account(id=aid, tenant_id="acme", code=f"code-{aid}", type=type_, normal_side=side, currency=currency,
                   status=status, credit_limit=credit_limit, floor_policy=floor)


def customer(aid: str, **kw) -> Account:
    return account(aid, **kw)


def cash(aid: str = "cash", **kw) -> Account:
    """An internal, debit-normal, unbounded account (the platform's bank balance)."""
    return account(aid, side=Side.DEBIT, type_=AccountType.INTERNAL, floor=FloorPolicy.UNBOUNDED, **kw)


def lines_for(*specs: tuple[Account, Side, int]) -> tuple[VoucherDraft, list[Account]]:
    lines = tuple(LineDraft(AccountRef(id=a.id), side, amount, a.currency) for a, side, amount in specs)
    return VoucherDraft("transfer", lines), [a for a, _, _ in specs]


def balances_for(*accounts: Account, **currents: int) -> dict[str, BalanceState]:
    return {a.id: BalanceState(a.id, current=currents.get(a.id, 0)) for a in accounts}


def apply(specs, balances, date=DAY) -> Applied:
    d, accounts = lines_for(*specs)
    return apply_voucher(d, accounts, balances, date)


def refused(specs, balances, date=DAY) -> LedgerError:
    """Applies a voucher that must be refused, and checks it left `balances` exactly as it was."""
    before = dict(balances)
    values = {k: dataclasses.replace(v) for k, v in balances.items()}
    with pytest.raises(LedgerError) as info:
        apply(specs, balances, date)
    assert balances.keys() == before.keys()
    for key, state in balances.items():
        assert state is before[key]
        assert state == values[key]
    return info.value


# --- balances on the normal side --------------------------------------------------------------------


def test_deposit_raises_both_a_debit_normal_and_a_credit_normal_account():
    bank, alice = cash(), customer("alice")
    balances = balances_for(bank, alice)
    applied = apply([(bank, D, 100), (alice, C, 100)], balances)
    assert balances["cash"].current == 100
    assert balances["alice"].current == 100
    assert applied.touched == ("cash", "alice")


def test_withdrawal_lowers_both():
    bank, alice = cash(), customer("alice")
    balances = balances_for(bank, alice, cash=500, alice=300)
    apply([(alice, D, 120), (bank, C, 120)], balances)
    assert (balances["cash"].current, balances["alice"].current) == (380, 180)


def test_transfer_between_two_credit_normal_accounts():
    alice, bob = customer("alice"), customer("bob")
    balances = balances_for(alice, bob, alice=300, bob=5)
    apply([(alice, D, 200), (bob, C, 200)], balances)
    assert (balances["alice"].current, balances["bob"].current) == (100, 205)


def test_debit_normal_internal_accounts():
    expense, bank = cash("expense"), cash("bank")
    balances = balances_for(expense, bank, bank=1_000)
    apply([(expense, D, 250), (bank, C, 250)], balances)
    assert (balances["expense"].current, balances["bank"].current) == (250, 750)


def test_multi_line_voucher_nets_per_account():
    bank, alice, fee = cash(), customer("alice"), account("fees", type_=AccountType.INTERNAL,
                                                             floor=FloorPolicy.UNBOUNDED)
    balances = balances_for(bank, alice, fee, alice=1_000)
    apply([(alice, D, 600), (alice, D, 10), (bank, C, 600), (fee, C, 10)], balances)
    assert (balances["alice"].current, balances["cash"].current, balances["fees"].current) == (390, -600, 10)


def test_locked_previous_day_are_carried_over():
    alice, bank = customer("alice"), cash()
    balances = {"alice": BalanceState("alice", current=100, locked=30, previous_day=90, last_date=DAY,
                                      entry_count=4),
                "cash": BalanceState("cash")}
    apply([(bank, D, 5), (alice, C, 5)], balances)
    assert balances["alice"] == BalanceState("alice", current=105, locked=30, previous_day=90, last_date=DAY,
                                             entry_count=5)


# --- the floor --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "locked", "credit_limit", "amount"),
    [
        (100, 0, 0, 100),
        (1, 0, 0, 1),
        (100, 30, 0, 70),
        (0, 0, 500, 500),
        (100, 0, 500, 600),
        (100, 40, 500, 560),
        (-200, 0, 500, 300),
        (MAX, 0, 0, MAX),
    ],
    ids=["to-zero", "one-to-zero", "to-locked", "whole-credit-limit", "balance-plus-limit",
         "balance-minus-locked-plus-limit", "rest-of-limit", "int64-max-to-zero"],
)
def test_available_may_reach_exactly_zero(current, locked, credit_limit, amount):
    alice = customer("alice", type_=AccountType.CREDIT, credit_limit=credit_limit)
    bank = cash()
    balances = {"alice": BalanceState("alice", current=current, locked=locked), "cash": BalanceState("cash")}
    apply([(alice, D, amount), (bank, C, amount)], balances)
    assert balances["alice"].current == current - amount
    assert balances["alice"].available(credit_limit) == 0


@pytest.mark.parametrize(
    ("current", "locked", "credit_limit", "amount", "available"),
    [
        (100, 0, 0, 101, 100),
        (0, 0, 0, 1, 0),
        (100, 30, 0, 71, 70),
        (0, 0, 500, 501, 500),
        (100, 0, 500, 601, 600),
        (100, 40, 500, 561, 560),
        (-200, 0, 500, 301, 300),
        (10, 20, 0, 1, -10),
        (-5, 0, 0, 1, -5),
    ],
    ids=["one-over-balance", "empty", "one-over-locked", "one-over-limit", "one-over-balance-plus-limit",
         "one-over-all-three", "one-over-rest-of-limit", "locked-above-current", "already-negative"],
)
def test_one_unit_below_the_floor_is_refused(current, locked, credit_limit, amount, available):
    alice = customer("alice", type_=AccountType.CREDIT, credit_limit=credit_limit)
    bank = cash()
    balances = {"cash": BalanceState("cash"), "alice": BalanceState("alice", current=current, locked=locked)}
    error = refused([(bank, C, amount), (alice, D, amount)], balances)
    assert (error.reason, error.kind) == ("INSUFFICIENT_FUNDS", ErrorKind.FAILED_PRECONDITION)
    assert error.metadata == {"account_id": "alice", "available": str(available), "required": str(amount)}


def test_floor_is_checked_on_the_net_of_several_lines():
    alice, bank = customer("alice"), cash()
    balances = balances_for(alice, bank, alice=100)
    error = refused([(alice, D, 60), (alice, D, 41), (bank, C, 101)], balances)
    assert error.metadata["required"] == "101"
    apply([(alice, D, 60), (alice, D, 40), (bank, C, 100)], balances)
    assert balances["alice"].current == 0


def test_non_negative_internal_account_is_floored_too():
    suspense = account("suspense", side=Side.DEBIT, type_=AccountType.INTERNAL, floor=FloorPolicy.NON_NEGATIVE)
    bank = cash()
    balances = balances_for(suspense, bank, suspense=10)
    assert refused([(bank, D, 11), (suspense, C, 11)], balances).reason == "INSUFFICIENT_FUNDS"
    apply([(bank, D, 10), (suspense, C, 10)], balances)
    assert balances["suspense"].current == 0


@pytest.mark.parametrize("side", [Side.DEBIT, Side.CREDIT], ids=["debit-normal", "credit-normal"])
def test_unbounded_internal_account_may_go_negative(side):
    internal = account("internal", side=side, type_=AccountType.INTERNAL, floor=FloorPolicy.UNBOUNDED)
    other = account("other", side=side.opposite(), type_=AccountType.INTERNAL, floor=FloorPolicy.UNBOUNDED)
    balances = balances_for(internal, other)
    # The side opposite an account's normal side lowers it: both go 1_000 below zero.
    applied = apply([(internal, side.opposite(), 1_000), (other, side, 1_000)], balances)
    assert balances["internal"].current == -1_000
    assert balances["other"].current == -1_000
    assert [ln.balance_after for ln in applied.lines] == [-1_000, -1_000]


def test_unbounded_account_can_reach_int64_min():
    bank, alice = cash(), customer("alice")
    balances = {"cash": BalanceState("cash", current=MIN + 100), "alice": BalanceState("alice", current=100)}
    apply([(alice, D, 100), (bank, C, 100)], balances)
    assert balances["cash"].current == MIN
    assert balances["alice"].current == 0


def test_voucher_raising_a_balance_below_the_floor_is_accepted():
    # The credit limit was cut from 500 to 0 after 200 were used: the account sits 200 below its floor.
    alice = customer("alice", type_=AccountType.CREDIT, credit_limit=0)
    bank = cash()
    balances = {"alice": BalanceState("alice", current=-200), "cash": BalanceState("cash")}
    apply([(bank, D, 50), (alice, C, 50)], balances)
    assert balances["alice"].current == -150
    assert balances["alice"].available(0) == -150


def test_voucher_raising_a_balance_whose_locked_exceeds_it_is_accepted():
    alice, bank = customer("alice"), cash()
    balances = {"alice": BalanceState("alice", current=10, locked=100), "cash": BalanceState("cash")}
    apply([(bank, D, 1), (alice, C, 1)], balances)
    assert balances["alice"].current == 11


def test_floor_of_one_account_does_not_block_raising_another_below_floor():
    alice = customer("alice", type_=AccountType.CREDIT)
    bob = customer("bob", type_=AccountType.CREDIT)
    balances = {"alice": BalanceState("alice", current=-10), "bob": BalanceState("bob", current=-20)}
    error = refused([(alice, D, 1), (bob, C, 1)], balances)
    assert error.metadata["account_id"] == "alice"


# --- postability -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [(AccountStatus.FROZEN, "ACCOUNT_FROZEN"), (AccountStatus.CLOSED, "ACCOUNT_CLOSED")],
    ids=["frozen", "closed"],
)
@pytest.mark.parametrize("position", ["debited", "credited"])
def test_frozen_or_closed_account_refuses_both_sides(status, reason, position):
    blocked = customer("blocked", status=status)
    bank = cash()
    balances = balances_for(blocked, bank, blocked=1_000)
    specs = [(blocked, D, 10), (bank, C, 10)] if position == "debited" else [(bank, D, 10), (blocked, C, 10)]
    error = refused(specs, balances)
    assert (error.reason, error.kind) == (reason, ErrorKind.FAILED_PRECONDITION)
    assert error.metadata == {"account_id": "blocked"}


def test_currency_mismatch():
    alice, bank = customer("alice", currency="EUR"), cash()
    balances = balances_for(alice, bank)
    d = VoucherDraft("transfer", (LineDraft(AccountRef(id="cash"), D, 10, "USD"),
                                  LineDraft(AccountRef(id="alice"), C, 10, "USD")))
    with pytest.raises(LedgerError) as info:
        apply_voucher(d, [bank, alice], balances, DAY)
    error = info.value
    assert (error.reason, error.kind) == ("CURRENCY_MISMATCH", ErrorKind.FAILED_PRECONDITION)
    assert error.metadata == {"account_id": "alice", "account_currency": "EUR", "line_currency": "USD"}
    assert balances == balances_for(alice, bank)


def test_draft_is_checked_again():
    alice, bank = customer("alice"), cash()
    balances = balances_for(alice, bank)
    d = VoucherDraft("transfer", (LineDraft(AccountRef(id="cash"), D, 10, "USD"),
                                  LineDraft(AccountRef(id="alice"), C, 9, "USD")))
    with pytest.raises(LedgerError) as info:
        apply_voucher(d, [bank, alice], balances, DAY)
    assert info.value.reason == "VOUCHER_UNBALANCED"


def test_accounts_must_match_lines_one_to_one():
    alice, bank = customer("alice"), cash()
    d, _ = lines_for((bank, D, 10), (alice, C, 10))
    with pytest.raises(ValueError):
        apply_voucher(d, [bank], balances_for(alice, bank), DAY)


# --- int64 overflow ----------------------------------------------------------------------------------


def test_balance_may_reach_int64_max():
    bank, alice = cash(), customer("alice")
    balances = balances_for(bank, alice, alice=MAX - 10)
    apply([(bank, D, 10), (alice, C, 10)], balances)
    assert balances["alice"].current == MAX


@pytest.mark.parametrize(
    ("start", "side", "amount"),
    [(MAX - 10, C, 11), (MAX, C, 1), (1, C, MAX), (MIN + 10, D, 11), (MIN, D, 1)],
    ids=["max-plus-one", "at-max", "one-plus-max", "min-minus-one", "at-min"],
)
def test_balance_overflow_past_int64(start, side, amount):
    # "internal" is credit-normal and unbounded: a credit raises it, a debit lowers it without a floor.
    internal = account("internal", type_=AccountType.INTERNAL, floor=FloorPolicy.UNBOUNDED)
    other = cash("other")
    balances = {"internal": BalanceState("internal", current=start), "other": BalanceState("other")}
    error = refused([(other, side.opposite(), amount), (internal, side, amount)], balances)
    assert (error.reason, error.kind) == ("BALANCE_OVERFLOW", ErrorKind.INVALID_ARGUMENT)
    assert error.metadata == {"account_id": "internal"}


# --- a refusal leaves everything as it was ----------------------------------------------------------


def test_refusal_on_the_last_account_leaves_earlier_accounts_untouched():
    # cash and bob pass their checks first (and would roll over to a new day); alice then fails.
    bank, bob, alice = cash(), customer("bob"), customer("alice")
    balances = {
        "cash": BalanceState("cash", current=7, previous_day=3, last_date="2024-02-28", entry_count=2),
        "bob": BalanceState("bob", current=50, locked=1, previous_day=50, last_date="2024-02-28", entry_count=9),
        "alice": BalanceState("alice", current=10, last_date="2024-02-28", entry_count=1),
        "unrelated": BalanceState("unrelated", current=99),
    }
    error = refused([(bank, D, 89), (bob, C, 100), (alice, D, 11)], balances)
    assert (error.reason, error.metadata["account_id"]) == ("INSUFFICIENT_FUNDS", "alice")


@pytest.mark.parametrize(
    ("failure", "reason"),
    [("frozen", "ACCOUNT_FROZEN"), ("currency", "CURRENCY_MISMATCH"), ("overflow", "BALANCE_OVERFLOW"),
     ("unbalanced", "VOUCHER_UNBALANCED"), ("floor", "INSUFFICIENT_FUNDS")],
    ids=["frozen", "currency", "overflow", "unbalanced", "floor"],
)
def test_every_kind_of_refusal_leaves_balances_as_they_were(failure, reason):
    bank = cash()
    alice = customer("alice", status=AccountStatus.FROZEN if failure == "frozen" else AccountStatus.ACTIVE,
                     currency="EUR" if failure == "currency" else "USD")
    balances = {"cash": BalanceState("cash", current=5, entry_count=1, last_date="2024-02-01"),
                "alice": BalanceState("alice", current=MAX - 1 if failure == "overflow" else 10, entry_count=3,
                                      last_date="2024-02-01")}
    amount = 11 if failure in ("floor", "overflow") else 5
    lines = (LineDraft(AccountRef(id="cash"), C if failure == "floor" else D, amount, "USD"),
             LineDraft(AccountRef(id="alice"), D if failure == "floor" else C,
                       amount + (1 if failure == "unbalanced" else 0), "USD"))
    before = dict(balances)
    values = {k: dataclasses.replace(v) for k, v in balances.items()}
    with pytest.raises(LedgerError) as info:
        apply_voucher(VoucherDraft("transfer", lines), [bank, alice], balances, DAY)
    assert info.value.reason == reason
    assert all(balances[k] is before[k] and balances[k] == values[k] for k in before)
    assert balances.keys() == before.keys()


def test_accepted_voucher_replaces_state_objects_instead_of_mutating_them():
    # The batch writer snapshots `dict(balances)` and restores it when a later draft fails: that only
    # works if the old BalanceState objects are never changed in place.
    bank, alice = cash(), customer("alice")
    balances = balances_for(bank, alice, alice=10)
    old = dict(balances)
    apply([(bank, D, 5), (alice, C, 5)], balances, "2024-03-02")
    assert old["alice"] == BalanceState("alice", current=10)
    assert old["cash"] == BalanceState("cash", current=0)
    assert balances["alice"] is not old["alice"]


def test_untouched_accounts_keep_their_state_object():
    bank, alice = cash(), customer("alice")
    balances = {**balances_for(bank, alice), "bystander": BalanceState("bystander", current=4)}
    bystander = balances["bystander"]
    apply([(bank, D, 5), (alice, C, 5)], balances)
    assert balances["bystander"] is bystander
    assert bystander == BalanceState("bystander", current=4)


# --- statement numbering -----------------------------------------------------------------------------


def test_posted_lines_carry_entry_numbers_and_running_balances():
    bank, alice = cash(), customer("alice")
    balances = {"cash": BalanceState("cash", current=1_000, entry_count=41),
                "alice": BalanceState("alice", current=0, entry_count=0)}
    applied = apply([(bank, D, 300), (alice, C, 300)], balances)
    assert applied.lines == (
        PostedLine(1, "cash", "code-cash", D, 300, "USD", "", entry_number=42, balance_after=1_300),
        PostedLine(2, "alice", "code-alice", C, 300, "USD", "", entry_number=1, balance_after=300),
    )
    assert balances["cash"].entry_count == 42
    assert balances["alice"].entry_count == 1


def test_two_lines_on_the_same_account_get_consecutive_entries():
    bank, alice, fees = cash(), customer("alice"), cash("fees")
    fees = dataclasses.replace(fees, normal_side=Side.CREDIT)
    balances = {"alice": BalanceState("alice", current=1_000, entry_count=5),
                "cash": BalanceState("cash", current=0, entry_count=0),
                "fees": BalanceState("fees", current=0, entry_count=10)}
    applied = apply([(alice, D, 600), (bank, C, 600), (alice, D, 25), (fees, C, 25)], balances)
    assert [(ln.line_no, ln.account_id, ln.entry_number, ln.balance_after) for ln in applied.lines] == [
        (1, "alice", 6, 400), (2, "cash", 1, -600), (3, "alice", 7, 375), (4, "fees", 11, 25),
    ]
    assert balances["alice"] == BalanceState("alice", current=375, last_date=DAY, entry_count=7)
    assert balances["cash"].entry_count == 1
    assert balances["fees"].entry_count == 11
    assert applied.touched == ("alice", "cash", "fees")


def test_line_memos_and_codes_are_posted():
    bank, alice = cash(), customer("alice")
    d = VoucherDraft("transfer", (LineDraft(AccountRef(code="code-cash"), D, 5, "USD", "in"),
                                  LineDraft(AccountRef(id="alice"), C, 5, "USD", "for alice")))
    applied = apply_voucher(d, [bank, alice], balances_for(bank, alice), DAY)
    assert [(ln.account_code, ln.memo) for ln in applied.lines] == [("code-cash", "in"), ("code-alice", "for alice")]


def test_consecutive_vouchers_continue_the_numbering():
    bank, alice = cash(), customer("alice")
    balances = balances_for(bank, alice)
    for i in range(1, 4):
        applied = apply([(bank, D, 10), (alice, C, 10)], balances)
        assert [ln.entry_number for ln in applied.lines] == [i, i]
        assert [ln.balance_after for ln in applied.lines] == [10 * i, 10 * i]


# --- dual balance: previous day ------------------------------------------------------------------------


def test_first_posting_of_a_new_day_rolls_previous_day():
    bank, alice = cash(), customer("alice")
    balances = {"alice": BalanceState("alice", current=100, previous_day=40, last_date="2024-03-01"),
                "cash": BalanceState("cash", current=-100, previous_day=-40, last_date="2024-03-01")}
    apply([(bank, D, 10), (alice, C, 10)], balances, "2024-03-02")
    assert balances["alice"] == BalanceState("alice", current=110, previous_day=100, last_date="2024-03-02",
                                             entry_count=1)
    assert balances["cash"].previous_day == -100
    # A second posting the same day keeps yesterday's close.
    apply([(bank, D, 5), (alice, C, 5)], balances, "2024-03-02")
    assert (balances["alice"].current, balances["alice"].previous_day) == (115, 100)
    # Days later: the close of the last posting day is the previous day's balance.
    apply([(bank, D, 1), (alice, C, 1)], balances, "2024-03-09")
    assert (balances["alice"].current, balances["alice"].previous_day, balances["alice"].last_date) == (
        116, 115, "2024-03-09")


def test_posting_on_the_same_day_keeps_previous_day():
    bank, alice = cash(), customer("alice")
    balances = {"alice": BalanceState("alice", current=100, previous_day=40, last_date=DAY),
                "cash": BalanceState("cash", current=-100, last_date=DAY)}
    apply([(bank, D, 10), (alice, C, 10)], balances, DAY)
    assert (balances["alice"].previous_day, balances["alice"].last_date) == (40, DAY)


def test_first_ever_posting_sets_last_date_and_keeps_zero_previous_day():
    bank, alice = cash(), customer("alice")
    balances = balances_for(bank, alice)
    apply([(bank, D, 10), (alice, C, 10)], balances, DAY)
    assert balances["alice"] == BalanceState("alice", current=10, previous_day=0, last_date=DAY, entry_count=1)


def test_posting_dated_before_last_date_does_not_move_last_date():
    bank, alice = cash(), customer("alice")
    balances = {"alice": BalanceState("alice", current=100, previous_day=40, last_date="2024-03-05"),
                "cash": BalanceState("cash", current=-100, last_date="2024-03-05")}
    apply([(bank, D, 10), (alice, C, 10)], balances, "2024-03-04")
    assert (balances["alice"].previous_day, balances["alice"].last_date) == (40, "2024-03-05")


# --- an account resolved twice ---------------------------------------------------------------------------


def test_same_account_on_both_sides_through_id_and_code_is_refused():
    # check_draft refuses one account on both sides by comparing AccountRefs, but AccountRef(id="alice")
    # and AccountRef(code="code-alice") name the same account. apply_voucher gets the resolved accounts
    # and must not post a debit and a credit to one account: nets to zero, so the floor is never checked,
    # yet the first line's balance_after is -100 on a NON_NEGATIVE account with nothing in it.
    alice = customer("alice")
    balances = balances_for(alice)
    d = VoucherDraft("transfer", (LineDraft(AccountRef(id="alice"), D, 100, "USD"),
                                  LineDraft(AccountRef(code="code-alice"), C, 100, "USD")))
    before = dict(balances)
    with pytest.raises(LedgerError) as info:
        apply_voucher(d, [alice, alice], balances, DAY)
    assert info.value.reason == "SAME_ACCOUNT_BOTH_SIDES"
    assert balances == before


# --- resolve and debit_balance -----------------------------------------------------------------------


def test_resolve_by_id_and_by_code():
    alice = customer("alice")
    by_id, by_code = {"alice": alice}, {"code-alice": alice}
    assert resolve(AccountRef(id="alice"), by_id, by_code) is alice
    assert resolve(AccountRef(code="code-alice"), by_id, by_code) is alice


@pytest.mark.parametrize(
    "ref",
    [AccountRef(id="bob"), AccountRef(code="code-bob"), AccountRef(id="code-alice"), AccountRef(code="alice")],
    ids=["unknown-id", "unknown-code", "code-as-id", "id-as-code"],
)
def test_resolve_not_found(ref):
    alice = customer("alice")
    with pytest.raises(LedgerError) as info:
        resolve(ref, {"alice": alice}, {"code-alice": alice})
    if ref.code:  # a code is a name inside the tenant
        assert (info.value.reason, info.value.kind) == ("ACCOUNT_NOT_FOUND", ErrorKind.NOT_FOUND)
        assert info.value.metadata == {"account": str(ref)}
    else:  # an id may be another tenant's: the same answer whether or not it exists
        assert (info.value.reason, info.value.kind) == ("ACCOUNT_NOT_ACCESSIBLE", ErrorKind.PERMISSION_DENIED)
        assert info.value.metadata == {"account": ref.id}


@pytest.mark.parametrize(
    ("side", "current", "expected"),
    [(Side.DEBIT, 100, 100), (Side.DEBIT, -7, -7), (Side.CREDIT, 100, -100), (Side.CREDIT, -7, 7),
     (Side.CREDIT, 0, 0)],
    ids=["debit-positive", "debit-negative", "credit-positive", "credit-negative", "zero"],
)
def test_debit_balance(side, current, expected):
    assert debit_balance(account("x", side=side), current) == expected
