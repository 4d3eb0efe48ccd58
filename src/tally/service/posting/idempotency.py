"""Request fingerprints: a retry with the same request_id must carry the same body."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import operator
from collections.abc import Callable

import orjson

from tally.domain.errors import ErrorKind, LedgerError

# Refusals that depend on the ledger's state, which may change: recorded as the request's final answer, so
# that a resend cannot succeed later. Bad input and ids the caller may not see would be refused the same
# way again, so they record nothing.
FINAL_REFUSALS = frozenset({ErrorKind.FAILED_PRECONDITION, ErrorKind.NOT_FOUND})

_SCALARS = frozenset({str, int, bool, type(None)})
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # made once, not on every call
# dataclass -> the function that makes its canonical dict, compiled once per class: every request walks its flow.
_COMPILED: dict[type, Callable[[object], dict]] = {}


def canonical(value: object) -> object:
    """A JSON-ready form of commands and flows: dataclasses as dicts, enums as values."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    compiled = _COMPILED.get(kind)
    if compiled is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        compiled = _COMPILED.setdefault(kind, _compile(kind))
    if compiled is not None:
        return compiled(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    return value


def _compile(kind: type) -> Callable[[object], dict]:
    """A dataclass's canonical dict in one C call for its field values; only values that are not scalars
    cost a call of `canonical` each."""
    names = tuple(f.name for f in dataclasses.fields(kind))
    if not names:
        return lambda _value: {}
    values = operator.attrgetter(*names)
    if len(names) == 1:
        name = names[0]
        return lambda value: {name: canonical(values(value))}
    return lambda value: {name: v if type(v) in _SCALARS else canonical(v)
                          for name, v in zip(names, values(value), strict=True)}


def canonical_json(body: dict) -> str:
    """The one text of a canonical body: sorted keys, no spaces, ASCII (fingerprints of stored records depend
    on it, byte for byte). orjson writes the same text ten times faster wherever it writes only printable
    ASCII (it writes other characters as they are, where this text escapes them); the rest goes the slow way."""
    try:
        text = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers past 64 bits
        return _CANONICAL_JSON.encode(body)
    # DEL (0x7f) is ASCII, but this text escapes it (as everything outside space..tilde) where orjson does not.
    return text.decode() if text.isascii() and b"\x7f" not in text else _CANONICAL_JSON.encode(body)


def fingerprint(operation: str, body: dict) -> str:
    return fingerprint_json(operation, canonical_json(body))


_OPERATIONS_JSON: dict[str, str] = {}  # operation -> its JSON string: a handful of operations, each request one
_OPERATIONS_JSON_MAX = 64


def fingerprint_json(operation: str, body_json: str) -> str:
    """The SHA-256 of {"body": body, "operation": operation} in canonical JSON, built around the body's
    canonical text so that the body is serialized once ("body" sorts before "operation")."""
    quoted = _OPERATIONS_JSON.get(operation)
    if quoted is None:
        quoted = json.dumps(operation)
        if len(_OPERATIONS_JSON) < _OPERATIONS_JSON_MAX:
            _OPERATIONS_JSON[operation] = quoted
    text = f'{{"body":{body_json},"operation":{quoted}}}'
    return hashlib.sha256(text.encode()).hexdigest()


def differing_fields(first: object, second: object, prefix: str = "") -> list[str]:
    """Dotted paths at which two canonical bodies differ."""
    if isinstance(first, dict) and isinstance(second, dict):
        paths = []
        for key in sorted(set(first) | set(second)):
            paths += differing_fields(first.get(key), second.get(key), f"{prefix}{key}.")
        return paths
    if isinstance(first, list) and isinstance(second, list) and len(first) == len(second):
        paths = []
        for i, (a, b) in enumerate(zip(first, second, strict=True)):
            paths += differing_fields(a, b, f"{prefix[:-1]}[{i}].")
        return paths
    return [] if first == second else [prefix[:-1] or "body"]


def reused_request_id(request_id: str, operation: str, stored_operation: str, stored_body: dict,
                      body: dict) -> LedgerError:
    fields = ["operation"] if operation != stored_operation else differing_fields(stored_body, body)
    return LedgerError(
        ErrorKind.ALREADY_EXISTS, "REQUEST_ID_REUSED",
        f"request_id {request_id!r} was already used with a different body (differs in: {', '.join(fields)})",
        request_id=request_id, fields=",".join(fields),
    )


def refusal_result(error: LedgerError) -> dict:
    """A refusal as an idempotency record's result."""
    return {"error": {"kind": error.kind.value, "reason": error.reason, "message": error.message,
                      "metadata": error.metadata}}


def refusal_from(data: dict) -> LedgerError:
    """The refusal a record's result holds, as it was first answered."""
    return LedgerError(ErrorKind(data["kind"]), data["reason"], data["message"], **data["metadata"])
