"""Balance changes read off events. Pure: no I/O.

An event that moves balances carries a `balances` snapshot: {account_id: {current, locked, available,
currency, current_delta, locked_delta}}, each account's state right after the event. That is used whenever
it is there. Events written before the snapshot existed are still replayed, so `ledger.entry.posted` has a
fallback from its lines: `current` is the balance after the account's last line, `current_delta` follows
from the first line's balance before it, which needs the account's normal side; locked and available are
not recorded in lines and stay 0.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from tally.storage.ledger_repo import Event

POSTED = "ledger.entry.posted"
BALANCES = "balances"


@dataclass(frozen=True)
class BalanceChange:
    sequence: int
    account_id: str
    currency: str
    current: int
    locked: int
    available: int
    current_delta: int
    locked_delta: int
    cause: str
    voucher_id: str
    hold_id: str
    time_us: int


def sides_needed(event: Event) -> set[str]:
    """Accounts whose normal side the line fallback needs for this event (none with a snapshot)."""
    if event.type != POSTED or isinstance(event.payload.get(BALANCES), dict):
        return set()
    return {line["account_id"] for line in event.payload.get("lines", ())}


def balance_changes(event: Event, normal_sides: Mapping[str, str],
                    wanted: Container[str] | None = None) -> list[BalanceChange]:
    """The changes of the accounts in `wanted` (None: all) that `event` made, in a stable order.

    `normal_sides` maps account id -> "debit" | "credit"; only the line fallback reads it."""
    snapshot = event.payload.get(BALANCES)
    if isinstance(snapshot, dict):
        return [_from_snapshot(event, account_id, state) for account_id, state in snapshot.items()
                if wanted is None or account_id in wanted]
    if event.type == POSTED:
        return _from_lines(event, normal_sides, wanted)
    return []


def _ids(event: Event) -> tuple[str, str]:
    payload = event.payload
    return event.voucher_id or str(payload.get("voucher_id") or ""), str(payload.get("hold_id") or "")


def _from_snapshot(event: Event, account_id: str, state: Mapping) -> BalanceChange:
    voucher_id, hold_id = _ids(event)
    return BalanceChange(
        sequence=event.sequence, account_id=account_id, currency=str(state.get("currency", "")),
        current=int(state["current"]), locked=int(state.get("locked", 0)),
        available=int(state.get("available", 0)), current_delta=int(state.get("current_delta", 0)),
        locked_delta=int(state.get("locked_delta", 0)), cause=event.type, voucher_id=voucher_id,
        hold_id=hold_id, time_us=event.created_us)


def _from_lines(event: Event, normal_sides: Mapping[str, str], wanted: Container[str] | None
                ) -> list[BalanceChange]:
    per_account: dict[str, list[Mapping]] = {}
    for line in event.payload.get("lines", ()):
        if wanted is None or line["account_id"] in wanted:
            per_account.setdefault(line["account_id"], []).append(line)
    voucher_id, hold_id = _ids(event)
    changes = []
    for account_id, lines in per_account.items():
        first, last = lines[0], lines[-1]
        before = first["balance_after"] - signed_amount(first, normal_sides[account_id])
        changes.append(BalanceChange(
            sequence=event.sequence, account_id=account_id, currency=first["currency"],
            current=last["balance_after"], locked=0, available=0, current_delta=last["balance_after"] - before,
            locked_delta=0, cause=event.type, voucher_id=voucher_id, hold_id=hold_id, time_us=event.created_us))
    return changes


def signed_amount(line: Mapping, normal_side: str) -> int:
    """A line's effect on its account's balance (balances are signed on the account's normal side)."""
    return line["amount"] if line["side"] == normal_side else -line["amount"]
