"""A real HTTP webhook receiver on loopback for the tests: verifies every signature with the
`standardwebhooks` package (what a customer would run), records what arrived, and can be told to answer
500s, to hang past the sender's read timeout, or to be slow."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

OK, FAIL, HANG = "ok", "fail", "hang"


@dataclass(frozen=True)
class Arrival:
    msg_id: str
    sequence: int
    type: str
    answered: int  # the status this receiver answered (0: it hung)
    at_ns: int
    signatures: int  # in webhook-signature: 2 while an old secret overlaps a new one


class Receiver:
    def __init__(self, secret: str = "", hang_s: float = 1.0, delay_s: float = 0.0) -> None:
        self.secrets = [secret] if secret else []
        self.hang_s, self.delay_s = hang_s, delay_s
        self.mode = OK
        self.script: list[str] = []  # modes for the next requests, used up first
        self.arrivals: list[Arrival] = []
        self.bad_signatures = 0
        self.concurrent, self.concurrent_max = 0, 0  # requests being answered at once
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sequences(self, answered_ok_only: bool = False) -> list[int]:
        with self.lock:
            return [a.sequence for a in self.arrivals if not answered_ok_only or a.answered == 200]

    def acknowledged(self) -> list[int]:
        """Sequences this receiver answered 200, deduplicated by webhook-id, in order of first arrival."""
        seen: dict[str, int] = {}
        for arrival in list(self.arrivals):
            if arrival.answered == 200:
                seen.setdefault(arrival.msg_id, arrival.sequence)
        return list(seen.values())

    def clear(self) -> None:
        with self.lock:
            self.arrivals.clear()

    def _next_mode(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else self.mode

    def _verify(self, body: bytes, headers: dict[str, str]) -> dict | None:
        for secret in self.secrets:
            with contextlib.suppress(WebhookVerificationError):
                return Webhook(secret).verify(body, headers)
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                with receiver.lock:
                    receiver.concurrent += 1
                    receiver.concurrent_max = max(receiver.concurrent, receiver.concurrent_max)
                self.counted = True
                try:
                    self._post()
                finally:
                    self._uncount()

            def _uncount(self) -> None:
                if self.counted:
                    self.counted = False
                    with receiver.lock:
                        receiver.concurrent -= 1

            def _post(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                message = receiver._verify(body, dict(self.headers.items()))
                if message is None:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self._answer(401)
                    return
                mode = receiver._next_mode()
                answered = {OK: 200, FAIL: 500, HANG: 0}[mode]
                with receiver.lock:
                    receiver.arrivals.append(Arrival(self.headers["webhook-id"], message["data"]["sequence"],
                                                     message["type"], answered, time.monotonic_ns(),
                                                     len(self.headers["webhook-signature"].split())))
                if mode == HANG:
                    time.sleep(receiver.hang_s)
                    return  # the sender has timed out; nothing to answer
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                self._answer(answered)

            def _answer(self, code: int) -> None:
                payload = json.dumps({"status": code}).encode()
                self.send_response(code)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                # Done before the last byte goes out: once the sender has it, it may send the next request
                # while this thread, not yet scheduled again, would still count this one.
                self._uncount()
                self.wfile.write(payload)

        return Handler


@contextlib.contextmanager
def receiving(**kwargs) -> Iterator[Receiver]:
    receiver = Receiver(**kwargs).start()
    try:
        yield receiver
    finally:
        receiver.close()


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
