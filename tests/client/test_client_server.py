"""tally-client against a real `tally serve` process (SQLite and PostgreSQL): typed calls and errors, retries
through a real gRPC proxy that loses answers, and a stream that resumes across a server restart."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from tally_client import RetryPolicy, TallyClient, TallyError, pb  # on sys.path through tests/client/conftest.py

from tests.client.conftest import Fault, FaultProxy
from tests.tally_process import TallyProcess

FAST_RETRY = RetryPolicy(attempts_max=4, backoff_initial_s=0.01, backoff_max_s=0.05)
STREAM_WAIT_S = 30.0


def open_accounts(tally: TallyClient, *codes: str) -> list[str]:
    """The tests share a server: fixed request ids make a second opening of `bank` a replay."""
    tally.accounts.create_account(pb.accounts.CreateAccountRequest(
        request_id="create-bank", code="bank", type=pb.types.ACCOUNT_TYPE_INTERNAL, normal_side=pb.types.SIDE_DEBIT,
        currency="USD", floor_policy=pb.types.FLOOR_POLICY_UNBOUNDED))
    return [tally.accounts.create_account(pb.accounts.CreateAccountRequest(
        code=code, type=pb.types.ACCOUNT_TYPE_DEPOSIT, currency="USD")).account.id for code in codes]


def funding(code: str, amount: int) -> pb.accounting.PostRequest:
    lines = [pb.types.LineInput(account=pb.types.AccountRef(code="bank"), side=pb.types.SIDE_DEBIT, amount=amount,
                                currency="USD"),
             pb.types.LineInput(account=pb.types.AccountRef(code=code), side=pb.types.SIDE_CREDIT, amount=amount,
                                currency="USD")]
    return pb.accounting.PostRequest(adjustment=pb.flows.AdjustmentFlow(lines=lines, reason="client test"))


def balance(tally: TallyClient, code: str) -> int:
    request = pb.accounts.GetBalanceRequest(account=pb.types.AccountRef(code=code))
    return tally.accounts.get_balance(request).balance.current


def test_calls_request_ids_and_errors(tally_process: TallyProcess) -> None:
    with TallyClient(tally_process.target, tally_process.api_key) as tally:
        open_accounts(tally, "alice")
        request = funding("alice", 700)
        first = tally.accounting.post(request)
        assert len(request.request_id) == 36  # the client's UUID, set on the caller's message
        assert not first.replayed
        again = tally.accounting.post(request)
        assert again.replayed and again.vouchers[0].id == first.vouchers[0].id
        assert balance(tally, "alice") == 700

        with pytest.raises(TallyError) as missing:
            tally.accounts.get_account(pb.accounts.GetAccountRequest(account=pb.types.AccountRef(code="nobody")))
        assert missing.value.code == grpc.StatusCode.NOT_FOUND
        assert missing.value.reason == "ACCOUNT_NOT_FOUND"
        assert missing.value.metadata["account"] == "code:nobody"
        assert missing.value.attempts == 1

    with TallyClient(tally_process.target, "tly_not-a-key") as stranger, pytest.raises(TallyError) as refused:
        stranger.bookkeeping.get_trial_balance()
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED and refused.value.reason


def test_retries_reuse_the_request_id(tally_process: TallyProcess, fault_proxy: tuple[FaultProxy, str]) -> None:
    proxy, target = fault_proxy
    with TallyClient(target, tally_process.api_key, retry=FAST_RETRY) as tally:
        open_accounts(tally, "bob")
        # The server posts, and the answer is lost twice: the third try gets the stored first result.
        proxy.fail("Post", Fault(grpc.StatusCode.UNAVAILABLE, after_forward=True),
                   Fault(grpc.StatusCode.DEADLINE_EXCEEDED, after_forward=True))
        posted = tally.accounting.post(funding("bob", 1_000))
        sent = [pb.accounting.PostRequest.FromString(body) for body in proxy.requests("Post")]
        assert len(sent) == 3 and len({r.request_id for r in sent}) == 1
        assert posted.replayed
        assert balance(tally, "bob") == 1_000  # posted once

        proxy.fail("GetBalance", Fault(grpc.StatusCode.ABORTED, after_forward=False))
        assert balance(tally, "bob") == 1_000

        # Not retryable: one try, and the error says so.
        before = len(proxy.requests("GetBalance"))
        proxy.fail("GetBalance", Fault(grpc.StatusCode.INVALID_ARGUMENT, after_forward=False))
        with pytest.raises(TallyError) as refused:
            balance(tally, "bob")
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT and refused.value.attempts == 1
        assert len(proxy.requests("GetBalance")) == before + 1

        # Retries are bounded: every try fails, the last error comes out.
        proxy.fail("GetBalance", *[Fault(grpc.StatusCode.UNAVAILABLE, after_forward=False)] * FAST_RETRY.attempts_max)
        with pytest.raises(TallyError) as exhausted:
            balance(tally, "bob")
        assert exhausted.value.code == grpc.StatusCode.UNAVAILABLE
        assert exhausted.value.attempts == FAST_RETRY.attempts_max


def test_stream_resumes_after_a_server_restart(tally_process: TallyProcess) -> None:
    with TallyClient(tally_process.target, tally_process.api_key) as tally:
        (carol,) = open_accounts(tally, "carol")
        stream = tally.accounting.stream_balance_changes(pb.accounting.StreamBalanceChangesRequest(
            account_ids=[carol], from_sequence=0))
        seen: list[int] = []
        reader = threading.Thread(target=lambda: seen.extend(item.change.sequence for item in stream), daemon=True)
        reader.start()
        # A stream "from now" learns its position from the server's first headers, and resumes from there.
        events = tally.accounting.stream_events(pb.accounting.StreamEventsRequest(types=["ledger.entry.posted"]))
        events_seen: list[int] = []
        events_reader = threading.Thread(
            target=lambda: events_seen.extend(item.event.sequence for item in events), daemon=True)
        events_reader.start()
        wait_for(lambda: events.last_sequence is not None, "the stream from now to be positioned")
        for amount in (1, 2, 3):
            tally.accounting.post(funding("carol", amount))
        wait_for(lambda: len(seen) >= 3, "the first three events")

        tally_process.stop()
        tally_process.start()
        for amount in (4, 5, 6):
            tally.accounting.post(funding("carol", amount))
        wait_for(lambda: len(seen) >= 6 and len(events_seen) >= 6, "the events after the restart")
        stream.cancel()
        events.cancel()
        reader.join(10)
        events_reader.join(10)

    assert not reader.is_alive() and not events_reader.is_alive()
    assert events_seen == seen and events.reconnects >= 1
    assert stream.reconnects >= 1
    assert len(seen) == 6 and seen == sorted(set(seen))  # each once, in order, none lost across the restart
    assert stream.last_sequence == seen[-1]


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + STREAM_WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
