"""Account subtrees: a parent's children, and every descendant's balance row, by a recursive query over
(tenant_id, parent_id) bounded by the hierarchy's depth."""

from __future__ import annotations

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
