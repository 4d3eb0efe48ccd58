"""Event payloads, and appending events outside the batch writer (account changes) in the caller's
transaction."""

from __future__ import annotations

from sqlalchemy import Connection

from tally.domain.accounts import Account
from tally.storage import ledger_repo
from tally.storage.ledger_repo import Event


def append_event(conn: Connection, tenant_id: str, type_: str, payload: dict, now_us: int, *,
                 account_id: str | None = None) -> None:
    head = ledger_repo.load_heads(conn, [tenant_id])[tenant_id]
    head.event_sequence += 1
    ledger_repo.insert_events(conn, [Event(tenant_id, head.event_sequence, type_, payload, now_us, account_id)])
    ledger_repo.save_heads(conn, [head])


def account_payload(account: Account) -> dict:
    return {"account_id": account.id, "code": account.code, "type": account.type.value,
            "currency": account.currency, "status": account.status.value, "credit_limit": account.credit_limit}


def hold_events(change) -> list[tuple[str, dict]]:
    """The events one hold operation writes: (type, payload with `locked_delta` for its account)."""
    hold, action = change.hold, change.op.action.value
    base = {"hold_id": hold.id, "account_id": hold.account_id, "currency": hold.currency}
    if action == "create":
        return [("balance.hold.created", {**base, "amount": hold.amount, "expires_us": hold.expires_us,
                                          "locked_delta": change.locked_delta})]
    if action in ("release", "expire"):
        return [("balance.released", {**base, "amount": -change.locked_delta, "status": hold.status.value,
                                      "locked_delta": change.locked_delta})]
    events = [("balance.hold.captured", {**base, "amount": change.op.amount, "captured": hold.captured,
                                         "status": hold.status.value, "locked_delta": -change.op.amount})]
    rest = -change.locked_delta - change.op.amount
    if rest:  # a final capture releases what it did not take
        events.append(("balance.released", {**base, "amount": rest, "status": hold.status.value,
                                            "locked_delta": -rest}))
    return events
