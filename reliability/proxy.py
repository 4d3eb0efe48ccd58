"""FaultProxy: a TCP proxy between the Tally service and PostgreSQL that injects network faults.

Faults: a delay on every relayed chunk (``set_latency_ms``), dropping every connection at once with a TCP
reset (``reset_all``), and losing the answer to a COMMIT (``arm_drop_after_commit``). For the last one the
COMMIT reaches the server and the proxy waits until the server has answered it, so the commit has really
happened, then resets both sides without relaying the answer: the client sees a broken connection and
cannot tell whether it committed. That is the unknown outcome a retry with the same request_id resolves.
COMMITs are recognised by their text in Query and Parse messages (``reliability.pgwire``); a COMMIT
prepared under a name and executed again later without a new Parse is not seen.

One asyncio loop in one daemon thread runs the listener and every connection; the public methods are
called from other threads and hand their work to that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
from dataclasses import asdict, dataclass
from typing import NamedTuple

from reliability.pgwire import COMMIT_PARSE, COMMIT_QUERY, READY, SYNC, Event, WireTracker

log = logging.getLogger(__name__)

CONNECTIONS_MAX = 200  # below the test server's max_connections (300), so the proxy refuses first
CHUNK_BYTES_MAX = 64 * 1024
QUEUE_CHUNKS_MAX = 64  # per direction; a full queue stops reading, so TCP backpressure reaches the sender
LATENCY_MS_MAX = 60_000
COMMITS_ARMED_MAX = 100_000
CONNECT_TIMEOUT_MS = 5_000
COMMIT_ANSWER_WAIT_MS = 10_000  # a dropped COMMIT whose answer never comes is dropped after this anyway
CONTROL_TIMEOUT_MS = 10_000  # how long a public method waits for the loop thread
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST instead of FIN


@dataclass
class ProxyStats:
    connections_accepted: int = 0
    connections_refused: int = 0  # turned away because connections_max were open
    connections_reset: int = 0  # dropped by reset_all
    commits_seen: int = 0
    commits_dropped: int = 0


class _Chunk(NamedTuple):
    due: float  # loop time at which it may be written
    data: bytes
    commit: bool  # the chunk ends with an armed COMMIT


def _abort(writer: asyncio.StreamWriter | None) -> None:
    """Close so that the peer sees a TCP reset, not an orderly end of stream."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    writer.transport.abort()


class _Link:
    """One client connection and its upstream twin, with a delaying queue in each direction."""

    def __init__(self, proxy: FaultProxy, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client_r, self.client_w = client_r, client_w
        self.server_r: asyncio.StreamReader | None = None
        self.server_w: asyncio.StreamWriter | None = None
        self.tracker = WireTracker()
        self.to_server: asyncio.Queue[_Chunk | None] = asyncio.Queue(QUEUE_CHUNKS_MAX)
        self.to_client: asyncio.Queue[_Chunk | None] = asyncio.Queue(QUEUE_CHUNKS_MAX)
        self.tasks: list[asyncio.Task] = []
        self.closed = asyncio.Event()
        self.commit_pending = False  # an armed COMMIT was parsed; it runs at the next sync point
        self.answer_ordinal: int | None = None  # once dropping: the ReadyForQuery that answers the COMMIT

    async def run(self) -> None:
        host, port = self.proxy.upstream
        try:
            connecting = asyncio.open_connection(host, port)
            self.server_r, self.server_w = await asyncio.wait_for(connecting, CONNECT_TIMEOUT_MS / 1000)
        except OSError as exc:  # TimeoutError included
            log.debug("upstream %s:%s unreachable: %r", host, port, exc)
            self.close(abortive=True)
            return
        if self.closed.is_set():  # reset while connecting
            _abort(self.server_w)
            return
        pumps = ((self._read_client,), (self._read_server,), (self._send, self.to_server), (self._send, self.to_client))
        self.tasks = [asyncio.create_task(self._guard(*pump)) for pump in pumps]
        await self.closed.wait()

    def close(self, abortive: bool) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for writer in (self.client_w, self.server_w):
            if abortive:
                _abort(writer)
            elif writer is not None:
                writer.close()
        self.proxy._forget(self)

    async def _guard(self, pump, *args) -> None:
        # The pump's coroutine is made here, not by the caller: a task cancelled before it first runs then
        # leaves no coroutine behind that was never awaited.
        try:
            await pump(*args)
        except Exception as exc:  # one broken connection must never take the proxy down
            log.debug("proxied connection failed: %r", exc)
            self.close(abortive=True)

    def _chunk(self, data: bytes, commit: bool = False) -> _Chunk:
        due = asyncio.get_running_loop().time() + self.proxy.latency_ms / 1000
        return _Chunk(due, data, commit)

    async def _read_client(self) -> None:
        while True:
            data = await self.client_r.read(CHUNK_BYTES_MAX)
            if not data:
                await self.to_server.put(None)
                return
            cut = self._commit_cut(self.tracker.from_client(data))
            if cut is None:
                await self.to_server.put(self._chunk(data))
                continue
            # Nothing after the COMMIT is relayed: the client will never hear back on this connection.
            await self.to_server.put(self._chunk(data[:cut], commit=True))
            return

    def _commit_cut(self, events: list[Event]) -> int | None:
        """Offset just after the sync point that runs an armed COMMIT, or None."""
        for event in events:
            if event.kind in (COMMIT_QUERY, COMMIT_PARSE) and self.proxy._take_commit():
                self.commit_pending = True
            if self.commit_pending and event.kind in (COMMIT_QUERY, SYNC):
                self.answer_ordinal = event.ordinal
                return event.end
        return None

    async def _read_server(self) -> None:
        while True:
            data = await self.server_r.read(CHUNK_BYTES_MAX)
            if not data:
                await self.to_client.put(None)
                return
            events = self.tracker.from_server(data)
            if self.answer_ordinal is None:
                await self.to_client.put(self._chunk(data))
            elif any(e.kind == READY and e.ordinal >= self.answer_ordinal for e in events):
                self._drop_commit()  # the server has committed (or refused): its answer is lost
                return
            # else: withheld, whatever it answers before the COMMIT's own answer

    async def _send(self, queue: asyncio.Queue[_Chunk | None]) -> None:
        writer = self.server_w if queue is self.to_server else self.client_w
        loop = asyncio.get_running_loop()
        while True:
            chunk = await queue.get()
            if chunk is None:  # end of stream after everything before it was written
                self.close(abortive=False)
                return
            delay_s = chunk.due - loop.time()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            writer.write(chunk.data)
            if chunk.commit:
                loop.call_later(COMMIT_ANSWER_WAIT_MS / 1000, self._drop_commit)
            await writer.drain()

    def _drop_commit(self) -> None:
        if not self.closed.is_set():
            self.proxy._count("commits_dropped")
            self.close(abortive=True)


class FaultProxy:
    """A TCP proxy in front of PostgreSQL that adds latency, resets connections and loses COMMIT answers.

    Use as ``with FaultProxy(host, port) as proxy:`` and connect to ``127.0.0.1:proxy.port``. Clients should
    use ``sslmode=disable`` and ``gssencmode=disable``: encrypted streams are relayed but not parsed, so
    their COMMITs cannot be dropped.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        *,
        connections_max: int = CONNECTIONS_MAX,
    ) -> None:
        if connections_max < 1:
            raise ValueError(f"connections_max must be at least 1, got {connections_max}")
        self.upstream = (upstream_host, upstream_port)
        self.listen = (listen_host, listen_port)
        self.connections_max = connections_max
        self.port: int | None = None
        self.latency_ms = 0
        self._lock = threading.Lock()  # guards _stats and _commits_armed: callers and the loop both touch them
        self._stats = ProxyStats()
        self._commits_armed = 0
        self._links: set[_Link] = set()  # changed only in the loop thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        if self._loop is not None:
            raise RuntimeError("FaultProxy already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        try:
            self.port = self._call(self._listen())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close the listener and reset every connection. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self._shutdown())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CONTROL_TIMEOUT_MS / 1000)
            if not thread.is_alive():
                loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- faults ------------------------------------------------------------------------------
    def set_latency_ms(self, latency_ms: int) -> None:
        """Delay every chunk relayed in either direction by latency_ms (0: none); byte order is kept."""
        if not 0 <= latency_ms <= LATENCY_MS_MAX:
            raise ValueError(f"latency_ms must be within 0..{LATENCY_MS_MAX}, got {latency_ms}")
        self.latency_ms = int(latency_ms)

    def reset_all(self) -> int:
        """Reset every current connection on both sides; return how many. New connections still work."""
        return self._call(self._reset_all())

    def arm_drop_after_commit(self, count: int = 1) -> None:
        """Lose the answer to the next count COMMITs (replacing any still armed; 0 disarms)."""
        if not 0 <= count <= COMMITS_ARMED_MAX:
            raise ValueError(f"count must be within 0..{COMMITS_ARMED_MAX}, got {count}")
        with self._lock:
            self._commits_armed = count

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(asdict(self._stats), commits_armed=self._commits_armed, connections_open=len(self._links))

    # -- loop side ---------------------------------------------------------------------------
    def _call(self, coro):
        if self._loop is None:
            coro.close()
            raise RuntimeError("FaultProxy is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CONTROL_TIMEOUT_MS / 1000)

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._accept, *self.listen)
        return self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._links) >= self.connections_max:
            self._count("connections_refused")
            _abort(writer)
            return
        self._count("connections_accepted")
        link = _Link(self, reader, writer)
        self._links.add(link)
        await link.run()

    async def _reset_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.close(abortive=True)
        self._count("connections_reset", len(links))
        return len(links)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close(abortive=True)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _forget(self, link: _Link) -> None:
        self._links.discard(link)

    def _take_commit(self) -> bool:
        """Count a COMMIT seen; True if it is one of the armed ones (and use it up)."""
        with self._lock:
            self._stats.commits_seen += 1
            if self._commits_armed == 0:
                return False
            self._commits_armed -= 1
            return True

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self._stats, name, getattr(self._stats, name) + n)
