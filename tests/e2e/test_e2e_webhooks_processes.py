"""Two `tally serve` processes on one PostgreSQL database deliver one webhook subscription: exactly one
holds its lease; a kill -9 of that one in the middle of delivery loses nothing: the other takes the lease
over once it expires and goes on from the last acknowledged sequence. The receiver sees every event, in
order, deduplicated by webhook-id."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet

from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import webhook_service_pb2 as pb
from tally.v1 import webhook_service_pb2_grpc as pb_grpc
from tests.e2e.conftest import adjustment_request, line, md, open_channel, ref, transfer_request
from tests.e2e.test_e2e_serve_process import stop, wait_serving
from tests.e2e.test_e2e_streams_processes import tally_serve
from tests.e2e.webhook_receiver import receiving, wait_for

T = "hooks-kill"
TRANSFERS = 40
ENV = {"TALLY_WEBHOOK_KEY": Fernet.generate_key().decode(), "TALLY_WEBHOOK_HTTP_HOSTS": "127.0.0.1",
       "TALLY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "TALLY_WEBHOOK_LEASE_S": "2", "TALLY_WEBHOOK_POLL_MS": "100"}


def lease_owner_pid(url: str, webhook_id: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT set_config('tally.tenants', :t, true)"), {"t": T})
            owner = conn.execute(sa.text("SELECT lease_owner FROM webhooks WHERE id = :id"),
                                 {"id": webhook_id}).scalar()
    finally:
        engine.dispose()
    return int(owner.split(":")[1]) if owner else 0


def test_kill_9_of_the_delivering_process_loses_nothing(postgres_url: str, tmp_path: Path) -> None:
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    with receiving(delay_s=0.02) as receiver, tally_serve(postgres_url, log_a, **ENV) as (proc_a, port_a):
        chan_a = open_channel(f"127.0.0.1:{port_a}")
        wait_serving(proc_a, chan_a, log_a)
        with tally_serve(postgres_url, log_b, TALLY_AUTO_MIGRATE="false", **ENV) as (proc_b, port_b):
            chan_b = open_channel(f"127.0.0.1:{port_b}")
            try:
                wait_serving(proc_b, chan_b, log_b)
                accounts = acc_grpc.AccountServiceStub(chan_a)
                for code, kind in (("funding", 4), ("alice", 1), ("bob", 1)):
                    accounts.CreateAccount(acc_pb.CreateAccountRequest(
                        request_id=f"create-{code}", code=code, type=kind, currency="USD",
                        **({"normal_side": 1, "floor_policy": 2} if kind == 4 else {})), metadata=md(T))
                post_grpc.AccountingServiceStub(chan_a).Post(adjustment_request(
                    "fund", [line("funding", "debit", 1_000_000), line("alice", "credit", 1_000_000)]), metadata=md(T))
                created = pb_grpc.WebhookServiceStub(chan_b).CreateWebhook(pb.CreateWebhookRequest(
                    request_id="hook", url=receiver.url, after_sequence=0), metadata=md(T))
                receiver.secrets.append(created.secret)
                hook_id = created.webhook.id
                wait_for(lambda: lease_owner_pid(postgres_url, hook_id) in (proc_a.pid, proc_b.pid), "a lease")
                owner = lease_owner_pid(postgres_url, hook_id)
                victim, (survivor, survivor_chan, survivor_log) = (
                    (proc_a, (proc_b, chan_b, log_b)) if owner == proc_a.pid else (proc_b, (proc_a, chan_a, log_a)))
                poster = post_grpc.AccountingServiceStub(survivor_chan)
                errors: list[BaseException] = []

                def post_all() -> None:
                    try:
                        for i in range(TRANSFERS):
                            poster.Post(transfer_request(f"t{i}", "alice", "bob", 10), metadata=md(T))
                    except BaseException as exc:  # noqa: BLE001 - reported below
                        errors.append(exc)

                posting = threading.Thread(target=post_all, daemon=True)
                posting.start()
                wait_for(lambda: len(receiver.acknowledged()) >= 8, "deliveries under way")
                victim.send_signal(signal.SIGKILL)  # in the middle of delivery: no clean-up, the lease held
                victim.wait(10)
                posting.join(60)
                assert not errors, errors
                final = acc_grpc.AccountServiceStub(survivor_chan).BatchGetBalances(
                    acc_pb.BatchGetBalancesRequest(accounts=[ref("alice")]), metadata=md(T)).event_sequence
                wait_for(lambda: receiver.acknowledged()[-1:] == [final], "every event after the kill", 60)
                assert receiver.acknowledged() == list(range(1, final + 1)), "an event lost or out of order"
                # In order, but for one step back: the survivor sends again, in order, what the victim had
                # delivered but not yet recorded (at most one batch of acknowledgements).
                got = receiver.sequences()
                backs = [i for i in range(1, len(got)) if got[i] < got[i - 1]]
                assert len(backs) <= 1 and receiver.bad_signatures == 0, got
                assert lease_owner_pid(postgres_url, hook_id) == survivor.pid
                stop(survivor, survivor_log)
            finally:
                chan_a.close()
                chan_b.close()
    assert "Traceback" not in survivor_log.read_text(), survivor_log.read_text()[-4000:]
