"""Opaque page tokens (AIP-158): the position to resume after, bound to the query that made it."""

from __future__ import annotations

import base64
import hashlib
import json

from tally.domain import limits
from tally.domain.errors import invalid


def page_size(requested: int) -> int:
    if requested < 0:
        raise invalid("PAGE_SIZE_INVALID", "page_size must not be negative")
    return min(requested or limits.PAGE_SIZE_DEFAULT, limits.PAGE_SIZE_MAX)


def _query_key(query: dict) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]


def encode(position: object, query: dict) -> str:
    raw = json.dumps({"p": position, "q": _query_key(query)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, query: dict, default: object) -> object:
    if not token:
        return default
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position, key = data["p"], data["q"]
    except (ValueError, KeyError, TypeError):
        raise invalid("PAGE_TOKEN_INVALID", "page_token is malformed") from None
    if key != _query_key(query) or type(position) is not type(default):
        raise invalid("PAGE_TOKEN_INVALID", "page_token belongs to a different query")
    if isinstance(position, int) and not limits.BALANCE_MIN <= position <= limits.AMOUNT_MAX:
        # A token is opaque but not sealed: a forged position must fit the database's int64 columns.
        raise invalid("PAGE_TOKEN_INVALID", "page_token is malformed")
    return position
