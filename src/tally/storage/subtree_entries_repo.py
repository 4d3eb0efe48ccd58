"""A subtree's statement: the accounts under a root (id and code), and the next entries of each account
after its own cursor, read as one bounded range of the (account_id, entry_number) key per account."""

from __future__ import annotations

from sqlalchemy import Connection, Row, literal, select, text, union_all

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


def next_entries(conn: Connection, tenant_id: str, cursors: dict[str, int], limit: int) -> list[Row]:
    """Up to `limit` entries of each account after its cursor (an entry number), with the voucher's flow type
    and sequence: one statement, one index range read per account, however long the accounts' histories."""
    if not cursors:
        return []
    branches = []
    for account_id, after in cursors.items():
        branch = (select(voucher_lines, vouchers.c.flow_type, vouchers.c.sequence)
                  .join(vouchers, vouchers.c.id == voucher_lines.c.voucher_id)
                  .where(voucher_lines.c.tenant_id == tenant_id, voucher_lines.c.account_id == account_id,
                         voucher_lines.c.entry_number > after)
                  .order_by(voucher_lines.c.entry_number).limit(limit).subquery())
        branches.append(select(branch))
    return list(conn.execute(union_all(*branches)))


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
