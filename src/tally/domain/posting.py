"""The posting arithmetic: applies a checked draft to in-memory balances, or refuses it whole.

Pure: the batch writer loads accounts and balance rows, calls `apply_voucher` once per voucher, and
writes what it returns. A refused voucher leaves `balances` exactly as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tally.domain.accounts import NOT_POSTABLE_REASONS, Account, AccountStatus, BalanceState, FloorPolicy, Side
from tally.domain.errors import invalid, missing_account, precondition
from tally.domain.limits import AMOUNT_MAX, BALANCE_MIN
from tally.domain.vouchers import AccountRef, PostedLine, VoucherDraft, check_draft


@dataclass(slots=True)  # not frozen: one per voucher, and only its caller reads it
class Applied:
    lines: tuple[PostedLine, ...]
    touched: tuple[str, ...]  # account ids whose balance changed


def resolve(ref: AccountRef, by_id: Mapping[str, Account], by_code: Mapping[str, Account]) -> Account:
    account = by_id.get(ref.id) if ref.id else by_code.get(ref.code)
    if account is None:
        # The same answer for "absent" and "another tenant's": no existence leak across tenants.
        raise missing_account(ref)
    return account


def apply_voucher(draft: VoucherDraft, accounts: list[Account], balances: dict[str, BalanceState],
                  accounting_date: str) -> Applied:
    """`accounts[i]` is the resolved account of `draft.lines[i]`; `balances` holds their rows."""
    check_draft(draft)  # second check, right before the write
    deltas: dict[str, int] = {}
    sides: dict[str, Side] = {}
    by_id: dict[str, Account] = {}
    for line, account in zip(draft.lines, accounts, strict=True):
        if account.status is not AccountStatus.ACTIVE or line.currency != account.currency:
            _check_postable(account, line.currency)
        # Checked again on resolved accounts: one account can be named by id and by code.
        account_id, side = account.id, line.side
        if sides.setdefault(account_id, side) is not side:
            raise invalid("SAME_ACCOUNT_BOTH_SIDES", f"account {account.code} is on both sides of the voucher",
                          account=account_id)
        by_id[account_id] = account
        deltas[account_id] = deltas.get(account_id, 0) + (line.amount if side is account.normal_side
                                                          else -line.amount)
    new_states = {aid: _next_state(by_id[aid], balances[aid], delta, accounting_date)
                  for aid, delta in deltas.items()}
    posted = _post_lines(draft, accounts, balances)
    for line in posted:
        new_states[line.account_id].entry_count = line.entry_number
    balances.update(new_states)
    return Applied(posted, tuple(deltas))


def _check_postable(account: Account, currency: str) -> None:
    if account.status is not AccountStatus.ACTIVE:
        reason = NOT_POSTABLE_REASONS[account.status]
        raise precondition(reason, f"account {account.code} is {account.status.value}", account_id=account.id)
    if currency != account.currency:
        raise precondition(
            "CURRENCY_MISMATCH", f"account {account.code} holds {account.currency}, the line is in {currency}",
            account_id=account.id, account_currency=account.currency, line_currency=currency,
        )


def _next_state(account: Account, state: BalanceState, delta: int, accounting_date: str) -> BalanceState:
    # Written out rather than through BalanceState's methods: it runs for every account of every voucher.
    current = state.current + delta
    available_after = current - state.locked + account.credit_limit  # state.available(...) + delta
    # The available balance is reported in int64 too.
    if not (BALANCE_MIN <= current <= AMOUNT_MAX and BALANCE_MIN <= available_after <= AMOUNT_MAX):
        raise invalid("BALANCE_OVERFLOW", f"account {account.code} balance would leave the int64 range",
                      account_id=account.id)
    # Only a voucher that lowers a balance is held to the floor: one that raises a balance already
    # below it (say after a credit limit was cut) must still be accepted.
    if available_after < 0 and delta < 0 and account.floor_policy is FloorPolicy.NON_NEGATIVE:
        available = state.available(account.credit_limit)
        raise precondition(
            "INSUFFICIENT_FUNDS", f"account {account.code} has {available} available, needs {-delta}",
            account_id=account.id, available=available, required=-delta,
        )
    last_date = state.last_date
    return BalanceState(
        state.account_id, current, state.locked, state.previous_day_as_of(accounting_date),
        accounting_date if accounting_date > last_date else last_date, state.entry_count,
    )


def _post_lines(draft: VoucherDraft, accounts: list[Account],
                balances: Mapping[str, BalanceState]) -> tuple[PostedLine, ...]:
    running: dict[str, tuple[int, int]] = {}
    posted = []
    for line_no, (line, account) in enumerate(zip(draft.lines, accounts, strict=True), start=1):
        account_id = account.id
        found = running.get(account_id)
        if found is None:
            state = balances[account_id]
            current, count = state.current, state.entry_count
        else:
            current, count = found
        current += line.amount if line.side is account.normal_side else -line.amount
        count += 1
        running[account_id] = (current, count)
        posted.append(PostedLine(line_no, account_id, account.code, line.side, line.amount, line.currency,
                                 line.memo, count, current))
    return tuple(posted)


def debit_balance(account: Account, current: int) -> int:
    """The balance as a debit-positive number: summed over every account of a currency it is zero."""
    return current if account.normal_side is Side.DEBIT else -current
