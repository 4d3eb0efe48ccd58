"""Unit tests for tally.domain.ids and tally.domain.errors."""

from __future__ import annotations

import time
import uuid

from tally.domain.errors import ErrorKind, LedgerError, invalid, not_found, precondition
from tally.domain.ids import new_id


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
