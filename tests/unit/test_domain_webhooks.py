"""Webhook rules without I/O: URLs, the address deny list, filters, the retry schedule, the message body,
and signatures as a Standard Webhooks receiver checks them."""

from __future__ import annotations

import json
import random
import time

import pytest
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from tally.domain.errors import LedgerError
from tally.domain.webhooks import (
    RetryPolicy,
    Webhook,
    WebhookSpec,
    WebhookStatus,
    address_denied,
    check_spec,
    check_url,
    event_accounts,
    message_body,
    parse_networks,
    wants,
)
from tally.service.webhooks.secrets import SecretBox, new_secret
from tally.streaming.webhooks.sender import signature_headers


@pytest.mark.parametrize(("url", "reason"), [
    ("", "WEBHOOK_URL_INVALID"),
    ("ftp://example.com/x", "WEBHOOK_URL_INVALID"),
    ("https:///path-only", "WEBHOOK_URL_INVALID"),
    ("https://user:pw@example.com/", "WEBHOOK_URL_INVALID"),
    ("https://example.com/#frag", "WEBHOOK_URL_INVALID"),
    ("https://example.com/a b", "WEBHOOK_URL_INVALID"),
    ("https://example.com:99999/", "WEBHOOK_URL_INVALID"),
    ("https://example.com/" + "x" * 2048, "WEBHOOK_URL_INVALID"),
    ("http://example.com/x", "WEBHOOK_URL_INSECURE"),
])
def test_bad_urls_are_refused_with_their_reason(url: str, reason: str) -> None:
    with pytest.raises(LedgerError) as caught:
        check_url(url, http_hosts=("localhost",))
    assert caught.value.reason == reason


def test_https_anywhere_and_http_only_to_listed_hosts() -> None:
    check_url("https://hooks.example.com:8443/tally?x=1", http_hosts=())
    check_url("http://LocalHost:8080/hooks", http_hosts=("localhost",))


def test_spec_lists_are_checked_and_normalised() -> None:
    spec = check_spec(WebhookSpec("https://e.com", ("voucher.reversed", "account.created", "account.created"),
                                  ("b", "a")), ())
    assert spec.event_types == ("account.created", "voucher.reversed") and spec.account_ids == ("a", "b")
    for bad, reason in [(WebhookSpec("https://e.com", ("nope",)), "WEBHOOK_EVENT_TYPE_UNKNOWN"),
                        (WebhookSpec("https://e.com", (), ("",)), "WEBHOOK_ACCOUNT_INVALID"),
                        (WebhookSpec("https://e.com", (), tuple(str(i) for i in range(101))),
                         "WEBHOOK_ACCOUNTS_TOO_MANY"),
                        (WebhookSpec("https://e.com", description="d" * 257), "WEBHOOK_DESCRIPTION_TOO_LONG")]:
        with pytest.raises(LedgerError) as caught:
            check_spec(bad, ())
        assert caught.value.reason == reason


@pytest.mark.parametrize(("address", "denied"), [
    ("127.0.0.1", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.1.1", True),
    ("169.254.169.254", True), ("100.64.0.1", True), ("0.0.0.0", True), ("224.0.0.1", True),
    ("::1", True), ("fe80::1%eth0", True), ("fd00::1", True), ("::ffff:10.0.0.1", True),
    ("93.184.216.34", False), ("2606:2800:220:1:248:1893:25c8:1946", False),
])
def test_non_public_addresses_are_denied(address: str, denied: bool) -> None:
    assert address_denied(address, ()) is denied


def test_allowed_networks_lift_the_deny_list_for_themselves_only() -> None:
    allowed = parse_networks("127.0.0.0/8, ::1/128")
    assert not address_denied("127.0.0.1", allowed) and not address_denied("::1", allowed)
    assert address_denied("10.0.0.1", allowed)
    with pytest.raises(ValueError):
        parse_networks("not-a-network")


def _hook(types=(), accounts=()) -> Webhook:
    return Webhook("t", "h", "https://e.com", tuple(types), tuple(accounts), "", WebhookStatus.ACTIVE, "", 0, 0, 0,
                   0, "", 0, 0, 0)


def test_filters_by_type_and_by_any_account_the_event_names() -> None:
    payload = {"lines": [{"account_id": "a1"}, {"account_id": "a2"}], "balances": {"a3": {}}}
    assert event_accounts("a0", payload) == {"a0", "a1", "a2", "a3"}
    assert wants(_hook(), "anything", set())
    assert wants(_hook(types=["ledger.entry.posted"]), "ledger.entry.posted", set())
    assert not wants(_hook(types=["ledger.entry.posted"]), "account.created", {"a1"})
    assert wants(_hook(accounts=["a3"]), "ledger.entry.posted", event_accounts(None, payload))
    assert not wants(_hook(accounts=["zz"]), "ledger.entry.posted", event_accounts(None, payload))


def test_backoff_doubles_with_jitter_and_stays_bounded() -> None:
    policy = RetryPolicy(attempts_max=5, backoff_ms=100, backoff_max_ms=1_000)
    rng = random.Random(7)
    for failures, ceiling in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1_000), (60, 1_000)]:
        delays = [policy.delay_ms(failures, rng) for _ in range(200)]
        assert all(ceiling // 2 <= d <= ceiling for d in delays) and len(set(delays)) > 1
        assert all(isinstance(d, int) for d in delays)
    assert not policy.exhausted(4) and policy.exhausted(5)


def test_body_has_the_standard_shape_and_drops_a_payload_past_the_limit() -> None:
    refs = {"account_id": None, "voucher_id": "v1", "hold_id": None}
    body = json.loads(message_body("t", 42, "ledger.entry.posted", 1_700_000_000_123_456, refs, {"amount": 5},
                                   1024))
    assert body == {"type": "ledger.entry.posted", "timestamp": "2023-11-14T22:13:20.123456Z",
                    "data": {"tenant_id": "t", "sequence": 42, "voucher_id": "v1", "event": {"amount": 5}}}
    big = json.loads(message_body("t", 43, "account.created", 0, refs, {"blob": "x" * 5000}, 1024))
    assert big["data"] == {"tenant_id": "t", "sequence": 43, "voucher_id": "v1", "truncated": True}


def test_signatures_verify_with_either_secret_during_an_overlap() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"type":"x"}'
    headers = signature_headers("17", body, [new, old], now_s=int(time.time()))
    assert headers["webhook-id"] == "17" and len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Verifier(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(new).verify(body + b" ", headers)


def test_secrets_are_stored_encrypted_and_the_key_file_is_made_once(tmp_path) -> None:
    box = SecretBox("", str(tmp_path / "k"))
    secret = new_secret()
    sealed = box.seal(secret)
    assert secret not in sealed and box.open(sealed) == secret
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert SecretBox("", str(tmp_path / "k")).open(sealed) == secret  # another process, the same file
