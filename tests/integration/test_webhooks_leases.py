"""Webhook leases and cursors on SQLite and PostgreSQL: one owner at a time, a cursor moved only by the
owner and only from where it read it, takeover after expiry, and a clean hand-over when a dispatcher
stops (two dispatchers on one database, a real HTTP receiver on loopback)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time

from cryptography.fernet import Fernet

from tally.config import Settings
from tally.domain.webhooks import WebhookSpec
from tally.service.posting.pipeline import now_us
from tally.service.webhooks.manage import WebhookAdmin
from tally.service.webhooks.secrets import SecretBox
from tally.storage import webhooks_repo as repo
from tally.streaming.webhooks.dispatcher import WebhookDispatcher
from tally.streaming.webhooks.sender import Sender
from tests.e2e.webhook_receiver import receiving
from tests.integration.conftest import TENANT, webhook_rows

LEASE_US = 10_000_000


def _get(ledger, hook_id: str):
    return ledger.uow.read({TENANT}, functools.partial(repo.get_webhook, tenant_id=TENANT, webhook_id=hook_id))


def _write(ledger, work):
    return ledger.uow.append({TENANT}, work)


async def test_one_owner_a_guarded_cursor_and_takeover_after_expiry(ledger) -> None:
    hook = _get(ledger, webhook_rows(ledger.uow, TENANT))  # leased by "tests", cursor moved to 1
    assert (hook.lease_owner, hook.cursor) == ("tests", 1)
    now = now_us()
    assert not _write(ledger, lambda conn: repo.take_lease(conn, hook, "other", now, LEASE_US))
    assert _write(ledger, lambda conn: repo.take_lease(conn, hook, "tests", now, LEASE_US))  # a renewal
    stale = dataclasses.replace(hook, cursor=0)  # as read before a replay moved the cursor
    assert not _write(ledger, lambda conn: repo.advance(conn, stale, "tests", now, cursor=2))
    assert not _write(ledger, lambda conn: repo.advance(conn, hook, "other", now, cursor=2))
    assert _get(ledger, hook.id).cursor == 1
    later = now + LEASE_US + 1  # the owner died: its lease ran out
    assert _write(ledger, lambda conn: repo.take_lease(conn, hook, "other", later, LEASE_US))
    assert not _write(ledger, lambda conn: repo.advance(conn, hook, "tests", later, cursor=2))
    assert _write(ledger, lambda conn: repo.advance(conn, hook, "other", later, cursor=2))
    assert (_get(ledger, hook.id).lease_owner, _get(ledger, hook.id).cursor) == ("other", 2)


async def test_two_dispatchers_one_holder_and_a_clean_hand_over(ledger) -> None:
    settings = dataclasses.replace(Settings(), webhook_poll_ms=50, webhook_lease_s=30,
                                   webhook_allowed_networks="127.0.0.0/8", webhook_http_hosts="127.0.0.1")
    box = SecretBox(Fernet.generate_key().decode(), "")
    ledger.open("alice")
    await ledger.fund("alice", 1_000)

    def dispatcher(name: str) -> WebhookDispatcher:
        sender = Sender(connect_timeout_ms=1000, read_timeout_ms=1000, response_bytes_max=64,
                        allowed_networks=settings.webhook_allowed_networks)
        return WebhookDispatcher(ledger.uow, settings, now_us, sender, box.open, owner=name)

    with receiving() as receiver:
        admin = WebhookAdmin(ledger.uow, settings, box, now_us)
        issued = admin.create(TENANT, "hook", WebhookSpec(receiver.url), 0)
        receiver.secrets.append(issued.secret)
        first, second = dispatcher("first"), dispatcher("second")
        await first.start()
        await _until(lambda: issued.webhook.id in first.delivering)
        await second.start()
        try:
            await asyncio.sleep(0.3)  # several ticks of both
            assert first.delivering == {issued.webhook.id} and second.delivering == set()
            head = _get(ledger, issued.webhook.id)
            await _until(lambda: _get(ledger, issued.webhook.id).cursor >= 3)
            await first.stop()  # hands the lease back: the second goes on at its next tick, not in 30 s
            started = time.monotonic()
            await _until(lambda: issued.webhook.id in second.delivering)
            assert time.monotonic() - started < 5
            await ledger.transfer("alice", "funding", 1)
            final = await asyncio.to_thread(lambda: _events_head(ledger))
            await _until(lambda: receiver.acknowledged()[-1:] == [final])
            assert receiver.acknowledged() == list(range(1, final + 1)) and receiver.bad_signatures == 0
            assert head.lease_owner == "first" and _get(ledger, issued.webhook.id).lease_owner == "second"
        finally:
            await second.stop()
            await first.stop()


def _events_head(ledger) -> int:
    return ledger.uow.read({TENANT}, lambda conn: repo.event_head(conn, TENANT))


async def _until(predicate, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_one_tenants_requests_in_flight_stay_within_its_limit(ledger) -> None:
    """Three subscriptions of one tenant, a slow receiver, `in flight` 1: never two requests at once, and
    each subscription still gets every event."""
    settings = dataclasses.replace(Settings(), webhook_poll_ms=50, webhook_deliveries_in_flight_per_tenant_max=1,
                                   webhook_allowed_networks="127.0.0.0/8", webhook_http_hosts="127.0.0.1")
    box = SecretBox(Fernet.generate_key().decode(), "")
    ledger.open("alice")
    for _ in range(3):
        await ledger.fund("alice", 10)
    with receiving(delay_s=0.02) as receiver:
        admin = WebhookAdmin(ledger.uow, settings, box, now_us)
        for n in range(3):
            receiver.secrets.append(admin.create(TENANT, f"hook-{n}", WebhookSpec(receiver.url), 0).secret)
        # Timeouts far above the receiver's 20 ms: a request given up on by a stalled (busy) machine leaves the
        # sender's count but not yet the receiver's, which would count it beside the next.
        sender = Sender(connect_timeout_ms=10_000, read_timeout_ms=10_000, response_bytes_max=64,
                        allowed_networks=settings.webhook_allowed_networks)
        dispatcher = WebhookDispatcher(ledger.uow, settings, now_us, sender, box.open, owner="only")
        await dispatcher.start()
        try:
            final = await asyncio.to_thread(lambda: _events_head(ledger))
            await _until(lambda: len(receiver.sequences()) >= 3 * final)
            assert sorted(receiver.sequences()) == sorted(list(range(1, final + 1)) * 3)
            assert receiver.concurrent_max == 1
        finally:
            await dispatcher.stop()
