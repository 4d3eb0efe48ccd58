"""Property tests for tally.domain.posting.apply_voucher over random ledgers and random vouchers.

Whatever sequence of vouchers is applied, accepted or refused:
* every currency's debit-positive balances sum to zero (double entry holds);
* a NON_NEGATIVE account whose available balance was >= 0 never ends a voucher below zero;
* each balance equals the signed sum of the account's accepted lines, and entry_count their number;
* a refused voucher leaves the balances dict exactly as it was (same objects, same values);
* the voucher is accepted exactly when an independent oracle says it should be.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.domain import limits
from tally.domain.accounts import Account, AccountStatus, AccountType, BalanceState, FloorPolicy, Side
from tally.domain.errors import LedgerError
from tally.domain.posting import apply_voucher, debit_balance
from tally.domain.vouchers import AccountRef, LineDraft, Voucher, VoucherDraft, reversal_lines

CURRENCIES = ("USD", "EUR")
MAX = limits.AMOUNT_MAX
MIN = limits.BALANCE_MIN


def rare(one_in: int) -> st.SearchStrategy[bool]:
    """True about once in `one_in` draws (shrinks towards False)."""
    return st.sampled_from([False] * (one_in - 1) + [True])


@st.composite
def ledger_strategy(draw) -> tuple[list[Account], dict[str, int]]:
    """Some random accounts and their opening balances, plus one unbounded equity account per currency
    that holds the other side of the openings, so every currency starts balanced."""
    accounts = [Account(id=f"eq-{c}", tenant_id="t", code=f"equity.{c}", type=AccountType.INTERNAL,
                        normal_side=Side.DEBIT, currency=c, floor_policy=FloorPolicy.UNBOUNDED)
                for c in CURRENCIES]
    opening = {a.id: 0 for a in accounts}
    for i in range(draw(st.integers(min_value=2, max_value=6), label="accounts")):
        type_ = draw(st.sampled_from(list(AccountType)))
        if type_ is AccountType.INTERNAL:
            side = draw(st.sampled_from(list(Side)))
            floor = draw(st.sampled_from(list(FloorPolicy)))
        else:
            side, floor = Side.CREDIT, FloorPolicy.NON_NEGATIVE
        credit_limit = draw(st.sampled_from([0, 1, 50, 1_000])) if type_ is AccountType.CREDIT else 0
        status = AccountStatus.ACTIVE
        if draw(rare(12)):
            status = draw(st.sampled_from([AccountStatus.FROZEN, AccountStatus.CLOSED]))
        account = Account(
            id=f"a{i}", tenant_id="t", code=f"c{i}", type=type_, normal_side=side,
            currency=draw(st.sampled_from(CURRENCIES)), status=status, credit_limit=credit_limit,
            floor_policy=floor,
        )
        accounts.append(account)
        opening[account.id] = draw(st.sampled_from([0, 1, 100, 2_000, 5_000]))
        # The equity account of the currency takes the other side of the opening balance.
        opening[f"eq-{account.currency}"] -= debit_balance(account, opening[account.id])
    return accounts, opening


# Mostly small amounts; now and then one near the int64 limit, to meet overflows and oversized totals.
huge_amounts = st.sampled_from([MAX, MAX - 1, 2**62, 2**62 + 1])
small_amounts = st.integers(min_value=1, max_value=1_000)


@st.composite
def voucher_strategy(draw, accounts: list[Account]):
    """A balanced draft made of legs (debit X, credit Y, same amount, same currency) and its accounts.

    Legs mostly pair accounts of the leg's currency and keep each account on one side; now and then
    they take any account, to meet currency mismatches and accounts on both sides."""
    lines, resolved = [], []
    sides: dict[str, Side] = {}
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        currency = draw(st.sampled_from(CURRENCIES))
        pool = [a for a in accounts if a.currency == currency]
        if len(pool) < 2 or draw(rare(15)):
            pool = accounts
        strict = not draw(rare(10))
        debits = [a for a in pool if not strict or sides.get(a.id, Side.DEBIT) is Side.DEBIT]
        debit = draw(st.sampled_from(debits or pool))
        credits = [a for a in pool if a is not debit and (not strict or sides.get(a.id, Side.CREDIT) is Side.CREDIT)]
        credit = draw(st.sampled_from(credits or [a for a in pool if a is not debit]))
        sides.setdefault(debit.id, Side.DEBIT)
        sides.setdefault(credit.id, Side.CREDIT)
        amount = draw(huge_amounts if draw(rare(20)) else small_amounts)
        lines += [LineDraft(AccountRef(id=debit.id), Side.DEBIT, amount, currency),
                  LineDraft(AccountRef(id=credit.id), Side.CREDIT, amount, currency)]
        resolved += [debit, credit]
    order = draw(st.permutations(range(len(lines))))
    return VoucherDraft("test", tuple(lines[i] for i in order)), [resolved[i] for i in order]


def _signed(account: Account, line: LineDraft) -> int:
    return line.amount if line.side is account.normal_side else -line.amount


def _oracle_accepts(draft: VoucherDraft, accounts: list[Account], model: dict[str, int],
                    locked: dict[str, int]) -> bool:
    """Written from the rules, not from the code: should this voucher post?"""
    sides: dict[str, set] = defaultdict(set)
    totals: dict[tuple[str, Side], int] = defaultdict(int)
    deltas: dict[str, int] = defaultdict(int)
    for line, account in zip(draft.lines, accounts, strict=True):
        sides[line.account.id].add(line.side)
        totals[line.currency, line.side] += line.amount
        deltas[account.id] += _signed(account, line)
        if account.status is not AccountStatus.ACTIVE or account.currency != line.currency:
            return False
    if any(len(s) > 1 for s in sides.values()) or any(t > MAX for t in totals.values()):
        return False
    by_id = {a.id: a for a in accounts}
    for aid, delta in deltas.items():
        after = model[aid] + delta
        account = by_id[aid]
        # The balance and the available balance it reports must both stay in int64.
        if not (MIN <= after <= MAX and MIN <= after - locked[aid] + account.credit_limit <= MAX):
            return False
        if (delta < 0 and account.floor_policy is FloorPolicy.NON_NEGATIVE
                and after - locked[aid] + account.credit_limit < 0):
            return False
    return True


def _check_invariants(accounts, balances, model, entries, before_available):
    sums: dict[str, int] = defaultdict(int)
    for account in accounts:
        state = balances[account.id]
        sums[account.currency] += debit_balance(account, state.current)
        assert state.current == model[account.id]
        assert state.entry_count == entries[account.id]
        if account.floor_policy is FloorPolicy.NON_NEGATIVE and before_available[account.id] >= 0:
            assert state.available(account.credit_limit) >= 0, account
    assert all(total == 0 for total in sums.values()), sums


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_vouchers_keep_the_ledger_balanced(data):
    accounts, opening = data.draw(ledger_strategy(), label="ledger")
    locked = {a.id: data.draw(st.sampled_from([0, 0, 0, 10, 500]), label=f"locked {a.id}") for a in accounts}
    balances = {a.id: BalanceState(a.id, current=opening[a.id], locked=locked[a.id]) for a in accounts}
    model = dict(opening)
    entries = {a.id: 0 for a in accounts}
    day = 1
    accepted = refused = 0
    for _ in range(data.draw(st.integers(min_value=1, max_value=25), label="vouchers")):
        draft, resolved = data.draw(voucher_strategy(accounts), label="voucher")
        day += data.draw(st.integers(min_value=0, max_value=2), label="days")
        date = f"2024-01-{day:02d}"
        before = dict(balances)
        before_values = {k: dataclasses.replace(v) for k, v in balances.items()}
        before_available = {a.id: balances[a.id].available(a.credit_limit) for a in accounts}
        expected = _oracle_accepts(draft, resolved, model, locked)
        try:
            applied = apply_voucher(draft, resolved, balances, date)
        except LedgerError as error:
            refused += 1
            assert not expected, f"refused with {error.reason} but should post"
            assert balances.keys() == before.keys()
            for key, state in balances.items():
                assert state is before[key] and state == before_values[key]
        else:
            accepted += 1
            assert expected, "posted but should be refused"
            for line, account, posted in zip(draft.lines, resolved, applied.lines, strict=True):
                model[account.id] += _signed(account, line)
                entries[account.id] += 1
                assert (posted.account_id, posted.side, posted.amount, posted.currency) == (
                    account.id, line.side, line.amount, line.currency)
                assert posted.balance_after == model[account.id]
                assert posted.entry_number == entries[account.id]
            assert set(applied.touched) == {a.id for a in resolved}
            for aid in applied.touched:
                prior = before_values[aid]
                assert balances[aid].last_date == max(prior.last_date, date)
                assert balances[aid].previous_day == prior.previous_day_as_of(date)
                assert balances[aid].locked == prior.locked
        _check_invariants(accounts, balances, model, entries, before_available)
    assert accepted + refused >= 1


@settings(max_examples=200, deadline=None, database=None)
@given(data=st.data())
def test_reversing_the_last_voucher_restores_balances(data):
    """When every floored account was at or above its floor, the reversal of a voucher that just posted
    posts too, and brings every balance back."""
    accounts, opening = data.draw(ledger_strategy(), label="ledger")
    accounts = [dataclasses.replace(a, status=AccountStatus.ACTIVE) for a in accounts]
    balances = {a.id: BalanceState(a.id, current=opening[a.id]) for a in accounts}
    by_id = {a.id: a for a in accounts}
    for _ in range(data.draw(st.integers(min_value=1, max_value=10), label="vouchers")):
        draft, resolved = data.draw(voucher_strategy(accounts), label="voucher")
        currents = {k: v.current for k, v in balances.items()}
        all_at_floor_or_above = all(
            balances[a.id].available(a.credit_limit) >= 0 for a in accounts
            if a.floor_policy is FloorPolicy.NON_NEGATIVE)
        try:
            applied = apply_voucher(draft, resolved, balances, "2024-01-01")
        except LedgerError:
            continue
        voucher = Voucher("v", "t", 1, "test", "r", "2024-01-01", 0, 0, applied.lines)
        reversal = VoucherDraft("reversal", reversal_lines(voucher), reverses_id="v")
        reversal_accounts = [by_id[ln.account.id] for ln in reversal.lines]
        if all_at_floor_or_above:
            apply_voucher(reversal, reversal_accounts, balances, "2024-01-01")
            assert {k: v.current for k, v in balances.items()} == currents
