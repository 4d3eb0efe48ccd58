"""Just enough of the PostgreSQL wire protocol for the fault proxy: where COMMITs and their answers end.

The proxy needs a few facts about the streams it relays, each at a message boundary:

* client -> server: a COMMIT sent as a simple Query ('Q'), or as a Parse ('P') of the extended protocol
  (psycopg 3 in pipeline mode sends it that way), and every message that makes the server answer with a
  ReadyForQuery: Query 'Q', Sync 'S', FunctionCall 'F';
* server -> client: each ReadyForQuery ('Z'), so the proxy knows when a given request has been answered.

After the startup phase every message is a type byte plus an int32 length that counts itself but not the
type byte. The startup packet has no type byte. An SSLRequest or GSSENCRequest may come first; the server
answers each with one byte, and 'S' / 'G' means everything after it is encrypted. Encrypted or malformed
streams become opaque: the proxy still relays them, it only stops reporting events.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER_BYTES = 5  # type byte + int32 length
STARTUP_HEADER_BYTES = 8  # int32 length + int32 protocol version or request code
STARTUP_BYTES_MAX = 10_000  # PostgreSQL's own MAX_STARTUP_PACKET_LENGTH
MESSAGE_BYTES_MAX = 1 << 30  # PostgreSQL refuses anything near this; larger means we lost the framing
SNIFF_BYTES_MAX = 1024  # a COMMIT is short: longer Query / Parse bodies are skipped, not buffered

SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102
ENCRYPTION_ACCEPTED = b"SG"  # the server's one-byte "yes" to SSLRequest / GSSENCRequest

SYNC_POINT_KINDS = b"QSF"  # client messages that the server answers with exactly one ReadyForQuery
COMMIT_WORDS = (("COMMIT",), ("COMMIT", "WORK"), ("COMMIT", "TRANSACTION"))

# Event kinds
COMMIT_QUERY = "commit_query"  # a simple-protocol COMMIT; also a sync point
COMMIT_PARSE = "commit_parse"  # an extended-protocol Parse of COMMIT; runs at the next sync point
SYNC = "sync"  # any other sync point (Query, Sync, FunctionCall)
READY = "ready"  # a ReadyForQuery from the server

# Phases of the client stream
STARTUP = "startup"
AWAIT_ANSWER = "await_answer"
MESSAGES = "messages"
OPAQUE = "opaque"


@dataclass(frozen=True)
class Frame:
    kind: bytes  # the type byte, e.g. b"Q"
    body: bytes  # the whole body for sniffed kinds no longer than SNIFF_BYTES_MAX, else b""
    end: int  # offset just after the message in the chunk that completed it


@dataclass(frozen=True)
class Event:
    kind: str
    end: int  # offset just after the message in the chunk passed to from_client / from_server
    ordinal: int  # client: sync points sent so far (this one included); server: answers received so far


def is_commit(sql: bytes) -> bool:
    """True for COMMIT [WORK | TRANSACTION], any case and spacing, with or without a trailing ';'."""
    text = sql.decode("utf-8", errors="replace").strip().rstrip(";").strip()
    return tuple(text.upper().split()) in COMMIT_WORDS


def query_text(frame: Frame) -> bytes:
    """SQL text of a sniffed Query (sql NUL) or Parse (name NUL sql NUL ...) body."""
    if frame.kind == b"Q":
        return frame.body.split(b"\0", 1)[0]
    parts = frame.body.split(b"\0", 2)
    return parts[1] if len(parts) > 1 else b""


class Framer:
    """Splits a byte stream into typed messages, chunk by chunk, keeping only the bodies it is asked for."""

    def __init__(self, sniff_kinds: bytes) -> None:
        self._sniff_kinds = sniff_kinds
        self._header = bytearray()
        self._body = bytearray()
        self._remaining = 0
        self._capture = False
        self.broken = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        pos = 0
        while pos < len(data) and not self.broken:
            if len(self._header) < HEADER_BYTES:
                pos = self._read_header(data, pos)
                if len(self._header) < HEADER_BYTES or self.broken:
                    break
            take = min(self._remaining, len(data) - pos)
            if self._capture:
                self._body += data[pos : pos + take]
            pos += take
            self._remaining -= take
            if self._remaining == 0:
                frames.append(Frame(bytes(self._header[:1]), bytes(self._body), pos))
                self._header.clear()
                self._body.clear()
        return frames

    def _read_header(self, data: bytes, pos: int) -> int:
        take = min(HEADER_BYTES - len(self._header), len(data) - pos)
        self._header += data[pos : pos + take]
        if len(self._header) == HEADER_BYTES:
            length = int.from_bytes(self._header[1:5], "big")
            self.broken = not 4 <= length <= MESSAGE_BYTES_MAX
            self._remaining = length - 4
            self._capture = bytes(self._header[:1]) in self._sniff_kinds and self._remaining <= SNIFF_BYTES_MAX
        return pos + take


class WireTracker:
    """Follows one proxied connection in both directions and reports COMMITs, sync points and answers."""

    def __init__(self) -> None:
        self.phase = STARTUP
        self._startup = bytearray()
        self._startup_left = 0  # bytes of the startup packet still to skip after its header
        self._client = Framer(sniff_kinds=b"QP")
        self._server = Framer(sniff_kinds=b"")
        self._syncs_sent = 0
        self._readies_received = -1  # the first ReadyForQuery ends the startup, it answers no request

    def from_client(self, data: bytes) -> list[Event]:
        pos = 0
        while self.phase in (STARTUP, AWAIT_ANSWER) and pos < len(data):
            pos = self._read_startup(data, pos)
        if self.phase != MESSAGES or pos >= len(data):
            return []
        frames = self._client.feed(data[pos:])
        if self._client.broken:
            self.phase = OPAQUE
        return [e for e in (self._client_event(f, pos) for f in frames) if e is not None]

    def from_server(self, data: bytes) -> list[Event]:
        pos = 0
        if self.phase == AWAIT_ANSWER and data:
            self.phase = OPAQUE if data[:1] in ENCRYPTION_ACCEPTED else STARTUP
            pos = 1
        if self.phase != MESSAGES or pos >= len(data):
            return []
        events = []
        for frame in self._server.feed(data[pos:]):
            if frame.kind == b"Z":
                self._readies_received += 1
                events.append(Event(READY, pos + frame.end, self._readies_received))
        if self._server.broken:
            self.phase = OPAQUE
        return events

    def _client_event(self, frame: Frame, offset: int) -> Event | None:
        end = offset + frame.end
        if frame.kind in SYNC_POINT_KINDS:
            self._syncs_sent += 1
        commit = frame.kind in b"QP" and is_commit(query_text(frame))
        if frame.kind == b"Q":
            return Event(COMMIT_QUERY if commit else SYNC, end, self._syncs_sent)
        if frame.kind in SYNC_POINT_KINDS:
            return Event(SYNC, end, self._syncs_sent)
        return Event(COMMIT_PARSE, end, self._syncs_sent) if commit else None

    def _read_startup(self, data: bytes, pos: int) -> int:
        if self.phase == AWAIT_ANSWER:  # the client may not speak before the server's one-byte answer
            self.phase = OPAQUE
            return len(data)
        if self._startup_left == 0:  # between packets: this is the next header
            take = min(STARTUP_HEADER_BYTES - len(self._startup), len(data) - pos)
            self._startup += data[pos : pos + take]
            pos += take
            if len(self._startup) < STARTUP_HEADER_BYTES:
                return pos
            self._start_packet()
            if self.phase == STARTUP and self._startup_left == 0:  # a startup packet with no parameters
                self.phase = MESSAGES
            if self.phase != STARTUP:
                return pos
        take = min(self._startup_left, len(data) - pos)
        self._startup_left -= take
        if self._startup_left == 0:
            self.phase = MESSAGES
        return pos + take

    def _start_packet(self) -> None:
        length = int.from_bytes(self._startup[:4], "big")
        code = int.from_bytes(self._startup[4:8], "big")
        self._startup.clear()
        if code in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE) and length == STARTUP_HEADER_BYTES:
            self.phase = AWAIT_ANSWER
        elif code == CANCEL_REQUEST_CODE or not STARTUP_HEADER_BYTES <= length <= STARTUP_BYTES_MAX:
            self.phase = OPAQUE
        else:
            self._startup_left = length - STARTUP_HEADER_BYTES
