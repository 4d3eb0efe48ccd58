"""The webhook sender against real HTTP servers on loopback: it reads at most `response_bytes_max` of an
answer however large, follows no redirect, times out a receiver that does not answer, and refuses a
non-public address unless it is allowed."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tally.service.webhooks.secrets import new_secret
from tally.streaming.webhooks.sender import Sender

ANSWER_BYTES = 64 * 1024 * 1024
written: list[int] = []  # what `huge` managed to send before the sender hung up


@contextlib.contextmanager
def serving(answer) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            self.rfile.read(int(self.headers.get("content-length", 0)))
            answer(self)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


def huge(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(500)
    handler.send_header("content-length", str(ANSWER_BYTES))
    handler.end_headers()
    chunk, sent = b"x" * 65536, 0
    with contextlib.suppress(OSError):  # the sender hangs up after what it reads
        for _ in range(ANSWER_BYTES // len(chunk)):
            handler.wfile.write(chunk)
            sent += len(chunk)
    written.append(sent)


def redirect(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(302)
    handler.send_header("location", "http://127.0.0.1:9/elsewhere")
    handler.send_header("content-length", "0")
    handler.end_headers()


def silent(handler: BaseHTTPRequestHandler) -> None:
    time.sleep(1.5)


async def _until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def sender(allowed: str = "127.0.0.0/8") -> Sender:
    return Sender(connect_timeout_ms=500, read_timeout_ms=300, response_bytes_max=64, allowed_networks=allowed)


async def test_a_large_answer_is_read_only_up_to_the_limit() -> None:
    client = sender()
    try:
        with serving(huge) as url:
            started = time.monotonic()
            outcome = await client.send(url, "1", b"{}", [new_secret()])
        assert (outcome.delivered, outcome.response_code) == (False, 500)
        assert outcome.error == "HTTP 500: " + "x" * 64 and time.monotonic() - started < 5
        await _until(lambda: written)
        assert written[0] < ANSWER_BYTES // 4, "the sender read (or the socket buffered) far more than it needed"
    finally:
        await client.close()


async def test_a_redirect_is_not_followed_and_silence_times_out() -> None:
    client = sender()
    try:
        with serving(redirect) as url:
            moved = await client.send(url, "1", b"{}", [new_secret()])
        assert (moved.delivered, moved.response_code) == (False, 302)
        with serving(silent) as url:
            started = time.monotonic()
            quiet = await client.send(url, "2", b"{}", [new_secret()])
        assert (quiet.delivered, quiet.response_code) == (False, 0) and quiet.error.startswith("timeout")
        assert time.monotonic() - started < 1.2
    finally:
        await client.close()


async def test_loopback_is_refused_unless_allowed() -> None:
    client = sender(allowed="")
    try:
        with serving(redirect) as url:
            outcome = await client.send(url.replace("127.0.0.1", "localhost"), "1", b"{}", [new_secret()])
        assert (outcome.delivered, outcome.response_code) == (False, 0)
        assert outcome.error.startswith("address denied: localhost resolves to")
    finally:
        await client.close()
