"""Linked bank accounts, payouts and payout batches. Functions take a connection and never commit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields

from sqlalchemy import Connection, insert, select, update

from tally.domain.payouts import BankAccountStatus, BatchState, PayoutState
from tally.storage.tables import bank_accounts, payout_batches, payouts


@dataclass(frozen=True, slots=True)
class BankAccount:
    id: str
    tenant_id: str
    merchant: str
    currency: str
    holder_name: str
    iban: str
    bic: str
    aba_routing: str
    account_number: str
    status: BankAccountStatus
    request_id: str
    created_us: int
    updated_us: int


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    tenant_id: str
    request_id: str
    merchant: str
    bank_account_id: str
    currency: str
    amount: int
    state: PayoutState
    batch_id: str
    reason: str
    voucher_ids: tuple[str, ...]
    created_us: int
    updated_us: int


@dataclass(frozen=True, slots=True)
class Batch:
    id: str
    tenant_id: str
    bank_account_id: str
    currency: str
    state: BatchState
    payout_count: int
    total: int
    cutoff_us: int
    send_request_id: str
    send_voucher_id: str
    sent_date: str
    expected_date: str
    request_id: str
    created_us: int
    updated_us: int


def _values(row) -> dict:
    values = {f.name: getattr(row, f.name) for f in fields(row)}
    for name, value in values.items():
        if hasattr(value, "value"):
            values[name] = value.value
        elif isinstance(value, tuple):
            values[name] = json.dumps(list(value))
    return values


def insert_bank_account(conn: Connection, account: BankAccount) -> None:
    conn.execute(insert(bank_accounts), [_values(account)])


def get_bank_account(conn: Connection, tenant_id: str, account_id: str) -> BankAccount | None:
    row = conn.execute(select(bank_accounts).where(bank_accounts.c.tenant_id == tenant_id,
                                                   bank_accounts.c.id == account_id)).first()
    return _bank_account(row) if row else None


def bank_accounts_by_id(conn: Connection, tenant_id: str, ids: Sequence[str]) -> dict[str, BankAccount]:
    rows = conn.execute(select(bank_accounts).where(bank_accounts.c.tenant_id == tenant_id,
                                                    bank_accounts.c.id.in_(sorted(set(ids))))).all()
    return {r.id: _bank_account(r) for r in rows}


def set_bank_account_status(conn: Connection, account_id: str, status: BankAccountStatus, now_us: int) -> None:
    conn.execute(update(bank_accounts).where(bank_accounts.c.id == account_id)
                 .values(status=status.value, updated_us=now_us))


def _bank_account(row) -> BankAccount:
    values = dict(row._mapping)
    return BankAccount(**{**values, "status": BankAccountStatus(values["status"])})


def insert_payout(conn: Connection, payout: Payout) -> None:
    conn.execute(insert(payouts), [_values(payout)])


def get_payout(conn: Connection, tenant_id: str, payout_id: str) -> Payout | None:
    row = conn.execute(select(payouts).where(payouts.c.tenant_id == tenant_id, payouts.c.id == payout_id)).first()
    return _payout(row) if row else None


def list_payouts(conn: Connection, tenant_id: str, *, state: PayoutState | None = None, currency: str = "",
                 batch_id: str = "", created_before_us: int | None = None, after_id: str = "",
                 limit: int) -> list[Payout]:
    conditions = [payouts.c.tenant_id == tenant_id, payouts.c.id > after_id]
    if state is not None:
        conditions.append(payouts.c.state == state.value)
    if currency:
        conditions.append(payouts.c.currency == currency)
    if batch_id:
        conditions.append(payouts.c.batch_id == batch_id)
    if created_before_us is not None:
        conditions.append(payouts.c.created_us <= created_before_us)
    rows = conn.execute(select(payouts).where(*conditions).order_by(payouts.c.id).limit(limit)).all()
    return [_payout(r) for r in rows]


def save_payout(conn: Connection, payout: Payout, expected: PayoutState) -> bool:
    """Writes a payout's state, batch, reason and vouchers if it is still in `expected`: False otherwise."""
    done = conn.execute(update(payouts).where(payouts.c.id == payout.id, payouts.c.state == expected.value).values(
        state=payout.state.value, batch_id=payout.batch_id, reason=payout.reason,
        voucher_ids=json.dumps(list(payout.voucher_ids)), updated_us=payout.updated_us))
    return done.rowcount == 1


def _payout(row) -> Payout:
    values = dict(row._mapping)
    return Payout(**{**values, "state": PayoutState(values["state"]),
                     "voucher_ids": tuple(json.loads(values["voucher_ids"]))})


def insert_batch(conn: Connection, batch: Batch) -> None:
    conn.execute(insert(payout_batches), [_values(batch)])


def get_batch(conn: Connection, tenant_id: str, batch_id: str) -> Batch | None:
    row = conn.execute(select(payout_batches).where(payout_batches.c.tenant_id == tenant_id,
                                                    payout_batches.c.id == batch_id)).first()
    return Batch(**{**dict(row._mapping), "state": BatchState(row.state)}) if row else None


def batches_of_request(conn: Connection, tenant_id: str, request_id: str) -> list[Batch]:
    rows = conn.execute(select(payout_batches).where(payout_batches.c.tenant_id == tenant_id,
                                                     payout_batches.c.request_id == request_id)
                        .order_by(payout_batches.c.bank_account_id)).all()
    return [Batch(**{**dict(r._mapping), "state": BatchState(r.state)}) for r in rows]


def save_batch(conn: Connection, batch: Batch, expected: BatchState, expected_sender: str) -> bool:
    """Writes a batch if it is still in `expected` state with `expected_sender` sending it: False otherwise."""
    done = conn.execute(update(payout_batches).where(
        payout_batches.c.id == batch.id, payout_batches.c.state == expected.value,
        payout_batches.c.send_request_id == expected_sender).values(
        state=batch.state.value, send_request_id=batch.send_request_id, send_voucher_id=batch.send_voucher_id,
        sent_date=batch.sent_date, expected_date=batch.expected_date, updated_us=batch.updated_us))
    return done.rowcount == 1


def set_batch_payouts(conn: Connection, batch_id: str, source: PayoutState, target: PayoutState, now_us: int) -> int:
    done = conn.execute(update(payouts).where(payouts.c.batch_id == batch_id, payouts.c.state == source.value)
                        .values(state=target.value, updated_us=now_us))
    return done.rowcount

