"""Writers of different tenants side by side on PostgreSQL never fail each other: every tenant's rows are its
own, but a table holding one row per tenant (ledger_heads) fits in one page, where SERIALIZABLE's predicate
locks would make two tenants' writers conflict on every overlap (each was retried, and a busy tenant could
starve a slower one until it ran out of retries). Gated writers run at REPEATABLE READ (storage/engine.py
says why that excludes every anomaly SERIALIZABLE did)."""

from __future__ import annotations

import asyncio

from tally.service.posting.batch import Posted
from tests.integration.conftest import FUNDING, check_ledger

TENANTS = ("t1", "t2")  # on different writers of four (crc32 % 4: 3 and 1)


async def test_two_busy_tenants_never_retry_because_of_each_other(postgres_url, make_ledger):
    ledger = make_ledger(postgres_url, writers=4)
    retries: list[str] = []
    ledger.uow.on_retry.append(retries.append)
    for tenant in TENANTS:
        ledger.open_internal(FUNDING, tenant=tenant)
        for code in ("a", "b"):
            ledger.open(code, tenant=tenant)
        await ledger.fund("a", 10_000, tenant=tenant)

    async def client(tenant: str) -> None:
        for n in range(40):
            assert isinstance(await ledger.transfer("a", "b", n + 1, tenant=tenant), Posted)

    await asyncio.gather(*(client(tenant) for tenant in TENANTS for _ in range(4)))
    assert retries == []
    for tenant in TENANTS:
        assert ledger.balance("b", tenant=tenant) == 4 * sum(range(1, 41))
    check_ledger(postgres_url)
