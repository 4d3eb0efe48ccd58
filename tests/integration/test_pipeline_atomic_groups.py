"""An atomic group refused in the middle of a batch: whatever its earlier members changed in the batch's
state (balances, locked amounts, holds opened or released) is taken back before the next submission of the
same batch is applied, and nothing of the group is written."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.flows import TransferFlow
from tally.domain.holds import Hold, HoldStatus
from tally.domain.ids import new_id
from tally.service.commands import CreateHold, PostFlow
from tally.service.posting.batch import Cap, Posted, Submission
from tally.service.posting.hold_book import HoldAction, HoldOp
from tally.service.posting.pipeline import now_us
from tally.storage import tables as t
from tests.integration.conftest import TENANT, check_ledger, ref

GROUP = 4242


async def _transfer(ledger, request_id: str, source: str, destination: str, amount: int) -> Submission:
    flow = TransferFlow(ref(source), ref(destination), amount, "USD")
    return await ledger.posting.submission(PostFlow(TENANT, request_id, flow))


def _new_hold(request_id: str, account: str, amount: int) -> Submission:
    now = now_us()
    hold = Hold(id=new_id(), tenant_id=TENANT, account_id="", currency="USD", amount=amount, request_id=request_id,
                created_us=now, updated_us=now)
    op = HoldOp(HoldAction.CREATE, hold.id, amount, account=ref(account), new_hold=hold)
    return Submission(TENANT, request_id, "create_hold", {"hold": request_id}, hold_ops=(op,))


def _release(request_id: str, hold_id: str) -> Submission:
    return Submission(TENANT, request_id, "release_hold", {"hold_id": hold_id},
                      hold_ops=(HoldOp(HoldAction.RELEASE, hold_id),))


def _stored(url: str) -> tuple[set[str], set[str], dict[str, str]]:
    """Request ids of the stored vouchers, request ids with an idempotency record, and hold id -> status."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            posted = set(conn.execute(sa.select(t.vouchers.c.request_id)).scalars())
            recorded = set(conn.execute(sa.select(t.idempotency.c.request_id)).scalars())
            holds = dict(conn.execute(sa.select(t.holds.c.id, t.holds.c.status)).all())
            return posted, recorded, holds
    finally:
        engine.dispose()


async def test_a_refused_atomic_group_leaves_the_batch_state_as_it_found_it(ledger):
    for code in ("alice", "bob", "carol", "poor"):
        ledger.open(code)
    await ledger.fund("alice", 100)
    await ledger.fund("poor", 5)
    held = (await ledger.posting.create_hold(CreateHold(TENANT, "hold-0", ref("alice"), 10, "USD"))).holds[0]

    group = [await _transfer(ledger, "g-1", "alice", "bob", 90),  # all alice has available
             _release("g-2", held.id),
             _new_hold("g-3", "bob", 60),  # reserves what g-1 gave bob
             await _transfer(ledger, "g-4", "poor", "bob", 6)]  # refused: the whole group is
    for sub in group:
        sub.group = GROUP
    after = [await _transfer(ledger, "a-1", "alice", "carol", 90),  # only if g-1's debit was taken back
             await _transfer(ledger, "a-2", "bob", "carol", 1),  # refused: g-1's credit was taken back
             _release("a-3", held.id)]  # only if g-2's release was taken back

    before = ledger.pipeline.batches_written
    refused_group, *answers = await asyncio.gather(ledger.pipeline.submit_many(group),
                                                   *(ledger.pipeline.submit(sub) for sub in after))
    assert ledger.pipeline.batches_written - before == 1, "the submissions did not share one batch"

    assert all(isinstance(r, LedgerError) for r in refused_group)
    assert [(r.kind, r.reason) for r in refused_group] == [(ErrorKind.ABORTED, "BATCH_ITEM_REFUSED")] * 3 + [
        (ErrorKind.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")]
    assert isinstance(answers[0], Posted)
    assert isinstance(answers[1], LedgerError) and answers[1].reason == "INSUFFICIENT_FUNDS"
    assert isinstance(answers[2], Posted) and answers[2].holds[0].status is HoldStatus.RELEASED

    assert [ledger.balance(c) for c in ("alice", "bob", "carol", "poor")] == [10, 0, 90, 5]
    alice = ledger.queries.get_balance(TENANT, ref("alice"))
    assert alice.locked == 0
    posted, recorded, holds = _stored(ledger.url)
    assert "a-1" in posted and not posted & {"g-1", "g-4", "a-2"}
    assert not recorded & {"g-1", "g-2", "g-3"}, "a member refused for its group's sake has a record"
    assert {"a-1", "a-3"} <= recorded
    assert holds == {held.id: HoldStatus.RELEASED.value}, "the group's hold was written"
    check_ledger(ledger.url)


async def test_a_refused_atomic_group_takes_back_the_caps_it_opened(ledger):
    """A member that opens a new running total (a cap, as refunds use) and a later member that is refused:
    the total and its limit are both taken back, the batch still commits as one, and the cap is unused."""
    for code in ("alice", "bob", "poor"):
        ledger.open(code)
    await ledger.fund("alice", 100)
    cap = Cap("refunds-of-x", 30, 40, "CAP_PASSED")
    opening = await _transfer(ledger, "c-1", "alice", "bob", 30)
    opening.caps, opening.group = (cap,), GROUP
    refused = await _transfer(ledger, "c-2", "poor", "bob", 1)
    refused.group = GROUP
    neighbour = await _transfer(ledger, "c-3", "alice", "bob", 1)

    before = ledger.pipeline.batches_written
    group_answers, answer = await asyncio.gather(ledger.pipeline.submit_many([opening, refused]),
                                                 ledger.pipeline.submit(neighbour))
    assert ledger.pipeline.batches_written - before == 1, "the batch failed and was written one by one"
    assert [r.reason for r in group_answers] == ["BATCH_ITEM_REFUSED", "INSUFFICIENT_FUNDS"]
    assert isinstance(answer, Posted)

    again = await _transfer(ledger, "c-4", "alice", "bob", 40)
    again.caps = (Cap(cap.key, 40, 40, cap.reason),)  # the whole limit: only if nothing was counted
    assert isinstance(await ledger.pipeline.submit(again), Posted)
    assert ledger.balance("bob") == 41
    check_ledger(ledger.url)
