"""The README's production walkthrough, on PostgreSQL: a database owned by `tally_owner` (no superuser),
`tally migrate` as the owner with TALLY_SERVICE_ROLE, the first tenant and its admin key created by the
operator as the owner (`tally tenants create`, `tally keys create`), and the real server connected as the
service role `tally_app`: a role that owns no table, under row-level security, with no UPDATE or DELETE on
the journal and no privilege on API keys. Proves the grants of `tally migrate` and the system functions
are enough for the whole service: first start (tenant count), authentication, postings in batches, reads,
holds with automatic expiry, streams (LISTEN) and the audit log."""

from __future__ import annotations

import dataclasses
import json

import grpc
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import make_url

from tally import cli
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import types_pb2
from tests.e2e.conftest import TenantKeys, e2e_settings, md, ref, running_server, timestamp_in, wait_until

OWNER_ROLE, SERVICE_ROLE = "tally_owner", "tally_app"
A, B = "rls-a", "rls-b"
RLS_WAIT_S = 20.0


def _as(url: str, role: str) -> str:
    return make_url(url).set(username=role).render_as_string(hide_password=False)


def _owned_by_tally_owner(postgres_url: str, pg_server) -> str:
    """`CREATE DATABASE tally OWNER tally_owner`, as the README says: the owner is no superuser."""
    for role in (OWNER_ROLE, SERVICE_ROLE):
        pg_server.create_login_role(role)
    with pg_server.connect_admin() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            sql.Identifier(make_url(postgres_url).database), sql.Identifier(OWNER_ROLE)))
    return _as(postgres_url, OWNER_ROLE)


def _operator(monkeypatch, capsys, owner_url: str, app_url: str) -> str:
    """The operator's steps before the first start: migrate and grant, then the first tenant and its admin
    key, each as the owner (TALLY_MIGRATE_DATABASE_URL). Returns the key."""
    monkeypatch.setenv("TALLY_MIGRATE_DATABASE_URL", owner_url)
    monkeypatch.setenv("TALLY_SERVICE_ROLE", SERVICE_ROLE)
    monkeypatch.setenv("TALLY_DATABASE_URL", app_url)
    assert cli.main(["migrate"]) == 0
    assert cli.main(["tenants", "create", "local"]) == 0
    capsys.readouterr()
    assert cli.main(["keys", "create", "--tenant", "local", "--role", "admin", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["key"]


@pytest.fixture(params=[False, True], ids=["auto-migrate-off", "auto-migrate-skipped"])
def app_server(request, postgres_url, pg_server, tmp_path, monkeypatch, capsys):
    """TALLY_AUTO_MIGRATE=false as documented for this deployment; left on, the server sees that its role
    does not own the schema and starts without trying."""
    owner_url = _owned_by_tally_owner(postgres_url, pg_server)
    app_url = _as(postgres_url, SERVICE_ROLE)
    key = _operator(monkeypatch, capsys, owner_url, app_url)
    # In production mode too: a role that owns nothing and does not bypass row security may serve. The first
    # start finds a tenant, so it creates none (which the service role could not).
    settings = dataclasses.replace(e2e_settings(app_url), auto_migrate=request.param, bootstrap_admin=True,
                                   admin_key_file=str(tmp_path / "admin.key"), env="production")
    with running_server(settings) as server:
        TenantKeys.register(server.target, owner_url)  # the tests' tenants: created by the owner, too
        yield server, owner_url, key, tmp_path / "admin.key"


def test_the_server_runs_as_the_service_role(app_server) -> None:
    server, owner_url, key, admin_key_file = app_server
    accounts, accounting = server.accounts(), server.accounting()

    # First start as tally_app: the tenants were counted (a system function), none created; the operator's key
    # is verified through the system function too.
    assert not admin_key_file.exists()
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

    # Audit rows were written as tally_app too (checked by the owner, under '*', after the server flushed them).
    engine = sa.create_engine(owner_url)
    try:
        def audited() -> int:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT set_config('tally.tenants', '*', true)"))
                return conn.execute(sa.text("SELECT count(DISTINCT tenant_id) FROM audit_log "
                                            "WHERE tenant_id IN ('rls-a', 'rls-b', 'local')")).scalar_one()
        wait_until(lambda: audited() == 3, "the audit rows", RLS_WAIT_S, interval_s=0.1)
        with engine.connect() as conn:
            owners = set(conn.execute(sa.text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'"))
                         .scalars())
        assert owners == {OWNER_ROLE}
    finally:
        engine.dispose()


def test_the_service_role_sees_no_tenant_under_star_and_cannot_touch_keys(app_server, capsys) -> None:
    server, owner_url, _key, _ = app_server
    server.create_account(A, "alice")
    assert cli.main(["tenants", "list", "--json"]) == 0  # the operator, as the owner: every tenant
    assert {t["tenant"] for t in json.loads(capsys.readouterr().out)["tenants"]} == {"local", A}
    engine = sa.create_engine(server.database_url)  # tally_app
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT set_config('tally.tenants', '*', true)"))
            assert conn.execute(sa.text("SELECT count(*) FROM accounts")).scalar_one() == 0
            assert conn.execute(sa.text("SELECT count(*) FROM tenants")).scalar_one() == 0
        for statement in ("UPDATE api_keys SET revoked_us = NULL", "UPDATE api_keys SET role = 'admin'",
                          "INSERT INTO tenants (id, name, created_us) VALUES ('x', '', 0)"):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), engine.begin() as conn:
                conn.execute(sa.text("SELECT set_config('tally.tenants', 'local', true)"))
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()
    assert cli.main(["keys", "list", "--tenant", "local", "--database-url", server.database_url]) == cli.EXIT_REFUSED
    assert "schema owner" in capsys.readouterr().err
