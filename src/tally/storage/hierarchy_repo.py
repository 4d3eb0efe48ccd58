"""Account subtrees: a parent's children, and every descendant's balance row, by a recursive query over
(tenant_id, parent_id) bounded by the hierarchy's depth."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, func, literal, select

from tally.domain import limits
from tally.domain.accounts import Side
from tally.domain.hierarchy import Node
from tally.storage.tables import accounts, balances, matchable


def count_children(conn: Connection, tenant_id: str, parent_id: str) -> int:
    return conn.execute(select(func.count()).select_from(accounts).where(
        accounts.c.tenant_id == tenant_id, accounts.c.parent_id == parent_id)).scalar_one()


def descendants(conn: Connection, tenant_id: str, root_id: str, limit: int) -> list[Node]:
    """Every account under `root_id` (not itself) with its balance, at most `limit` (the caller asks for
    one more than it accepts, to know when a subtree is too large)."""
    if not matchable(root_id):
        return []
    tree = (select(accounts.c.id, literal(1).label("depth"))
            .where(accounts.c.tenant_id == tenant_id, accounts.c.parent_id == root_id)
            .cte("tree", recursive=True))
    child = accounts.alias("child")
    # The depth bound keeps a walk finite even if a cycle ever got into the table.
    tree = tree.union_all(select(child.c.id, tree.c.depth + 1)
                          .where(child.c.tenant_id == tenant_id, child.c.parent_id == tree.c.id,
                                 tree.c.depth < limits.ACCOUNT_DEPTH_MAX))
    query = (select(accounts.c.currency, accounts.c.normal_side, balances.c.current, balances.c.locked)
             .select_from(tree.join(accounts, accounts.c.id == tree.c.id)
                          .join(balances, balances.c.account_id == tree.c.id))
             .limit(limit))
    return [Node(currency, Side(side), current, locked) for currency, side, current, locked in conn.execute(query)]


def ancestors(conn: Connection, tenant_id: str, parent_ids: Iterable[str]) -> dict[str, tuple[str | None, str]]:
    """The accounts `parent_ids` and every account above them: id -> (its parent's id, its code). One
    recursive query, bounded by the hierarchy's depth."""
    ids = sorted(i for i in set(parent_ids) if matchable(i))
    if not ids:
        return {}
    up = (select(accounts.c.id, accounts.c.parent_id, accounts.c.code, literal(1).label("depth"))
          .where(accounts.c.tenant_id == tenant_id, accounts.c.id.in_(ids))
          .cte("up", recursive=True))
    parent = accounts.alias("parent")
    up = up.union_all(select(parent.c.id, parent.c.parent_id, parent.c.code, up.c.depth + 1)
                      .where(parent.c.tenant_id == tenant_id, parent.c.id == up.c.parent_id,
                             up.c.depth < limits.ACCOUNT_DEPTH_MAX))
    return {row.id: (row.parent_id, row.code) for row in conn.execute(select(up.c.id, up.c.parent_id, up.c.code))}
