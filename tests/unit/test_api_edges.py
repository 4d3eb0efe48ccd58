"""The API's edge helpers without a server: pages cut by bytes, the classification of unforeseen failures,
and the settings that bound a caller."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError

from tally.api.errors import code_of
from tally.api.pages import FIELD_OVERHEAD_BYTES_MAX, page_out
from tally.config import ConfigError, Settings
from tally.domain.errors import ErrorKind
from tally.service.faults import transient, unexpected
from tally.service.queries import Page
from tally.v1 import types_pb2


def _page(memos: list[str], token: str = "next") -> Page:
    return Page(memos, token, resume_after=lambda memo: f"after:{memo[:3]}")


def _voucher(memo: str) -> types_pb2.Voucher:
    return types_pb2.Voucher(memo=memo)


def test_a_page_stops_before_the_item_that_would_pass_the_bound() -> None:
    memos = [f"{i:03d}" + "m" * 997 for i in range(10)]  # ~1 KB each
    size = _voucher(memos[0]).ByteSize() + FIELD_OVERHEAD_BYTES_MAX
    messages, token = page_out(_page(memos), _voucher, bytes_max=3 * size)
    assert [m.memo for m in messages] == memos[:3] and token == "after:002"
    messages, token = page_out(_page(memos), _voucher, bytes_max=3 * size - 1)
    assert len(messages) == 2 and token == "after:001"


def test_a_page_within_the_bound_keeps_its_own_token() -> None:
    memos = ["a", "b"]
    assert page_out(_page(memos), _voucher, 1024) == ([_voucher("a"), _voucher("b")], "next")
    assert page_out(_page(memos, token=""), _voucher, 1024)[1] == ""
    assert page_out(_page([]), _voucher, 1024) == ([], "next")


def test_one_item_larger_than_the_bound_still_goes_alone() -> None:
    memos = ["x" * 5000, "y"]
    messages, token = page_out(_page(memos), _voucher, bytes_max=100)
    assert [m.memo for m in messages] == memos[:1] and token == "after:xxx"


@pytest.mark.parametrize(("exc", "is_transient"), [
    (OperationalError("s", {}, Exception("connection refused")), True),
    (InterfaceError("s", {}, Exception("connection already closed")), True),
    (DataError("s", {}, Exception("value too long")), False),
    (IntegrityError("s", {}, Exception("duplicate key")), False),
    (RecursionError(), False),
    (ValueError("bug"), False),
])
def test_only_a_transient_fault_asks_for_a_retry(exc: BaseException, is_transient: bool, caplog) -> None:
    assert transient(exc) is is_transient
    with caplog.at_level(logging.WARNING, logger="tally.api.errors"):
        error = unexpected(exc)
    if is_transient:
        assert (error.kind, error.reason) == (ErrorKind.UNAVAILABLE, "DATABASE_UNAVAILABLE")
        assert "error_id" not in error.metadata
        return
    assert (error.kind, error.reason, code_of(error)) == (ErrorKind.INTERNAL, "INTERNAL_ERROR", 13)
    assert error.metadata["error_id"] in error.message
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.metadata["error_id"] in record.getMessage() and record.exc_info[1] is exc


def test_the_error_ids_differ() -> None:
    assert unexpected(ValueError()).metadata["error_id"] != unexpected(ValueError()).metadata["error_id"]


def test_the_new_settings_come_from_the_environment() -> None:
    settings = Settings.from_env({
        "TALLY_ENV": "production", "TALLY_STREAM_SUBSCRIBERS_PER_TENANT_MAX": "7",
        "TALLY_STREAM_SUBSCRIBERS_PER_KEY_MAX": "3", "TALLY_EFFECTIVE_TIME_PAST_MAX_S": "60",
        "TALLY_EFFECTIVE_TIME_FUTURE_MAX_S": "0", "TALLY_PAGE_BYTES_MAX": "200000"})
    assert (settings.env, settings.stream_subscribers_per_tenant_max, settings.stream_subscribers_per_key_max,
            settings.effective_time_past_max_s, settings.effective_time_future_max_s, settings.page_bytes_max) == (
        "production", 7, 3, 60, 0, 200_000)
    defaults = Settings()
    assert (defaults.env, defaults.stream_subscribers_per_tenant_max, defaults.stream_subscribers_per_key_max) == (
        "development", 250, 50)


@pytest.mark.parametrize(("name", "value"), [
    ("TALLY_ENV", "staging"), ("TALLY_STREAM_SUBSCRIBERS_PER_KEY_MAX", "0"), ("TALLY_PAGE_BYTES_MAX", "100"),
    ("TALLY_PAGE_BYTES_MAX", str(4 * 1024 * 1024)), ("TALLY_EFFECTIVE_TIME_PAST_MAX_S", "-1"),
])
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
