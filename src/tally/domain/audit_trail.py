"""The audit log's hash chain, per tenant: each row's hash covers the previous row's hash and the row's own
content, so an edited row no longer matches its hash, a removed row breaks the next row's link, and a row
removed from the end no longer matches the chain's head (audit_heads). Pure: the writer and the ledger
audit both call `audit_row_hash`."""

from __future__ import annotations

import hashlib
import json

GENESIS_HASH = "0" * 64
# The hashed fields, in this order. Changing it changes every hash: migration 0009 holds a frozen copy.
HASHED_FIELDS = ("tenant_id", "actor", "role", "action", "target", "outcome", "request_id", "peer", "time_us")
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def audit_row_hash(previous_hash: str, values: tuple) -> str:
    """`values` holds the row's HASHED_FIELDS in that order."""
    return hashlib.sha256((previous_hash + _JSON.encode(list(values))).encode()).hexdigest()
