"""Webhook subscriptions and deliveries: what a subscription is, which events it wants, where it may send,
how long it waits between attempts and what one message looks like. Pure: no I/O (addresses are checked
here once something else has resolved them)."""

from __future__ import annotations

import enum
import ipaddress
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from tally.domain.errors import invalid

URL_BYTES_MAX = 2048
DESCRIPTION_BYTES_MAX = 256
EVENT_TYPES_MAX = 32
EVENT_TYPE_BYTES_MAX = 64
ACCOUNT_FILTER_MAX = 100
REQUEST_ID_BYTES_MAX = 128
ERROR_TEXT_BYTES_MAX = 512  # what a delivery record keeps of an error or a response body
# The types StreamEvents knows (api/streams.py), day.closed among them.
EVENT_TYPES = frozenset({"account.created", "account.updated", "ledger.entry.posted", "voucher.reversed",
                         "balance.hold.created", "balance.hold.captured", "balance.released", "day.closed"})


class WebhookStatus(enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"  # by an operator, or by the server after the retry schedule ran out
    DELETED = "deleted"  # kept (nothing deletes rows), never delivered again


class Trigger(enum.Enum):
    LIVE = "live"  # the subscription's own delivery in sequence order
    REDELIVER = "redeliver"  # one event sent again by an operator's request


@dataclass(frozen=True)
class WebhookSpec:
    """What a caller asks for; checked by `check_spec`."""

    url: str
    event_types: tuple[str, ...] = ()  # empty: every type
    account_ids: tuple[str, ...] = ()  # empty: every account
    description: str = ""


@dataclass(frozen=True)
class Webhook:
    tenant_id: str
    id: str
    url: str
    event_types: tuple[str, ...]
    account_ids: tuple[str, ...]
    description: str
    status: WebhookStatus
    status_reason: str
    cursor: int  # the last sequence acknowledged (or skipped by the filter): delivery goes on after it
    failures: int  # failed attempts at the event after the cursor
    retry_at_us: int  # no attempt before this time
    previous_secret_expires_us: int  # the old secret still signs until then (0: no old secret)
    lease_owner: str
    lease_expires_us: int
    created_us: int
    updated_us: int


@dataclass(frozen=True)
class Delivery:
    tenant_id: str
    id: str
    webhook_id: str
    sequence: int
    event_type: str
    attempt: int
    trigger: Trigger
    delivered: bool
    response_code: int  # 0: no HTTP answer (refused, timed out, address denied)
    latency_us: int
    error: str
    created_us: int


@dataclass(frozen=True)
class Outcome:
    """One HTTP attempt: 2xx is delivered, anything else (or no answer) failed."""

    delivered: bool
    response_code: int
    latency_us: int
    error: str


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded: after `attempts_max` failed attempts at one event the
    subscription is paused."""

    attempts_max: int
    backoff_ms: int
    backoff_max_ms: int

    def delay_ms(self, failures: int, rng: random.Random | None = None) -> int:
        """The wait after the `failures`-th failed attempt (1, 2, ...): between half and all of the ceiling."""
        ceiling = min(self.backoff_max_ms, self.backoff_ms * 2 ** min(failures - 1, 30))
        return (rng or random).randint(ceiling // 2, ceiling)

    def exhausted(self, failures: int) -> bool:
        return failures >= self.attempts_max


# ------------------------------------------------------------------------------------------ checks


def check_spec(spec: WebhookSpec, http_hosts: Iterable[str]) -> WebhookSpec:
    """The spec with its lists de-duplicated and sorted, or INVALID_ARGUMENT naming what is wrong."""
    check_url(spec.url, http_hosts)
    if len(spec.description.encode()) > DESCRIPTION_BYTES_MAX:
        raise invalid("WEBHOOK_DESCRIPTION_TOO_LONG", f"description is longer than {DESCRIPTION_BYTES_MAX} bytes")
    if "\x00" in spec.description:
        raise invalid("WEBHOOK_DESCRIPTION_INVALID", "description must not contain NUL")
    types = tuple(sorted(set(spec.event_types)))
    if len(types) > EVENT_TYPES_MAX:
        raise invalid("WEBHOOK_EVENT_TYPES_TOO_MANY", f"at most {EVENT_TYPES_MAX} event types")
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise invalid("WEBHOOK_EVENT_TYPE_UNKNOWN", f"unknown event type {unknown[0][:EVENT_TYPE_BYTES_MAX]!r}; "
                      f"known: {', '.join(sorted(EVENT_TYPES))}", event_type=unknown[0][:EVENT_TYPE_BYTES_MAX])
    accounts = tuple(sorted(set(spec.account_ids)))
    if len(accounts) > ACCOUNT_FILTER_MAX:
        raise invalid("WEBHOOK_ACCOUNTS_TOO_MANY", f"at most {ACCOUNT_FILTER_MAX} accounts in a filter")
    if any(not a or len(a) > 36 for a in accounts):
        raise invalid("WEBHOOK_ACCOUNT_INVALID", "an account filter names account ids (36 characters at most)")
    return WebhookSpec(spec.url, types, accounts, spec.description)


def check_url(url: str, http_hosts: Iterable[str]) -> None:
    """HTTPS, or plain HTTP to a host the operator allows; no credentials or fragment in the URL."""
    if not url or len(url.encode()) > URL_BYTES_MAX:
        raise invalid("WEBHOOK_URL_INVALID", f"url is required and at most {URL_BYTES_MAX} bytes")
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise invalid("WEBHOOK_URL_INVALID", "url is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise invalid("WEBHOOK_URL_INVALID", "url must be an https:// URL with a host")
    if parts.username or parts.password or parts.fragment:
        raise invalid("WEBHOOK_URL_INVALID", "url must not carry credentials or a fragment")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise invalid("WEBHOOK_URL_INVALID", "url must not contain spaces or control characters")
    if parts.scheme == "http" and host.lower() not in {h.lower() for h in http_hosts}:
        raise invalid("WEBHOOK_URL_INSECURE", f"plain http is allowed only to hosts the operator lists "
                      f"(TALLY_WEBHOOK_HTTP_HOSTS); {host!r} is not one", host=host)


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """'127.0.0.0/8,::1/128' -> networks; ValueError on a malformed entry."""
    return tuple(ipaddress.ip_network(n.strip(), strict=False) for n in text.split(",") if n.strip())


def address_denied(address: str, allowed: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether a resolved target address is in a private, loopback, link-local or otherwise non-public
    range that no allowed network covers (so a subscription cannot reach the server's own network)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowed):
        return False
    return not ip.is_global or ip.is_multicast


# ------------------------------------------------------------------------------------------ matching


def wants(hook: Webhook, event_type: str, accounts: Iterable[str]) -> bool:
    """Whether the subscription's filters take an event of this type touching these accounts."""
    if hook.event_types and event_type not in hook.event_types:
        return False
    return not hook.account_ids or not set(hook.account_ids).isdisjoint(accounts)


def event_accounts(account_id: str | None, payload: Mapping) -> set[str]:
    """Every account an event names: its own column, its lines, its balance snapshot."""
    found = {account_id} if account_id else set()
    lines = payload.get("lines")
    if isinstance(lines, list):
        found.update(str(ln.get("account_id")) for ln in lines if isinstance(ln, dict) and ln.get("account_id"))
    balances = payload.get("balances")
    if isinstance(balances, dict):
        found.update(str(k) for k in balances)
    return found


# ------------------------------------------------------------------------------------------ messages


def message_id(sequence: int) -> str:
    """The `webhook-id`: the event's sequence, the same on every attempt, so receivers can deduplicate."""
    return str(sequence)


def message_body(tenant_id: str, sequence: int, event_type: str, created_us: int, refs: Mapping[str, str | None],
                 payload: Mapping, payload_bytes_max: int) -> bytes:
    """The JSON body (Standard Webhooks shape: type, timestamp, data). An event past `payload_bytes_max`
    goes without its payload, marked `truncated`: the receiver reads it by sequence (StreamEvents)."""
    stamp = datetime.fromtimestamp(created_us // 1_000_000, UTC).replace(microsecond=created_us % 1_000_000)
    data = {"tenant_id": tenant_id, "sequence": sequence, **{k: v for k, v in refs.items() if v}}
    body = {"type": event_type, "timestamp": stamp.isoformat().replace("+00:00", "Z"),
            "data": {**data, "event": payload}}
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    if len(encoded) <= payload_bytes_max:
        return encoded
    body["data"] = {**data, "truncated": True}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def clip(text: str, bytes_max: int = ERROR_TEXT_BYTES_MAX) -> str:
    data = text.encode(errors="replace")
    if len(data) <= bytes_max:
        return text
    return data[:bytes_max - 3].decode(errors="ignore") + "..."
