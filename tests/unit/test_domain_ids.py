"""Unit tests for tally.domain.ids and tally.domain.errors."""

from __future__ import annotations

import os
import threading
import time
import uuid

from tally.domain.errors import ErrorKind, LedgerError, invalid, not_found, precondition
from tally.domain.ids import RANDOM_BLOCK_BYTES, new_id


def test_new_id_is_a_version_7_rfc_4122_uuid():
    value = uuid.UUID(new_id())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_new_id_carries_the_current_unix_milliseconds():
    before = time.time_ns() // 1_000_000
    value = uuid.UUID(new_id())
    after = time.time_ns() // 1_000_000
    assert before <= value.int >> 80 <= after


def test_new_ids_are_unique_and_time_ordered_across_milliseconds():
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert first < second  # canonical text sorts like the timestamp prefix
    assert len({new_id() for _ in range(2_000)}) == 2_000


def _random_part(text: str) -> int:
    return uuid.UUID(text).int & ((1 << 80) - 1)


def test_random_bits_are_never_handed_out_twice_across_blocks():
    """Ids draw from a block of OS randomness at a time: three blocks' worth, every random part distinct."""
    count = 3 * RANDOM_BLOCK_BYTES // 10
    assert len({_random_part(new_id()) for _ in range(count)}) == count


def test_threads_draw_from_blocks_of_their_own():
    found: list[list[str]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=lambda out=out: out.extend(new_id() for _ in range(1_000))) for out in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({_random_part(i) for ids in found for i in ids}) == 4_000


def test_a_forked_child_does_not_take_the_ids_its_parent_takes_next():
    """The child inherits the parent's block of randomness: it must draw its own, or both would hand out the
    same random bits next (the same ids, within a millisecond)."""
    new_id()  # the parent has a block in use
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write_end, new_id().encode())
        os._exit(0)
    os.close(write_end)
    parents = new_id()
    childs = os.read(read_end, 64).decode()
    os.close(read_end)
    assert os.waitpid(pid, 0)[1] == 0
    assert uuid.UUID(childs).version == 7
    assert _random_part(childs) != _random_part(parents)


def test_new_id_text_form():
    text = new_id()
    assert len(text) == 36 and text == text.lower() and text[14] == "7"


def test_ledger_error_carries_kind_reason_message_and_string_metadata():
    error = LedgerError(ErrorKind.ABORTED, "CONFLICT", "try again", attempt=3, flag=None)
    assert (error.kind, error.reason, error.message, str(error)) == (
        ErrorKind.ABORTED, "CONFLICT", "try again", "try again")
    assert error.metadata == {"attempt": "3", "flag": "None"}
    assert repr(error) == "LedgerError(ABORTED, CONFLICT, 'try again')"


def test_error_helpers_choose_the_kind():
    assert invalid("R", "m").kind is ErrorKind.INVALID_ARGUMENT
    assert precondition("R", "m").kind is ErrorKind.FAILED_PRECONDITION
    assert not_found("R", "m", id=1).kind is ErrorKind.NOT_FOUND
    assert not_found("R", "m", id=1).metadata == {"id": "1"}
