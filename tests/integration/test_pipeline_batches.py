"""The posting pipeline on real databases: many submissions share one write transaction, yet each is
accepted or refused on its own, posts at most once, and leaves a gap-free, hash-chained journal."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
import sqlalchemy as sa

from tally.domain.accounts import AccountStatus, AccountType, Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.ids import new_id
from tally.domain.vouchers import GENESIS_HASH, AccountRef, voucher_hash
from tally.service.posting import batch as batch_module
from tally.service.posting import pipeline as pipeline_module
from tally.service.posting.batch import Posted
from tally.storage import tables as t
from tally.storage import uow as uow_module
from tally.storage.engine import commit
from tests.integration.conftest import TENANT, check_ledger, outcomes

OTHER = "globex"


def _stored_voucher_ids(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(t.vouchers.c.id)).scalars())
    finally:
        engine.dispose()


def _idempotency_keys(url: str) -> set[tuple[str, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(t.idempotency.c.tenant_id, t.idempotency.c.request_id)).all())
    finally:
        engine.dispose()


async def _setup_customers(ledger) -> None:
    for code in ("alice", "bob", "poor", "icy", "shut"):
        ledger.open(code)
    ledger.open("euro", currency="EUR")
    ledger.open("alice", tenant=OTHER)
    await ledger.fund("alice", 1_000)
    await ledger.fund("poor", 10)
    await ledger.fund("icy", 50)
    ledger.set_status("icy", AccountStatus.FROZEN)
    ledger.set_status("shut", AccountStatus.CLOSED)


# (source, destination, amount, currency) -> the refusal, in submission order inside one batch. "poor" holds
# 10: the first 6 leaves 4, so the second 6 is refused and the following 4 is accepted (state within a batch).
BATCH = [
    (("alice", "bob", 10, "USD"), None),
    (("poor", "bob", 6, "USD"), None),
    (("poor", "bob", 6, "USD"), (ErrorKind.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")),
    (("alice", "bob", 10, "USD"), None),
    (("poor", "bob", 4, "USD"), None),
    (("icy", "bob", 1, "USD"), (ErrorKind.FAILED_PRECONDITION, "ACCOUNT_FROZEN")),
    (("bob", "icy", 1, "USD"), (ErrorKind.FAILED_PRECONDITION, "ACCOUNT_FROZEN")),
    (("alice", "shut", 1, "USD"), (ErrorKind.FAILED_PRECONDITION, "ACCOUNT_CLOSED")),
    (("alice", "nobody", 1, "USD"), (ErrorKind.NOT_FOUND, "ACCOUNT_NOT_FOUND")),
    (("alice", "<unknown id>", 1, "USD"), (ErrorKind.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE")),
    (("alice", "<other tenant's alice>", 1, "USD"), (ErrorKind.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE")),
    (("alice", "euro", 1, "USD"), (ErrorKind.FAILED_PRECONDITION, "CURRENCY_MISMATCH")),
    (("alice", "<alice by id>", 1, "USD"), (ErrorKind.INVALID_ARGUMENT, "SAME_ACCOUNT_BOTH_SIDES")),
    (("alice", "bob", 981, "USD"), (ErrorKind.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")),
    (("alice", "bob", 10, "USD"), None),
]


async def test_each_submission_in_a_batch_is_accepted_or_refused_on_its_own(ledger):
    await _setup_customers(ledger)
    other_alice = ledger.queries.get_account(OTHER, AccountRef(code="alice"))[0].id
    alice = ledger.queries.get_account(TENANT, AccountRef(code="alice"))[0].id
    aliases = {"<unknown id>": new_id(), "<other tenant's alice>": other_alice, "<alice by id>": alice}
    before = ledger.pipeline.batches_written
    request_ids = [f"batch-{i}" for i in range(len(BATCH))]
    results = await outcomes(*(
        ledger.transfer(src, aliases.get(dst, dst), amount, currency=cur, request_id=rid)
        for ((src, dst, amount, cur), _), rid in zip(BATCH, request_ids, strict=True)))

    assert ledger.pipeline.batches_written - before == 1, "the submissions did not share one batch"
    got = [None if isinstance(r, Posted) else (r.kind, r.reason) for r in results]
    assert got == [expected for _, expected in BATCH]
    assert ledger.balance("alice") == 1_000 - 30
    assert ledger.balance("poor") == 0
    assert ledger.balance("bob") == 40
    assert ledger.balance("icy") == 50
    stored = _stored_voucher_ids(ledger.url)
    accepted = [r.vouchers[0].id for r in results if isinstance(r, Posted)]
    assert set(accepted) <= set(stored) and len(accepted) == 5
    # A refusal that depends on the ledger's state is recorded as the request's answer, like an acceptance;
    # bad input and ids the caller may not see record nothing.
    keys = _idempotency_keys(ledger.url)
    recorded = {None, ErrorKind.FAILED_PRECONDITION, ErrorKind.NOT_FOUND}
    for rid, (_, expected) in zip(request_ids, BATCH, strict=True):
        assert ((TENANT, rid) in keys) == ((expected or (None,))[0] in recorded), rid
    facts = check_ledger(ledger.url)
    assert [v.request_id for v in facts.vouchers[TENANT][-5:]] == [
        rid for rid, (_, expected) in zip(request_ids, BATCH, strict=True) if expected is None]


async def test_a_resent_refusal_is_replayed_even_when_it_would_now_succeed(ledger):
    ledger.open("payer")
    ledger.open("payee")
    await ledger.fund("payer", 5)
    first = await outcomes(ledger.transfer("payer", "payee", 8, request_id="declined"))
    await ledger.fund("payer", 100)
    again, other = await outcomes(ledger.transfer("payer", "payee", 8, request_id="declined"),
                                  ledger.transfer("payer", "payee", 8, request_id="fresh"))

    assert (first[0].kind, first[0].reason) == (ErrorKind.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")
    assert (again.kind, again.reason, again.metadata) == (first[0].kind, first[0].reason, first[0].metadata)
    assert isinstance(other, Posted)
    assert ledger.balance("payer") == 105 - 8
    assert ledger.balance("payee") == 8


async def test_same_request_twice_in_one_batch_posts_once(ledger):
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 100)
    before = ledger.pipeline.batches_written
    first, second, other = await outcomes(ledger.transfer("alice", "bob", 30, request_id="twice"),
                                          ledger.transfer("alice", "bob", 30, request_id="twice"),
                                          ledger.transfer("alice", "bob", 1, request_id="once"))
    assert ledger.pipeline.batches_written - before == 1
    assert isinstance(first, Posted) and isinstance(second, Posted) and isinstance(other, Posted)
    assert (first.replayed, second.replayed) == (False, True)
    assert second.vouchers == first.vouchers
    later = await ledger.transfer("alice", "bob", 30, request_id="twice")  # a client retry, next batch
    assert later.replayed and [v.id for v in later.vouchers] == [v.id for v in first.vouchers]
    assert later.vouchers[0].hash == first.vouchers[0].hash
    assert ledger.balance("alice") == 69 and ledger.balance("bob") == 31
    assert _stored_voucher_ids(ledger.url).count(first.vouchers[0].id) == 1
    assert len(check_ledger(ledger.url).vouchers[TENANT]) == 3


# A different body under a used request_id: (how the second request differs, the field named).
REUSED = [
    pytest.param(dict(amount=31), "flow.amount", id="amount"),
    pytest.param(dict(destination="carol"), "flow.destination.code", id="destination"),
    pytest.param(dict(currency="EUR"), "flow.currency", id="currency"),
    pytest.param(dict(memo="other memo"), "memo", id="memo"),
    pytest.param(dict(metadata={"k": "v"}), "metadata.k", id="metadata"),
]


@pytest.mark.parametrize("same_batch", [True, False], ids=["same-batch", "later-batch"])
async def test_request_id_reused_with_a_different_body_names_the_field(ledger, same_batch):
    for code in ("alice", "bob", "carol"):
        ledger.open(code)
    await ledger.fund("alice", 1_000)
    base = dict(source="alice", destination="bob", amount=30, currency="USD", memo="", metadata=None)

    def send(rid, **change):
        args = {**base, **change}
        return ledger.transfer(args.pop("source"), args.pop("destination"), args.pop("amount"), request_id=rid,
                               **args)

    cases = [(p.values[0], p.values[1], f"reuse-{p.id}") for p in REUSED]
    if same_batch:
        results = await outcomes(*(c for change, _, rid in cases for c in (send(rid), send(rid, **change))))
        firsts, seconds = results[0::2], results[1::2]
    else:
        firsts = await outcomes(*(send(rid) for _, _, rid in cases))
        seconds = await outcomes(*(send(rid, **change) for change, _, rid in cases))
    for (_, field, rid), first, second in zip(cases, firsts, seconds, strict=True):
        assert isinstance(first, Posted) and not first.replayed, rid
        assert isinstance(second, LedgerError), rid
        assert (second.kind, second.reason) == (ErrorKind.ALREADY_EXISTS, "REQUEST_ID_REUSED"), rid
        assert second.metadata["fields"] == field, rid
        assert field in second.message
    assert ledger.balance("alice") == 1_000 - 30 * len(cases)
    assert ledger.balance("carol") == 0
    check_ledger(ledger.url)


async def test_request_id_reused_by_another_operation(ledger):
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 100)
    posted = await ledger.transfer("alice", "bob", 5, request_id="op-1")
    [error] = await outcomes(ledger.reverse(posted.vouchers[0].id, request_id="op-1"))
    assert (error.kind, error.reason, error.metadata["fields"]) == (ErrorKind.ALREADY_EXISTS, "REQUEST_ID_REUSED",
                                                                    "operation")
    assert ledger.balance("bob") == 5


def _fail_first_attempt_after_write_batch(monkeypatch):
    """Makes the first batch transaction fail with a serialization failure after write_batch did all its work
    (so the failed attempt had built vouchers, ids and hashes), as a commit-time conflict would."""
    real = batch_module.write_batch
    calls: list[list] = []

    def flaky(conn, subs, *args):
        result = real(conn, subs, *args)
        calls.append(result)
        if len(calls) == 1:
            raise sa.exc.OperationalError("COMMIT", {}, psycopg.errors.SerializationFailure("could not serialize"))
        return result

    monkeypatch.setattr(pipeline_module, "write_batch", flaky)
    return calls


async def test_batch_retried_after_serialization_failure_posts_each_voucher_exactly_once(ledger, monkeypatch):
    for code in ("alice", "bob", "poor"):
        ledger.open(code)
    await ledger.fund("alice", 1_000)
    await ledger.fund("poor", 5)
    calls = _fail_first_attempt_after_write_batch(monkeypatch)
    before = ledger.pipeline.batches_written
    sends = [ledger.transfer("alice", "bob", 10 + i, request_id=f"retry-{i}") for i in range(8)]
    sends.insert(3, ledger.transfer("alice", "bob", 10, request_id="retry-0"))  # same request, same batch
    sends.insert(5, ledger.transfer("poor", "bob", 6, request_id="retry-poor"))  # refused both times
    results = await outcomes(*sends)

    assert len(calls) == 2, "the batch was not retried exactly once"
    assert ledger.pipeline.batches_written - before == 1
    posted = [r for r in results if isinstance(r, Posted)]
    refused = [r for r in results if isinstance(r, LedgerError)]
    assert [r.reason for r in refused] == ["INSUFFICIENT_FUNDS"]
    assert [r.replayed for r in posted].count(True) == 1
    stored = _stored_voucher_ids(ledger.url)
    answered = {v.id for r in posted for v in r.vouchers}
    assert len(answered) == 8 and answered <= set(stored)
    assert len(stored) == len(set(stored)) == 2 + 8
    failed_attempt_ids = {v.id for o in calls[0] if isinstance(o, Posted) for v in o.vouchers}
    assert failed_attempt_ids and not failed_attempt_ids & set(stored), "a voucher of the failed attempt is stored"
    assert ledger.balance("alice") == 1_000 - sum(10 + i for i in range(8))

    # The client, unsure, retries everything with the same request_ids: same vouchers, nothing new.
    retried = await outcomes(*(ledger.transfer("alice", "bob", 10 + i, request_id=f"retry-{i}") for i in range(8)))
    first_answer = {r.vouchers[0].request_id: r.vouchers[0] for r in posted}
    for i, again in enumerate(retried):
        assert isinstance(again, Posted) and again.replayed
        assert again.vouchers[0] == first_answer[f"retry-{i}"]
    assert len(_stored_voucher_ids(ledger.url)) == 10
    facts = check_ledger(ledger.url)
    assert [v.sequence for v in facts.vouchers[TENANT]] == list(range(1, 11))


async def test_batch_retried_after_a_real_serialization_failure(postgres_url, make_ledger, monkeypatch):
    """PostgreSQL: another connection (not taking the write gate) changes a balance row the batch is about to
    write after the batch's snapshot was fixed; the batch fails with a real 40001 (its UPDATE of that row, sent
    with the COMMIT) and is retried whole."""
    ledger = make_ledger(postgres_url)
    ledger.open_internal("funding")
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 1_000)
    alice = ledger.queries.get_account(TENANT, AccountRef(code="alice"))[0].id
    outside = sa.create_engine(postgres_url)
    real = batch_module.write_batch
    attempts, failures = [], []

    def conflicted(conn, subs, *args):
        attempts.append(1)
        if len(attempts) == 1:
            conn.execute(sa.select(sa.func.count()).select_from(t.balances)).scalar_one()  # fixes the snapshot
            with outside.begin() as other:
                other.execute(sa.update(t.balances).where(t.balances.c.account_id == alice)
                              .values(updated_us=t.balances.c.updated_us + 1))
        return real(conn, subs, *args)

    def observed_commit(conn, transaction):
        try:
            commit(conn, transaction)
        except sa.exc.DBAPIError as exc:
            failures.append(type(exc.orig))
            raise

    monkeypatch.setattr(pipeline_module, "write_batch", conflicted)
    monkeypatch.setattr(uow_module, "commit", observed_commit)
    try:
        results = await outcomes(*(ledger.transfer("alice", "bob", 7, request_id=f"real-{i}") for i in range(5)))
    finally:
        outside.dispose()
    assert failures == [psycopg.errors.SerializationFailure]
    assert len(attempts) == 2
    assert all(isinstance(r, Posted) and not r.replayed for r in results)
    assert ledger.balance("alice") == 1_000 - 35 and ledger.balance("bob") == 35
    assert len(check_ledger(postgres_url).vouchers[TENANT]) == 6


async def test_a_connection_lost_in_the_middle_of_a_batch_is_retried(postgres_url, make_ledger, monkeypatch):
    """PostgreSQL: the writer's session is terminated after its opening reads (an administrator, a failover).
    The batch is retried whole on a fresh connection and every caller gets its voucher, not an error."""
    ledger = make_ledger(postgres_url)
    ledger.open_internal("funding")
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 1_000)
    outside = sa.create_engine(postgres_url)
    real = batch_module.write_batch
    attempts = []

    def terminated(conn, subs, *args):
        attempts.append(1)
        if len(attempts) == 1:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            with outside.begin() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return real(conn, subs, *args)

    monkeypatch.setattr(pipeline_module, "write_batch", terminated)
    try:
        results = await outcomes(*(ledger.transfer("alice", "bob", 3, request_id=f"lost-{i}") for i in range(4)))
    finally:
        outside.dispose()
    assert all(isinstance(r, Posted) and not r.replayed for r in results), results
    assert len(attempts) == 2
    assert ledger.balance("bob") == 12
    check_ledger(postgres_url)


async def test_a_batch_whose_commit_was_lost_is_replayed_not_posted_again(postgres_url, make_ledger, monkeypatch):
    """The connection drops after the batch committed (the server never hears back): UnitOfWork retries, and
    the retry must find the idempotency records of the committed attempt and answer from them."""
    ledger = make_ledger(postgres_url)
    ledger.open_internal("funding")
    ledger.open("alice")
    ledger.open("bob")
    ledger.open("poor")
    await ledger.fund("alice", 1_000)
    outside = sa.create_engine(postgres_url)
    real = batch_module.write_batch
    committed: list = []

    def commit_then_lose_connection(conn, subs, *args):
        if not committed:
            with outside.connect() as other:  # the first attempt, committed on the server
                transaction = other.begin()
                committed.extend(real(other, subs, *args))
                commit(other, transaction)  # with what the batch deferred to its COMMIT
            raise sa.exc.OperationalError("COMMIT", {}, psycopg.OperationalError("server closed the connection"),
                                          connection_invalidated=True)
        return real(conn, subs, *args)

    monkeypatch.setattr(pipeline_module, "write_batch", commit_then_lose_connection)
    try:
        results = await outcomes(*(ledger.transfer("alice", "bob", 10 + i, request_id=f"lost-{i}") for i in range(5)),
                                 ledger.transfer("poor", "bob", 1, request_id="lost-poor"))
    finally:
        outside.dispose()
    assert [type(r).__name__ for r in results] == ["Posted"] * 5 + ["LedgerError"]
    assert results[-1].reason == "INSUFFICIENT_FUNDS"
    assert [r.vouchers[0].id for r in results[:5]] == [o.vouchers[0].id for o in committed[:5]]
    assert all(r.replayed for r in results[:5])
    assert ledger.balance("bob") == sum(10 + i for i in range(5))
    assert len(_stored_voucher_ids(postgres_url)) == 1 + 5
    check_ledger(postgres_url)


async def test_sequences_are_gap_free_and_the_hash_chain_links(ledger):
    """Two tenants, interleaved in shared batches, with refusals and a reversal in between."""
    for tenant in (TENANT, OTHER):
        if tenant != TENANT:
            ledger.open_internal("funding", tenant=tenant)
        ledger.open("alice", tenant=tenant)
        ledger.open("bob", tenant=tenant)
        await ledger.fund("alice", 500, tenant=tenant)
    sends = []
    for i in range(12):
        tenant = (TENANT, OTHER)[i % 2]
        amount = 600 if i in (4, 5) else 10  # refused: alice holds only 500
        sends.append(ledger.transfer("alice", "bob", amount, tenant=tenant, memo=f"näive €{i} 日本",
                                     metadata={"n": str(i), "note": "ünïcödé"}))
    first = await outcomes(*sends)
    reversal = await ledger.reverse(first[0].vouchers[0].id)
    second = await outcomes(*(ledger.transfer("bob", "alice", 3, tenant=(TENANT, OTHER)[i % 2]) for i in range(6)))

    assert [r.reason for r in first if isinstance(r, LedgerError)] == ["INSUFFICIENT_FUNDS"] * 2
    facts = check_ledger(ledger.url)
    for tenant in (TENANT, OTHER):
        vouchers = facts.vouchers[tenant]
        assert vouchers[0].previous_hash == GENESIS_HASH
        for before, after in zip(vouchers, vouchers[1:], strict=False):
            assert after.previous_hash == before.hash
        # The read path returns exactly what was hashed.
        listed = ledger.queries.list_vouchers(tenant, page_size=500, page_token="").items
        assert [(v.sequence, v.hash) for v in listed] == [(v.sequence, v.hash) for v in vouchers]
        for v in listed:
            assert voucher_hash(v, v.previous_hash) == v.hash
    answered = [r for r in [*first, reversal, *second] if isinstance(r, Posted)]
    by_tenant = {tenant: sorted(r.vouchers[0].sequence for r in answered if r.vouchers[0].tenant_id == tenant)
                 for tenant in (TENANT, OTHER)}
    assert by_tenant[TENANT] == list(range(2, len(facts.vouchers[TENANT]) + 1))
    assert by_tenant[OTHER] == list(range(2, len(facts.vouchers[OTHER]) + 1))
    for r in answered:  # what the caller was told is what is stored
        stored = next(v for v in facts.vouchers[r.vouchers[0].tenant_id] if v.id == r.vouchers[0].id)
        assert (stored.sequence, stored.hash, stored.previous_hash) == (
            r.vouchers[0].sequence, r.vouchers[0].hash, r.vouchers[0].previous_hash)


async def test_every_balance_is_the_sum_of_its_entries(ledger):
    ledger.open_internal("fees", Side.CREDIT)
    ledger.open("card", AccountType.CREDIT, credit_limit=300)
    for code in ("a", "b", "c"):
        ledger.open(code)
        await ledger.fund(code, 200)
    await outcomes(
        ledger.transfer("a", "b", 50), ledger.transfer("b", "c", 120), ledger.transfer("card", "a", 250),
        ledger.transfer("card", "a", 100),  # refused: beyond the credit limit
        ledger.adjust([("c", Side.DEBIT, 30), ("fees", Side.CREDIT, 20), ("b", Side.CREDIT, 10)]),
        ledger.transfer("c", "a", 1000),  # refused
    )
    facts = check_ledger(ledger.url)
    assert ledger.balance("card") == -250
    for account_id, account in facts.accounts.items():
        view = ledger.queries.get_balance(TENANT, AccountRef(id=account_id))
        entries = ledger.queries.list_entries(TENANT, AccountRef(id=account_id), page_size=500, page_token="").items
        signed = sum(e.amount if e.side == account.normal_side else -e.amount for e in entries)
        assert view.current == signed == facts.balances[account_id], account.code
        assert view.entry_count == len(entries)
        if entries:
            assert entries[-1].balance_after == view.current
        assert view.available == view.current - view.locked + view.credit_limit


async def test_tenants_are_isolated(ledger):
    ledger.open("alice")
    ledger.open("bob")
    ledger.open("only-in-a")
    ledger.open_internal("funding", tenant=OTHER)
    ledger.open("alice", tenant=OTHER)
    ledger.open("bob", tenant=OTHER)
    await ledger.fund("alice", 100)
    posted_a = await ledger.transfer("alice", "bob", 10, request_id="shared-rid")
    a_alice = ledger.queries.get_account(TENANT, AccountRef(code="alice"))[0]
    a_voucher = posted_a.vouchers[0].id

    # The same request_id in another tenant, in the same batch as one of tenant A's: both are new.
    posted_b, again_a = await outcomes(
        ledger.fund("alice", 5, tenant=OTHER),
        ledger.transfer("alice", "bob", 10, request_id="shared-rid"),
    )
    shared_b = await ledger.transfer("alice", "bob", 1, tenant=OTHER, request_id="shared-rid")
    assert again_a.replayed and not shared_b.replayed
    assert shared_b.vouchers[0].sequence == 2  # tenant B's own numbering (its funding was 1)

    refused = await outcomes(
        ledger.transfer(a_alice.id, "bob", 1, tenant=OTHER),
        ledger.transfer("bob", a_alice.id, 1, tenant=OTHER),
        ledger.transfer("alice", "only-in-a", 1, tenant=OTHER),
        ledger.reverse(a_voucher, tenant=OTHER),
    )
    not_yours = (ErrorKind.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE")  # by id: absent or foreign, one answer
    assert [(r.kind, r.reason) for r in refused] == [not_yours, not_yours, (ErrorKind.NOT_FOUND, "ACCOUNT_NOT_FOUND"),
                                                     (ErrorKind.PERMISSION_DENIED, "VOUCHER_NOT_ACCESSIBLE")]
    q = ledger.queries
    for call, reason in ((lambda: q.get_balance(OTHER, AccountRef(id=a_alice.id)), "ACCOUNT_NOT_ACCESSIBLE"),
                         (lambda: q.get_balance(OTHER, AccountRef(code="only-in-a")), "ACCOUNT_NOT_FOUND"),
                         (lambda: q.get_account(OTHER, AccountRef(id=a_alice.id)), "ACCOUNT_NOT_ACCESSIBLE"),
                         (lambda: q.list_entries(OTHER, AccountRef(id=a_alice.id), page_size=10, page_token=""),
                          "ACCOUNT_NOT_ACCESSIBLE")):
        with pytest.raises(LedgerError) as caught:
            call()
        assert caught.value.reason == reason
    with pytest.raises(LedgerError) as caught:
        q.get_voucher(OTHER, a_voucher)
    assert caught.value.reason == "VOUCHER_NOT_ACCESSIBLE"
    # Tenant B's code "alice" is B's own account.
    assert q.get_balance(OTHER, AccountRef(code="alice")).current == 5 - 1
    assert q.get_balance(TENANT, AccountRef(code="alice")).current == 90
    b_ids = {v.id for v in q.list_vouchers(OTHER, page_size=100, page_token="").items}
    a_ids = {v.id for v in q.list_vouchers(TENANT, page_size=100, page_token="").items}
    assert a_voucher in a_ids and not a_ids & b_ids and len(b_ids) == 2
    assert q.list_vouchers(OTHER, page_size=100, page_token="", account_id=a_alice.id).items == []
    assert {v.tenant_id for v in q.list_vouchers(OTHER, page_size=100, page_token="").items} == {OTHER}
    check_ledger(ledger.url)


async def test_batches_are_capped_and_a_full_queue_is_refused_without_writing(database_url, make_ledger):
    ledger = make_ledger(database_url, batch_size_max=4, queue_depth_max=6)
    ledger.open_internal("funding")
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 1_000)
    before = ledger.pipeline.batches_written
    results = await outcomes(*(ledger.transfer("alice", "bob", 1, request_id=f"q-{i}") for i in range(20)))
    posted = [i for i, r in enumerate(results) if isinstance(r, Posted)]
    full = [i for i, r in enumerate(results) if isinstance(r, LedgerError)]
    assert {(r.kind, r.reason) for r in results if isinstance(r, LedgerError)} == {
        (ErrorKind.RESOURCE_EXHAUSTED, "POSTING_QUEUE_FULL")}
    assert len(posted) == 6 and full  # the queue took 6; the rest were turned away at once
    assert ledger.pipeline.batches_written - before == 2  # at most 4 per batch
    keys = _idempotency_keys(ledger.url)
    assert all((TENANT, f"q-{i}") not in keys for i in full)
    # A refused-as-busy request can simply be sent again.
    again = await outcomes(*(ledger.transfer("alice", "bob", 1, request_id=f"q-{i}") for i in full[:3]))
    assert all(isinstance(r, Posted) and not r.replayed for r in again)
    assert ledger.balance("bob") == 9
    check_ledger(ledger.url)


async def test_submitting_nothing_is_answered_at_once_and_costs_no_one_else_their_answer(ledger):
    """Nothing submitted in the same turn as a transfer: the empty submission is answered with nothing, and
    the transfer still posts (an empty entry once failed the turn's hand-over to the writers, so neither was
    ever answered)."""
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 10)
    empty, posted = await asyncio.wait_for(asyncio.gather(ledger.pipeline.submit_many([]),
                                                          ledger.transfer("alice", "bob", 1)), 30)
    assert empty == [] and isinstance(posted, Posted)
    assert ledger.balance("bob") == 1


async def test_one_tenant_cannot_take_the_whole_queue(database_url, make_ledger):
    """A tenant's flows queued or being written are capped: past its share it is refused at once (nothing
    recorded, so the same request_id can be sent again), while another tenant's flows still get in."""
    ledger = make_ledger(database_url, tenant_submissions_max=5)
    for tenant in (TENANT, OTHER):
        ledger.open_internal("funding", tenant=tenant)
        ledger.open("alice", tenant=tenant)
        ledger.open("bob", tenant=tenant)
        await ledger.fund("alice", 1_000, tenant=tenant)
    busy = [ledger.transfer("alice", "bob", 1, request_id=f"busy-{i}") for i in range(12)]
    calm = [ledger.transfer("alice", "bob", 1, request_id=f"calm-{i}", tenant=OTHER) for i in range(5)]
    results = await outcomes(*busy, *calm)
    refused = [i for i, r in enumerate(results[:12]) if isinstance(r, LedgerError)]
    assert {(results[i].kind, results[i].reason) for i in refused} == {
        (ErrorKind.RESOURCE_EXHAUSTED, "POSTING_QUEUE_TENANT_FULL")}
    assert len(refused) == 7  # five got in, in the same turn of the event loop
    assert all(isinstance(r, Posted) for r in results[12:])
    keys = _idempotency_keys(ledger.url)
    assert all((TENANT, f"busy-{i}") not in keys for i in refused)
    again = await outcomes(*(ledger.transfer("alice", "bob", 1, request_id=f"busy-{i}") for i in refused[:5]))
    assert all(isinstance(r, Posted) and not r.replayed for r in again)
    assert ledger.pipeline._tenant_submissions == {}  # every share given back
    check_ledger(ledger.url)


async def test_a_batch_that_fails_unexpectedly_is_written_one_by_one(ledger, monkeypatch):
    """Something no check foresaw fails the batch: each submission is then written alone, so only the one
    that causes it fails, and nothing posts twice."""
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 100)
    real = batch_module.write_batch
    seen: list[list[str]] = []

    def poisoned(conn, subs, *args):
        seen.append([s.request_id for s in subs])
        if any(s.request_id == "poison" for s in subs):
            raise sa.exc.IntegrityError("INSERT", {}, Exception("something unforeseen"))
        return real(conn, subs, *args)

    monkeypatch.setattr(pipeline_module, "write_batch", poisoned)
    names = ["p-0", "p-1", "poison", "p-3", "p-1"]
    results = await outcomes(*(ledger.transfer("alice", "bob", 5, request_id=n) for n in names))
    assert seen[0] == names and all(len(batch) == 1 for batch in seen[1:])
    assert [type(r).__name__ for r in results] == ["Posted", "Posted", "LedgerError", "Posted", "Posted"]
    # It will fail the same way again: INTERNAL with an error id, not "retry".
    assert (results[2].kind, results[2].reason) == (ErrorKind.INTERNAL, "INTERNAL_ERROR")
    assert results[2].metadata["error_id"]
    assert results[4].replayed and results[4].vouchers[0].id == results[1].vouchers[0].id
    assert ledger.balance("bob") == 15
    assert len(_stored_voucher_ids(ledger.url)) == 1 + 3
    check_ledger(ledger.url)


@pytest.mark.parametrize("where", ["memo", "line-memo", "metadata"])
async def test_text_a_backend_cannot_store_is_a_client_error_not_a_retryable_failure(ledger, where):
    """A memo or metadata value with a NUL character: SQLite stores it, PostgreSQL text cannot. Either way the
    answer must be final (refused as INVALID_ARGUMENT, or posted and read back intact), never WRITE_FAILED
    (UNAVAILABLE, "retry with the same request_id"), which invites a client to retry forever. Its batch
    neighbours must post regardless."""
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 100)
    text = "before\x00after"
    odd = {"memo": lambda: ledger.transfer("alice", "bob", 2, memo=text),
           "line-memo": lambda: ledger.transfer("alice", "bob", 2, line_memo=text),
           "metadata": lambda: ledger.transfer("alice", "bob", 2, metadata={"note": text})}[where]()
    before, result, after = await outcomes(ledger.transfer("alice", "bob", 1), odd, ledger.transfer("alice", "bob", 3))
    assert isinstance(before, Posted) and isinstance(after, Posted)
    if isinstance(result, LedgerError):
        assert result.kind is ErrorKind.INVALID_ARGUMENT, (
            f"{result.kind.name} {result.reason}: {result.message}")
    else:
        stored = ledger.queries.get_voucher(TENANT, result.vouchers[0].id)
        kept = {"memo": stored.memo, "line-memo": stored.lines[0].memo, "metadata": stored.metadata.get("note")}
        assert kept[where] == text
    check_ledger(ledger.url)


def test_an_account_name_a_backend_cannot_store_is_a_client_error(ledger):
    """The same gap for CreateAccount: a NUL in the name is stored by SQLite; on PostgreSQL the DataError escapes
    the service (the API answers UNAVAILABLE DATABASE_UNAVAILABLE, "retry"). It must be refused as
    INVALID_ARGUMENT or stored and read back intact."""
    try:
        ledger.open("named", name="before\x00after")
    except LedgerError as error:
        assert error.kind is ErrorKind.INVALID_ARGUMENT, repr(error)
    else:
        assert ledger.queries.get_account(TENANT, AccountRef(code="named"))[0].name == "before\x00after"
