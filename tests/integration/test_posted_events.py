"""`ledger.entry.posted` rows keep only what the journal does not (locked amounts and credit limits where
not zero); reading them rebuilds the whole payload: voucher, lines and each account's balance after it."""

from __future__ import annotations

import contextlib
import json

import sqlalchemy as sa

from tally.domain.accounts import AccountType, Side
from tally.service.commands import CaptureHold, CreateHold
from tally.storage import ledger_repo
from tally.storage.engine import set_tenant_scope
from tally.storage.tables import events
from tally.streaming.changes import balance_changes
from tests.integration.conftest import TENANT, ref


def _events(ledger) -> list[ledger_repo.Event]:
    return ledger.uow.read({TENANT}, lambda c: ledger_repo.list_events(c, TENANT, after_sequence=0, limit=1000))


@contextlib.contextmanager
def _tenant_tables(ledger):
    """A transaction straight on the tables, scoped to the test tenant."""
    with ledger.engines.write.connect() as conn, conn.begin():
        set_tenant_scope(conn, TENANT)
        yield conn


def _stored(ledger, voucher_id: str) -> dict:
    with _tenant_tables(ledger) as conn:
        text = conn.execute(sa.select(events.c.payload).where(events.c.voucher_id == voucher_id,
                                                              events.c.type == "ledger.entry.posted")).scalar_one()
    return json.loads(text)


async def test_a_plain_transfer_keeps_an_empty_row_and_reads_whole(ledger):
    alice, bob = ledger.open("alice"), ledger.open("bob")
    await ledger.fund("alice", 1_000)
    voucher = (await ledger.transfer("alice", "bob", 300, request_id="pay-1")).vouchers[0]

    assert _stored(ledger, voucher.id) == {}
    event = next(e for e in _events(ledger) if e.voucher_id == voucher.id)
    assert event.payload == {
        "voucher_id": voucher.id, "sequence": voucher.sequence, "flow_type": "transfer",
        "request_id": "pay-1", "accounting_date": voucher.accounting_date,
        "lines": [{"account_id": alice.id, "side": "debit", "amount": 300, "currency": "USD", "entry_number": 2,
                   "balance_after": 700},
                  {"account_id": bob.id, "side": "credit", "amount": 300, "currency": "USD", "entry_number": 1,
                   "balance_after": 300}],
        "balances": {
            alice.id: {"currency": "USD", "current": 700, "locked": 0, "available": 700, "current_delta": -300,
                       "locked_delta": 0},
            bob.id: {"currency": "USD", "current": 300, "locked": 0, "available": 300, "current_delta": 300,
                     "locked_delta": 0},
        },
    }


async def test_locked_amounts_and_credit_limits_of_the_moment_are_kept(ledger):
    """Available = current - locked + credit limit as they were when the voucher posted, even after the
    hold is gone; a debit-normal account's delta follows its own side."""
    card = ledger.open("card", AccountType.CREDIT, credit_limit=5_000)
    shop = ledger.open("shop")
    clearing_account = ledger.open_internal("clearing", Side.DEBIT)
    await ledger.fund("shop", 900)
    await ledger.posting.create_hold(CreateHold(TENANT, "hold-1", ref("shop"), 400, "USD"))
    spend = (await ledger.transfer("card", "shop", 250)).vouchers[0]
    into_clearing = (await ledger.adjust([("clearing", Side.DEBIT, 100), ("shop", Side.CREDIT, 100)])).vouchers[0]

    assert _stored(ledger, spend.id) == {"locked": {shop.id: 400}, "credit_limit": {card.id: 5_000}}
    read = {e.voucher_id: e.payload for e in _events(ledger) if e.type == "ledger.entry.posted"}
    assert read[spend.id]["balances"] == {
        card.id: {"currency": "USD", "current": -250, "locked": 0, "available": 4_750, "current_delta": -250,
                  "locked_delta": 0},
        shop.id: {"currency": "USD", "current": 1_150, "locked": 400, "available": 750, "current_delta": 250,
                  "locked_delta": 0},
    }
    clearing = read[into_clearing.id]["balances"]
    assert clearing[clearing_account.id]["current_delta"] == 100
    assert clearing[shop.id] == {"currency": "USD", "current": 1_250, "locked": 400, "available": 850,
                                 "current_delta": 100, "locked_delta": 0}


async def test_rows_written_whole_are_read_as_they_are(ledger):
    """Events written before only the extras were kept still carry their lines: they are not rebuilt."""
    ledger.open("alice")
    await ledger.fund("alice", 10)
    whole = {"voucher_id": "v-old", "lines": [], "balances": {}, "note": "as written"}
    with _tenant_tables(ledger) as conn:
        head = conn.execute(sa.select(sa.func.max(events.c.sequence)).where(events.c.tenant_id == TENANT)).scalar()
        conn.execute(sa.insert(events).values(tenant_id=TENANT, sequence=head + 1, type="ledger.entry.posted",
                                              voucher_id="v-old", payload=json.dumps(whole), created_us=1))
    assert _events(ledger)[-1].payload == whole


async def test_a_capture_names_its_hold_and_voucher_and_every_snapshot_follows_from_the_last(ledger):
    """Evidence per posting: the capture's voucher and its posted event name the hold, the hold's captured
    event names the voucher; and the account's balance snapshots form a chain (each is the one before plus
    its delta), the hold events showing the balance before the capture's voucher posts."""
    shop = ledger.open("shop")
    ledger.open("merchant")
    await ledger.fund("shop", 1_000)
    hold = (await ledger.posting.create_hold(CreateHold(TENANT, "h-1", ref("shop"), 600, "USD"))).holds[0]
    partial = await ledger.posting.capture_hold(CaptureHold(TENANT, "cap-1", hold.id, 200, ref("merchant")))
    last = await ledger.posting.capture_hold(CaptureHold(TENANT, "cap-2", hold.id, 100, ref("merchant"),
                                                         final=True))
    events = _events(ledger)
    for posted in (partial, last):
        voucher = posted.vouchers[0]
        assert voucher.metadata["hold_id"] == hold.id
        [entry] = [e for e in events if e.type == "ledger.entry.posted" and e.voucher_id == voucher.id]
        assert entry.hold_id == hold.id and entry.payload["hold_id"] == hold.id
        captured = [e for e in events if e.type == "balance.hold.captured" and e.payload["voucher_id"] == voucher.id]
        assert len(captured) == 1 and captured[0].voucher_id == voucher.id
    released = [e for e in events if e.type == "balance.released"]
    assert [e.payload["amount"] for e in released] == [300]  # the final capture released the rest

    sides = {shop.id: "credit"}
    chain = [c for e in events for c in balance_changes(e, sides, {shop.id})]
    assert [c.cause for c in chain] == [
        "ledger.entry.posted", "balance.hold.created", "balance.hold.captured", "ledger.entry.posted",
        "balance.hold.captured", "balance.released", "ledger.entry.posted"]
    assert (chain[0].current, chain[0].locked) == (1_000, 0)
    for before, after in zip(chain, chain[1:], strict=False):
        assert after.current == before.current + after.current_delta, after
        assert after.locked == before.locked + after.locked_delta, after
        assert after.available == after.current - after.locked
    assert (chain[-1].current, chain[-1].locked) == (700, 0)
