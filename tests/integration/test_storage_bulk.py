"""The batch writer's rows go to the database in bulk (tally.storage.bulk: one JSON parameter on PostgreSQL,
executemany on SQLite): every value must arrive exactly as the service holds it, on both backends."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tally.domain.accounts import Side
from tally.domain.limits import AMOUNT_MAX
from tally.service.posting.batch import Posted
from tally.storage import bulk, ledger_repo
from tally.storage import tables as t
from tests.integration.conftest import TENANT, check_ledger, outcomes

ODD_TEXT = 'quote " backslash \\ slash / tab \t newline \n json {"a": [1]} unicode é ß 中文 emoji 😀 \u2028 end'


async def test_text_and_extreme_integers_arrive_exactly(ledger):
    ledger.open("alice")
    ledger.open("bob")
    big = await ledger.adjust([("funding", Side.DEBIT, AMOUNT_MAX), ("alice", Side.CREDIT, AMOUNT_MAX)],
                              memo=ODD_TEXT)
    moved = await ledger.transfer("alice", "bob", AMOUNT_MAX - 1, memo=ODD_TEXT, line_memo=ODD_TEXT,
                                  metadata={"note": ODD_TEXT, "k": "v"})

    for posted in (big, moved):
        stored = ledger.queries.get_voucher(TENANT, posted.vouchers[0].id)
        assert stored == posted.vouchers[0]
    stored = ledger.queries.get_voucher(TENANT, moved.vouchers[0].id)
    assert stored.memo == ODD_TEXT and stored.metadata == {"note": ODD_TEXT, "k": "v"}
    assert [ln.memo for ln in stored.lines] == [ODD_TEXT, ODD_TEXT]
    assert [ln.balance_after for ln in stored.lines] == [1, AMOUNT_MAX - 1]
    assert (ledger.balance("alice"), ledger.balance("bob")) == (1, AMOUNT_MAX - 1)

    # A posted event's row keeps only what the journal does not; as read, it carries the values exactly.
    events = ledger.uow.read({TENANT}, lambda conn: ledger_repo.list_events(conn, TENANT, after_sequence=0,
                                                                            limit=100))
    [posted_event] = [e for e in events if e.voucher_id == moved.vouchers[0].id]
    bob_id = moved.vouchers[0].lines[1].account_id
    assert posted_event.payload["balances"][bob_id]["current"] == AMOUNT_MAX - 1
    # And an outbox row with extreme integers goes through the bulk insert exactly.
    payload = {"extreme": [AMOUNT_MAX, -AMOUNT_MAX - 1], "text": ODD_TEXT}
    head = max(e.sequence for e in events)
    extreme = ledger_repo.Event(TENANT, head + 1, "test.extreme", payload, 1)
    ledger.uow.write({TENANT}, lambda conn: ledger_repo.insert_events(conn, [extreme]))
    stored = ledger.uow.read({TENANT}, lambda conn: conn.execute(
        sa.select(t.events.c.payload).where(t.events.c.sequence == head + 1)).scalar_one())
    assert json.loads(stored) == payload and str(-AMOUNT_MAX - 1) in stored
    check_ledger(ledger.url)  # hashes recomputed from the stored rows match the stored hashes


def test_a_value_too_long_for_its_column_is_refused_not_cut(postgres_url, make_ledger):
    """Strings are cast to text and then assigned, so varchar(n) refuses what is longer, as a plain INSERT
    does (a cast to varchar(n) would silently cut it)."""
    ledger = make_ledger(postgres_url, start=False)
    row = (TENANT, 1, "x" * 49, None, None, None, "{}", 1)  # events.type is varchar(48)
    with pytest.raises(sa.exc.DBAPIError, match="too long"):
        ledger.uow.write({TENANT}, lambda conn: bulk.insert_rows(conn, t.events, tuple(t.events.c.keys()), [row]))


def test_update_rows_refuses_a_key_twice(database_url, make_ledger):
    ledger = make_ledger(database_url, start=False)
    columns = ("current", "locked", "previous_day", "last_date", "entry_count", "updated_us")
    rows = [("a", 1, 0, 0, "", 0, 0), ("a", 2, 0, 0, "", 0, 0)]
    with pytest.raises(ValueError, match="twice"):
        ledger.uow.write({TENANT}, lambda conn: bulk.update_rows(conn, t.balances, "account_id", columns, rows))


async def test_request_ids_with_json_and_sql_characters_are_found_again(ledger):
    """The batch looks its request ids up as one JSON list: ids with quotes, backslashes, percent signs and
    brackets (all allowed: printable ASCII) must be found, so that a resend replays instead of posting."""
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 100)
    odd = ['q"uote', "back\\slash", "%s%(x)s", "[1,2]", "{}", "'single'", "a\\u0041", "end\\"]
    first = await outcomes(*(ledger.transfer("alice", "bob", 1, request_id=rid) for rid in odd))
    again = await outcomes(*(ledger.transfer("alice", "bob", 1, request_id=rid) for rid in odd))
    assert all(isinstance(r, Posted) and not r.replayed for r in first)
    assert all(isinstance(r, Posted) and r.replayed for r in again)
    assert [r.vouchers[0].id for r in again] == [r.vouchers[0].id for r in first]
    assert ledger.balance("bob") == len(odd)
    check_ledger(ledger.url)
