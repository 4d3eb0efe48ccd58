"""The posting arithmetic: applies a checked draft to in-memory balances, or refuses it whole.

Pure: the batch writer loads accounts and balance rows, calls `apply_voucher` once per voucher, and
writes what it returns. A refused voucher leaves `balances` exactly as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tally.domain.accounts import NOT_POSTABLE_REASONS, Account, AccountStatus, BalanceState, FloorPolicy, Side
from tally.domain.errors import invalid, missing_account, precondition
from tally.domain.money import fits_int64
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
    for line, account in zip(draft.lines, accounts, strict=True):
        _check_postable(account, line.currency)
        # Checked again on resolved accounts: one account can be named by id and by code.
        if sides.setdefault(account.id, line.side) is not line.side:
            raise invalid("SAME_ACCOUNT_BOTH_SIDES", f"account {account.code} is on both sides of the voucher",
                          account=account.id)
        deltas[account.id] = deltas.get(account.id, 0) + line.side.signed(line.amount, account.normal_side)
    by_id = {a.id: a for a in accounts}
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
    current = state.current + delta
    available_after = state.available(account.credit_limit) + delta
    # The available balance is reported in int64 too.
    if not fits_int64(current) or not fits_int64(available_after):
        raise invalid("BALANCE_OVERFLOW", f"account {account.code} balance would leave the int64 range",
                      account_id=account.id)
    # Only a voucher that lowers a balance is held to the floor: one that raises a balance already
    # below it (say after a credit limit was cut) must still be accepted.
    floored = delta < 0 and account.floor_policy is FloorPolicy.NON_NEGATIVE
    if floored and available_after < 0:
        available = state.available(account.credit_limit)
        raise precondition(
            "INSUFFICIENT_FUNDS", f"account {account.code} has {available} available, needs {-delta}",
            account_id=account.id, available=available, required=-delta,
        )
    return BalanceState(
        account_id=state.account_id, current=current, locked=state.locked,
        previous_day=state.previous_day_as_of(accounting_date),
        last_date=max(state.last_date, accounting_date), entry_count=state.entry_count,
    )


def _post_lines(draft: VoucherDraft, accounts: list[Account],
                balances: Mapping[str, BalanceState]) -> tuple[PostedLine, ...]:
    running: dict[str, tuple[int, int]] = {}
    posted = []
    for line_no, (line, account) in enumerate(zip(draft.lines, accounts, strict=True), start=1):
        state = balances[account.id]
        current, count = running.get(account.id, (state.current, state.entry_count))
        current += line.side.signed(line.amount, account.normal_side)
        running[account.id] = (current, count + 1)
        posted.append(PostedLine(line_no, account.id, account.code, line.side, line.amount, line.currency,
                                 line.memo, entry_number=count + 1, balance_after=current))
    return tuple(posted)


def debit_balance(account: Account, current: int) -> int:
    """The balance as a debit-positive number: summed over every account of a currency it is zero."""
    return current if account.normal_side is Side.DEBIT else -current
