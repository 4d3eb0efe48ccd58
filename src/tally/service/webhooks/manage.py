"""Managing webhook subscriptions: create, list, change, delete, rotate the secret, replay, read deliveries.

Idempotency by `request_id`: a create remembers its request (unique per tenant), a change the latest
request made to its subscription; the same id with the same body answers the current state
(`replayed`), with another body ALREADY_EXISTS / REQUEST_ID_REUSED. A delivery never changes financial
state: these handlers touch only the webhook tables.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import Connection

from tally.config import Settings
from tally.domain.errors import ErrorKind, LedgerError, invalid, not_accessible
from tally.domain.fields import check_request_id
from tally.domain.ids import new_id
from tally.domain.webhooks import Delivery, Webhook, WebhookSpec, WebhookStatus, check_spec
from tally.service import paging
from tally.service.webhooks.secrets import SecretBox, new_secret
from tally.storage import webhooks_repo as repo
from tally.storage.uow import UnitOfWork


@dataclass(frozen=True)
class Issued:
    """A subscription and, when the call made or rotated it, its signing secret (shown this once)."""

    webhook: Webhook
    secret: str = ""
    replayed: bool = False


@dataclass(frozen=True)
class Change:
    """What UpdateWebhook sets: only the fields named (None: unchanged)."""

    url: str | None = None
    event_types: tuple[str, ...] | None = None
    account_ids: tuple[str, ...] | None = None
    description: str | None = None
    status: WebhookStatus | None = None


@dataclass(frozen=True)
class Page:
    items: list
    next_page_token: str


def fingerprint(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class WebhookAdmin:
    def __init__(self, uow: UnitOfWork, settings: Settings, box: SecretBox, clock: Callable[[], int],
                 wake: Callable[[set[str]], None] = lambda tenants: None) -> None:
        self.uow, self.box, self.clock, self.wake = uow, box, clock, wake
        self.http_hosts = tuple(h.strip() for h in settings.webhook_http_hosts.split(",") if h.strip())
        self.subscriptions_max = settings.webhook_subscriptions_per_tenant_max
        self.overlap_max_s = settings.webhook_secret_overlap_max_s

    # -- create, read ---------------------------------------------------------------------------------

    def create(self, tenant_id: str, request_id: str, spec: WebhookSpec, from_sequence: int | None) -> Issued:
        check_request_id(request_id)
        spec = check_spec(spec, self.http_hosts)
        fp = fingerprint({"spec": spec.__dict__, "from_sequence": from_sequence})
        secret = new_secret()
        sealed = self.box.seal(secret)

        def work(conn: Connection) -> Issued:
            found = repo.by_request(conn, tenant_id, request_id)
            if found is not None:
                hook, stored = found
                _same_body(request_id, stored, fp)
                return Issued(hook, self.box.open(repo.secrets(conn, tenant_id, hook.id).current), True)
            _check_accounts(conn, tenant_id, spec.account_ids)
            if repo.count_live(conn, tenant_id) >= self.subscriptions_max:
                raise LedgerError(ErrorKind.RESOURCE_EXHAUSTED, "WEBHOOK_SUBSCRIPTIONS_EXHAUSTED",
                                  f"the tenant already has {self.subscriptions_max} webhook subscriptions",
                                  subscriptions_max=self.subscriptions_max)
            cursor = _start(conn, tenant_id, from_sequence)
            webhook_id = new_id()
            repo.insert_webhook(conn, tenant_id, webhook_id, spec, sealed, cursor, request_id, fp, self.clock())
            return Issued(repo.get_webhook(conn, tenant_id, webhook_id), secret)

        issued = self.uow.append({tenant_id}, work)
        self.wake({tenant_id})
        return issued

    def get(self, tenant_id: str, webhook_id: str) -> Webhook:
        return self.uow.read({tenant_id}, lambda conn: _live(conn, tenant_id, webhook_id))

    def list(self, tenant_id: str, page_size: int, page_token: str) -> Page:
        size, query = paging.page_size(page_size), {"list": "webhooks"}
        after = paging.decode(page_token, query, "")
        items = self.uow.read({tenant_id}, lambda conn: repo.list_webhooks(conn, tenant_id, after, size + 1))
        return _page(items, size, query)

    def deliveries(self, tenant_id: str, webhook_id: str, page_size: int, page_token: str, sequence: int) -> Page:
        size, query = paging.page_size(page_size), {"deliveries": webhook_id, "sequence": sequence}
        after = paging.decode(page_token, query, "")

        def work(conn: Connection) -> list[Delivery]:
            _visible(conn, tenant_id, webhook_id)
            return repo.list_deliveries(conn, tenant_id, webhook_id, after, size + 1, sequence)

        return _page(self.uow.read({tenant_id}, work), size, query)

    # -- changes --------------------------------------------------------------------------------------

    def update(self, tenant_id: str, request_id: str, webhook_id: str, change: Change) -> Issued:
        check_request_id(request_id)
        if change.status is WebhookStatus.DELETED:
            raise invalid("WEBHOOK_STATUS_INVALID", "status may be set to active or paused (DeleteWebhook deletes)")
        fp = fingerprint({"update": change.__dict__})

        def work(conn: Connection, hook: Webhook, now_us: int) -> None:
            spec = check_spec(WebhookSpec(
                change.url if change.url is not None else hook.url,
                change.event_types if change.event_types is not None else hook.event_types,
                change.account_ids if change.account_ids is not None else hook.account_ids,
                change.description if change.description is not None else hook.description), self.http_hosts)
            _check_accounts(conn, tenant_id, spec.account_ids)
            values = repo.spec_values(spec)
            if change.status is WebhookStatus.ACTIVE:  # resumes where it stopped, with a fresh schedule
                values |= {"status": WebhookStatus.ACTIVE.value, "status_reason": "", "failures": 0, "retry_at_us": 0}
            elif change.status is WebhookStatus.PAUSED:
                values |= {"status": WebhookStatus.PAUSED.value, "status_reason": "paused by an operator",
                           "lease_owner": "", "lease_expires_us": 0}
            repo.change(conn, tenant_id, webhook_id, request_id, fp, now_us, **values)

        return self._change(tenant_id, webhook_id, request_id, fp, work)

    def delete(self, tenant_id: str, request_id: str, webhook_id: str) -> Issued:
        check_request_id(request_id)
        fp = fingerprint({"delete": webhook_id})

        def work(conn: Connection, hook: Webhook, now_us: int) -> None:
            repo.change(conn, tenant_id, webhook_id, request_id, fp, now_us, status=WebhookStatus.DELETED.value,
                        status_reason="deleted", lease_owner="", lease_expires_us=0)

        return self._change(tenant_id, webhook_id, request_id, fp, work, deleted_ok=True)

    def rotate(self, tenant_id: str, request_id: str, webhook_id: str, overlap_s: int) -> Issued:
        """A new secret; the old one keeps signing (beside the new) for `overlap_s` seconds."""
        check_request_id(request_id)
        if not 0 <= overlap_s <= self.overlap_max_s:
            raise invalid("WEBHOOK_OVERLAP_INVALID", f"overlap must be 0..{self.overlap_max_s} seconds",
                          overlap_max_s=self.overlap_max_s)
        fp = fingerprint({"rotate": overlap_s})
        secret = new_secret()
        sealed = self.box.seal(secret)

        def work(conn: Connection, hook: Webhook, now_us: int) -> None:
            old = repo.secrets(conn, tenant_id, webhook_id).current
            repo.change(conn, tenant_id, webhook_id, request_id, fp, now_us, secret=sealed,
                        previous_secret=old if overlap_s else "",
                        previous_secret_expires_us=now_us + overlap_s * 1_000_000 if overlap_s else 0)

        issued = self._change(tenant_id, webhook_id, request_id, fp, work)
        current = self.uow.read({tenant_id}, lambda conn: repo.secrets(conn, tenant_id, webhook_id).current)
        return replace(issued, secret=self.box.open(current))

    def replay(self, tenant_id: str, request_id: str, webhook_id: str, *, after_sequence: int | None = None,
               from_time_us: int | None = None) -> Issued:
        """Delivery starts again after `after_sequence` (or after the last event before `from_time_us`):
        every event after it is sent again, in order; the subscription is active again."""
        check_request_id(request_id)
        if (after_sequence is None) == (from_time_us is None):
            raise invalid("WEBHOOK_REPLAY_START_MISSING", "give exactly one of after_sequence and start_time")
        fp = fingerprint({"replay": after_sequence, "from_time_us": from_time_us})

        def work(conn: Connection, hook: Webhook, now_us: int) -> None:
            cursor = (_start(conn, tenant_id, after_sequence) if after_sequence is not None
                      else repo.sequence_before(conn, tenant_id, from_time_us))
            repo.change(conn, tenant_id, webhook_id, request_id, fp, now_us, cursor=cursor, failures=0,
                        retry_at_us=0, status=WebhookStatus.ACTIVE.value, status_reason="")

        return self._change(tenant_id, webhook_id, request_id, fp, work)

    def _change(self, tenant_id: str, webhook_id: str, request_id: str, fp: str,
                work: Callable[[Connection, Webhook, int], None], deleted_ok: bool = False) -> Issued:
        def run(conn: Connection) -> Issued:
            last_id, last_fp = repo.last_request(conn, tenant_id, webhook_id)
            hook = repo.get_webhook(conn, tenant_id, webhook_id)
            if hook is not None and last_id == request_id:
                _same_body(request_id, last_fp, fp)
                return Issued(hook, replayed=True)
            if hook is None or hook.status is WebhookStatus.DELETED and not deleted_ok:
                raise not_accessible("webhook", webhook_id)
            if hook.status is not WebhookStatus.DELETED:
                work(conn, hook, self.clock())
            return Issued(repo.get_webhook(conn, tenant_id, webhook_id))

        issued = self.uow.append({tenant_id}, run)
        self.wake({tenant_id})
        return issued

    def secrets_of(self, tenant_id: str, webhook_id: str, now_us: int) -> list[str]:
        """The secrets that sign now: the current one, and the previous one during its overlap."""
        stored = self.uow.read({tenant_id}, lambda conn: repo.secrets(conn, tenant_id, webhook_id))
        return signing_secrets(self.box, stored, now_us)


def signing_secrets(box: SecretBox, stored: repo.Secrets, now_us: int) -> list[str]:
    found = [box.open(stored.current)]
    if stored.previous and stored.previous_expires_us > now_us:
        found.append(box.open(stored.previous))
    return found


def _same_body(request_id: str, stored: str, fp: str) -> None:
    if stored != fp:
        raise LedgerError(ErrorKind.ALREADY_EXISTS, "REQUEST_ID_REUSED",
                          f"request_id {request_id!r} was already used with a different body", request_id=request_id)


def _check_accounts(conn: Connection, tenant_id: str, account_ids: tuple[str, ...]) -> None:
    """A filter names the tenant's own accounts; another tenant's id answers like one that does not exist."""
    missing = sorted(set(account_ids) - repo.known_accounts(conn, tenant_id, account_ids))
    if missing:
        raise not_accessible("account", missing[0])


def _start(conn: Connection, tenant_id: str, after_sequence: int | None) -> int:
    head = repo.event_head(conn, tenant_id)
    if after_sequence is None:
        return head
    if not 0 <= after_sequence <= head:
        raise invalid("SEQUENCE_INVALID", f"the sequence must be 0..{head} (the tenant's last event)",
                      last_sequence=head)
    return after_sequence


def _visible(conn: Connection, tenant_id: str, webhook_id: str) -> Webhook:
    hook = repo.get_webhook(conn, tenant_id, webhook_id) if webhook_id else None
    if hook is None:
        raise not_accessible("webhook", webhook_id)
    return hook


def _live(conn: Connection, tenant_id: str, webhook_id: str) -> Webhook:
    hook = _visible(conn, tenant_id, webhook_id)
    if hook.status is WebhookStatus.DELETED:
        raise not_accessible("webhook", webhook_id)
    return hook


def _page(items: list, size: int, query: dict) -> Page:
    if len(items) <= size:
        return Page(items, "")
    return Page(items[:size], paging.encode(items[size - 1].id, query))
