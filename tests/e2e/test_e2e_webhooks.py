"""Signed webhooks end to end: a real server (SQLite and PostgreSQL), the real gRPC wire, and a real HTTP
receiver on loopback that verifies every signature with the `standardwebhooks` package."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import grpc
import pytest
from cryptography.fernet import Fernet
from google.protobuf import field_mask_pb2

from tally import cli
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import webhook_service_pb2 as pb
from tally.v1 import webhook_service_pb2_grpc as pb_grpc
from tests.e2e.conftest import BACKENDS, Server, TenantKeys, error_info, md, module_server, ref, timestamp_in
from tests.e2e.webhook_receiver import FAIL, HANG, OK, Receiver, receiving, wait_for

ATTEMPTS_MAX = 6
SETTINGS = {
    "webhook_key": Fernet.generate_key().decode(), "webhook_http_hosts": "127.0.0.1",
    "webhook_allowed_networks": "127.0.0.0/8", "webhook_attempts_max": ATTEMPTS_MAX, "webhook_backoff_ms": 20,
    "webhook_backoff_max_ms": 80, "webhook_read_timeout_ms": 300, "webhook_poll_ms": 100,
    "webhook_subscriptions_per_tenant_max": 3,
}


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with module_server(request, tmp_path_factory, **SETTINGS) as server:
        yield server


def hooks(server: Server) -> pb_grpc.WebhookServiceStub:
    return pb_grpc.WebhookServiceStub(server.channel())


def head(server: Server, tenant: str) -> int:
    request = acc_pb.BatchGetBalancesRequest(accounts=[ref("alice")])
    return server.accounts().BatchGetBalances(request, metadata=md(tenant)).event_sequence


def subscribe(server: Server, tenant: str, receiver: Receiver, **fields) -> pb.Webhook:
    response = hooks(server).CreateWebhook(pb.CreateWebhookRequest(
        request_id=server.request_id("hook"), url=receiver.url, **fields), metadata=md(tenant))
    assert response.secret.startswith("whsec_") and not response.replayed
    receiver.secrets.append(response.secret)
    return response.webhook


def deliveries(server: Server, tenant: str, webhook_id: str) -> list[pb.Delivery]:
    return list(hooks(server).ListDeliveries(pb.ListDeliveriesRequest(webhook_id=webhook_id, page_size=500),
                                             metadata=md(tenant)).deliveries)


def get(server: Server, tenant: str, webhook_id: str) -> pb.Webhook:
    return hooks(server).GetWebhook(pb.GetWebhookRequest(webhook_id=webhook_id), metadata=md(tenant)).webhook


def open_ledger(server: Server, tenant: str) -> None:
    for code in ("alice", "bob"):
        server.create_account(tenant, code)
    server.fund(tenant, "alice", 1_000_000)


def test_in_order_through_outage_then_replay(srv: Server) -> None:
    tenant = "hooks-main"
    open_ledger(srv, tenant)
    with receiving(hang_s=0.6) as receiver:
        start = head(srv, tenant)
        hook = subscribe(srv, tenant, receiver)
        assert hook.acknowledged_sequence == start and hook.status == pb.WEBHOOK_STATUS_ACTIVE
        # Healthy: every event once, in order, each signature verified.
        for _ in range(5):
            srv.transfer(tenant, "alice", "bob", 100)
        end = head(srv, tenant)
        wait_for(lambda: receiver.acknowledged()[-1:] == [end], "the healthy events")
        assert receiver.sequences() == list(range(start + 1, end + 1))
        # An outage: 500s, then answers that never come within the read timeout, then recovery. The events
        # posted meanwhile wait behind the first one.
        receiver.script = [FAIL, FAIL, HANG, FAIL, HANG]
        for _ in range(4):
            srv.transfer(tenant, "alice", "bob", 100)
        final = head(srv, tenant)
        wait_for(lambda: receiver.acknowledged()[-1:] == [final], "every event after the outage")
        assert receiver.acknowledged() == list(range(start + 1, final + 1))
        got = receiver.sequences()
        assert got == sorted(got), "an event arrived before the one in front of it was acknowledged"
        assert got.count(end + 1) == 6 and receiver.bad_signatures == 0
        records = deliveries(srv, tenant, hook.id)
        failed = [d for d in records if d.sequence == end + 1]
        assert [(d.attempt, d.delivered, d.response_code) for d in failed] == [
            (1, False, 500), (2, False, 500), (3, False, 0), (4, False, 500), (5, False, 0), (6, True, 200)]
        assert "timeout" in failed[2].error and failed[0].error.startswith("HTTP 500")
        assert all(d.latency_us > 0 and d.trigger == pb.DELIVERY_TRIGGER_LIVE for d in records)
        # The receiver answers before the server commits the cursor: wait for that commit.
        wait_for(lambda: get(srv, tenant, hook.id).acknowledged_sequence == final, "the cursor at the last event")
        # Replay from a sequence: exactly the events after it, once each, in order.
        receiver.clear()
        replayed = hooks(srv).ReplayWebhook(pb.ReplayWebhookRequest(
            request_id=srv.request_id("replay"), webhook_id=hook.id, after_sequence=end), metadata=md(tenant))
        assert replayed.webhook.acknowledged_sequence == end
        wait_for(lambda: receiver.acknowledged()[-1:] == [final], "the replay")
        assert receiver.sequences() == list(range(end + 1, final + 1))
        wait_for(lambda: get(srv, tenant, hook.id).acknowledged_sequence == final, "the cursor after the replay")
        # Redeliver one event: sent again now, recorded, the cursor unmoved.
        receiver.clear()
        again = hooks(srv).Redeliver(pb.RedeliverRequest(request_id=srv.request_id("again"), webhook_id=hook.id,
                                                         sequence=start + 2), metadata=md(tenant)).delivery
        assert (again.delivered, again.response_code, again.trigger) == (True, 200, pb.DELIVERY_TRIGGER_REDELIVER)
        assert receiver.sequences() == [start + 2]
        assert get(srv, tenant, hook.id).acknowledged_sequence == final


def test_retries_run_out_then_paused_then_resumed(srv: Server) -> None:
    tenant = "hooks-pause"
    open_ledger(srv, tenant)
    with receiving() as receiver:
        hook = subscribe(srv, tenant, receiver, event_types=["ledger.entry.posted"])
        receiver.mode = FAIL
        srv.transfer(tenant, "alice", "bob", 7)
        wait_for(lambda: get(srv, tenant, hook.id).status == pb.WEBHOOK_STATUS_PAUSED, "the pause")
        paused = get(srv, tenant, hook.id)
        assert f"failed {ATTEMPTS_MAX} times" in paused.status_reason and "500" in paused.status_reason
        assert len(receiver.sequences()) == ATTEMPTS_MAX
        srv.transfer(tenant, "alice", "bob", 8)
        receiver.mode = OK
        resumed = hooks(srv).UpdateWebhook(pb.UpdateWebhookRequest(
            request_id=srv.request_id("resume"), webhook_id=hook.id,
            webhook=pb.Webhook(status=pb.WEBHOOK_STATUS_ACTIVE),
            update_mask=field_mask_pb2.FieldMask(paths=["status"])), metadata=md(tenant)).webhook
        assert (resumed.status, resumed.failures, resumed.status_reason) == (pb.WEBHOOK_STATUS_ACTIVE, 0, "")
        final = head(srv, tenant)
        wait_for(lambda: get(srv, tenant, hook.id).acknowledged_sequence == final, "delivery after the resume")
        assert [a.type for a in receiver.arrivals if a.answered == 200] == ["ledger.entry.posted"] * 2


def test_account_filter_rotation_and_replay_from_a_time(srv: Server) -> None:
    tenant = "hooks-filter"
    open_ledger(srv, tenant)
    carol = srv.create_account(tenant, "carol")
    with receiving() as receiver:
        hook = subscribe(srv, tenant, receiver, account_ids=[carol.id], after_sequence=0)
        wait_for(lambda: receiver.acknowledged() != [], "carol's account.created")
        before = timestamp_in(0)
        srv.transfer(tenant, "alice", "bob", 1)  # not carol's
        srv.transfer(tenant, "alice", "carol", 2)
        final = head(srv, tenant)
        wait_for(lambda: get(srv, tenant, hook.id).acknowledged_sequence == final, "the filtered events")
        assert [a.type for a in receiver.arrivals] == ["account.created", "ledger.entry.posted"]
        # Rotation with an overlap: a receiver that knows only the old secret still verifies.
        old_only = list(receiver.secrets)
        rotated = hooks(srv).RotateWebhookSecret(pb.RotateWebhookSecretRequest(
            request_id=srv.request_id("rotate"), webhook_id=hook.id, overlap_seconds=3600), metadata=md(tenant))
        assert rotated.secret.startswith("whsec_") and rotated.secret not in old_only
        assert rotated.webhook.HasField("previous_secret_expire_time")
        receiver.clear()
        hooks(srv).ReplayWebhook(pb.ReplayWebhookRequest(request_id=srv.request_id("replay"), webhook_id=hook.id,
                                                         start_time=before), metadata=md(tenant))
        wait_for(lambda: len(receiver.arrivals) == 1, "the replay from a time")
        assert receiver.sequences() == [final] and receiver.bad_signatures == 0
        assert receiver.arrivals[0].signatures == 2  # the old secret's and the new one's
        # Without an overlap only the newest secret signs (the old one verifies nothing: unit tests).
        newest = hooks(srv).RotateWebhookSecret(pb.RotateWebhookSecretRequest(
            request_id=srv.request_id("rotate"), webhook_id=hook.id, overlap_seconds=0), metadata=md(tenant))
        assert not newest.webhook.HasField("previous_secret_expire_time")
        receiver.secrets[:] = [newest.secret]
        srv.transfer(tenant, "alice", "carol", 3)
        last = head(srv, tenant)
        wait_for(lambda: get(srv, tenant, hook.id).acknowledged_sequence == last, "delivery with the new secret")
        assert receiver.arrivals[-1].signatures == 1 and receiver.bad_signatures == 0


def test_subscriptions_crud_limits_and_bad_input(srv: Server) -> None:
    tenant = "hooks-crud"
    stub = hooks(srv)
    url = "https://hooks.example.com/tally"

    def create(request_id: str, **fields) -> pb.CreateWebhookResponse:
        return stub.CreateWebhook(pb.CreateWebhookRequest(request_id=request_id, **fields), metadata=md(tenant))

    first = create("c1", url=url, event_types=["voucher.reversed"], description="ops")
    again = create("c1", url=url, event_types=["voucher.reversed"], description="ops")
    assert again.replayed and again.webhook.id == first.webhook.id and again.secret == first.secret
    for request_id, fields, code, reason in [
        ("c1", {"url": url + "/other"}, grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED"),
        ("", {"url": url}, grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_MISSING"),
        ("c2", {"url": "http://hooks.example.com/x"}, grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_INSECURE"),
        ("c3", {"url": "ftp://hooks.example.com/x"}, grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_INVALID"),
        ("c4", {"url": "https://u:p@hooks.example.com/"}, grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_INVALID"),
        ("c5", {"url": url, "event_types": ["nope"]}, grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_EVENT_TYPE_UNKNOWN"),
        ("c6", {"url": url, "after_sequence": 10**9}, grpc.StatusCode.INVALID_ARGUMENT, "SEQUENCE_INVALID"),
        ("c6", {"url": url, "description": "a\x00b"}, grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_DESCRIPTION_INVALID"),
        ("c6", {"url": url, "account_ids": ["no-such-account"]}, grpc.StatusCode.PERMISSION_DENIED,
         "ACCOUNT_NOT_ACCESSIBLE"),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            create(request_id, **fields)
        assert error_info(caught.value)[:2] == (code, reason), request_id
    create("c7", url=url)
    create("c8", url=url)
    with pytest.raises(grpc.RpcError) as caught:
        create("c9", url=url)
    assert error_info(caught.value)[:2] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "WEBHOOK_SUBSCRIPTIONS_EXHAUSTED")
    listed = stub.ListWebhooks(pb.ListWebhooksRequest(page_size=2), metadata=md(tenant))
    rest = stub.ListWebhooks(pb.ListWebhooksRequest(page_size=2, page_token=listed.next_page_token),
                             metadata=md(tenant))
    assert len(listed.webhooks) == 2 and len(rest.webhooks) == 1 and not rest.next_page_token
    changed = stub.UpdateWebhook(pb.UpdateWebhookRequest(
        request_id="u1", webhook_id=first.webhook.id, webhook=pb.Webhook(url=url + "/v2", event_types=[]),
        update_mask=field_mask_pb2.FieldMask(paths=["url", "event_types"])), metadata=md(tenant)).webhook
    assert (changed.url, list(changed.event_types), changed.description) == (url + "/v2", [], "ops")
    deleted = stub.DeleteWebhook(pb.DeleteWebhookRequest(request_id="d1", webhook_id=first.webhook.id),
                                 metadata=md(tenant))
    assert deleted.webhook.status == pb.WEBHOOK_STATUS_DELETED
    assert stub.DeleteWebhook(pb.DeleteWebhookRequest(request_id="d1", webhook_id=first.webhook.id),
                              metadata=md(tenant)).replayed
    create("c10", url=url)  # the deleted one no longer counts
    for call, request in [
        (stub.GetWebhook, pb.GetWebhookRequest(webhook_id=first.webhook.id)),
        (stub.GetWebhook, pb.GetWebhookRequest(webhook_id="\x00")),
        (stub.Redeliver, pb.RedeliverRequest(request_id="r1", webhook_id="nope", sequence=1)),
        (stub.UpdateWebhook, pb.UpdateWebhookRequest(request_id="u2", webhook_id=first.webhook.id,
                                                     webhook=pb.Webhook(description="x"),
                                                     update_mask=field_mask_pb2.FieldMask(paths=["description"]))),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=md(tenant))
        assert error_info(caught.value)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "WEBHOOK_NOT_ACCESSIBLE")
    # Another tenant's subscription answers exactly like one that does not exist.
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListDeliveries(pb.ListDeliveriesRequest(webhook_id=changed.id), metadata=md("hooks-other"))
    assert error_info(caught.value)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "WEBHOOK_NOT_ACCESSIBLE")


def test_a_private_address_is_refused_unless_allowed(srv: Server) -> None:
    """The server allows 127.0.0.0/8 only: a subscription to another non-public address is recorded as
    refused, never sent."""
    tenant = "hooks-deny"
    open_ledger(srv, tenant)
    stub = hooks(srv)
    hook = stub.CreateWebhook(pb.CreateWebhookRequest(request_id="deny", url="https://10.0.0.1/hooks",
                                                      after_sequence=0), metadata=md(tenant)).webhook
    wait_for(lambda: deliveries(srv, tenant, hook.id), "a refused attempt")
    first = deliveries(srv, tenant, hook.id)[0]
    assert (first.delivered, first.response_code) == (False, 0) and "address denied" in first.error


def test_cli_verbs_end_to_end(srv: Server, capsys, monkeypatch, tmp_path) -> None:
    """`tally webhooks ...` against the real server: create (the secret printed once), list, deliveries,
    redeliver, replay, pause and resume, rotate, delete; refusals exit 1 with the reason."""
    tenant = "hooks-cli"
    open_ledger(srv, tenant)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TALLY_API_KEY", TenantKeys.for_target(srv.target).key_for(tenant))

    def tally(*argv: str) -> tuple[int, str, str]:
        code = cli.main([*argv, "--target", srv.target])
        out, err = capsys.readouterr()
        return code, out, err

    with receiving() as receiver:
        code, out, err = tally("webhooks", "create", receiver.url, "--after-sequence", "0", "--json")
        assert code == 0, err
        created = json.loads(out)
        receiver.secrets.append(created["secret"])
        hook_id = created["webhook"]["id"]
        final = head(srv, tenant)
        wait_for(lambda: receiver.acknowledged()[-1:] == [final], "delivery of the CLI's subscription")
        code, out, _ = tally("webhooks", "list")
        assert code == 0 and hook_id in out and " active " in out
        code, out, _ = tally("webhooks", "deliveries", hook_id, "--all")
        assert code == 0 and "account.created" in out and "ledger.entry.posted" in out
        code, out, _ = tally("webhooks", "redeliver", hook_id, "1", "--request-id", "cli-again")
        assert code == 0 and "redeliver" in out
        code, out, _ = tally("webhooks", "update", hook_id, "--pause", "--request-id", "cli-pause")
        assert code == 0 and re.search(r"^status +paused$", out, re.M) and "paused by an operator" in out
        code, out, _ = tally("webhooks", "replay", hook_id, "--after-sequence", "0", "--request-id", "cli-replay")
        assert code == 0 and re.search(r"^status +active$", out, re.M)
        wait_for(lambda: receiver.acknowledged().count(final) == 1 and len(receiver.sequences()) >= 2 * final,
                 "the replay")
        code, out, _ = tally("webhooks", "rotate-secret", hook_id, "--overlap", "60", "--request-id", "cli-rot")
        assert code == 0 and "secret: whsec_" in out and "previous_secret_until" in out
        code, out, _ = tally("webhooks", "delete", hook_id, "--request-id", "cli-del")
        assert code == 0 and re.search(r"^status +deleted$", out, re.M)
    code, _, err = tally("webhooks", "get", hook_id)
    assert code == 1 and "WEBHOOK_NOT_ACCESSIBLE" in err
    code, _, err = tally("webhooks", "create", "http://example.com/x", "--request-id", "cli-insecure")
    assert code == 1 and "WEBHOOK_URL_INSECURE" in err
