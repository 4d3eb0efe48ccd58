"""A subtree's statement: the accounts under a root (id and code), and the next entries of each account
after its own cursor, read as one bounded range of the (account_id, entry_number) key per account."""

from __future__ import annotations

from sqlalchemy import Connection, Row, literal, select, text

from tally.domain import limits
from tally.storage.tables import accounts, matchable, voucher_lines, vouchers


def descendants(conn: Connection, tenant_id: str, root_id: str, limit: int) -> list[tuple[str, str]]:
    """(id, code) of every account under `root_id` (not itself), at most `limit` (the caller asks for one
    more than it accepts, to know when a subtree is too large)."""
    if not matchable(root_id):
        return []
    tree = (select(accounts.c.id, accounts.c.code, literal(1).label("depth"))
            .where(accounts.c.tenant_id == tenant_id, accounts.c.parent_id == root_id)
            .cte("tree", recursive=True))
    child = accounts.alias("child")
    # The depth bound keeps a walk finite even if a cycle ever got into the table.
    tree = tree.union_all(select(child.c.id, child.c.code, tree.c.depth + 1)
                          .where(child.c.tenant_id == tenant_id, child.c.parent_id == tree.c.id,
                                 tree.c.depth < limits.ACCOUNT_DEPTH_MAX))
    return [(r.id, r.code) for r in conn.execute(select(tree.c.id, tree.c.code).order_by(tree.c.id).limit(limit))]


# PostgreSQL: one statement of one shape however many accounts (a 100-branch UNION ALL took longer to plan
# than to run), each account a LATERAL range read of its (account_id, entry_number) key.
_NEXT_ENTRIES_LATERAL = text(
    "SELECT x.* FROM unnest(CAST(:accounts AS varchar[]), CAST(:afters AS bigint[])) AS c(account_id, after_entry) "
    "CROSS JOIN LATERAL (SELECT l.voucher_id, l.line_no, l.tenant_id, l.account_id, l.entry_number, l.side, "
    "l.amount, l.currency, l.memo, l.balance_after, l.accounting_date, l.posted_us, v.flow_type, v.sequence "
    "FROM voucher_lines l JOIN vouchers v ON v.id = l.voucher_id "
    "WHERE l.tenant_id = :tenant AND l.account_id = c.account_id AND l.entry_number > c.after_entry "
    "AND l.entry_number <= c.after_entry + :limit ORDER BY l.entry_number) AS x")


def next_entries(conn: Connection, tenant_id: str, cursors: dict[str, int], limit: int) -> list[Row]:
    """Up to `limit` entries of each account after its cursor (an entry number), with the voucher's flow type
    and sequence. An account's entries are numbered 1, 2, 3... with no gap, so each read is the closed range
    (cursor, cursor + limit] of the (account_id, entry_number) key: bounded whatever plan the database picks
    (with `> cursor ... LIMIT` alone, PostgreSQL chose a bitmap scan of all later entries and a sort)."""
    if not cursors:
        return []
    if conn.dialect.name == "postgresql":
        return list(conn.execute(_NEXT_ENTRIES_LATERAL, {"accounts": list(cursors), "afters": list(cursors.values()),
                                                         "tenant": tenant_id, "limit": limit}))
    # SQLite runs in-process: a statement per account costs no round trip, and keeps one cached shape.
    rows: list[Row] = []
    for account_id, after in cursors.items():
        rows.extend(conn.execute(
            select(voucher_lines, vouchers.c.flow_type, vouchers.c.sequence)
            .join(vouchers, vouchers.c.id == voucher_lines.c.voucher_id)
            .where(voucher_lines.c.tenant_id == tenant_id, voucher_lines.c.account_id == account_id,
                   voucher_lines.c.entry_number > after, voucher_lines.c.entry_number <= after + limit)
            .order_by(voucher_lines.c.entry_number)))
    return rows


def last_entry_at(conn: Connection, account_id: str, sequence: int, line_no: int) -> int:
    """The number of the account's last entry at or before line `line_no` of voucher `sequence`; 0 when there
    is none. An account's entries follow the voucher sequence, so a binary search over its entry numbers finds
    it in about log2(entries) look-ups of the (account, entry number) key (as journal_repo.last_entry_where
    does for dates)."""
    probe = ("(SELECT v.sequence < :sequence OR (v.sequence = :sequence AND l.line_no <= :line_no) "
             "FROM voucher_lines l JOIN vouchers v ON v.id = l.voucher_id "
             "WHERE l.account_id = :account AND l.entry_number = (lo + hi + 1) / 2)")
    sql = (f"WITH RECURSIVE search(lo, hi) AS ("
           f"SELECT CAST(0 AS BIGINT), (SELECT entry_count FROM balances WHERE account_id = :account) "
           f"UNION ALL SELECT CASE WHEN {probe} THEN (lo + hi + 1) / 2 ELSE lo END, "
           f"CASE WHEN {probe} THEN hi ELSE (lo + hi + 1) / 2 - 1 END FROM search WHERE lo < hi) "
           f"SELECT max(lo) FROM search")
    return conn.execute(text(sql), {"account": account_id, "sequence": sequence, "line_no": line_no}).scalar() or 0
