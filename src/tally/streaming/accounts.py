"""What streams need to know about accounts: that the filtered ones exist, and their normal sides."""

from __future__ import annotations

from collections.abc import Sequence

from tally.domain.errors import not_accessible
from tally.domain.vouchers import AccountRef
from tally.storage import accounts_repo
from tally.storage.tables import ID
from tally.storage.uow import UnitOfWork

SHOWN_LENGTH_MAX = 64


def _plausible(account_id: str) -> bool:
    # Anything else cannot name a stored account; and PostgreSQL refuses NUL in text parameters.
    return 0 < len(account_id) <= ID and "\x00" not in account_id


def normal_sides(uow: UnitOfWork, tenant_id: str, account_ids: Sequence[str]) -> dict[str, str]:
    """account id -> "debit" | "credit" for each of the tenant's accounts among `account_ids`. Blocking."""
    refs = [AccountRef(id=i) for i in sorted(set(account_ids)) if _plausible(i)]
    if not refs:
        return {}
    by_id, _ = uow.read({tenant_id}, lambda conn: accounts_repo.find_accounts(conn, tenant_id, refs))
    return {account_id: account.normal_side.value for account_id, account in by_id.items()}


def require_sides(uow: UnitOfWork, tenant_id: str, account_ids: Sequence[str]) -> dict[str, str]:
    """`normal_sides`, refusing (PERMISSION_DENIED ACCOUNT_NOT_ACCESSIBLE) the first id the tenant lacks."""
    sides = normal_sides(uow, tenant_id, account_ids)
    for account_id in account_ids:
        if account_id not in sides:
            shown = account_id[:SHOWN_LENGTH_MAX]  # an error's trailers must stay small
            raise not_accessible("account", shown)
    return sides
