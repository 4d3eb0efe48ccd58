"""StreamEvents and StreamBalanceChanges over the real gRPC wire, on SQLite and PostgreSQL: replay then live
without gap or duplicate, filters, balances that end equal to GetBalance, bad requests with their exact
status and reason, a slow consumer, the subscriber limit, cancellation and shutdown."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import grpc
import pytest

from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import types_pb2
from tests.e2e.conftest import (
    Server,
    e2e_settings,
    error_info,
    md,
    open_channel,
    running_server,
    transfer_request,
    wait_until,
    with_credentials,
)

C = grpc.StatusCode
T = "acme"
WAIT_S = 30.0
STREAM_TIMEOUT_S = 120.0
UNKNOWN_ID = "01900000-0000-7000-8000-000000000000"
SLOW_WAVES_MAX = 20
DRAIN_HELD_S = 30  # a shutdown grace the streams must not use up


class Reader:
    """Reads a server stream in a thread: `.items` as they arrive, `.error` when it ends with a status."""

    def __init__(self, call) -> None:
        self.call, self.items, self.error = call, [], None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for response in self.call:
                self.items.append(response)
        except grpc.RpcError as err:
            self.error = err
        finally:
            self.done.set()

    def wait_for(self, predicate: Callable[[list], bool], timeout_s: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.items):
            if self.done.is_set():
                raise AssertionError(f"the stream ended: {self.error!r}")
            assert time.monotonic() < deadline, f"timed out with {len(self.items)} items"
            time.sleep(0.01)

    def after_sequence(self) -> int:
        """Where the stream starts, from its initial metadata; blocks until the server has positioned it."""
        headers = dict(self.call.initial_metadata())
        return int(headers["tally-after-sequence"])

    def cancel(self) -> None:
        self.call.cancel()
        self.done.wait(WAIT_S)


def events(srv: Server, tenant: str | None = T, channel: grpc.Channel | None = None, **fields) -> Reader:
    request = post_pb.StreamEventsRequest(**fields)
    return Reader(srv.accounting(channel).StreamEvents(request, metadata=md(tenant), timeout=STREAM_TIMEOUT_S))


def changes(srv: Server, tenant: str | None = T, channel: grpc.Channel | None = None, **fields) -> Reader:
    request = post_pb.StreamBalanceChangesRequest(**fields)
    return Reader(srv.accounting(channel).StreamBalanceChanges(request, metadata=md(tenant),
                                                                timeout=STREAM_TIMEOUT_S))


def _has_voucher(voucher_id: str, count: int = 1) -> Callable[[list], bool]:
    """Seen `count` items of this voucher (a transfer makes one event, and two balance changes)."""
    def seen(items: list) -> bool:
        return sum((getattr(i, "event", None) or i.change).voucher_id == voucher_id for i in items) >= count
    return seen


def _setup(srv: Server, tenant: str = T) -> tuple[types_pb2.Account, types_pb2.Account]:
    alice = srv.create_account(tenant, "alice")
    bob = srv.create_account(tenant, "bob")
    srv.fund(tenant, "alice", 100_000)
    return alice, bob


def _transfers(srv: Server, count: int, tenant: str = T, amount: int = 7) -> list[types_pb2.Voucher]:
    """alice -> bob, alice -> bob, bob -> alice, ..."""
    pairs = [("alice", "bob"), ("alice", "bob"), ("bob", "alice")]
    return [srv.transfer(tenant, *pairs[i % 3], amount).vouchers[0] for i in range(count)]


def _check_balances(srv: Server, tenant: str, items: list, account_ids: list[str]) -> None:
    """Replaying the changes gives GetBalance: the last change's state, and the sum of the deltas."""
    last, summed = {}, defaultdict(int)
    for item in items:
        change = item.change
        last[change.account_id] = change
        summed[change.account_id] += change.current_delta
    for account_id in account_ids:
        balance = srv.balance(tenant, types_pb2.AccountRef(id=account_id))
        assert last[account_id].current == balance.current == summed[account_id]
        assert (last[account_id].locked, last[account_id].available) == (balance.locked, balance.available)


def test_events_replay_then_live_without_gap_or_duplicate(server: Server) -> None:
    alice, bob = _setup(server)
    _transfers(server, 5)
    reader = events(server, from_sequence=0)
    reader.wait_for(lambda items: len(items) >= 5)  # replaying
    posted = _transfers(server, 6)  # live
    reader.wait_for(_has_voucher(posted[-1].id))
    time.sleep(0.2)
    reader.cancel()
    got = [i.event for i in reader.items]
    assert [e.sequence for e in got] == list(range(1, len(got) + 1))
    types = [e.type for e in got]
    assert types[:4] == ["account.created"] * 3 + ["ledger.entry.posted"]  # alice, bob, funding-usd, fund
    assert types[4:] == ["ledger.entry.posted"] * 11
    assert {e.account_id for e in got[:3]} >= {alice.id, bob.id}
    last = got[-1]
    payload = json.loads(last.payload_json)
    assert last.voucher_id == posted[-1].id == payload["voucher_id"]
    assert "  " not in last.payload_json and ", " not in last.payload_json  # compact
    assert abs(last.time.ToMicroseconds() - posted[-1].post_time.ToMicroseconds()) < 5_000_000


def test_events_from_now_and_resume(server: Server) -> None:
    _setup(server)
    before = _transfers(server, 3)
    live = events(server)  # from now
    start = live.after_sequence()
    after = _transfers(server, 2)
    live.wait_for(_has_voucher(after[-1].id))
    live.cancel()
    assert [i.event.voucher_id for i in live.items] == [v.id for v in after]
    first_live = live.items[0].event.sequence
    assert first_live == start + 1
    resumed = events(server, from_sequence=first_live - 2)
    assert resumed.after_sequence() == first_live - 2
    resumed.wait_for(_has_voucher(after[-1].id))
    resumed.cancel()
    assert [i.event.voucher_id for i in resumed.items] == [before[-1].id] + [v.id for v in after]
    assert [i.event.sequence for i in resumed.items] == [first_live - 1, first_live, first_live + 1]


def test_event_type_filter(server: Server) -> None:
    _setup(server)
    reader = events(server, from_sequence=0, types=["account.created", "account.updated"])
    server.create_account(T, "carol")
    server.set_status(T, "carol", types_pb2.ACCOUNT_STATUS_FROZEN)
    reader.wait_for(lambda items: any(i.event.type == "account.updated" for i in items))
    reader.cancel()
    assert [i.event.type for i in reader.items] == ["account.created"] * 4 + ["account.updated"]
    sequences = [i.event.sequence for i in reader.items]
    assert sequences == sorted(set(sequences))


def test_balance_changes_replay_live_and_equal_get_balance(server: Server) -> None:
    alice, bob = _setup(server)
    funding = server.funding_account(T)
    _transfers(server, 4)
    whole = changes(server, from_sequence=0)
    only_bob = changes(server, from_sequence=0, account_ids=[bob.id])
    posted = _transfers(server, 5, amount=11)
    whole.wait_for(_has_voucher(posted[-1].id, 2))
    only_bob.wait_for(_has_voucher(posted[-1].id))
    time.sleep(0.2)  # nothing more comes
    for reader in (whole, only_bob):
        reader.cancel()
    _check_balances(server, T, whole.items, [alice.id, bob.id, funding.id])
    assert {i.change.account_id for i in only_bob.items} == {bob.id}
    assert len(only_bob.items) == 9  # in every transfer, not in the funding
    _check_balances(server, T, only_bob.items, [bob.id])
    change = whole.items[-1].change
    assert change.cause == "ledger.entry.posted" and change.voucher_id == posted[-1].id
    assert change.currency == "USD" and change.time.seconds > 0
    sequences = [i.change.sequence for i in whole.items]
    assert sequences == sorted(sequences)
    assert len(whole.items) == 2 * 10  # every voucher moves two accounts


def test_holds_in_both_streams(server: Server) -> None:
    """A hold, a partial final capture and a released hold: their events carry the hold id, their balance
    changes move `locked` and `available`, and replaying the changes still ends at GetBalance."""
    alice, bob = _setup(server)
    events_reader, changes_reader = events(server, from_sequence=0), changes(server, from_sequence=0)
    stub = server.accounting()
    held = stub.CreateHold(post_pb.CreateHoldRequest(
        request_id="hold-1", account=types_pb2.AccountRef(code="alice"), amount=300, currency="USD"),
        metadata=md(T)).hold
    changes_reader.wait_for(lambda items: any(i.change.hold_id == held.id for i in items))
    locked = [i.change for i in changes_reader.items if i.change.hold_id == held.id]
    assert [(c.account_id, c.cause, c.locked, c.locked_delta, c.current_delta, c.available) for c in locked] == [
        (alice.id, "balance.hold.created", 300, 300, 0, 100_000 - 300)]
    captured = stub.CaptureHold(post_pb.CaptureHoldRequest(
        request_id="capture-1", hold_id=held.id, amount=100, destination=types_pb2.AccountRef(code="bob"),
        final=True), metadata=md(T))
    other = stub.CreateHold(post_pb.CreateHoldRequest(
        request_id="hold-2", account=types_pb2.AccountRef(code="bob"), amount=60, currency="USD"),
        metadata=md(T)).hold
    stub.ReleaseHold(post_pb.ReleaseHoldRequest(request_id="release-2", hold_id=other.id, reason="e2e"),
                     metadata=md(T))
    events_reader.wait_for(lambda items: sum(i.event.hold_id == other.id for i in items) == 2)
    changes_reader.wait_for(lambda items: sum(i.change.hold_id == other.id for i in items) == 2)
    time.sleep(0.2)
    for reader in (events_reader, changes_reader):
        reader.cancel()
    by_hold = defaultdict(list)
    for item in events_reader.items:
        if item.event.hold_id:
            by_hold[item.event.hold_id].append(item.event.type)
    # The capture's voucher names the hold too (evidence per posting): its ledger.entry.posted event.
    assert sorted(by_hold[held.id]) == ["balance.hold.captured", "balance.hold.created", "balance.released",
                                        "ledger.entry.posted"]
    assert by_hold[other.id] == ["balance.hold.created", "balance.released"]
    assert captured.voucher.id in {i.event.voucher_id for i in events_reader.items}
    assert [e.event.sequence for e in events_reader.items] == list(range(1, len(events_reader.items) + 1))
    _check_balances(server, T, changes_reader.items, [alice.id, bob.id])
    assert server.balance(T, "alice").locked == server.balance(T, "bob").locked == 0
    assert sum(i.change.locked_delta for i in changes_reader.items if i.change.account_id == alice.id) == 0


def test_balance_changes_from_now(server: Server) -> None:
    alice, bob = _setup(server)
    reader = changes(server, account_ids=[alice.id])
    start = reader.after_sequence()
    posted = server.transfer(T, "alice", "bob", 250).vouchers[0]
    reader.wait_for(_has_voucher(posted.id))
    reader.cancel()
    assert len(reader.items) == 1
    change = reader.items[0].change
    assert (change.account_id, change.current, change.current_delta) == (alice.id, 100_000 - 250, -250)
    assert change.sequence == start + 1


def test_tenants_see_only_their_own_stream(server: Server) -> None:
    _setup(server)
    _setup(server, "globex")
    acme = events(server, from_sequence=0)
    globex = events(server, "globex", from_sequence=0)
    mine = _transfers(server, 2)
    theirs = _transfers(server, 3, tenant="globex")
    acme.wait_for(_has_voucher(mine[-1].id))
    globex.wait_for(_has_voucher(theirs[-1].id))
    time.sleep(0.2)
    acme.cancel()
    globex.cancel()
    assert not {i.event.voucher_id for i in acme.items} & {v.id for v in theirs}
    assert not {i.event.voucher_id for i in globex.items} & {v.id for v in mine}
    with pytest.raises(grpc.RpcError) as caught:  # another tenant's account does not exist here
        list(server.accounting().StreamBalanceChanges(post_pb.StreamBalanceChangesRequest(
            account_ids=[server.balance("globex", "alice").account_id]), metadata=md(T), timeout=10))
    assert error_info(caught.value)[:2] == (C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE")


BAD_EVENTS = [
    ("no-credentials", None, {}, C.UNAUTHENTICATED, "CREDENTIALS_MISSING"),
    ("negative-sequence", T, {"from_sequence": -1}, C.INVALID_ARGUMENT, "SEQUENCE_INVALID"),
    ("sequence-past-head", T, {"from_sequence": 1_000_000}, C.INVALID_ARGUMENT, "SEQUENCE_INVALID"),
    ("unknown-type", T, {"types": ["ledger.entry.posted", "nope"]}, C.INVALID_ARGUMENT, "EVENT_TYPE_UNKNOWN"),
    ("type-case", T, {"types": ["Account.Created"]}, C.INVALID_ARGUMENT, "EVENT_TYPE_UNKNOWN"),
    ("too-many-types", T, {"types": ["account.created"] * 33}, C.INVALID_ARGUMENT, "EVENT_TYPES_TOO_MANY"),
]
BAD_CHANGES = [
    ("no-credentials", None, {}, C.UNAUTHENTICATED, "CREDENTIALS_MISSING"),
    ("negative-sequence", T, {"from_sequence": -5}, C.INVALID_ARGUMENT, "SEQUENCE_INVALID"),
    ("sequence-past-head", T, {"from_sequence": 1_000_000}, C.INVALID_ARGUMENT, "SEQUENCE_INVALID"),
    ("unknown-account", T, {"account_ids": [UNKNOWN_ID]}, C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE"),
    ("one-unknown", T, {"account_ids": ["<alice>", UNKNOWN_ID]}, C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE"),
    ("empty-id", T, {"account_ids": [""]}, C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE"),
    ("nul-id", T, {"account_ids": ["a\x00b"]}, C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE"),
    ("long-id", T, {"account_ids": ["x" * 5000]}, C.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE"),
    ("too-many-ids", T, {"account_ids": [UNKNOWN_ID[:-4] + f"{i:04d}" for i in range(1001)]},
     C.INVALID_ARGUMENT, "ACCOUNT_IDS_TOO_MANY"),
]


def _fill(fields: dict, alice_id: str) -> dict:
    return {k: [alice_id if x == "<alice>" else x for x in v] if isinstance(v, list) else v
            for k, v in fields.items()}


def test_bad_stream_requests(server: Server) -> None:
    alice, _ = _setup(server)
    stub = server.accounting()
    for name, tenant, fields, code, reason in BAD_EVENTS:
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.StreamEvents(post_pb.StreamEventsRequest(**fields), metadata=md(tenant), timeout=10))
        assert error_info(caught.value)[:2] == (code, reason), name
    for name, tenant, fields, code, reason in BAD_CHANGES:
        request = post_pb.StreamBalanceChangesRequest(**_fill(fields, alice.id))
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.StreamBalanceChanges(request, metadata=md(tenant), timeout=10))
        assert error_info(caught.value)[:2] == (code, reason), name
    assert server.app.services.hub.subscriber_count == 0


def _hub(srv: Server):
    return srv.app.services.hub


def test_cancelled_streams_free_their_slot_and_the_limit_holds(database_url: str) -> None:
    with running_server(e2e_settings(database_url, stream_subscribers_max=2)) as srv:
        _setup(srv)
        first, second = events(srv), changes(srv)
        for reader in (first, second):
            reader.after_sequence()  # positioned: each holds its slot
        with pytest.raises(grpc.RpcError) as caught:
            list(srv.accounting().StreamEvents(post_pb.StreamEventsRequest(), metadata=md(T), timeout=10))
        assert error_info(caught.value)[:2] == (C.RESOURCE_EXHAUSTED, "STREAM_SUBSCRIBERS_EXHAUSTED")
        first.cancel()
        wait_until(lambda: _hub(srv).subscriber_count == 1, "the cancelled stream to free its slot")
        third = events(srv)
        third.after_sequence()  # a stream "from now" misses what commits before it is positioned
        posted = _transfers(srv, 1)
        third.wait_for(_has_voucher(posted[0].id))
        second.wait_for(_has_voucher(posted[0].id))
        for reader in (second, third):
            reader.cancel()
        wait_until(lambda: _hub(srv).subscriber_count == 0, "every slot free")


def test_a_slow_consumer_is_ended_and_resumes_exactly(database_url: str) -> None:
    """The client does not read while thousands of events are posted: gRPC flow control backs up into the
    hub, the stream ends with STREAM_CONSUMER_TOO_SLOW after the last event it delivered, and resuming from
    `last_sequence` gives the rest with no gap and no duplicate."""
    with running_server(e2e_settings(database_url, stream_lag_events_max=600, stream_page_size=100)) as srv:
        _setup(srv)
        # No BDP probing: the client's flow-control window stays at its initial size instead of growing.
        channel = with_credentials(grpc.insecure_channel(srv.target, options=[("grpc.http2.bdp_probe", 0)]),
                                   srv.target)
        call = post_grpc.AccountingServiceStub(channel).StreamEvents(
            post_pb.StreamEventsRequest(), metadata=md(T), timeout=STREAM_TIMEOUT_S)
        wait_until(lambda: _hub(srv).tenants_live == {T}, "the subscriber to go live")
        for wave in range(SLOW_WAVES_MAX):
            batch = post_pb.PostBatchRequest(requests=[
                transfer_request(f"slow-{wave}-{i}", "alice", "bob", 1) for i in range(500)])
            results = srv.accounting().PostBatch(batch, metadata=md(T)).results
            assert all(r.WhichOneof("result") == "posted" for r in results), results[0]
            time.sleep(0.2)
            if not _hub(srv).tenants_live:  # ended: its feed is gone; the status waits behind what is buffered
                break
        else:
            raise AssertionError(f"{SLOW_WAVES_MAX * 500} unread events and the stream was never too slow")
        received = []
        with pytest.raises(grpc.RpcError) as caught:
            for response in call:  # only now does the client read
                received.append(response.event.sequence)
        channel.close()
        code, reason, metadata = error_info(caught.value)
        assert (code, reason) == (C.RESOURCE_EXHAUSTED, "STREAM_CONSUMER_TOO_SLOW")
        assert received == list(range(received[0], received[0] + len(received)))
        assert int(metadata["last_sequence"]) == received[-1]
        head = asyncio.run_coroutine_threadsafe(_hub(srv).head(T), srv.loop).result(WAIT_S)
        resumed = events(srv, from_sequence=received[-1])
        resumed.wait_for(lambda items: len(items) >= head - received[-1])
        time.sleep(0.1)
        resumed.cancel()
        assert [i.event.sequence for i in resumed.items] == list(range(received[-1] + 1, head + 1))


def test_server_stop_ends_streams_promptly(database_url: str) -> None:
    channels = []  # the streams' own channel: the fixture closes the ones it made before stopping
    try:
        with running_server(e2e_settings(database_url, shutdown_grace_s=DRAIN_HELD_S)) as srv:
            _setup(srv)
            channels.append(open_channel(srv.target, timeout_s=STREAM_TIMEOUT_S))
            readers = [events(srv, channel=channels[0], from_sequence=0), changes(srv, channel=channels[0])]
            readers[0].wait_for(lambda items: len(items) >= 4)
            wait_until(lambda: _hub(srv).subscriber_count == 2, "two subscribers")
            started = time.monotonic()
        stopped_s = time.monotonic() - started
        assert stopped_s < DRAIN_HELD_S / 2, f"stopping took {stopped_s:.1f}s: the streams held the drain"
        for reader in readers:
            assert reader.done.wait(WAIT_S)
            code, reason, metadata = error_info(reader.error)
            assert (code, reason) == (C.UNAVAILABLE, "SERVER_SHUTTING_DOWN")
        assert error_info(readers[0].error)[2]["last_sequence"] == str(readers[0].items[-1].event.sequence)
    finally:
        for channel in channels:
            channel.close()
