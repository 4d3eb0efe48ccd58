"""Interest accruals: the accounts a policy covers, and what each close accrued. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, or_, select

from tally.storage.tables import accounts, interest_accruals

_a, _i = accounts.c, interest_accruals.c


@dataclass(frozen=True)
class PolicyAccount:
    id: str
    code: str
    type: str
    currency: str
    normal_side: str


@dataclass(frozen=True)
class AccrualRow:
    account_id: str
    accounting_date: str
    tenant_id: str
    currency: str
    balance: int
    days: int
    rate_bp: int
    denominator: int
    units: int
    carry: int
    accrued_open: int
    capitalized: int


def policy_accounts(conn: Connection, tenant_id: str, types: Sequence[str], codes: Sequence[str], *,
                    after_id: str, limit: int) -> list[PolicyAccount]:
    """The tenant's open accounts of these types or with these codes, by id."""
    if not types and not codes:
        return []
    rows = conn.execute(select(_a.id, _a.code, _a.type, _a.currency, _a.normal_side).where(
        _a.tenant_id == tenant_id, _a.id > after_id, _a.status != "closed",
        or_(_a.type.in_(list(types)), _a.code.in_(list(codes)))).order_by(_a.id).limit(limit))
    return [PolicyAccount(*row) for row in rows]


def last_accrual(conn: Connection, account_id: str, before_date: str) -> AccrualRow | None:
    row = conn.execute(select(interest_accruals).where(_i.account_id == account_id,
                                                       _i.accounting_date < before_date)
                       .order_by(_i.accounting_date.desc()).limit(1)).first()
    return AccrualRow(**row._mapping) if row else None


def accruals_of(conn: Connection, tenant_id: str, date: str) -> list[AccrualRow]:
    rows = conn.execute(select(interest_accruals).where(_i.tenant_id == tenant_id, _i.accounting_date == date)
                        .order_by(_i.account_id))
    return [AccrualRow(**row._mapping) for row in rows]


def last_date(conn: Connection, tenant_id: str) -> str:
    """The tenant's latest accrual date ("" before the first)."""
    return conn.execute(select(func.max(_i.accounting_date)).where(_i.tenant_id == tenant_id)).scalar() or ""


def insert_accruals(conn: Connection, rows: Sequence[AccrualRow]) -> None:
    if rows:
        conn.execute(insert(interest_accruals), [vars(r) for r in rows])
