"""Unit tests for tally.storage.compact: digests as 32 bytes and packed JSON, each reading back exactly what
was written, and the packed format fixed (stored rows depend on it)."""

from __future__ import annotations

import hashlib
import json

import orjson
import pytest

from tally.service.posting.idempotency import canonical_json
from tally.storage.compact import bytea_json, digest_bytes, digest_text, pack, unpack

TRANSFER = ('{"effective_us":null,"flow":{"amount":1234,"currency":"USD","destination":{"code":"acct-01234","id":""},'
            '"memo":"","source":{"code":"acct-00017","id":""}},"flow_type":"transfer","memo":"","metadata":{}}')


def test_a_digest_is_stored_as_its_32_bytes_and_read_back_as_hex():
    digest = hashlib.sha256(b"voucher").hexdigest()
    stored = digest_bytes(digest)
    assert stored == bytes.fromhex(digest) and len(stored) == 32
    assert digest_text(stored) == digest
    assert digest_text(memoryview(stored)) == digest  # as some drivers return bytea
    assert digest_bytes(stored) is stored


@pytest.mark.parametrize("text", ["", "f", "0" * 63, "A" * 64, "ab " * 21 + "a", "é" * 10, "0" * 66])
def test_other_text_reads_back_as_it_was(text):
    """Only 64 lowercase hex characters become 32 bytes; uppercase, spaced or other lengths keep their text."""
    stored = digest_bytes(text)
    assert stored == text.encode()
    assert digest_text(stored) == text


def test_a_text_of_32_bytes_is_refused():
    """It would read back as a digest: refused rather than changed."""
    with pytest.raises(ValueError, match="32-byte"):
        digest_bytes("x" * 32)


@pytest.mark.parametrize("body", [
    {},
    json.loads(TRANSFER),
    {"voucher_ids": ["01a24ebe-f4da-7607-98a9-1ab8c986be25"], "holds": []},
    {"memo": "naïve ☃ \u0000 \\ \"quoted\"", "metadata": {"k": "v" * 5000}, "amount": 2**70},
    [1, [2, [3]], None, True],
])
def test_packed_json_reads_back_exactly(body):
    text = canonical_json(body) if isinstance(body, dict) else json.dumps(body)
    packed = pack(text)
    assert packed[0] == 1
    assert unpack(packed) == text
    assert unpack(memoryview(packed)) == text


def test_the_packed_format_is_fixed():
    """The dictionary and the format can never change under stored rows: this transfer body packs to these
    bytes, and they unpack to it."""
    golden = bytes.fromhex("0123d2cd46c626443b3a3139b944d700a48548e743341818189a53e01100")
    assert pack(TRANSFER) == golden
    assert unpack(golden) == TRANSFER


def test_a_transfer_body_and_result_pack_small():
    assert len(TRANSFER) == 201 and len(pack(TRANSFER)) <= 32
    result = canonical_json({"holds": [], "voucher_ids": ["01a24ebe-f4da-7607-98a9-1ab8c986be25"]})
    assert len(pack(result)) <= 40


@pytest.mark.parametrize("text", ['{"a":1}', "[]", '"s"', "null"])
def test_text_written_before_the_migration_reads_back_as_it_is(text):
    """Migration 0019 copies old bodies as their UTF-8 bytes (SQLite may keep them as text)."""
    assert unpack(text.encode()) == text
    assert unpack(text) == text


def test_bytes_travel_to_postgresql_as_bytea_hex_text():
    assert orjson.dumps([b"\x00\xff", "x", 1], default=bytea_json) == b'["\\\\x00ff","x",1]'
    with pytest.raises(TypeError):
        orjson.dumps([object()], default=bytea_json)
