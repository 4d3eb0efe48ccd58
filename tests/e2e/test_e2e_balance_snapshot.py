"""BatchGetBalances: many balances from one snapshot, with the sequences it ends at, over the real wire."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from tally.domain.limits import BALANCES_PER_READ_MAX
from tally.v1 import account_service_pb2 as acc_pb
from tests.e2e.conftest import Server, error_info, md, ref

T, OTHER = "snap", "snap-other"
ACCOUNTS = [f"s{i}" for i in range(6)]
EACH = 1_000
WAIT_S = 30.0


def snapshot(server: Server, refs, tenant: str = T) -> acc_pb.BatchGetBalancesResponse:
    return server.accounts().BatchGetBalances(acc_pb.BatchGetBalancesRequest(accounts=refs), metadata=md(tenant))


def refused(server: Server, refs, tenant: str = T) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as caught:
        snapshot(server, refs, tenant)
    return error_info(caught.value)


def _open(server: Server) -> list[str]:
    ids = [server.create_account(T, code).id for code in ACCOUNTS]
    for code in ACCOUNTS:
        server.fund(T, code, EACH)
    return ids


def test_balances_come_in_request_order_by_id_or_code_with_the_sequences(server: Server) -> None:
    ids = _open(server)
    server.transfer(T, "s0", "s1", 300)
    refs = [ref(id=ids[1]), ref("s0"), ref(id=ids[5]), ref("s2")]
    got = snapshot(server, refs)
    assert [(b.account_id, b.current, b.available) for b in got.balances] == [
        (ids[1], EACH + 300, EACH + 300), (ids[0], EACH - 300, EACH - 300), (ids[5], EACH, EACH),
        (ids[2], EACH, EACH)]
    assert [b.current for b in got.balances] == [server.current(T, ref(id=i)) for i in (ids[1], ids[0], ids[5], ids[2])]
    vouchers = server.all_vouchers(T)
    assert got.voucher_sequence == max(v.sequence for v in vouchers) == len(vouchers)
    assert got.event_sequence >= got.voucher_sequence


def test_a_snapshot_never_shows_half_a_voucher(server: Server) -> None:
    """Transfers move money among the accounts while snapshots are taken: every snapshot's total is the
    funded total, and a snapshot's sequence never goes back."""
    _open(server)
    refs = [ref(code) for code in ACCOUNTS]
    stop, posted, failures = threading.Event(), threading.Event(), []

    def churn() -> None:
        i = 0
        try:
            while not stop.is_set():
                server.transfer(T, ACCOUNTS[i % 6], ACCOUNTS[(i + 1) % 6], 7)
                posted.set()
                i += 1
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
            posted.set()

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        assert posted.wait(WAIT_S)  # the snapshots start once money is moving
        seen = [snapshot(server, refs) for _ in range(60)]
        deadline = time.monotonic() + WAIT_S
        while seen[-1].voucher_sequence == seen[0].voucher_sequence and time.monotonic() < deadline:
            seen.append(snapshot(server, refs))
    finally:
        stop.set()
        worker.join()
    assert failures == []
    assert all(sum(b.current for b in s.balances) == EACH * len(ACCOUNTS) for s in seen)
    sequences = [s.voucher_sequence for s in seen]
    assert sequences == sorted(sequences) and sequences[-1] > sequences[0]


def test_bad_requests_are_refused_with_their_reason(server: Server) -> None:
    ids = _open(server)
    other = server.create_account(OTHER, "theirs")
    assert refused(server, [])[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "ACCOUNTS_COUNT_INVALID")
    too_many = [ref("s0")] * (BALANCES_PER_READ_MAX + 1)
    assert refused(server, too_many)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "ACCOUNTS_COUNT_INVALID")
    assert refused(server, [ref("s0"), ref("nobody")])[:2] == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    code, reason, _ = refused(server, [ref(id=ids[0]), ref(id=other.id)])
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE")
    # The most a call may name is accepted.
    assert len(snapshot(server, [ref("s0")] * BALANCES_PER_READ_MAX).balances) == BALANCES_PER_READ_MAX
