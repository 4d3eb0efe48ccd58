"""Who asked is kept with each request's idempotency record, written in the request's own transaction, so
the record of every change that committed names its actor even when the audit log's last rows are lost
in a crash. Over the real gRPC wire, on SQLite and PostgreSQL, for every operation that keeps a record:
postings (single, batched, refused), reversals, holds, account changes and the server's own hold expiry."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa

from tally.domain.auth import Role
from tally.service.auth import keys
from tally.service.posting.expiry import EXPIRER_ACTOR
from tally.service.posting.pipeline import now_us
from tally.storage import tables
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import types_pb2
from tests.e2e.conftest import TenantKeys, md, ref, timestamp_in, transfer_request, wait_until

TENANT = "actor"
EXPIRY_WAIT_S = 15.0  # the expirer runs every second


def _key_id(api_key: str) -> str:
    return api_key.removeprefix(keys.KEY_PREFIX).split("_", 1)[0]


def _recorded_actors(server) -> dict[str, str]:
    """request_id -> actor of every idempotency record of the tenant, read from the database."""
    query = (sa.select(tables.idempotency.c.request_id, tables.idempotency.c.actor)
             .where(tables.idempotency.c.tenant_id == TENANT))
    rows = server.app.services.uow.read({TENANT}, lambda conn: conn.execute(query).all())
    return dict(rows)


def _wait_expired(stub, hold_id: str) -> None:
    wait_until(lambda: stub.GetHold(post_pb.GetHoldRequest(hold_id=hold_id), metadata=md(TENANT)).hold.status
               == types_pb2.HOLD_STATUS_EXPIRED, f"hold {hold_id} to expire", EXPIRY_WAIT_S, interval_s=0.1)


def test_every_record_names_who_asked(server):
    admin = f"key:{_key_id(TenantKeys.for_target(server.target).key_for(TENANT))}"
    stub = server.accounting()
    server.create_account(TENANT, "alice", request_id="open-alice")
    server.create_account(TENANT, "bob", request_id="open-bob")
    server.fund(TENANT, "alice", 1_000_000, request_id="fund-alice")
    server.transfer(TENANT, "alice", "bob", 250_000, request_id="pay-1")
    with pytest.raises(grpc.RpcError) as refused:
        server.transfer(TENANT, "bob", "alice", 9_000_000, request_id="overdraw")
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    batch = stub.PostBatch(post_pb.PostBatchRequest(requests=[
        transfer_request("batch-1", "alice", "bob", 1), transfer_request("batch-2", "bob", "alice", 2)]),
        metadata=md(TENANT))
    assert all(r.HasField("posted") for r in batch.results)
    stub.ReverseVoucher(post_pb.ReverseVoucherRequest(
        request_id="undo-1", voucher_id=batch.results[0].posted.vouchers[0].id, reason="e2e"), metadata=md(TENANT))
    server.set_status(TENANT, "bob", types_pb2.ACCOUNT_STATUS_FROZEN, request_id="freeze-bob")
    server.set_status(TENANT, "bob", types_pb2.ACCOUNT_STATUS_ACTIVE, request_id="thaw-bob")
    held = stub.CreateHold(post_pb.CreateHoldRequest(request_id="hold-1", account=ref("alice"), amount=10_000,
                                                     currency="USD"), metadata=md(TENANT)).hold
    stub.CaptureHold(post_pb.CaptureHoldRequest(request_id="capture-1", hold_id=held.id, amount=4_000,
                                                destination=ref("bob")), metadata=md(TENANT))
    stub.ReleaseHold(post_pb.ReleaseHoldRequest(request_id="release-1", hold_id=held.id), metadata=md(TENANT))
    expiring = stub.CreateHold(post_pb.CreateHoldRequest(request_id="hold-2", account=ref("alice"), amount=1,
                                                         currency="USD", expire_time=timestamp_in(3)),
                               metadata=md(TENANT)).hold
    _wait_expired(stub, expiring.id)

    actors = _recorded_actors(server)

    asked = {"open-alice", "open-bob", "fund-alice", "pay-1", "overdraw", "batch-1", "batch-2", "undo-1",
             "freeze-bob", "thaw-bob", "hold-1", "capture-1", "release-1", "hold-2"}
    assert asked <= set(actors)
    assert actors.pop(f"expire:{expiring.id}") == EXPIRER_ACTOR
    assert set(actors.values()) == {admin}  # the helpers' own requests (the funding account) included


def test_a_resend_under_another_key_replays_and_keeps_the_first_actor(server):
    server.create_account(TENANT, "alice", request_id="open-alice")
    server.create_account(TENANT, "bob", request_id="open-bob")
    server.fund(TENANT, "alice", 1_000, request_id="fund-alice")
    first = server.transfer(TENANT, "alice", "bob", 100, request_id="pay-once")
    poster = keys.create_key(TenantKeys.for_target(server.target).uow, TENANT, Role.POSTER, "second", "tests",
                             now_us)
    with grpc.insecure_channel(server.target) as channel:
        again = post_grpc.AccountingServiceStub(channel).Post(
            transfer_request("pay-once", "alice", "bob", 100),
            metadata=(("authorization", f"Bearer {poster.secret_key}"),), timeout=30)

    assert again.replayed and again.vouchers[0].id == first.vouchers[0].id
    assert server.current(TENANT, "bob") == 100
    first_key = _key_id(TenantKeys.for_target(server.target).key_for(TENANT))
    assert _recorded_actors(server)["pay-once"] == f"key:{first_key}" != f"key:{poster.key_id}"

