"""Hot-account debits at the floor (issue #5): many concurrent callers, on their own threads, debit one
account funded with an exact multiple of the amount. Exactly funds // amount debits succeed, every other one
is refused INSUFFICIENT_FUNDS, the balance ends exactly at its floor (0) and the statement's running balance
never went below it; money is conserved. With one service instance, and with two on one database (two
server processes, whose writers queue on the database)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.vouchers import AccountRef
from tally.service.posting.batch import Posted
from tally.storage import tables as t
from tests.integration.conftest import FUNDING, TENANT, Ledger, check_ledger, outcome

CALLERS = 32
ATTEMPTS_PER_CALLER = 8
AMOUNT = 7
SUCCESSES = 100  # the funds cover exactly this many debits
FUNDS = AMOUNT * SUCCESSES
HOT = "hot"
SINKS = [f"sink-{i}" for i in range(4)]
ANSWER_TIMEOUT_S = 120

assert CALLERS * ATTEMPTS_PER_CALLER > 2 * SUCCESSES, "the callers must try far more than the funds allow"


def _caller(index: int, ledgers: list[Ledger], loop: asyncio.AbstractEventLoop,
            start: threading.Barrier) -> dict[str, Posted | LedgerError]:
    """One caller thread: its debits one after another, each waiting for its answer; returns request_id ->
    answer. Every caller starts at the same moment."""
    start.wait()
    answers: dict[str, Posted | LedgerError] = {}
    for n in range(ATTEMPTS_PER_CALLER):
        request_id = f"hot-{index}-{n}"
        ledger = ledgers[(index + n) % len(ledgers)]
        call = outcome(ledger.transfer(HOT, SINKS[index % len(SINKS)], AMOUNT, request_id=request_id))
        answers[request_id] = asyncio.run_coroutine_threadsafe(call, loop).result(ANSWER_TIMEOUT_S)
    return answers


async def _race(ledgers: list[Ledger]) -> dict[str, Posted | LedgerError]:
    loop = asyncio.get_running_loop()
    start = threading.Barrier(CALLERS)
    with ThreadPoolExecutor(max_workers=CALLERS, thread_name_prefix="hot-caller") as threads:
        per_caller = await asyncio.gather(*(loop.run_in_executor(threads, _caller, i, ledgers, loop, start)
                                            for i in range(CALLERS)))
    return {request_id: answer for answers in per_caller for request_id, answer in answers.items()}


def _stored_requests(url: str) -> Counter:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return Counter(conn.execute(sa.select(t.vouchers.c.request_id)
                                        .where(t.vouchers.c.request_id.like("hot-%"))).scalars())
    finally:
        engine.dispose()


def _statement(ledger: Ledger, code: str) -> list:
    """Every entry of the account's statement, through the read path, page by page."""
    entries, token = [], ""
    while True:
        page = ledger.queries.list_entries(TENANT, AccountRef(code=code), page_size=50, page_token=token)
        entries += page.items
        token = page.next_page_token
        if not token:
            return entries


@pytest.mark.parametrize("instances", [1, 2], ids=["one-process", "two-processes"])
async def test_hot_account_debits_stop_exactly_at_the_floor(database_url, make_ledger, instances):
    ledgers = [make_ledger(database_url) for _ in range(instances)]
    first = ledgers[0]
    first.open_internal(FUNDING)
    for code in (HOT, *SINKS):
        first.open(code)
    await first.fund(HOT, FUNDS)

    answers = await _race(ledgers)

    assert len(answers) == CALLERS * ATTEMPTS_PER_CALLER
    posted = {rid: a for rid, a in answers.items() if isinstance(a, Posted)}
    refused = {rid: a for rid, a in answers.items() if isinstance(a, LedgerError)}
    assert len(posted) == SUCCESSES, f"{len(posted)} debits got through, the funds cover {SUCCESSES}"
    assert not any(a.replayed for a in posted.values())
    reasons = Counter((e.kind, e.reason) for e in refused.values())
    assert reasons == {(ErrorKind.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS"): len(answers) - SUCCESSES}, reasons

    assert first.balance(HOT) == 0
    assert sum(first.balance(code) for code in SINKS) == FUNDS
    entries = _statement(first, HOT)
    assert len(entries) == 1 + SUCCESSES  # the funding credit, then one entry per accepted debit
    assert [e.entry_number for e in entries] == list(range(1, len(entries) + 1))
    running = [e.balance_after for e in entries]
    assert min(running) >= 0, "the hot account went below its floor"
    assert running == [FUNDS - AMOUNT * i for i in range(len(entries))], "a running balance is off"

    stored = _stored_requests(database_url)
    assert set(stored) == set(posted) and set(stored.values()) == {1}, "acknowledged != stored exactly once"
    check_ledger(database_url)  # money conserved, balances = entries, sequences and hash chains intact

    # Resending a few of each after the race: an accepted debit answers its voucher again; a refused one is
    # refused again, and nothing moves.
    for rid in sorted(posted)[:5]:
        again = await first.transfer(HOT, SINKS[int(rid.split("-")[1]) % len(SINKS)], AMOUNT, request_id=rid)
        assert again.replayed and again.vouchers[0].id == posted[rid].vouchers[0].id
    for rid in sorted(refused)[:5]:
        again = await outcome(first.transfer(HOT, SINKS[int(rid.split("-")[1]) % len(SINKS)], AMOUNT,
                                             request_id=rid))
        assert isinstance(again, LedgerError) and again.reason == "INSUFFICIENT_FUNDS"
    assert first.balance(HOT) == 0
    check_ledger(database_url)
