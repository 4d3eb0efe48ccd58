"""A LedgerError as an HTTP answer: the status a browser understands, the reason the API would give."""

from __future__ import annotations

from tally.domain.errors import ErrorKind

HTTP_STATUS = {
    ErrorKind.INVALID_ARGUMENT: 400,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.PERMISSION_DENIED: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.FAILED_PRECONDITION: 409,
    ErrorKind.ALREADY_EXISTS: 409,
    ErrorKind.ABORTED: 503,
    ErrorKind.RESOURCE_EXHAUSTED: 503,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}


def http_status(kind: ErrorKind) -> int:
    return HTTP_STATUS.get(kind, 500)
