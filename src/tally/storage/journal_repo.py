"""Vouchers and their lines: written once, never updated."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, Connection, Row, and_, func, or_, select, text

from tally.domain.accounts import Side
from tally.domain.vouchers import PostedLine, Voucher
from tally.storage import bulk
from tally.storage.compact import digest_bytes
from tally.storage.tables import accounts, matchable, voucher_lines, vouchers

VOUCHER_COLUMNS = ("id", "tenant_id", "sequence", "flow_type", "request_id", "rule_id", "rule_set_version",
                   "accounting_date", "effective_us", "posted_us", "memo", "metadata", "reverses_id",
                   "previous_hash", "hash")
LINE_COLUMNS = ("voucher_id", "line_no", "tenant_id", "account_id", "entry_number", "side", "amount", "currency",
                "memo", "balance_after", "accounting_date", "posted_us")


def insert_vouchers(conn: Connection, items: Sequence[Voucher]) -> None:
    if not items:
        return
    bulk.insert_rows(conn, vouchers, VOUCHER_COLUMNS, voucher_rows(items))
    bulk.insert_rows(conn, voucher_lines, LINE_COLUMNS, line_rows(items))


def voucher_rows(items: Iterable[Voucher]) -> list[tuple]:
    """Each voucher's `VOUCHER_COLUMNS`, in that order."""
    return [(v.id, v.tenant_id, v.sequence, v.flow_type, v.request_id, v.rule_id, v.rule_set_version,
             v.accounting_date, v.effective_us, v.posted_us, v.memo,
             json.dumps(v.metadata, sort_keys=True) if v.metadata else "{}", v.reverses_id,
             digest_bytes(v.previous_hash), digest_bytes(v.hash))
            for v in items]


def line_rows(items: Iterable[Voucher]) -> list[tuple]:
    """The vouchers' lines, each as its `LINE_COLUMNS`."""
    return [(v.id, ln.line_no, v.tenant_id, ln.account_id, ln.entry_number, ln.side.value, ln.amount, ln.currency,
             ln.memo, ln.balance_after, v.accounting_date, v.posted_us) for v in items for ln in v.lines]


def get_vouchers(conn: Connection, tenant_id: str, ids: Sequence[str]) -> list[Voucher]:
    """The vouchers with these ids, in the order asked; absent or foreign ids are left out."""
    wanted = [i for i in ids if matchable(i)]
    if not wanted:
        return []
    rows = conn.execute(select(vouchers).where(vouchers.c.tenant_id == tenant_id,
                                               vouchers.c.id.in_(wanted))).all()
    found = _assemble(conn, rows)
    return [found[i] for i in ids if i in found]


def list_vouchers(conn: Connection, tenant_id: str, *, after_sequence: int, limit: int,
                  account_id: str | None = None, flow_type: str | None = None) -> list[Voucher]:
    if not (matchable(account_id) and matchable(flow_type)):
        return []
    conditions = [vouchers.c.tenant_id == tenant_id, vouchers.c.sequence > after_sequence]
    if flow_type:
        conditions.append(vouchers.c.flow_type == flow_type)
    if account_id:
        conditions.append(vouchers.c.id.in_(_account_voucher_ids(conn, conditions, account_id, after_sequence, limit)))
    rows = conn.execute(select(vouchers).where(and_(*conditions))
                        .order_by(vouchers.c.sequence).limit(limit)).all()
    found = _assemble(conn, rows)
    return [found[r.id] for r in rows]


def _account_voucher_ids(conn: Connection, conditions: list, account_id: str, after_sequence: int,
                         limit: int) -> list[str]:
    """The ids of the first `limit` vouchers meeting `conditions` with a line on the account, read off the
    account's entries: their order is the vouchers' order, so a page starts at the entry of the voucher it
    resumes after and reads no entry before it, however long the account's history."""
    on_account = and_(voucher_lines.c.voucher_id == vouchers.c.id, voucher_lines.c.account_id == account_id)
    after_entry = conn.execute(select(func.max(voucher_lines.c.entry_number)).select_from(voucher_lines)
                               .join(vouchers, on_account)
                               .where(conditions[0], vouchers.c.sequence == after_sequence)).scalar() or 0
    ids: dict[str, None] = {}
    while len(ids) < limit:
        rows = conn.execute(select(vouchers.c.id, voucher_lines.c.entry_number).select_from(voucher_lines)
                            .join(vouchers, on_account)
                            .where(*conditions, voucher_lines.c.entry_number > after_entry)
                            .order_by(voucher_lines.c.entry_number).limit(limit)).all()
        ids.update((row.id, None) for row in rows)
        if len(rows) < limit:
            break
        after_entry = rows[-1].entry_number
    return list(ids)


def reversed_originals(conn: Connection, original_ids: Iterable[str]) -> set[str]:
    ids = list(set(original_ids))
    if not ids:
        return set()
    rows = conn.execute(select(vouchers.c.reverses_id).where(vouchers.c.reverses_id.in_(ids)))
    return {r.reverses_id for r in rows}


def _assemble(conn: Connection, rows: Sequence[Row]) -> dict[str, Voucher]:
    if not rows:
        return {}
    ids = [r.id for r in rows]
    lines: dict[str, list[PostedLine]] = {i: [] for i in ids}
    rows_of_lines = conn.execute(select(voucher_lines).where(voucher_lines.c.voucher_id.in_(ids))
                                 .order_by(voucher_lines.c.voucher_id, voucher_lines.c.line_no)).all()
    # The codes of the page's accounts only: a join made the planner hash every account of the database.
    account_ids = sorted({ln.account_id for ln in rows_of_lines})
    codes = dict(conn.execute(select(accounts.c.id, accounts.c.code).where(accounts.c.id.in_(account_ids))).all())
    for ln in rows_of_lines:
        lines[ln.voucher_id].append(PostedLine(
            ln.line_no, ln.account_id, codes.get(ln.account_id, ""), Side(ln.side), ln.amount, ln.currency, ln.memo,
            ln.entry_number, ln.balance_after))
    reversed_by = dict(conn.execute(select(vouchers.c.reverses_id, vouchers.c.id)
                                    .where(vouchers.c.reverses_id.in_(ids))).all())
    return {r.id: Voucher(
        id=r.id, tenant_id=r.tenant_id, sequence=r.sequence, flow_type=r.flow_type,
        request_id=r.request_id, accounting_date=r.accounting_date, effective_us=r.effective_us,
        posted_us=r.posted_us, lines=tuple(lines[r.id]), memo=r.memo, metadata=json.loads(r.metadata),
        reverses_id=r.reverses_id, reversed_by_id=reversed_by.get(r.id), rule_id=r.rule_id,
        rule_set_version=r.rule_set_version, previous_hash=r.previous_hash, hash=r.hash,
    ) for r in rows}


def list_entries(conn: Connection, tenant_id: str, account_id: str, *, after_entry: int, limit: int,
                 start_date: str | None = None, end_date: str | None = None) -> list[Row]:
    """The account's entries after `after_entry`, within the dates when given: the dates become a range of
    entry numbers first (`last_entry_where`), so a page reads only its own entries."""
    if start_date:
        after_entry = max(after_entry, last_entry_where(conn, account_id, voucher_lines.c.accounting_date,
                                                        start_date, inclusive=False))
    conditions = [voucher_lines.c.tenant_id == tenant_id, voucher_lines.c.account_id == account_id,
                  voucher_lines.c.entry_number > after_entry]
    if end_date:
        conditions.append(voucher_lines.c.entry_number <= last_entry_where(
            conn, account_id, voucher_lines.c.accounting_date, end_date))
    query = (select(voucher_lines, vouchers.c.flow_type)
             .join(vouchers, vouchers.c.id == voucher_lines.c.voucher_id)
             .where(and_(*conditions)).order_by(voucher_lines.c.entry_number).limit(limit))
    return list(conn.execute(query))


def last_entry_where(conn: Connection, account_id: str, column: ColumnElement, bound: object, *,
                     inclusive: bool = True) -> int:
    """The number of the account's last entry whose `column` (its posting time or accounting date) is at most
    `bound` (below it, when not inclusive); 0 when there is none. An account's entries follow both (posting
    times and accounting dates never go back within a tenant), so a binary search over its entry numbers finds
    it: about log2(entries) look-ups of the (account, entry number) key, in one query, where an index per
    column would cost every line written two more index entries."""
    op = "<=" if inclusive else "<"
    probe = (f"(SELECT {column.name} {op} :bound FROM voucher_lines WHERE account_id = :account "
             "AND entry_number = (lo + hi + 1) / 2)")
    sql = (f"WITH RECURSIVE search(lo, hi) AS ("
           f"SELECT CAST(0 AS BIGINT), (SELECT entry_count FROM balances WHERE account_id = :account) "
           f"UNION ALL SELECT CASE WHEN {probe} THEN (lo + hi + 1) / 2 ELSE lo END, "
           f"CASE WHEN {probe} THEN hi ELSE (lo + hi + 1) / 2 - 1 END FROM search WHERE lo < hi) "
           f"SELECT max(lo) FROM search")
    return conn.execute(text(sql), {"account": account_id, "bound": bound}).scalar() or 0


def balance_before_entry(conn: Connection, account_id: str, entry_number: int) -> int:
    if entry_number <= 1:
        return 0
    value = conn.execute(select(voucher_lines.c.balance_after).where(
        voucher_lines.c.account_id == account_id,
        voucher_lines.c.entry_number == entry_number - 1)).scalar()
    return value or 0


def vouchers_with_stray_lines(conn: Connection, tenant_id: str, first_sequence: int, last_sequence: int) -> set[str]:
    """Vouchers in a sequence range whose lines' own copies of accounting date or posting time differ from
    the voucher's: the hash covers the voucher's, statements and as-of balances read the lines'."""
    query = (select(vouchers.c.id).distinct()
             .join(voucher_lines, voucher_lines.c.voucher_id == vouchers.c.id)
             .where(vouchers.c.tenant_id == tenant_id, vouchers.c.sequence >= first_sequence,
                    vouchers.c.sequence <= last_sequence,
                    or_(voucher_lines.c.accounting_date != vouchers.c.accounting_date,
                        voucher_lines.c.posted_us != vouchers.c.posted_us)))
    return {row.id for row in conn.execute(query)}
