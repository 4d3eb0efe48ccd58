"""What the ledger audit reads and keeps: the journal in sequence pages, balance rows, active holds, event
sequences, the audit log's chain, and the audit's own checkpoints. Read-only towards the ledger; the only
rows written here are the checkpoint tables'. Repository functions never commit."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Row, and_, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tally.storage.tables import (
    accounts,
    audit_account_sums,
    audit_checkpoints,
    audit_heads,
    audit_log,
    balances,
    events,
    holds,
    ledger_heads,
    matchable,
    voucher_lines,
    vouchers,
)


@dataclass(frozen=True)
class Checkpoint:
    tenant_id: str
    voucher_sequence: int
    head_hash: str
    event_sequence: int
    audit_log_id: int
    audit_log_hash: str
    audit_log_count: int
    sums_digest: str
    account_count: int
    findings: int
    full_us: int
    verified_us: int


@dataclass
class AccountSums:
    """One account's journal as far as the audit has read it."""

    entry_count: int = 0
    line_sum: int = 0  # signed on the account's normal side
    last_balance: int = 0  # the last line's balance_after
    last_date: str = ""
    previous_day: int = 0  # balance at the end of the day before last_date

    def row(self) -> tuple[int, int, int, str, int]:
        return (self.entry_count, self.line_sum, self.last_balance, self.last_date, self.previous_day)


SUM_COLUMNS = ("entry_count", "line_sum", "last_balance", "last_date", "previous_day")
VOUCHER_COLUMNS = ("id", "sequence", "flow_type", "request_id", "rule_id", "rule_set_version", "accounting_date",
                   "effective_us", "posted_us", "memo", "metadata", "reverses_id", "previous_hash", "hash")
LINE_COLUMNS = ("voucher_id", "line_no", "account_id", "entry_number", "side", "amount", "currency", "memo",
                "balance_after", "accounting_date", "posted_us")


# ---------------------------------------------------------------------------------------------- checkpoint


def load_checkpoint(conn: Connection, tenant_id: str) -> Checkpoint | None:
    row = conn.execute(select(audit_checkpoints).where(audit_checkpoints.c.tenant_id == tenant_id)).first()
    return Checkpoint(**row._mapping) if row else None


def load_sums(conn: Connection, tenant_id: str) -> dict[str, AccountSums]:
    query = select(audit_account_sums.c.account_id, *(audit_account_sums.c[c] for c in SUM_COLUMNS)).where(
        audit_account_sums.c.tenant_id == tenant_id)
    return {row[0]: AccountSums(*row[1:]) for row in conn.execute(query)}


def save_checkpoint(conn: Connection, checkpoint: Checkpoint, sums: dict[str, AccountSums]) -> None:
    """Writes the checkpoint and the sums of the accounts given (the others are unchanged)."""
    _upsert(conn, audit_checkpoints, ["tenant_id"], [vars(checkpoint)])
    rows = [{"account_id": account_id, "tenant_id": checkpoint.tenant_id,
             **dict(zip(SUM_COLUMNS, s.row(), strict=True))} for account_id, s in sorted(sums.items())]
    for start in range(0, len(rows), 1000):
        _upsert(conn, audit_account_sums, ["account_id"], rows[start:start + 1000])


def _upsert(conn: Connection, table, keys: list[str], rows: list[dict]) -> None:
    if not rows:
        return
    statement = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)
    # Never the tenant: a row stays with its tenant (and the service role may not update that column).
    changed = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in (*keys, "tenant_id")}
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=changed), rows)


# ---------------------------------------------------------------------------------------------- the journal


def ledger_head(conn: Connection, tenant_id: str) -> Row | None:
    return conn.execute(select(ledger_heads).where(ledger_heads.c.tenant_id == tenant_id)).first()


def voucher_hash_at(conn: Connection, tenant_id: str, sequence: int) -> str | None:
    return conn.execute(select(vouchers.c.hash).where(vouchers.c.tenant_id == tenant_id,
                                                      vouchers.c.sequence == sequence)).scalar()


def account_sides(conn: Connection, tenant_id: str) -> dict[str, tuple[str, str, str]]:
    """Every account of the tenant: id -> (code, normal side, status)."""
    query = select(accounts.c.id, accounts.c.code, accounts.c.normal_side, accounts.c.status).where(
        accounts.c.tenant_id == tenant_id)
    return {row[0]: (row[1], row[2], row[3]) for row in conn.execute(query)}


def voucher_page(conn: Connection, tenant_id: str, after_sequence: int, limit: int) -> list[Row]:
    query = (select(*(vouchers.c[c] for c in VOUCHER_COLUMNS))
             .where(vouchers.c.tenant_id == tenant_id, vouchers.c.sequence > after_sequence)
             .order_by(vouchers.c.sequence).limit(limit))
    return list(conn.execute(query))


def lines_of(conn: Connection, tenant_id: str, first_sequence: int, last_sequence: int) -> list[Row]:
    """The lines of the tenant's vouchers in a sequence range, in sequence then line order."""
    query = (select(*(voucher_lines.c[c] for c in LINE_COLUMNS))
             .join(vouchers, vouchers.c.id == voucher_lines.c.voucher_id)
             .where(vouchers.c.tenant_id == tenant_id, vouchers.c.sequence >= first_sequence,
                    vouchers.c.sequence <= last_sequence)
             .order_by(vouchers.c.sequence, voucher_lines.c.line_no))
    return list(conn.execute(query))


def stray_lines(conn: Connection, tenant_id: str) -> int:
    """Lines of the tenant whose voucher is not the tenant's (or missing): the audit never reads them."""
    query = select(func.count()).select_from(voucher_lines).where(
        voucher_lines.c.tenant_id == tenant_id,
        ~exists().where(and_(vouchers.c.id == voucher_lines.c.voucher_id, vouchers.c.tenant_id == tenant_id)))
    return conn.execute(query).scalar_one()


# ---------------------------------------------------------------------------------------------- balances, holds


def balance_rows(conn: Connection, tenant_id: str) -> list[Row]:
    query = select(balances.c.account_id, balances.c.current, balances.c.locked, balances.c.previous_day,
                   balances.c.last_date, balances.c.entry_count).where(balances.c.tenant_id == tenant_id)
    return list(conn.execute(query))


def held_by_account(conn: Connection, tenant_id: str) -> dict[str, int]:
    """What the tenant's active holds still reserve, per account."""
    query = (select(holds.c.account_id, func.sum(holds.c.amount - holds.c.captured))
             .where(holds.c.tenant_id == tenant_id, holds.c.status == "active").group_by(holds.c.account_id))
    return {account_id: int(total) for account_id, total in conn.execute(query)}


# ---------------------------------------------------------------------------------------------- events


def event_span(conn: Connection, tenant_id: str, after_sequence: int) -> tuple[int, int]:
    """How many events follow `after_sequence`, and the last sequence (or `after_sequence` if none)."""
    count, last = conn.execute(select(func.count(), func.max(events.c.sequence)).where(
        events.c.tenant_id == tenant_id, events.c.sequence > after_sequence)).one()
    return count, last if last is not None else after_sequence


def event_gaps(conn: Connection, tenant_id: str, after_sequence: int, last_sequence: int,
               limit: int) -> list[tuple[int, int]]:
    """The missing runs of sequence numbers in (after_sequence, last_sequence], as (first, last) missing."""
    gaps = []
    first = conn.execute(select(func.min(events.c.sequence)).where(
        events.c.tenant_id == tenant_id, events.c.sequence > after_sequence)).scalar()
    if first is not None and first > after_sequence + 1:
        gaps.append((after_sequence + 1, first - 1))
    e, n = events.alias("e"), events.alias("n")
    followed = exists().where(and_(n.c.tenant_id == e.c.tenant_id, n.c.sequence == e.c.sequence + 1))
    next_one = (select(func.min(n.c.sequence)).where(n.c.tenant_id == e.c.tenant_id, n.c.sequence > e.c.sequence)
                .scalar_subquery())
    query = (select(e.c.sequence + 1, next_one - 1)
             .where(e.c.tenant_id == tenant_id, e.c.sequence > after_sequence, e.c.sequence < last_sequence,
                    ~followed)
             .order_by(e.c.sequence).limit(limit))
    gaps += [(int(a), int(b)) for a, b in conn.execute(query)]
    return gaps[:limit]


# ---------------------------------------------------------------------------------------------- the audit log


def audit_rows(conn: Connection, tenant_id: str, after_id: int, limit: int) -> list[Row]:
    query = (select(audit_log).where(audit_log.c.tenant_id == tenant_id, audit_log.c.id > after_id)
             .order_by(audit_log.c.id).limit(limit))
    return list(conn.execute(query))


def audit_head(conn: Connection, tenant_id: str) -> tuple[str, int] | None:
    row = conn.execute(select(audit_heads.c.last_hash, audit_heads.c.row_count)
                       .where(audit_heads.c.tenant_id == tenant_id)).first()
    return (row[0], row[1]) if row else None


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    outcome_prefix: str = ""
    start_us: int | None = None  # inclusive
    end_us: int | None = None  # exclusive


def list_audit_log(conn: Connection, tenant_id: str, where: AuditFilter, *, after_id: int,
                   limit: int) -> list[Row]:
    """The tenant's audit rows matching the filter, oldest first, after `after_id`."""
    if not all(matchable(v) for v in (where.actor, where.action, where.outcome_prefix)):
        return []
    conditions = [audit_log.c.tenant_id == tenant_id, audit_log.c.id > after_id]
    if where.actor:
        conditions.append(audit_log.c.actor == where.actor)
    if where.action:
        conditions.append(audit_log.c.action == where.action)
    if where.outcome_prefix:
        # A prefix compared as text, not LIKE: the caller's text is never a pattern.
        conditions.append(func.substr(audit_log.c.outcome, 1, len(where.outcome_prefix)) == where.outcome_prefix)
    if where.start_us is not None:
        conditions.append(audit_log.c.time_us >= where.start_us)
    if where.end_us is not None:
        conditions.append(audit_log.c.time_us < where.end_us)
    query = select(audit_log).where(and_(*conditions)).order_by(audit_log.c.id).limit(limit)
    return list(conn.execute(query))
