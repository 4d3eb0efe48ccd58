"""Holds under contention, on SQLite and PostgreSQL, through the service layer.

For one hold a capture, a release and an expiry (the very submission the expirer makes,
tally.service.posting.expiry._expiry) are submitted at once, many rounds over: exactly one wins each round, the
other two are refused with HOLD_<what the winner made of it>, the account's locked balance returns to what
the other holds reserve, and the current balance moves only when the capture won. The same race is run
across two service instances on one database (two "processes"), and next to the hold's expiry time. Partial
captures racing each other never capture more than the hold. check_ledger passes at the end.
"""

from __future__ import annotations

import asyncio
import random

from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.holds import Hold, HoldStatus
from tally.service.commands import CaptureHold, CreateHold, ReleaseHold
from tally.service.posting.batch import Posted
from tally.service.posting.expiry import _expiry
from tally.service.posting.pipeline import now_us
from tests.integration.conftest import TENANT, Ledger, check_ledger, outcome, ref

USD = "USD"
FUNDED = 1_000_000_000
WINNER_STATUS = {"capture": HoldStatus.CAPTURED, "release": HoldStatus.RELEASED, "expire": HoldStatus.EXPIRED}


async def _setup(ledger: Ledger) -> None:
    ledger.open("c1")
    ledger.open("shop")
    await ledger.fund("c1", FUNDED)


async def _create(ledger: Ledger, amount: int, *, expires_us: int | None = None, account: str = "c1") -> Hold:
    posted = await ledger.posting.create_hold(CreateHold(TENANT, ledger.request_id("hold"), ref(account), amount,
                                                         USD, expires_us=expires_us))
    assert posted.holds[0].status is HoldStatus.ACTIVE
    return posted.holds[0]


def _capture(ledger: Ledger, hold_id: str, amount: int, *, final: bool):
    return outcome(ledger.posting.capture_hold(CaptureHold(TENANT, ledger.request_id("cap"), hold_id, amount,
                                                           ref("shop"), final=final)))


def _release(ledger: Ledger, hold_id: str):
    return outcome(ledger.posting.release_hold(ReleaseHold(TENANT, ledger.request_id("rel"), hold_id)))


def _expire(ledger: Ledger, hold_id: str):
    return ledger.pipeline.submit(_expiry(TENANT, hold_id))


async def _jittered(awaitable, rng: random.Random, delay_s: float = 0.0):
    for _ in range(rng.randrange(4)):
        await asyncio.sleep(0)
    if delay_s or rng.random() < 0.3:
        await asyncio.sleep(delay_s or rng.random() * 0.003)
    return await awaitable


def _state(ledger: Ledger, code: str) -> tuple[int, int]:
    b = ledger.queries.get_balance(TENANT, ref(code))
    return b.current, b.locked


async def _race_round(rng: random.Random, capturer: Ledger, releaser: Ledger, expirer: Ledger, hold: Hold,
                      capture_amount: int, final: bool) -> str:
    """One three-way race for `hold`; returns the winner after checking the round's invariants."""
    reader = capturer
    current_before, locked_before = _state(reader, "c1")
    shop_before = _state(reader, "shop")[0]
    calls = {"capture": _capture(capturer, hold.id, capture_amount, final=final),
             "release": _release(releaser, hold.id),
             "expire": _expire(expirer, hold.id)}
    names = list(calls)
    rng.shuffle(names)
    # Each round gives one contender a head start of a few milliseconds, or nobody: the capture reads its
    # hold before it queues, so without one it rarely gets in first.
    favoured = rng.choice(names + [None])
    delays = {n: 0.0 if favoured in (None, n) else 0.002 + rng.random() * 0.006 for n in names}
    results = dict(zip(names, await asyncio.gather(*(_jittered(calls[n], rng, delays[n]) for n in names)),
                       strict=True))

    winners = [name for name, result in results.items() if isinstance(result, Posted)]
    assert len(winners) == 1, {n: getattr(r, "reason", r) for n, r in results.items()}
    winner = winners[0]
    status = WINNER_STATUS[winner]
    for name, result in results.items():
        if name == winner:
            continue
        assert isinstance(result, LedgerError), (name, result)
        assert (result.kind, result.reason) == (ErrorKind.FAILED_PRECONDITION, f"HOLD_{status.name}"), \
            (winner, name, result)
    won: Posted = results[winner]
    assert won.holds[0].id == hold.id and won.holds[0].status is status

    stored = reader.queries.get_hold(TENANT, hold.id)
    assert stored.status is status and stored.remaining == 0
    captured = capture_amount if winner == "capture" else 0
    assert stored.captured == captured
    assert len(stored.capture_voucher_ids) == (1 if winner == "capture" else 0)
    if winner == "capture":
        assert [v.id for v in won.vouchers] == list(stored.capture_voucher_ids)
    # The whole hold leaves the locked balance whoever wins; only a capture moves money.
    assert _state(reader, "c1") == (current_before - captured, locked_before - hold.amount)
    assert _state(reader, "shop")[0] == shop_before + captured
    return winner


async def test_capture_release_and_expiry_race_exactly_one_wins(ledger: Ledger, make_ledger) -> None:
    rng = random.Random(20261101)
    await _setup(ledger)
    other = make_ledger(ledger.url)  # a second service instance ("process") on the same database
    bystander = await _create(ledger, 7_777)  # an unrelated hold whose reservation must survive every round
    expected_current = FUNDED
    wins: dict[str, int] = {"capture": 0, "release": 0, "expire": 0}

    rounds = 0
    # Same instance: the three land in the writer's queue together.
    for i in range(24):
        amount = rng.randrange(1, 2_000_000)
        hold = await _create(ledger, amount, expires_us=now_us() + 3_600_000_000)
        final = i % 2 == 0
        capture_amount = rng.randrange(1, amount + 1) if final else amount
        winner = await _race_round(rng, ledger, ledger, ledger, hold, capture_amount, final)
        wins[winner] += 1
        expected_current -= capture_amount if winner == "capture" else 0
        rounds += 1
    # Across instances: the database decides.
    for _ in range(12):
        amount = rng.randrange(1, 2_000_000)
        hold = await _create(other, amount, expires_us=now_us() + 3_600_000_000)
        instances = [ledger, other]
        rng.shuffle(instances)
        capturer, releaser = instances
        expirer = rng.choice([ledger, other])
        winner = await _race_round(rng, capturer, releaser, expirer, hold, amount, True)
        wins[winner] += 1
        expected_current -= amount if winner == "capture" else 0
        rounds += 1
    # Around the expiry time: a capture or release after it is refused HOLD_EXPIRED, so the expiry wins.
    for _ in range(12):
        amount = rng.randrange(1, 2_000_000)
        hold = await _create(ledger, amount, expires_us=now_us() + rng.randrange(1_000, 30_000))
        await asyncio.sleep(rng.random() * 0.04)
        winner = await _race_round(rng, ledger, other, rng.choice([ledger, other]), hold, amount, True)
        wins[winner] += 1
        expected_current -= amount if winner == "capture" else 0
        rounds += 1

    assert sum(wins.values()) == rounds
    assert sum(1 for n in wins.values() if n) >= 2, wins  # the rounds really raced
    print(f"race winners over {rounds} rounds: {wins}")
    assert _state(ledger, "c1") == (expected_current, 7_777)
    assert _state(ledger, "shop")[0] == FUNDED - expected_current
    assert ledger.queries.get_hold(TENANT, bystander.id).status is HoldStatus.ACTIVE
    check_ledger(ledger.url)


async def test_a_repeated_expiry_submission_is_answered_from_the_first(ledger: Ledger, make_ledger) -> None:
    """Two expirers (two processes) racing for the same due hold: one releases, the other is answered from
    its idempotency record; the reservation is freed once."""
    await _setup(ledger)
    other = make_ledger(ledger.url)
    for _ in range(6):
        hold = await _create(ledger, 500_000)
        results = await asyncio.gather(_expire(ledger, hold.id), _expire(other, hold.id), _expire(ledger, hold.id))
        assert all(isinstance(r, Posted) for r in results), results
        assert sorted(r.replayed for r in results) == [False, True, True]
        assert all(r.holds[0].status is HoldStatus.EXPIRED for r in results)
        assert _state(ledger, "c1") == (FUNDED, 0)
    check_ledger(ledger.url)


async def test_partial_captures_racing_never_capture_more_than_the_hold(ledger: Ledger, make_ledger) -> None:
    rng = random.Random(7)
    await _setup(ledger)
    other = make_ledger(ledger.url)
    instances = [ledger, other]
    total_captured = total_locked = 0

    async def race(amount: int, requests: list[tuple[int, bool]], with_release: bool = False):
        nonlocal total_captured, total_locked
        hold = await _create(ledger, amount, expires_us=now_us() + 3_600_000_000)
        current_before, locked_before = _state(ledger, "c1")
        calls = [_jittered(_capture(rng.choice(instances), hold.id, amt, final=final), rng) for amt, final in requests]
        at = rng.randrange(len(calls) + 1) if with_release else None
        if at is not None:
            calls.insert(at, _jittered(_release(rng.choice(instances), hold.id), rng))
        results = await asyncio.gather(*calls)
        released = None
        if at is not None:
            released = results.pop(at)
        captures = results
        stored = ledger.queries.get_hold(TENANT, hold.id)
        ok = [(amt, r) for (amt, _), r in zip(requests, captures, strict=True) if isinstance(r, Posted)]
        refused = [(amt, r) for (amt, _), r in zip(requests, captures, strict=True) if not isinstance(r, Posted)]
        captured = sum(amt for amt, _ in ok)
        assert captured == stored.captured <= amount
        assert len(stored.capture_voucher_ids) == len(ok)
        assert sorted(stored.capture_voucher_ids) == sorted(r.vouchers[0].id for _, r in ok)
        for amt, error in refused:
            assert error.kind is ErrorKind.FAILED_PRECONDITION, error
            if error.reason == "HOLD_AMOUNT_EXCEEDED":
                assert amt > amount - stored.captured, (amt, stored)
            else:
                assert error.reason == f"HOLD_{stored.status.name}" and stored.status is not HoldStatus.ACTIVE, error
        if isinstance(released, Posted):
            assert stored.status is HoldStatus.RELEASED and released.holds[0].status is HoldStatus.RELEASED
        elif released is not None:
            assert released.kind is ErrorKind.FAILED_PRECONDITION, released
            assert released.reason == f"HOLD_{stored.status.name}" == "HOLD_CAPTURED", released
        still_locked = stored.amount - stored.captured if stored.status is HoldStatus.ACTIVE else 0
        assert stored.remaining == still_locked
        assert _state(ledger, "c1") == (current_before - captured, locked_before - amount + still_locked)
        total_captured += captured
        total_locked += still_locked
        return stored, ok, refused

    # 10 x 150_000 of 1_000_000: exactly 6 fit; the other 4 exceed the 100_000 left.
    stored, ok, refused = await race(1_000_000, [(150_000, False)] * 10)
    assert (len(ok), stored.captured, stored.status) == (6, 900_000, HoldStatus.ACTIVE)
    assert {e.reason for _, e in refused} == {"HOLD_AMOUNT_EXCEEDED"}
    # 6 x 250_000 of 1_000_000: 4 capture all of it and close the hold; the other 2 find it captured.
    stored, ok, refused = await race(1_000_000, [(250_000, False)] * 6)
    assert (len(ok), stored.captured, stored.status) == (4, 1_000_000, HoldStatus.CAPTURED)
    assert {e.reason for _, e in refused} == {"HOLD_CAPTURED"}
    # Random sizes, some final, some rounds with a release in the middle.
    for i in range(10):
        amount = rng.randrange(100_000, 2_000_000)
        requests = [(rng.randrange(1, amount // 2), rng.random() < 0.15) for _ in range(rng.randrange(4, 12))]
        await race(amount, requests, with_release=i % 3 == 0)

    assert _state(ledger, "c1") == (FUNDED - total_captured, total_locked)
    assert _state(ledger, "shop")[0] == total_captured
    check_ledger(ledger.url)
