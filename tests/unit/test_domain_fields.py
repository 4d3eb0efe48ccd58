"""Unit tests for tally.domain.fields: tenant, request id, codes, free text and metadata."""

from __future__ import annotations

import pytest

from tally.domain import limits
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.fields import check_code, check_metadata, check_request_id, check_tenant, check_text


def _raises(fn, *args, **kwargs) -> LedgerError:
    with pytest.raises(LedgerError) as info:
        fn(*args, **kwargs)
    return info.value


# --- tenant ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tenant",
    ["acme", "a", "0", "acme-corp_01", "9lives", "a" * limits.TENANT_ID_LENGTH_MAX, "a-", "a_"],
    ids=["plain", "one-letter", "one-digit", "dash-underscore", "leading-digit", "max-length", "trailing-dash",
         "trailing-underscore"],
)
def test_check_tenant_accepts(tenant):
    assert check_tenant(tenant) == tenant


@pytest.mark.parametrize(
    ("tenant", "reason"),
    [
        ("", "TENANT_MISSING"),
        ("a" * (limits.TENANT_ID_LENGTH_MAX + 1), "TENANT_INVALID"),
        ("Acme", "TENANT_INVALID"),
        ("-acme", "TENANT_INVALID"),
        ("_acme", "TENANT_INVALID"),
        ("ac me", "TENANT_INVALID"),
        ("acme.corp", "TENANT_INVALID"),
        ("acme/x", "TENANT_INVALID"),
        ("acmé", "TENANT_INVALID"),
        (" acme", "TENANT_INVALID"),
        ("acme\n", "TENANT_INVALID"),
        ("acme\nother", "TENANT_INVALID"),
    ],
    ids=["empty", "too-long", "uppercase", "leading-dash", "leading-underscore", "space", "dot", "slash",
         "non-ascii", "leading-space", "trailing-newline", "embedded-newline"],
)
def test_check_tenant_rejects(tenant, reason):
    error = _raises(check_tenant, tenant)
    assert error.reason == reason
    assert error.kind is ErrorKind.UNAUTHENTICATED


# --- request id -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_id",
    ["r", "req-1", "!~", "A:b/c@d#e$%^&*()", "x" * limits.REQUEST_ID_LENGTH_MAX,
     "018f2d7e-8c1a-7b3e-9a00-1234567890ab"],
    ids=["one-char", "plain", "punctuation-ends", "symbols", "max-length", "uuid"],
)
def test_check_request_id_accepts(request_id):
    assert check_request_id(request_id) == request_id


@pytest.mark.parametrize(
    ("request_id", "reason"),
    [
        ("", "REQUEST_ID_MISSING"),
        ("x" * (limits.REQUEST_ID_LENGTH_MAX + 1), "REQUEST_ID_INVALID"),
        ("req 1", "REQUEST_ID_INVALID"),
        (" ", "REQUEST_ID_INVALID"),
        ("req\t1", "REQUEST_ID_INVALID"),
        ("req\x7f", "REQUEST_ID_INVALID"),
        ("réq", "REQUEST_ID_INVALID"),
        ("req\x00", "REQUEST_ID_INVALID"),
        ("req\n1", "REQUEST_ID_INVALID"),
        ("req-1\n", "REQUEST_ID_INVALID"),
    ],
    ids=["empty", "too-long", "space", "only-space", "tab", "del", "non-ascii", "nul", "embedded-newline",
         "trailing-newline"],
)
def test_check_request_id_rejects(request_id, reason):
    error = _raises(check_request_id, request_id)
    assert error.reason == reason
    assert error.kind is ErrorKind.INVALID_ARGUMENT


# --- account code ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    ["a", "Cash", "1000", "cash.usd", "user:42/wallet@main", "a_b-c", "x" * limits.ACCOUNT_CODE_LENGTH_MAX],
    ids=["one-char", "mixed-case", "digits", "dot", "all-separators", "underscore-dash", "max-length"],
)
def test_check_code_accepts(code):
    assert check_code(code) == code


@pytest.mark.parametrize(
    "code",
    ["", "x" * (limits.ACCOUNT_CODE_LENGTH_MAX + 1), "_cash", ".cash", "-cash", ":cash", "ca sh", "cash#1",
     "caché", "cash\t", "cash\n", "\ncash"],
    ids=["empty", "too-long", "leading-underscore", "leading-dot", "leading-dash", "leading-colon", "space",
         "hash", "non-ascii", "tab", "trailing-newline", "leading-newline"],
)
def test_check_code_rejects(code):
    error = _raises(check_code, code, "account.code")
    assert error.reason == "ACCOUNT_CODE_INVALID"
    assert error.kind is ErrorKind.INVALID_ARGUMENT
    assert error.metadata == {"field": "account.code"}


def test_check_code_default_field_name():
    assert _raises(check_code, "").metadata == {"field": "code"}


# --- free text ------------------------------------------------------------------------------------


def test_check_text_at_and_over_the_limit():
    assert check_text("x" * 10, "memo", 10) == "x" * 10
    assert check_text("", "memo", 0) == ""
    error = _raises(check_text, "x" * 11, "memo", 10)
    assert (error.reason, error.kind, error.metadata) == ("TEXT_TOO_LONG", ErrorKind.INVALID_ARGUMENT,
                                                          {"field": "memo"})


def test_check_text_counts_characters_not_bytes():
    assert check_text("é" * 10, "memo", 10) == "é" * 10


# --- metadata -------------------------------------------------------------------------------------


def test_check_metadata_accepts_and_copies():
    source = {"k": "v", "order.id": "42", "A-b_c.9": ""}
    result = check_metadata(source)
    assert result == source
    assert result is not source
    source["k"] = "changed"
    assert result["k"] == "v"


def test_check_metadata_empty():
    assert check_metadata({}) == {}


def test_check_metadata_entries_at_the_limit():
    data = {f"k{i}": "v" for i in range(limits.METADATA_ENTRIES_MAX)}
    assert check_metadata(data) == data


def test_check_metadata_key_and_value_at_their_limits():
    key = "k" * limits.METADATA_KEY_LENGTH_MAX
    value = "v" * limits.METADATA_VALUE_LENGTH_MAX
    assert check_metadata({key: value}) == {key: value}


def _total_bytes_metadata(total: int) -> dict[str, str]:
    """Eight entries with 8-byte keys whose key+value bytes add up to `total` (needs 8*9 <= total <= 8*520)."""
    per_entry, extra = divmod(total, 8)
    data = {}
    for i in range(8):
        key = f"key{i:05d}"
        data[key] = "v" * (per_entry - len(key) + (1 if i < extra else 0))
    assert sum(len(k) + len(v) for k, v in data.items()) == total
    return data


def test_check_metadata_total_bytes_exactly_at_the_limit():
    data = _total_bytes_metadata(limits.METADATA_SIZE_BYTES_MAX)
    assert check_metadata(data) == data


def test_check_metadata_counts_utf8_bytes_not_characters():
    # 300 two-byte characters in each of 7 values: every value is within 512 characters, but the
    # encoded total is 7 * (2 + 600) = 4214 bytes.
    data = {f"k{i}": "é" * 300 for i in range(7)}
    error = _raises(check_metadata, data)
    assert error.reason == "METADATA_TOO_LARGE"


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({f"k{i}": "v" for i in range(limits.METADATA_ENTRIES_MAX + 1)}, "METADATA_TOO_LARGE"),
        ({"": "v"}, "METADATA_INVALID"),
        ({"k" * (limits.METADATA_KEY_LENGTH_MAX + 1): "v"}, "METADATA_INVALID"),
        ({"a b": "v"}, "METADATA_INVALID"),
        ({"a/b": "v"}, "METADATA_INVALID"),
        ({"a:b": "v"}, "METADATA_INVALID"),
        ({"clé": "v"}, "METADATA_INVALID"),
        ({"key\n": "v"}, "METADATA_INVALID"),
        ({"k": "v" * (limits.METADATA_VALUE_LENGTH_MAX + 1)}, "METADATA_TOO_LARGE"),
        (_total_bytes_metadata(limits.METADATA_SIZE_BYTES_MAX + 1), "METADATA_TOO_LARGE"),
    ],
    ids=["too-many-entries", "empty-key", "key-too-long", "key-space", "key-slash", "key-colon",
         "key-non-ascii", "key-trailing-newline", "value-too-long", "total-bytes-over"],
)
def test_check_metadata_rejects(metadata, reason):
    error = _raises(check_metadata, metadata)
    assert error.reason == reason
    assert error.kind is ErrorKind.INVALID_ARGUMENT


def test_check_metadata_malformed_key_is_named_truncated():
    key = "bad key " + "x" * 200
    error = _raises(check_metadata, {key: "v"})
    assert error.metadata == {"key": key[:80]}


@pytest.mark.parametrize("text", ["\x00", "before\x00after", "end\x00"], ids=["only", "middle", "end"])
def test_check_text_refuses_nul(text):
    with pytest.raises(LedgerError) as caught:
        check_text(text, "memo", 100)
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.INVALID_ARGUMENT, "TEXT_INVALID")
