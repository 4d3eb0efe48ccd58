"""`batch_reads.read_opening`: what the batch writer knows before it applies anything. PostgreSQL sends
its reads together through the driver and SQLite reads them one by one through the repositories; both
must find exactly the same things."""

from __future__ import annotations

from tally.domain.vouchers import GENESIS_HASH, AccountRef
from tally.storage.batch_reads import read_opening
from tests.integration.conftest import TENANT

OTHER = "globex"


async def test_the_opening_finds_what_the_batch_names_and_only_in_its_tenant(database_url, make_ledger):
    ledger = make_ledger(database_url)
    ledger.open_internal("funding")
    alice = ledger.open("alice")
    ledger.open("bob")
    ledger.open_internal("funding", tenant=OTHER)
    theirs = ledger.open("carol", tenant=OTHER)
    posted = await ledger.fund("alice", 500)
    refs = {TENANT: [AccountRef(code="alice"), AccountRef(id=alice.id), AccountRef(code="bob"),
                     AccountRef(code="carol"), AccountRef(id=theirs.id), AccountRef(code="nobody"),
                     AccountRef(id="bad\x00id")],
            "newcomer": [AccountRef(code="alice")]}
    keys = [(TENANT, posted.vouchers[0].request_id), (TENANT, "never-sent"), (OTHER, posted.vouchers[0].request_id),
            (TENANT, "nul\x00request")]

    opening = ledger.uow.write({TENANT, "newcomer"}, lambda conn: read_opening(
        conn, [TENANT, "newcomer", TENANT], keys, refs))

    mine = opening.accounts[TENANT]
    assert set(mine.by_id) == {alice.id}  # another tenant's id is not found
    assert set(mine.by_code) == {"alice", "bob"}
    assert opening.accounts["newcomer"].by_id == {} and opening.accounts["newcomer"].by_code == {}
    assert set(opening.balances) == {alice.id, mine.by_code["bob"].id}
    assert opening.balances[alice.id].current == 500 and opening.balances[alice.id].entry_count == 1
    assert list(opening.records) == [(TENANT, posted.vouchers[0].request_id)]
    assert opening.records[(TENANT, posted.vouchers[0].request_id)].result["voucher_ids"] == [posted.vouchers[0].id]
    assert set(opening.heads) == {TENANT, "newcomer"}
    assert opening.heads[TENANT].voucher_sequence == 1 and opening.heads[TENANT].last_hash == posted.vouchers[0].hash
    assert (opening.heads["newcomer"].voucher_sequence, opening.heads["newcomer"].last_hash) == (0, GENESIS_HASH)
