"""The one place domain errors become gRPC statuses: google.rpc.Status with an ErrorInfo detail."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from tally.domain.errors import ErrorKind, LedgerError
from tally.service.faults import unexpected

log = logging.getLogger(__name__)
ERROR_DOMAIN = "tally.v1"
# The error a call ended with, for the audit log (set in the call's own context).
last_error: ContextVar[LedgerError | None] = ContextVar("tally_last_error", default=None)

_CODES = {
    ErrorKind.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    ErrorKind.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    ErrorKind.NOT_FOUND: code_pb2.NOT_FOUND,
    ErrorKind.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    ErrorKind.ABORTED: code_pb2.ABORTED,
    ErrorKind.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    ErrorKind.UNAVAILABLE: code_pb2.UNAVAILABLE,
    ErrorKind.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    ErrorKind.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    ErrorKind.INTERNAL: code_pb2.INTERNAL,
}


def code_of(error: LedgerError) -> int:
    return _CODES[error.kind]


def grpc_code(error: LedgerError) -> grpc.StatusCode:
    return next(c for c in grpc.StatusCode if c.value[0] == _CODES[error.kind])


async def abort(context: grpc.aio.ServicerContext, error: LedgerError) -> None:
    """Ends the call with the error's status, leaving the error for the audit log to read."""
    last_error.set(error)
    await abort_status(context, to_status(error))


async def abort_status(context: grpc.aio.ServicerContext, status: grpc.Status) -> None:
    """What abort_with_status does, through `abort`: the tracing interceptor wraps `abort` only, so this is
    how a failed call's span gets its real status code."""
    await context.abort(status.code, status.details, status.trailing_metadata)


# Errors echo what the client sent (a code, an id, a type). The status travels in the trailers, which a
# client refuses beyond a few KiB (gRPC's default hard limit is 16 KiB, and it may drop anything over
# 8 KiB), so an echoed value is cut short: the status must always reach the client.
ERROR_MESSAGE_BYTES_MAX = 512
ERROR_METADATA_ENTRIES_MAX = 16
ERROR_METADATA_VALUE_BYTES_MAX = 256


def clip(text: str, bytes_max: int) -> str:
    """``text`` cut to at most ``bytes_max`` UTF-8 bytes (never inside a character), marked with '...'."""
    data = text.encode()
    if len(data) <= bytes_max:
        return text
    return data[:bytes_max - 3].decode(errors="ignore") + "..."


def to_status(error: LedgerError) -> grpc.Status:
    metadata = {clip(k, ERROR_METADATA_VALUE_BYTES_MAX): clip(v, ERROR_METADATA_VALUE_BYTES_MAX)
                for k, v in list(error.metadata.items())[:ERROR_METADATA_ENTRIES_MAX]}
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    message = clip(error.message, ERROR_MESSAGE_BYTES_MAX)
    return rpc_status.to_status(status_pb2.Status(code=_CODES[error.kind], message=message, details=[detail]))


R = TypeVar("R")


def rpc(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Wraps a servicer method: every failure leaves as a status with a stable reason."""

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except LedgerError as error:
            await abort(context, error)
        except Exception as exc:  # noqa: BLE001 - nothing may leave as UNKNOWN
            await abort(context, unexpected(exc))
        raise AssertionError("unreachable: abort_with_status raises")

    return wrapper
