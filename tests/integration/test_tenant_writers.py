"""Writers per tenant: the pipeline's writer threads each serve their own tenants, and a tenant whose writes
wait (here for another process holding its gate) holds up no other tenant's."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from tally.service.posting.batch import Posted
from tally.storage.engine import gate_key
from tests.integration.conftest import FUNDING, check_ledger

WAITING, FREE = "north", "south"  # on different writers of four (crc32 % 4: 2 and 0)


async def test_a_tenant_that_waits_holds_up_no_other_tenant(postgres_url, make_ledger):
    ledger = make_ledger(postgres_url, writers=4)
    for tenant in (WAITING, FREE):
        ledger.open_internal(FUNDING, tenant=tenant)
        ledger.open("wallet", tenant=tenant)
    other_process = sa.create_engine(postgres_url)
    try:
        with other_process.connect() as holder:
            holder.exec_driver_sql("SELECT pg_advisory_lock(%s)", (gate_key(WAITING),))
            holder.commit()
            waiting = asyncio.ensure_future(ledger.fund("wallet", 5, tenant=WAITING))
            free = await asyncio.wait_for(ledger.fund("wallet", 7, tenant=FREE), 10)
            assert isinstance(free, Posted) and ledger.balance("wallet", tenant=FREE) == 7
            await asyncio.sleep(0.2)
            assert not waiting.done(), "a write got past its tenant's gate held by another process"
            holder.exec_driver_sql("SELECT pg_advisory_unlock_all()")
            holder.commit()
            assert isinstance(await asyncio.wait_for(waiting, 10), Posted)
    finally:
        other_process.dispose()
    assert ledger.balance("wallet", tenant=WAITING) == 5
    check_ledger(postgres_url)


async def test_many_tenants_on_many_writers_keep_every_tenants_sequence_in_commit_order(database_url, make_ledger):
    """Eight tenants posting at once through four writers (one on SQLite): every tenant's vouchers are
    numbered 1..n without a gap and its hash chain holds (check_ledger), and every transfer landed once."""
    ledger = make_ledger(database_url, writers=4)
    tenants = [f"tenant-{i}" for i in range(8)]
    for tenant in tenants:
        ledger.open_internal(FUNDING, tenant=tenant)
        ledger.open("a", tenant=tenant)
        ledger.open("b", tenant=tenant)
    await asyncio.gather(*(ledger.fund("a", 1_000, tenant=tenant) for tenant in tenants))

    async def client(tenant: str) -> None:
        for n in range(20):
            await ledger.transfer("a", "b", n + 1, tenant=tenant)

    await asyncio.gather(*(client(tenant) for tenant in tenants for _ in range(3)))
    facts = check_ledger(database_url)
    for tenant in tenants:
        assert [v.sequence for v in facts.vouchers[tenant]] == list(range(1, 62))
        assert ledger.balance("b", tenant=tenant) == 3 * sum(range(1, 21))
