"""Small reads for people rather than programs: account codes for ids, and the newest events of a tenant.
Each runs in one read snapshot of the caller's tenant."""

from __future__ import annotations

from sqlalchemy import Connection

from tally.domain.fields import check_tenant
from tally.domain.vouchers import AccountRef
from tally.storage import accounts_repo, ledger_repo
from tally.storage.ledger_repo import Event
from tally.storage.uow import UnitOfWork

CODES_PER_READ_MAX = 1000
EVENTS_PER_READ_MAX = 200


def account_codes(uow: UnitOfWork, tenant_id: str, account_ids: set[str]) -> dict[str, str]:
    """id -> code of those of the accounts that are the tenant's; other ids are left out."""
    check_tenant(tenant_id)
    ids = sorted(account_ids)[:CODES_PER_READ_MAX]
    if not ids:
        return {}
    by_id, _ = uow.read({tenant_id}, lambda conn: accounts_repo.find_accounts(
        conn, tenant_id, [AccountRef(id=i) for i in ids]))
    return {account_id: account.code for account_id, account in by_id.items()}


def events_after(uow: UnitOfWork, tenant_id: str, after_sequence: int | None, limit: int) -> list[Event]:
    """The tenant's events after a sequence, oldest first; with None, the newest `limit` events."""
    check_tenant(tenant_id)
    limit = max(1, min(limit, EVENTS_PER_READ_MAX))

    def read(conn: Connection) -> list[Event]:
        after = after_sequence
        if after is None:
            head = ledger_repo.load_heads_readonly(conn, tenant_id)
            after = max(0, (head.event_sequence if head else 0) - limit)
        return ledger_repo.list_events(conn, tenant_id, after_sequence=after, limit=limit)

    return uow.read({tenant_id}, read)
