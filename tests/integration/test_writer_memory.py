"""The writer's memory of its last commit (service/posting/memory.py, storage/epochs.py): a batch of a tenant
nobody else wrote since starts from it, without opening reads; whatever anybody else wrote meanwhile
(another process, an account change, a resent request) is never missed. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random

import pytest
import sqlalchemy as sa

from tally.domain.accounts import AccountStatus, AccountType, Side
from tally.domain.errors import LedgerError
from tally.domain.facts import Facts
from tally.domain.flows import RuleFlow
from tally.domain.vouchers import AccountRef
from tally.service.commands import CreateHold, PostFlow
from tally.service.posting.batch import Posted
from tally.service.securities import SetAccountSecurity, set_security
from tally.storage import accounts_repo, ledger_repo
from tests.integration.conftest import FUNDING, TENANT, check_ledger, outcome, ref


def _setup(ledger) -> None:
    ledger.open_internal(FUNDING)
    ledger.open("alice")
    ledger.open("bob")


def _epoch(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT epoch FROM ledger_heads WHERE tenant_id = :t"), {"t": TENANT}).scalar()
    finally:
        engine.dispose()


async def test_postings_after_the_first_start_from_memory_and_move_the_epoch(database_url, make_ledger):
    ledger = make_ledger(database_url)
    _setup(ledger)
    await ledger.fund("alice", 100)
    await ledger.transfer("alice", "bob", 1)  # bob is new to this writer: read beside what it remembers
    assert ledger.pipeline.openings == {"read": 1, "remembered": 1}
    before = _epoch(database_url)
    for n in range(5):
        assert isinstance(await ledger.transfer("alice", "bob", n + 1), Posted)
    assert ledger.pipeline.openings == {"read": 1, "remembered": 6}
    assert _epoch(database_url) == before + 5  # each transaction checked and moved the epoch its writer left
    assert (ledger.balance("alice"), ledger.balance("bob")) == (84, 16)
    check_ledger(database_url)


def _cooled_by_the_check(ledger) -> None:
    """The epoch check failed the batch, not a later constraint, and the tenant's next batches read."""
    assert ledger.pipeline.rewrite_causes == {"stale": 1}
    assert ledger.pipeline.memories[0].recall([TENANT]) is None


@pytest.mark.parametrize("payee", ["bob", "carol"])
async def test_money_another_process_moved_is_never_spent_twice(database_url, make_ledger, payee):
    """The first process remembers alice with 100; another process spends it all; the first one's next
    transfer must see that and refuse, not post from what it remembered. Carol is new to the first process,
    so its batch reads her beside what it remembers of alice: the check still fails that batch."""
    first = make_ledger(database_url)
    _setup(first)
    await first.fund("alice", 100)
    assert isinstance(await first.transfer("alice", "bob", 1), Posted)
    second = make_ledger(database_url, schema_ready=True)
    second.open("carol")
    assert isinstance(await second.transfer("alice", "bob", 99), Posted)
    refused = await outcome(first.transfer("alice", payee, 50))
    assert isinstance(refused, LedgerError) and refused.reason == "INSUFFICIENT_FUNDS"
    assert first.pipeline.openings["rewritten"] == 1
    _cooled_by_the_check(first)
    assert (first.balance("alice"), first.balance("bob"), first.balance("carol")) == (0, 100, 0)
    check_ledger(database_url)


async def test_an_account_changed_since_is_seen(database_url, make_ledger):
    ledger = make_ledger(database_url)
    _setup(ledger)
    await ledger.fund("alice", 100)
    await ledger.transfer("alice", "bob", 1)  # this writer now remembers both, alice active
    ledger.set_status("alice", AccountStatus.FROZEN)  # its own write transaction, beside the pipeline
    refused = await outcome(ledger.transfer("alice", "bob", 1))
    assert isinstance(refused, LedgerError) and refused.reason == "ACCOUNT_FROZEN"
    assert ledger.pipeline.openings["rewritten"] == 1
    assert ledger.balance("alice") == 99


async def test_a_resent_request_replays_though_memory_does_not_know_it(database_url, make_ledger):
    ledger = make_ledger(database_url)
    _setup(ledger)
    await ledger.fund("alice", 100)
    first = await ledger.transfer("alice", "bob", 7, request_id="pay-1")
    again = await ledger.transfer("alice", "bob", 7, request_id="pay-1")
    assert again.replayed and [v.id for v in again.vouchers] == [v.id for v in first.vouchers]
    assert ledger.pipeline.openings["rewritten"] == 1  # memory's start failed on the stored record
    assert (ledger.balance("alice"), ledger.balance("bob")) == (93, 7)
    check_ledger(database_url)


async def test_two_processes_posting_at_once_lose_nothing(database_url, make_ledger):
    """Two processes, each with its own memory, posting to the same accounts side by side: every transfer
    lands once and the balances add up."""
    first = make_ledger(database_url)
    _setup(first)
    await first.fund("alice", 10_000)
    second = make_ledger(database_url, schema_ready=True)

    async def client(ledger, amount: int) -> None:
        for _ in range(25):
            assert isinstance(await ledger.transfer("alice", "bob", amount), Posted)

    await asyncio.gather(client(first, 1), client(second, 2), client(first, 3), client(second, 4))
    assert (first.balance("alice"), first.balance("bob")) == (10_000 - 250, 250)
    check_ledger(database_url)


async def test_memory_can_be_switched_off(database_url, make_ledger):
    ledger = make_ledger(database_url, writer_memory_accounts_max=0)
    _setup(ledger)
    await ledger.fund("alice", 100)
    await ledger.transfer("alice", "bob", 1)
    assert ledger.pipeline.openings["remembered"] == 0


async def test_only_a_transaction_that_wrote_moves_the_epoch(database_url, make_ledger):
    ledger = make_ledger(database_url)
    _setup(ledger)
    before = _epoch(database_url)
    ledger.uow.write({TENANT}, lambda conn: conn.execute(sa.text("SELECT count(*) FROM accounts")).scalar())
    assert _epoch(database_url) == before
    ledger.open("carol")
    assert _epoch(database_url) == before + 1


async def test_a_request_id_reused_for_a_refused_flow_is_still_named_reused(database_url, make_ledger):
    """The resend's body differs, and as a new request it would be refused without a record: memory knows no
    records, so the batch is written again from reads, which find the first use."""
    ledger = make_ledger(database_url)
    _setup(ledger)
    ledger.open_internal("funding-2")
    await ledger.fund("alice", 100)
    await ledger.transfer("alice", "bob", 1, request_id="pay-1")
    await ledger.fund("bob", 2**63 - 2, source="funding-2")  # bob at the int64 maximum: one more unit overflows
    assert ledger.pipeline.openings == {"read": 1, "remembered": 2}
    alone = await outcome(ledger.transfer("alice", "bob", 5))  # refused without a record: written again
    assert isinstance(alone, LedgerError) and alone.reason == "BALANCE_OVERFLOW"
    assert ledger.pipeline.openings["rewritten"] == 1
    refused = await outcome(ledger.transfer("alice", "bob", 5, request_id="pay-1"))
    assert isinstance(refused, LedgerError) and refused.reason == "REQUEST_ID_REUSED"
    assert ledger.pipeline.openings["rewritten"] == 2
    assert (ledger.balance("alice"), ledger.balance("bob")) == (99, 2**63 - 1)


def _database_agrees(ledger) -> int:
    """Every remembered head, epoch, account and balance is what the database holds; returns how many accounts."""
    checked = 0
    for memory in ledger.pipeline.memories:
        for tenant_id, known in memory.tenants().items():
            def read(conn, tenant_id=tenant_id, known=known):
                found, _ = accounts_repo.find_accounts(conn, tenant_id, [AccountRef(id=i) for i in known.by_id])
                states = accounts_repo.load_balances(conn, tenant_id, list(known.by_id))
                row = conn.execute(sa.text("SELECT epoch FROM ledger_heads WHERE tenant_id = :t"), {"t": tenant_id})
                return found, states, ledger_repo.load_heads_readonly(conn, tenant_id), row.scalar()
            found, states, head, epoch = ledger.uow.read({tenant_id}, read)
            assert (known.head, known.epoch) == (head, epoch)
            assert known.by_id == found and known.balances == states
            assert all(known.by_code[a.code] is a for a in known.by_id.values())
            checked += len(found)
    return checked


async def test_what_is_remembered_is_what_the_database_holds(database_url, make_ledger, tmp_path):
    """A mixed run (transfers, refusals, holds, a bound credit line, accounts opened by the default rules'
    templates, a reversal, an account changed beside the pipeline), checked against the database after every
    step: memory never holds anything the database does not."""
    ledger = make_ledger(database_url)
    _setup(ledger)
    ledger.open("card", AccountType.CREDIT, credit_limit=10**9)
    ledger.open("deposit", AccountType.SECURITY_DEPOSIT)
    rng = random.Random(18)
    steps = [
        lambda: ledger.fund("alice", 1_000),
        lambda: ledger.fund("deposit", 500),
        lambda: ledger.transfer("alice", "bob", rng.randint(1, 50)),
        lambda: ledger.transfer("bob", "alice", 10**6),  # refused: recorded
        lambda: ledger.adjust([("card", Side.DEBIT, 40), (FUNDING, Side.CREDIT, 40)]),  # draws the credit line
        lambda: ledger.posting.create_hold(CreateHold(TENANT, ledger.request_id("hold"), ref("alice"), 5, "USD")),
        lambda: ledger.posting.post(PostFlow(TENANT, ledger.request_id("rule"), RuleFlow(Facts(
            "funding", "USD", {"amount": 300}, {"consumer": f"c{rng.randint(1, 3)}", "processor": "card"}, {})))),
    ]
    posted = []
    for n in range(60):
        if n == 20:
            set_security(SetAccountSecurity(TENANT, "secure-1", ref("card"), ref("deposit"), 5_000, True),
                         ledger.uow, ledger.clock)
        if n == 40:
            ledger.set_status("bob", AccountStatus.FROZEN)
        result = await outcome(rng.choice(steps)())
        if isinstance(result, Posted) and result.vouchers:
            posted.append(result.vouchers[0].id)
        assert _database_agrees(ledger) >= 0
    await outcome(ledger.reverse(posted[0]))
    assert _database_agrees(ledger) > 3
    assert ledger.pipeline.openings["remembered"] > 10
    check_ledger(database_url)
