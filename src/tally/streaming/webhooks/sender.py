"""One signed HTTP POST of one message, bounded in every way: the target address checked against the deny
list, timeouts on connect, write and read, at most `response_bytes_max` of the answer read, no redirects
followed. Signed as Standard Webhooks says (the `standardwebhooks` package): `webhook-id`,
`webhook-timestamp`, `webhook-signature` (one `v1,` signature per secret in use, space-separated, so a
receiver holding either the old or the new secret verifies during a rotation's overlap)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook as Signer

from tally.domain.webhooks import Outcome, address_denied, clip, parse_networks

RESOLVE_TIMEOUT_S = 5
# httpx logs every request at INFO; each attempt is recorded in webhook_deliveries instead.
logging.getLogger("httpx").setLevel(logging.WARNING)


def signature_headers(msg_id: str, body: bytes, secrets: Sequence[str], now_s: int) -> dict[str, str]:
    stamp = datetime.fromtimestamp(now_s, UTC)
    signatures = " ".join(Signer(secret).sign(msg_id, stamp, body) for secret in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(now_s), "webhook-signature": signatures,
            "content-type": "application/json", "user-agent": "tally-webhooks/1"}


class Sender:
    def __init__(self, *, connect_timeout_ms: int, read_timeout_ms: int, response_bytes_max: int,
                 allowed_networks: str, connections_max: int = 100) -> None:
        self.response_bytes_max = response_bytes_max
        self.allowed = parse_networks(allowed_networks)
        connect_s, read_s = connect_timeout_ms / 1000, read_timeout_ms / 1000
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=connect_s, read=read_s, write=read_s, pool=connect_s),
            limits=httpx.Limits(max_connections=connections_max, max_keepalive_connections=connections_max // 4),
            follow_redirects=False, trust_env=False)

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, url: str, msg_id: str, body: bytes, secrets: Sequence[str]) -> Outcome:
        started = time.monotonic_ns()
        denied = await self._denied(url)
        if denied:
            return Outcome(False, 0, _since_us(started), denied)
        headers = signature_headers(msg_id, body, secrets, int(time.time()))
        try:
            async with self.client.stream("POST", url, content=body, headers=headers) as response:
                answer = await self._read_some(response)
                code = response.status_code
        except httpx.TimeoutException as exc:
            return Outcome(False, 0, _since_us(started), f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return Outcome(False, 0, _since_us(started), clip(f"{type(exc).__name__}: {exc}"))
        latency_us = _since_us(started)
        if 200 <= code < 300:
            return Outcome(True, code, latency_us, "")
        return Outcome(False, code, latency_us, clip(f"HTTP {code}: {answer.decode(errors='replace')}"))

    async def _read_some(self, response: httpx.Response) -> bytes:
        """At most `response_bytes_max` bytes of the answer; the rest is never read."""
        kept = b""
        async for chunk in response.aiter_raw():
            kept += chunk[:self.response_bytes_max - len(kept)]
            if len(kept) >= self.response_bytes_max:
                break
        return kept

    async def _denied(self, url: str) -> str:
        """Why the URL's host may not be reached ("" when it may): every address it resolves to must be
        public or in an allowed network. (httpx resolves again to connect; a name that changes its answer
        in between is not caught here.)"""
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):  # not wait_for: on 3.11 it can swallow a cancel
                infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            return clip(f"cannot resolve {parts.hostname}: {exc}")
        for info in infos:
            address = info[4][0]
            if address_denied(address, self.allowed):
                return f"address denied: {parts.hostname} resolves to {address}, a non-public address " \
                       "(TALLY_WEBHOOK_ALLOWED_NETWORKS)"
        return ""


def _since_us(started_ns: int) -> int:
    return (time.monotonic_ns() - started_ns) // 1000
