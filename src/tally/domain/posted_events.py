"""The payload of a `ledger.entry.posted` event, and the little of it that is stored.

Everything such an event says is in the journal already (the voucher, its lines, each line's balance after
it, each account's normal side) but for two facts of the moment it was posted: each account's locked
amount and its credit limit, which make its available balance. The outbox row keeps only those where they
are not zero, and the hold the voucher spends, so most rows keep `{}` instead of a copy of the voucher;
readers rebuild the whole payload from the journal. A stored payload with `lines` (written before this
scheme) is whole already.
"""

from __future__ import annotations

from collections.abc import Mapping

from tally.domain.accounts import Side
from tally.domain.vouchers import Voucher

POSTED = "ledger.entry.posted"
_LOCKED = "locked"
_CREDIT_LIMIT = "credit_limit"
_HOLD_ID = "hold_id"


def stored_payload(locked: Mapping[str, int], credit_limits: Mapping[str, int], hold_id: str | None = None) -> dict:
    """What the outbox row keeps: each account's locked amount and credit limit where not zero, and the hold
    the voucher spends, if any."""
    payload: dict = {_HOLD_ID: hold_id} if hold_id else {}
    if any(locked.values()):
        payload[_LOCKED] = {account_id: n for account_id, n in locked.items() if n}
    if any(credit_limits.values()):
        payload[_CREDIT_LIMIT] = {account_id: n for account_id, n in credit_limits.items() if n}
    return payload


def is_whole(payload: Mapping) -> bool:
    """Whether a stored payload is the whole payload (written before only the extras were kept)."""
    return "lines" in payload


def posted_payload(voucher: Voucher, normal_sides: Mapping[str, Side], stored: Mapping) -> dict:
    """The whole payload of the event that posted `voucher`: the voucher, its lines, and each account's
    balance right after it with how the voucher moved it. `normal_sides` maps each account of the voucher
    to its normal side; `stored` is what the outbox row kept."""
    locked, credit_limits = stored.get(_LOCKED, {}), stored.get(_CREDIT_LIMIT, {})
    balances: dict[str, dict] = {}
    for line in voucher.lines:
        signed = line.side.signed(line.amount, normal_sides[line.account_id])
        state = balances.setdefault(line.account_id, {"currency": line.currency, "current_delta": 0,
                                                      "locked": locked.get(line.account_id, 0), "locked_delta": 0})
        state["current"] = line.balance_after
        state["current_delta"] += signed
    for account_id, state in balances.items():
        state["available"] = state["current"] - state["locked"] + credit_limits.get(account_id, 0)
    held = {_HOLD_ID: stored[_HOLD_ID]} if _HOLD_ID in stored else {}
    return {
        **held, "voucher_id": voucher.id, "sequence": voucher.sequence, "flow_type": voucher.flow_type,
        "request_id": voucher.request_id, "accounting_date": voucher.accounting_date,
        "lines": [{"account_id": ln.account_id, "side": ln.side.value, "amount": ln.amount,
                   "currency": ln.currency, "entry_number": ln.entry_number, "balance_after": ln.balance_after}
                  for ln in voucher.lines],
        "balances": balances,
    }
