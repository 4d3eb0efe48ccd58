"""Validation of the plain text fields every command carries: tenant, request id, codes, memo, metadata."""

from __future__ import annotations

import re
from collections.abc import Mapping

from tally.domain import limits
from tally.domain.errors import ErrorKind, LedgerError, invalid

_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_REQUEST_ID = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_tenant(tenant_id: str) -> str:
    if not tenant_id:
        raise LedgerError(ErrorKind.UNAUTHENTICATED, "TENANT_MISSING", "no tenant given (x-tenant-id)")
    if len(tenant_id) > limits.TENANT_ID_LENGTH_MAX or not _TENANT.fullmatch(tenant_id):
        raise LedgerError(ErrorKind.UNAUTHENTICATED, "TENANT_INVALID", "tenant id is malformed")
    return tenant_id


def check_request_id(request_id: str) -> str:
    if not request_id:
        raise invalid("REQUEST_ID_MISSING", "request_id is required on every mutating request")
    if len(request_id) > limits.REQUEST_ID_LENGTH_MAX or not _REQUEST_ID.fullmatch(request_id):
        raise invalid(
            "REQUEST_ID_INVALID",
            f"request_id must be 1..{limits.REQUEST_ID_LENGTH_MAX} printable ASCII characters",
        )
    return request_id


def check_code(code: str, field: str = "code") -> str:
    if not code or len(code) > limits.ACCOUNT_CODE_LENGTH_MAX or not _CODE.fullmatch(code):
        raise invalid(
            "ACCOUNT_CODE_INVALID",
            f"{field} must be 1..{limits.ACCOUNT_CODE_LENGTH_MAX} characters of letters, digits and _.:/@-",
            field=field,
        )
    return code


def check_text(value: str, field: str, length_max: int) -> str:
    if len(value) > length_max:
        raise invalid("TEXT_TOO_LONG", f"{field} is longer than {length_max} characters", field=field)
    if "\x00" in value:  # PostgreSQL text cannot hold NUL; refuse it on every backend alike
        raise invalid("TEXT_INVALID", f"{field} contains a NUL character", field=field)
    return value


# Keys the server writes on vouchers beside the caller's metadata: the rule's voucher name, an adjustment's
# reason, the hold a capture spends, the original of a refund. They are the server's alone: a caller may not
# set them, and they do not count against the caller's limits.
SERVER_METADATA_KEYS = frozenset({"rule_voucher", "reason", "hold_id", "refund_of", "reverses",
                                  "policy", "controls_checked", "sweep",  # spending controls
                                  "fx_rate"})


def check_caller_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """A caller's metadata for vouchers: within the limits, and none of the server's keys."""
    if not metadata:  # most requests; a flow's checks and its command's both ask
        return {}
    reserved = sorted(SERVER_METADATA_KEYS & metadata.keys())
    if reserved:
        raise invalid("METADATA_KEY_RESERVED", f"metadata key {reserved[0]!r} is reserved for the server; "
                      f"reserved: {', '.join(sorted(SERVER_METADATA_KEYS))}", key=reserved[0])
    return check_metadata(metadata)


def check_voucher_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """A voucher's metadata: the caller's part within the caller's limits, the server's keys beside it."""
    if not metadata:  # most vouchers: every voucher is checked twice
        return {}
    check_metadata({k: v for k, v in metadata.items() if k not in SERVER_METADATA_KEYS})
    for key in SERVER_METADATA_KEYS & metadata.keys():
        if len(metadata[key]) > limits.METADATA_VALUE_LENGTH_MAX:
            raise invalid("METADATA_TOO_LARGE", f"metadata value of {key!r} is too long", key=key)
        check_text(metadata[key], key, limits.METADATA_VALUE_LENGTH_MAX)
    return dict(metadata)


def check_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    if len(metadata) > limits.METADATA_ENTRIES_MAX:
        raise invalid("METADATA_TOO_LARGE", f"metadata has more than {limits.METADATA_ENTRIES_MAX} entries")
    size = 0
    for key, value in metadata.items():
        if not key or len(key) > limits.METADATA_KEY_LENGTH_MAX or not _METADATA_KEY.fullmatch(key):
            raise invalid("METADATA_INVALID", f"metadata key {key[:80]!r} is malformed", key=key[:80])
        if len(value) > limits.METADATA_VALUE_LENGTH_MAX:
            raise invalid("METADATA_TOO_LARGE", f"metadata value of {key!r} is too long", key=key)
        size += len(key.encode()) + len(value.encode())
    if size > limits.METADATA_SIZE_BYTES_MAX:
        raise invalid("METADATA_TOO_LARGE", f"metadata exceeds {limits.METADATA_SIZE_BYTES_MAX} bytes")
    return dict(metadata)
