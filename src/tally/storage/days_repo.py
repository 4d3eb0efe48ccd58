"""Accounting days: the close's record, the sums of a day's journal, and what a closed day stores.

A day's vouchers are one range of voucher sequences (the head's accounting date never goes back, and
sequences follow commit order), so every sum here reads the journal by (tenant, sequence): the unique
index the vouchers have anyway. Repository functions never commit."""

from __future__ import annotations

from sqlalchemy import Connection, and_, case, func, insert, not_, or_, select, tuple_, update

from tally.domain.days import (
    AccountingDay,
    ClosingBalance,
    CurrencyTotal,
    DayState,
    DayTotals,
    FlowTotal,
    SummaryLine,
    SummaryScope,
)
from tally.storage.tables import (
    accounting_days,
    accounts,
    day_closing_balances,
    day_currency_totals,
    day_flow_totals,
    day_summary_lines,
    voucher_lines,
    vouchers,
)

_d = accounting_days.c


def _day(row) -> AccountingDay:
    return AccountingDay(row.tenant_id, row.accounting_date, DayState(row.state), row.after_sequence,
                         row.last_sequence, row.voucher_count, row.started_us, row.closed_us, row.event_sequence,
                         accounts_closed=row.accounts_closed)


def get_day(conn: Connection, tenant_id: str, date: str, *, totals: bool = True) -> AccountingDay | None:
    row = conn.execute(select(accounting_days).where(_d.tenant_id == tenant_id, _d.accounting_date == date)).first()
    if row is None:
        return None
    day = _day(row)
    return with_totals(conn, day) if totals and day.state is DayState.CLOSED else day


def with_totals(conn: Connection, day: AccountingDay) -> AccountingDay:
    c, f = day_currency_totals.c, day_flow_totals.c
    currencies = tuple(CurrencyTotal(r.currency, r.debit_total, r.credit_total, r.line_count) for r in conn.execute(
        select(day_currency_totals).where(c.tenant_id == day.tenant_id, c.accounting_date == day.date)
        .order_by(c.currency)))
    flows = tuple(FlowTotal(r.flow_type, r.currency, r.voucher_count, r.amount_total, bool(r.summarized),
                            tuple(p for p in r.summary_accounts.split(",") if p)) for r in conn.execute(
        select(day_flow_totals).where(f.tenant_id == day.tenant_id, f.accounting_date == day.date)
        .order_by(f.flow_type, f.currency)))
    return AccountingDay(**{**vars(day), "currencies": currencies, "flows": flows})


def list_days(conn: Connection, tenant_id: str, *, before_date: str, limit: int) -> list[AccountingDay]:
    """The tenant's recorded days before `before_date`, newest first (with their totals when closed)."""
    rows = conn.execute(select(accounting_days).where(_d.tenant_id == tenant_id, _d.accounting_date < before_date)
                        .order_by(_d.accounting_date.desc()).limit(limit)).all()
    return [with_totals(conn, d) if d.state is DayState.CLOSED else d for d in map(_day, rows)]


def last_day(conn: Connection, tenant_id: str) -> AccountingDay | None:
    """The latest recorded day (closing or closed): where the next day's vouchers start."""
    row = conn.execute(select(accounting_days).where(_d.tenant_id == tenant_id)
                       .order_by(_d.accounting_date.desc()).limit(1)).first()
    return _day(row) if row else None


def last_closed_date(conn: Connection, tenant_id: str) -> str:
    """The tenant's latest closed day ("" before the first close)."""
    return conn.execute(select(func.max(_d.accounting_date)).where(
        _d.tenant_id == tenant_id, _d.state == DayState.CLOSED.value)).scalar() or ""


def unclosed_range(conn: Connection, tenant_id: str, after_sequence: int, through_date: str) -> tuple[str | None, int]:
    """(the earliest date, the last sequence) of the vouchers after `after_sequence` dated on or before
    `through_date`; (None, after_sequence) when there are none."""
    v = vouchers.c
    row = conn.execute(select(func.min(v.accounting_date), func.max(v.sequence))
                       .where(v.tenant_id == tenant_id, v.sequence > after_sequence,
                              v.accounting_date <= through_date)).first()
    return (row[0], int(row[1])) if row and row[1] is not None else (None, after_sequence)


def insert_day(conn: Connection, day: AccountingDay) -> None:
    conn.execute(insert(accounting_days).values(
        tenant_id=day.tenant_id, accounting_date=day.date, state=day.state.value, after_sequence=day.after_sequence,
        last_sequence=day.last_sequence, voucher_count=0, accounts_closed=0, started_us=day.started_us,
        closed_us=0, event_sequence=0))


def _in_day(tenant_id: str, after_sequence: int, last_sequence: int):
    v = vouchers.c
    return and_(v.tenant_id == tenant_id, v.sequence > after_sequence, v.sequence <= last_sequence)


def _day_lines(tenant_id: str, after_sequence: int, last_sequence: int):
    """The lines of the day's vouchers, joined to their voucher."""
    return voucher_lines.join(vouchers, voucher_lines.c.voucher_id == vouchers.c.id), \
        _in_day(tenant_id, after_sequence, last_sequence)


def sum_day(conn: Connection, tenant_id: str, after_sequence: int, last_sequence: int,
            summarize: SummaryScope | None = None) -> DayTotals:
    """The day's postings per currency and per flow type, each moved account's closing balance, and the
    summary lines of the flows (and accounts) in `summarize`. Sums are exact: PostgreSQL sums bigint as numeric; SQLite
    refuses a sum past int64 rather than round it."""
    lines, where = _day_lines(tenant_id, after_sequence, last_sequence)
    ln, v = voucher_lines.c, vouchers.c
    debit = func.sum(case((ln.side == "debit", ln.amount), else_=0))
    credit = func.sum(case((ln.side == "credit", ln.amount), else_=0))
    currencies = tuple(CurrencyTotal(r[0], int(r[1]), int(r[2]), int(r[3])) for r in conn.execute(
        select(ln.currency, debit, credit, func.count()).select_from(lines).where(where)
        .group_by(ln.currency).order_by(ln.currency)))
    summarize = summarize or {}
    flows = tuple(FlowTotal(r[0], r[1], int(r[2]), int(r[3]), r[0] in summarize, summarize.get(r[0], ()))
                  for r in conn.execute(
        select(v.flow_type, ln.currency, func.count(func.distinct(v.id)), func.sum(ln.amount))
        .select_from(lines).where(where, ln.side == "debit")
        .group_by(v.flow_type, ln.currency).order_by(v.flow_type, ln.currency)))
    voucher_count = conn.execute(select(func.count()).select_from(vouchers).where(where)).scalar_one()
    return DayTotals(currencies, flows, _closing(conn, lines, where), int(voucher_count),
                     _summary_lines(conn, lines, where, summarize))


def in_scope(scope: SummaryScope):
    """The condition that a line (of the vouchers joined to their lines and accounts) is summarized."""
    v, code = vouchers.c, accounts.c.code
    return or_(*(and_(v.flow_type == flow, or_(*(code.startswith(p, autoescape=True) for p in prefixes)))
                 if prefixes else v.flow_type == flow for flow, prefixes in sorted(scope.items())))


def _summary_lines(conn: Connection, lines, where, summarize: SummaryScope) -> tuple[SummaryLine, ...]:
    if not summarize:
        return ()
    ln, v = voucher_lines.c, vouchers.c
    query = (select(v.flow_type, ln.currency, ln.account_id, ln.side, func.sum(ln.amount), func.count())
             .select_from(lines.join(accounts, accounts.c.id == ln.account_id))
             .where(where, in_scope(summarize))
             .group_by(v.flow_type, ln.currency, ln.account_id, ln.side)
             .order_by(v.flow_type, ln.currency, ln.account_id, ln.side))
    return tuple(SummaryLine(r[0], r[1], r[2], r[3], int(r[4]), int(r[5])) for r in conn.execute(query))


def _closing(conn: Connection, lines, where) -> tuple[ClosingBalance, ...]:
    ln = voucher_lines.c
    last = (select(ln.account_id, func.max(ln.entry_number).label("last")).select_from(lines).where(where)
            .group_by(ln.account_id).subquery())
    row_of = voucher_lines.alias("closing_line")
    query = (select(last.c.account_id, row_of.c.currency, row_of.c.balance_after, last.c.last)
             .join(row_of, and_(row_of.c.account_id == last.c.account_id, row_of.c.entry_number == last.c.last))
             .order_by(last.c.account_id))
    return tuple(ClosingBalance(r[0], r[1], int(r[2]), int(r[3])) for r in conn.execute(query))


def store_closed(conn: Connection, day: AccountingDay, totals: DayTotals) -> None:
    """Writes the day's totals and closing balances and marks it closed, as `day` says."""
    tenant_id, date = day.tenant_id, day.date
    if totals.currencies:
        conn.execute(insert(day_currency_totals), [
            {"tenant_id": tenant_id, "accounting_date": date, "currency": c.currency, "debit_total": c.debit_total,
             "credit_total": c.credit_total, "line_count": c.line_count} for c in totals.currencies])
    if totals.flows:
        conn.execute(insert(day_flow_totals), [
            {"tenant_id": tenant_id, "accounting_date": date, "flow_type": f.flow_type, "currency": f.currency,
             "voucher_count": f.voucher_count, "amount_total": f.amount_total, "summarized": int(f.summarized),
             "summary_accounts": ",".join(f.summary_accounts)}
            for f in totals.flows])
    for start in range(0, len(totals.summary_lines), CLOSING_ROWS_PER_STATEMENT):
        conn.execute(insert(day_summary_lines), [
            {"tenant_id": tenant_id, "accounting_date": date, "flow_type": s.flow_type, "currency": s.currency,
             "account_id": s.account_id, "side": s.side, "amount": s.amount, "line_count": s.line_count}
            for s in totals.summary_lines[start:start + CLOSING_ROWS_PER_STATEMENT]])
    for start in range(0, len(totals.closing), CLOSING_ROWS_PER_STATEMENT):
        conn.execute(insert(day_closing_balances), [
            {"account_id": b.account_id, "accounting_date": date, "tenant_id": tenant_id, "currency": b.currency,
             "balance": b.balance, "entry_count": b.entry_count}
            for b in totals.closing[start:start + CLOSING_ROWS_PER_STATEMENT]])
    conn.execute(update(accounting_days).where(_d.tenant_id == tenant_id, _d.accounting_date == date).values(
        state=DayState.CLOSED.value, voucher_count=day.voucher_count, accounts_closed=day.accounts_closed,
        closed_us=day.closed_us, event_sequence=day.event_sequence))


CLOSING_ROWS_PER_STATEMENT = 5000


def closing_balance(conn: Connection, tenant_id: str, account_id: str, date: str) -> tuple[str, int] | None:
    """(the date, the balance) of the account's last closing balance on or before `date`, if any."""
    c = day_closing_balances.c
    row = conn.execute(select(c.accounting_date, c.balance).where(
        c.tenant_id == tenant_id, c.account_id == account_id, c.accounting_date <= date)
        .order_by(c.accounting_date.desc()).limit(1)).first()
    return (row[0], int(row[1])) if row else None


def closing_balances(conn: Connection, tenant_id: str, date: str, *, after_account: str,
                     limit: int) -> list[ClosingBalance]:
    """The closing balances the close of `date` stored (the accounts the day moved), by account id."""
    c = day_closing_balances.c
    rows = conn.execute(select(c.account_id, c.currency, c.balance, c.entry_count).where(
        c.tenant_id == tenant_id, c.accounting_date == date, c.account_id > after_account)
        .order_by(c.account_id).limit(limit))
    return [ClosingBalance(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def summary_lines(conn: Connection, tenant_id: str, date: str) -> list[SummaryLine]:
    s = day_summary_lines.c
    rows = conn.execute(select(s.flow_type, s.currency, s.account_id, s.side, s.amount, s.line_count).where(
        s.tenant_id == tenant_id, s.accounting_date == date).order_by(s.flow_type, s.currency, s.account_id, s.side))
    return [SummaryLine(r[0], r[1], r[2], r[3], int(r[4]), int(r[5])) for r in rows]


def detail_voucher_ids(conn: Connection, tenant_id: str, day: AccountingDay, flow_type: str, currency: str, *,
                       after_sequence: int, limit: int) -> list[str]:
    """The detail vouchers of a summary: the flow's vouchers in the day's range with a line in the currency,
    by sequence (the (tenant, flow type, sequence) index)."""
    v, ln = vouchers.c, voucher_lines.c
    has_line = select(ln.voucher_id).where(ln.voucher_id == v.id, ln.currency == currency).exists()
    rows = conn.execute(select(v.id).where(
        v.tenant_id == tenant_id, v.flow_type == flow_type, v.sequence > max(after_sequence, day.after_sequence),
        v.sequence <= day.last_sequence, has_line).order_by(v.sequence).limit(limit))
    return list(rows.scalars())


def detail_lines(conn: Connection, tenant_id: str, day: AccountingDay, summarized: SummaryScope, *,
                 after: tuple[int, int], limit: int) -> list:
    """The day's lines that no summary holds, after (sequence, line_no), with their voucher's id and flow
    type and the account's code, in journal order."""
    v, ln = vouchers.c, voucher_lines.c
    query = (select(v.sequence, v.id, v.flow_type, ln.line_no, ln.account_id, accounts.c.code, ln.side, ln.amount,
                    ln.currency, ln.memo)
             .select_from(voucher_lines.join(vouchers, ln.voucher_id == v.id)
                          .join(accounts, accounts.c.id == ln.account_id))
             .where(_in_day(tenant_id, day.after_sequence, day.last_sequence),
                    tuple_(v.sequence, ln.line_no) > tuple_(*after))
             .order_by(v.sequence, ln.line_no).limit(limit))
    if summarized:
        query = query.where(not_(in_scope(summarized)))
    return conn.execute(query).all()


def account_codes(conn: Connection, tenant_id: str, account_ids: set[str]) -> dict[str, str]:
    if not account_ids:
        return {}
    rows = conn.execute(select(accounts.c.id, accounts.c.code).where(accounts.c.tenant_id == tenant_id,
                                                                     accounts.c.id.in_(sorted(account_ids))))
    return dict(rows.all())
