"""Many concurrent clients, one or two server processes, one real database: money is conserved, floors hold,
every acknowledged voucher is stored exactly once and nothing refused is stored."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict

import sqlalchemy as sa

from tally.domain.errors import LedgerError
from tally.service.posting.batch import Posted
from tally.storage import tables as t
from tests.integration.conftest import FUNDING, TENANT, check_ledger, outcome, outcomes

TASKS = 32
TRANSFERS_PER_TASK = 25
ACCOUNTS = [f"acct-{i}" for i in range(10)]
OTHER = "globex"


def _stored(url: str) -> tuple[Counter, set[tuple[str, str]]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ids = Counter(conn.execute(sa.select(t.vouchers.c.id)).scalars())
            requests = set(conn.execute(sa.select(t.vouchers.c.tenant_id, t.vouchers.c.request_id)).all())
            return ids, requests
    finally:
        engine.dispose()


class Client:
    """A client task: random transfers, and now and then a retry of an earlier request (same body)."""

    def __init__(self, name: str, rng: random.Random, tenant: str) -> None:
        self.name, self.rng, self.tenant = name, rng, tenant
        self.acked: dict[str, str] = {}  # request_id -> voucher id
        self.refused: dict[str, str] = {}  # request_id -> reason
        self.sent: list[tuple[str, tuple]] = []

    async def run(self, ledgers: list) -> None:
        for n in range(TRANSFERS_PER_TASK):
            ledger = self.rng.choice(ledgers)
            if self.sent and self.rng.random() < 0.15:
                request_id, args = self.rng.choice(self.sent)  # a client retry
            else:
                source, destination = self.rng.sample(ACCOUNTS, 2)
                request_id, args = f"{self.tenant}-{self.name}-{n}", (source, destination, self.rng.randint(1, 250))
                self.sent.append((request_id, args))
            result = await outcome(ledger.transfer(*args, tenant=self.tenant, request_id=request_id))
            if isinstance(result, Posted):
                voucher_id = result.vouchers[0].id
                if request_id in self.acked:
                    assert result.replayed and voucher_id == self.acked[request_id], "a retry got another voucher"
                else:
                    self.refused.pop(request_id, None)  # refused earlier, accepted on a later retry
                self.acked[request_id] = voucher_id
            else:
                assert result.reason == "INSUFFICIENT_FUNDS", repr(result)
                assert request_id not in self.acked, "a request acknowledged before was later refused"
                self.refused[request_id] = result.reason


async def _open_and_fund(ledger, tenant: str, rng: random.Random) -> None:
    if tenant != TENANT:
        ledger.open_internal(FUNDING, tenant=tenant)
    for code in ACCOUNTS:
        ledger.open(code, tenant=tenant)
    await outcomes(*(ledger.fund(code, rng.choice([0, 50, 300, 1_000]) or 1, tenant=tenant) for code in ACCOUNTS))


def _check_outcome(url: str, clients: list[Client], funding_vouchers: int) -> None:
    facts = check_ledger(url)  # money conserved, floors, balances = entries, sequences, hash chains
    ids, requests = _stored(url)
    assert all(count == 1 for count in ids.values()), "a voucher id is stored more than once"
    acked = {(c.tenant, rid): vid for c in clients for rid, vid in c.acked.items()}
    refused = {(c.tenant, rid) for c in clients for rid in c.refused}
    assert set(acked.values()) <= set(ids), "an acknowledged voucher is missing"
    assert len(ids) == len(acked) + funding_vouchers, "a voucher is stored that no client was told about"
    assert not refused & requests, "a refused request is stored"
    assert refused, "the workload never hit a floor: it does not test refusals"
    # Every account's stored balance is what the acknowledged vouchers say it should be.
    expected = defaultdict(int)
    for vouchers in facts.vouchers.values():
        for v in vouchers:
            for ln in v.lines:
                account = facts.accounts[ln.account_id]
                expected[ln.account_id] += ln.amount if ln.side.value == account.normal_side else -ln.amount
    assert dict(expected) == {k: v for k, v in facts.balances.items() if k in expected}
    for account_id, account in facts.accounts.items():
        if account.type == "deposit":
            assert facts.balances[account_id] >= 0, f"{account.tenant_id}/{account.code} is below zero"


async def test_concurrent_random_transfers_keep_every_invariant(ledger):
    rng = random.Random(20260521)
    await _open_and_fund(ledger, TENANT, rng)
    clients = [Client(f"c{i}", random.Random(rng.random()), TENANT) for i in range(TASKS)]
    batches_before = ledger.pipeline.batches_written
    await asyncio.gather(*(c.run([ledger]) for c in clients))
    submissions = TASKS * TRANSFERS_PER_TASK
    assert ledger.pipeline.batches_written - batches_before < submissions / 4, "submissions were not batched"
    _check_outcome(ledger.url, clients, funding_vouchers=len(ACCOUNTS))


async def test_two_server_processes_on_one_database_keep_every_invariant(database_url, make_ledger):
    """Two independent stacks (engines, unit of work, pipeline) on the same database, as two server
    processes would be; clients of two tenants send to either at random."""
    first, second = make_ledger(database_url), make_ledger(database_url)
    first.open_internal(FUNDING)
    rng = random.Random(77)
    await _open_and_fund(first, TENANT, rng)
    await _open_and_fund(second, OTHER, rng)
    clients = [Client(f"c{i}", random.Random(rng.random()), (TENANT, OTHER)[i % 2]) for i in range(TASKS)]

    # Alongside: the same request sent to both processes at once, and two reversals of one voucher.
    target = (await first.transfer("acct-0", "acct-1", 1, request_id="seed")).vouchers[0]

    async def duplicates():
        return await outcomes(first.transfer("acct-2", "acct-3", 1, request_id="both", tenant=OTHER),
                              second.transfer("acct-2", "acct-3", 1, request_id="both", tenant=OTHER))

    async def reversals():
        return await outcomes(first.reverse(target.id, request_id="undo-1"),
                              second.reverse(target.id, request_id="undo-2"))

    _, twice, undo = await asyncio.gather(
        asyncio.gather(*(c.run([first, second]) for c in clients)), duplicates(), reversals())

    assert all(isinstance(r, Posted) for r in twice)
    assert twice[0].vouchers[0].id == twice[1].vouchers[0].id
    assert sorted(r.replayed for r in twice) == [False, True]
    assert sorted(type(r).__name__ for r in undo) == ["LedgerError", "Posted"]
    assert [r.reason for r in undo if isinstance(r, LedgerError)] == ["VOUCHER_ALREADY_REVERSED"]
    extra = [Client("extra", rng, OTHER)]
    extra[0].acked = {"both": twice[0].vouchers[0].id}
    extra_a = Client("extra", rng, TENANT)
    extra_a.acked = {"seed": target.id, **{r.vouchers[0].request_id: r.vouchers[0].id
                                          for r in undo if isinstance(r, Posted)}}
    _check_outcome(database_url, clients + extra + [extra_a], funding_vouchers=2 * len(ACCOUNTS))
    facts = check_ledger(database_url)
    for tenant in (TENANT, OTHER):
        assert [v.sequence for v in facts.vouchers[tenant]] == list(range(1, len(facts.vouchers[tenant]) + 1))
    assert first.pipeline.batches_written > 0 and second.pipeline.batches_written > 0


async def test_posting_and_account_writes_interleave(ledger):
    """Account changes (their own write transactions, from other threads) run while the pipeline posts: the
    event sequence of the tenant stays gap-free, like the voucher sequence."""
    for code in ACCOUNTS:
        ledger.open(code)
    await outcomes(*(ledger.fund(code, 1_000) for code in ACCOUNTS))

    async def open_many():
        for i in range(20):
            await asyncio.to_thread(ledger.open, f"late-{i}")

    async def post_many():
        return await outcomes(*(ledger.transfer(ACCOUNTS[i % 10], ACCOUNTS[(i + 1) % 10], 3) for i in range(100)))

    _, results = await asyncio.gather(open_many(), post_many())
    assert all(isinstance(r, Posted) for r in results)
    engine = sa.create_engine(ledger.url)
    try:
        with engine.connect() as conn:
            sequences = conn.execute(sa.select(t.events.c.sequence).where(t.events.c.tenant_id == TENANT)
                                     .order_by(t.events.c.sequence)).scalars().all()
            head = conn.execute(sa.select(t.ledger_heads.c.event_sequence)
                                .where(t.ledger_heads.c.tenant_id == TENANT)).scalar_one()
    finally:
        engine.dispose()
    assert sequences == list(range(1, len(sequences) + 1)) and head == len(sequences)
    assert len(sequences) == 1 + len(ACCOUNTS) + 20 + len(ACCOUNTS) + 100  # opened, funded, transferred
    check_ledger(ledger.url)


async def test_reads_during_posting_see_whole_vouchers_only(ledger):
    """Every read runs in one snapshot: reading the balances one statement at a time while batches commit,
    the debit-positive sum is still zero (no half-applied voucher or batch is ever visible)."""
    for code in ACCOUNTS:
        ledger.open(code)
    await outcomes(*(ledger.fund(code, 500) for code in ACCOUNTS))
    ids = [a.id for a in ledger.uow.read({TENANT}, lambda c: c.execute(
        sa.select(t.accounts.c.id, t.accounts.c.normal_side).order_by(t.accounts.c.code)).all())]
    sides = dict(ledger.uow.read({TENANT},
                               lambda c: c.execute(sa.select(t.accounts.c.id, t.accounts.c.normal_side)).all()))
    stop = asyncio.Event()

    def snapshot_sum(conn) -> int:
        total = 0
        for account_id in ids:  # one statement per account, inside one read transaction
            current = conn.execute(sa.select(t.balances.c.current)
                                   .where(t.balances.c.account_id == account_id)).scalar_one()
            total += current if sides[account_id] == "debit" else -current
        return total

    async def reader() -> list[int]:
        sums = []
        while not stop.is_set() or not sums:
            sums.append(await asyncio.to_thread(ledger.uow.read, {TENANT}, snapshot_sum))
        return sums

    async def writer():
        rng = random.Random(5)
        for _ in range(10):
            await outcomes(*(ledger.transfer(*rng.sample(ACCOUNTS, 2), rng.randint(1, 60)) for _ in range(20)))
            await ledger.fund(rng.choice(ACCOUNTS), 10)
        stop.set()

    sums, _ = await asyncio.gather(reader(), writer())
    assert len(sums) >= 2
    assert set(sums) == {0}, f"a read saw a partly written batch: {sorted(set(sums))}"
    check_ledger(ledger.url)


async def test_a_new_tenant_first_written_by_two_processes_at_once(database_url, make_ledger):
    """The tenant's ledger head is created by whichever write comes first; the other process must see it
    (no duplicate-key failure, no second head, no gap in the event sequence)."""
    instances = [make_ledger(database_url), make_ledger(database_url)]
    tenant = "brand-new"

    def open_in(i: int):
        return instances[i % 2].open(f"acct-{i}", tenant=tenant)

    opened = await asyncio.gather(*(asyncio.to_thread(open_in, i) for i in range(12)))
    assert len({a.id for a in opened}) == 12
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            heads = conn.execute(sa.select(t.ledger_heads).where(t.ledger_heads.c.tenant_id == tenant)).all()
            events = conn.execute(sa.select(t.events.c.sequence).where(t.events.c.tenant_id == tenant)
                                  .order_by(t.events.c.sequence)).scalars().all()
    finally:
        engine.dispose()
    assert len(heads) == 1 and heads[0].event_sequence == 12
    assert events == list(range(1, 13))
