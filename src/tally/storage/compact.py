"""How the journal's bulky columns are stored (migration 0019): SHA-256 hashes and request fingerprints as
their 32 bytes, idempotency bodies and results as JSON deflated against a preset dictionary. The service and
the API keep hex and JSON text: these conversions happen here, at the repository boundary, and the column
types below apply them to every SQLAlchemy Core statement that names the columns.

Packed JSON is one version byte then the text: 0x01, raw deflate against `_DICTIONARY_V1`. A canonical
transfer body of 201 characters keeps 29 bytes, a result of 67 keeps 38. Text written before migration
0019 was copied as it was (its first byte is `{`, `[` or `"`, never 0x01) and reads back as it is.
`_DICTIONARY_V1` can never change: stored rows depend on it byte for byte; a better one gets 0x02.
"""

from __future__ import annotations

import zlib

from sqlalchemy import LargeBinary
from sqlalchemy.types import TypeDecorator

DIGEST_BYTES = 32  # SHA-256
DIGEST_HEX_CHARS = 2 * DIGEST_BYTES
_PACKED_V1 = 1
# Fragments of the canonical bodies and results idempotency records hold most (sorted keys, no spaces): the
# longest matches a transfer, the most frequent record, so its body is mostly back-references.
_DICTIONARY_V1 = (
    b'{"error":{"kind":"failed_precondition","message":"","metadata":{},"reason":"INSUFFICIENT_FUNDS"}}'
    b'{"holds":[],"voucher_ids":["01a2"]}'
    b'{"effective_us":null,"flow":{"amount":100,"currency":"USD","destination":{"code":"","id":""},"memo":"",'
    b'"source":{"code":"","id":""}},"flow_type":"transfer","memo":"","metadata":{}}'
)
# Compression state is primed with the dictionary once and copied per value: a fresh compressor with a
# dictionary costs ~10 times as much as the copy. A 1 KiB window is enough for the dictionary and a body.
_WINDOW_BITS = 10
_PRIMED = zlib.compressobj(9, zlib.DEFLATED, -_WINDOW_BITS, 1, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY_V1)


def digest_bytes(value: str | bytes) -> bytes:
    """A digest as the bytes stored: 64 lowercase hex characters (what the service writes) as their 32 bytes;
    any other text as its UTF-8, which reads back as it was unless it is 32 bytes long (refused)."""
    if isinstance(value, bytes):
        return value
    if len(value) == DIGEST_HEX_CHARS:
        try:
            data = bytes.fromhex(value)
        except ValueError:
            data = b""
        if data.hex() == value:
            return data
    data = value.encode()
    if len(data) == DIGEST_BYTES:
        raise ValueError("a 32-byte text would read back as a digest")
    return data


def digest_text(value: bytes | memoryview | str) -> str:
    """A stored digest as lowercase hex; a value of another length as its text (a SQLite value from before
    0019 is text already)."""
    if isinstance(value, str):
        return value
    data = bytes(value)
    return data.hex() if len(data) == DIGEST_BYTES else data.decode()


def pack(text: str) -> bytes:
    compressor = _PRIMED.copy()
    return bytes((_PACKED_V1,)) + compressor.compress(text.encode()) + compressor.flush()


def unpack(value: bytes | memoryview | str) -> str:
    """The JSON text of a stored body or result."""
    if isinstance(value, str):
        return value
    data = bytes(value)
    if data[:1] != bytes((_PACKED_V1,)):
        return data.decode()  # written before migration 0019
    decompressor = zlib.decompressobj(-15, zdict=_DICTIONARY_V1)
    return (decompressor.decompress(data[1:]) + decompressor.flush()).decode()


class Digest(TypeDecorator):
    """A SHA-256 stored as its 32 bytes, given and read as hex."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else digest_bytes(value)

    def process_result_value(self, value, dialect):
        return None if value is None else digest_text(value)


class PackedJson(TypeDecorator):
    """JSON text stored packed (`pack`), given and read as text."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value if value is None or isinstance(value, bytes) else pack(value)

    def process_result_value(self, value, dialect):
        return None if value is None else unpack(value)


def bytea_json(value: object) -> str:
    """orjson's `default` for rows sent to PostgreSQL as JSON: bytes as bytea's hex input text, which a
    `::bytea` cast reads back."""
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
