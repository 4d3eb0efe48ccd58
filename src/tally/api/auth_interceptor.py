"""Authentication, authorization and audit for every RPC, before any handler reads the request.

Each call's credential is verified and its role checked against the RPC's permission (an RPC without a
permission is refused: the map must be extended deliberately). Refused calls and every call that may
change something are written to the audit log with actor, tenant, role, action, target and outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from tally.api.errors import grpc_code, last_error, to_status
from tally.api.tenancy import current_principal
from tally.domain.auth import METHOD_PERMISSIONS, PUBLIC_PREFIXES, Permission, Principal
from tally.domain.errors import ErrorKind, LedgerError
from tally.service.audit import AuditLog
from tally.service.authn import Authenticator
from tally.storage.auth_repo import AuditRow

TARGET_FIELDS = ("voucher_id", "hold_id", "account", "code", "original_request_id")
REFUSALS = frozenset({grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED})
log = logging.getLogger(__name__)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator, audit: AuditLog, clock: Callable[[], int]) -> None:
        self.authenticator, self.audit, self.clock = authenticator, audit, clock

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None or details.method.startswith(PUBLIC_PREFIXES):
            return handler
        method = details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary), handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream), handler.request_deserializer,
                handler.response_serializer)
        # A client-streaming RPC would need its own admission: until one is written, it is refused.
        return grpc.stream_stream_rpc_method_handler(_refuse_unadmitted) if handler.stream_stream else \
            grpc.stream_unary_rpc_method_handler(_refuse_unadmitted)

    def _unary(self, method: str, inner):
        async def call(request, context: grpc.aio.ServicerContext):
            principal = await self._admit(method, request, context)
            token = current_principal.set(principal)
            try:
                response = await inner(request, context)
            except BaseException:
                await self._after(method, request, context, principal, None)
                raise
            finally:
                current_principal.reset(token)
            await self._after(method, request, context, principal, response)
            return response

        return call

    def _stream(self, method: str, inner):
        async def call(request, context: grpc.aio.ServicerContext):
            principal = await self._admit(method, request, context)
            current_principal.set(principal)  # the stream's own task: nothing to restore afterwards
            try:
                async for response in inner(request, context):
                    yield response
            except BaseException:
                await self._after(method, request, context, principal, None)
                raise

        return call

    async def _admit(self, method: str, request, context: grpc.aio.ServicerContext) -> Principal:
        """The caller's principal, or the call ends here (UNAUTHENTICATED / PERMISSION_DENIED), audited."""
        authorization = _header(context, "authorization")
        principal = self.authenticator.cached(authorization)
        try:
            if principal is None:
                principal = await asyncio.to_thread(self.authenticator.authenticate, authorization)
            permission = METHOD_PERMISSIONS.get(method)
            if permission is None:
                raise LedgerError(ErrorKind.PERMISSION_DENIED, "METHOD_NOT_ALLOWED", "this method is not available")
            principal.require(permission)
        except LedgerError as error:
            await self._refuse(method, request, context, principal, error)
        except Exception:  # noqa: BLE001 - a failure to check is a refusal, never a pass or an UNKNOWN
            log.exception("authenticating %s failed", method)
            await self._refuse(method, request, context, principal, LedgerError(
                ErrorKind.UNAVAILABLE, "AUTHENTICATION_UNAVAILABLE", "credentials could not be checked; retry"))
        return principal

    async def _refuse(self, method: str, request, context, principal: Principal | None, error: LedgerError):
        await self._record(method, request, context, principal, f"denied:{error.reason}")
        await context.abort_with_status(to_status(error))

    async def _after(self, method: str, request, context, principal: Principal, response) -> None:
        """Audits a call that may have changed something, and every refusal (of a read, too)."""
        error = last_error.get()
        if response is None:
            code = context.code() or (grpc_code(error) if error else grpc.StatusCode.UNKNOWN)
            if METHOD_PERMISSIONS.get(method) is Permission.READ and code not in REFUSALS:
                return  # reads are audited only when refused
            reason = error.reason if error else ""
            await self._record(method, request, context, principal, f"error:{code.name}:{reason}")
        elif METHOD_PERMISSIONS.get(method) is not Permission.READ:
            await self._record(method, request, context, principal, "ok" + _refused_items(response))

    async def _record(self, method: str, request, context, principal: Principal | None, outcome: str) -> None:
        await self.audit.record(AuditRow(
            tenant_id=principal.tenant_id if principal else "", actor=principal.actor if principal else "",
            role=principal.role.value if principal else "", action=_storable(method.rsplit("/", 1)[-1], 96),
            target=_storable(_target(request), 256), outcome=_storable(outcome, 96),
            request_id=_storable(_request_id(request), 128), peer=_storable(context.peer() or "", 128),
            time_us=self.clock()))


def _storable(text: str, length_max: int) -> str:
    """What the caller sent, as the audit log can hold it: cut to the column, NUL (which PostgreSQL refuses,
    and which would stop the audit writer on that row for good) shown as U+FFFD."""
    return text[:length_max].replace("\x00", "\ufffd")


async def _refuse_unadmitted(request_iterator, context: grpc.aio.ServicerContext):
    await context.abort_with_status(to_status(LedgerError(
        ErrorKind.PERMISSION_DENIED, "METHOD_NOT_ALLOWED", "this method is not available")))


def _refused_items(response) -> str:
    """For a batch answered OK: how many of its items were refused, and why (each reason once)."""
    results = getattr(response, "results", None)
    if results is None:
        return ""
    reasons = sorted({r.error.reason for r in results if r.WhichOneof("result") == "error"})
    refused = sum(1 for r in results if r.WhichOneof("result") == "error")
    return f":items_refused={refused}:{','.join(reasons)}" if refused else ""


def _header(context: grpc.aio.ServicerContext, name: str) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return value
    return None


def _request_id(request) -> str:
    return getattr(request, "request_id", "")


def _target(request) -> str:
    """What the call acts on, as the request names it."""
    for name in TARGET_FIELDS:
        if name in request.DESCRIPTOR.fields_by_name:
            value = getattr(request, name)
            if name == "account":
                value = value.id or (f"code:{value.code}" if value.code else "")
            if value:
                return f"{name}:{value}" if name != "account" else f"account:{value}"
    if "requests" in request.DESCRIPTOR.fields_by_name:
        return f"batch:{len(request.requests)}"
    flow = request.WhichOneof("flow") if "flow" in request.DESCRIPTOR.oneofs_by_name else None
    return f"flow:{flow}" if flow else ""
