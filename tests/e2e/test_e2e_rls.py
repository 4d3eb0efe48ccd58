"""The real server on PostgreSQL connected as the service role `tally_app`: a role that owns no table, under
row-level security, with no UPDATE or DELETE on the journal. Proves the grants of `tally migrate` are
enough for the whole service: first start (tenant count, first admin key), authentication, postings in
batches, reads, holds with automatic expiry, streams (LISTEN) and the audit log."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tally.storage.migrate import migrate
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import types_pb2
from tests.e2e.conftest import e2e_settings, md, ref, running_server, timestamp_in, wait_until

SERVICE_ROLE = "tally_app"
A, B = "rls-a", "rls-b"
RLS_WAIT_S = 20.0


@pytest.fixture(params=[False, True], ids=["auto-migrate-off", "auto-migrate-skipped"])
def app_server(request, postgres_url, pg_server, tmp_path):
    """TALLY_AUTO_MIGRATE=false as documented for this deployment; left on, the server sees that its role
    does not own the schema and starts without trying."""
    pg_server.create_login_role(SERVICE_ROLE)
    migrate(postgres_url, service_role=SERVICE_ROLE)  # as the owner, like the migration Job
    app_url = make_url(postgres_url).set(username=SERVICE_ROLE).render_as_string(hide_password=False)
    # In production mode too: a role that owns nothing and does not bypass row security may serve.
    settings = dataclasses.replace(e2e_settings(app_url), auto_migrate=request.param, bootstrap_admin=True,
                                   admin_key_file=str(tmp_path / "admin.key"), env="production")
    with running_server(settings) as server:
        yield server, postgres_url, tmp_path / "admin.key"


def test_the_server_runs_as_the_service_role(app_server) -> None:
    server, owner_url, admin_key = app_server
    accounts, accounting = server.accounts(), server.accounting()

    # First start as tally_app: the tenants were counted (system scope) and `local` got an admin key.
    key = admin_key.read_text().strip()
    local = accounts.CreateAccount(acc_pb.CreateAccountRequest(
        request_id="local-1", code="cash", type=types_pb2.ACCOUNT_TYPE_DEPOSIT, currency="USD"),
        metadata=(("authorization", f"Bearer {key}"),)).account
    assert local.tenant_id == "local"

    for tenant in (A, B):
        server.create_account(tenant, "alice")
        server.create_account(tenant, "bob")
        server.fund(tenant, "alice", 1_000)
        server.transfer(tenant, "alice", "bob", 100)
    for tenant, other in ((A, B), (B, A)):
        assert server.current(tenant, "alice") == 900 and server.current(tenant, "bob") == 100
        vouchers = server.all_vouchers(tenant)
        assert len(vouchers) == 2 and {v.tenant_id for v in vouchers} == {tenant}
        assert [e.amount for e in server.all_entries(tenant, "bob")] == [100]
        with pytest.raises(grpc.RpcError) as caught:  # the other tenant's voucher does not exist for it
            accounting.GetVoucher(post_pb.GetVoucherRequest(voucher_id=server.all_vouchers(other)[0].id),
                                  metadata=md(tenant))
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED

    # Holds: create, capture, release; and one that the server expires on its own.
    hold = accounting.CreateHold(post_pb.CreateHoldRequest(
        request_id="hold-1", account=ref("alice"), amount=300, currency="USD"), metadata=md(A)).hold
    assert server.balance(A, "alice").locked == 300
    captured = accounting.CaptureHold(post_pb.CaptureHoldRequest(
        request_id="cap-1", hold_id=hold.id, amount=120, destination=ref("bob")), metadata=md(A))
    assert captured.voucher.id and captured.hold.captured == 120
    released = accounting.ReleaseHold(post_pb.ReleaseHoldRequest(request_id="rel-1", hold_id=hold.id),
                                      metadata=md(A)).hold
    assert released.status == types_pb2.HOLD_STATUS_RELEASED
    assert (server.current(A, "alice"), server.balance(A, "alice").locked) == (780, 0)

    expiring = accounting.CreateHold(post_pb.CreateHoldRequest(
        request_id="hold-2", account=ref("alice"), amount=50, currency="USD", expire_time=timestamp_in(3)),
        metadata=md(B)).hold
    wait_until(lambda: accounting.GetHold(post_pb.GetHoldRequest(hold_id=expiring.id), metadata=md(B)).hold.status
               == types_pb2.HOLD_STATUS_EXPIRED, "the hold's expiry", RLS_WAIT_S, interval_s=0.1)
    assert server.balance(B, "alice").locked == 0

    # A stream replays the tenant's committed events, and only the tenant's.
    stream = accounting.StreamEvents(post_pb.StreamEventsRequest(from_sequence=0), metadata=md(A), timeout=10)
    events = []
    for response in stream:
        events.append(response.event)
        if len(events) == 5:
            break
    stream.cancel()
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]

    # Audit rows were written as tally_app too (checked by the owner after the server flushed them).
    engine = sa.create_engine(owner_url)
    try:
        def audited() -> int:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT count(DISTINCT tenant_id) FROM audit_log "
                                            "WHERE tenant_id IN ('rls-a', 'rls-b', 'local')")).scalar_one()
        wait_until(lambda: audited() == 3, "the audit rows", RLS_WAIT_S, interval_s=0.1)
        with engine.connect() as conn:
            owners = set(conn.execute(sa.text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'"))
                         .scalars())
        assert SERVICE_ROLE not in owners
    finally:
        engine.dispose()
