"""Authentication, authorization and audit for every RPC, before any handler reads the request.

Each call's credential is verified and its role checked against the RPC's permission (an RPC without a
permission is refused: the map must be extended deliberately). Refused calls and every call that may
change something are written to the audit log with actor, tenant, role, action, target and outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from tally.api.errors import last_error, to_status
from tally.api.tenancy import current_principal
from tally.domain.auth import METHOD_PERMISSIONS, PUBLIC_PREFIXES, Permission, Principal
from tally.domain.errors import ErrorKind, LedgerError
from tally.service.audit import AuditLog
from tally.service.authn import Authenticator
from tally.storage.auth_repo import AuditRow

TARGET_FIELDS = ("voucher_id", "hold_id", "account", "code", "original_request_id")


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
        return handler  # no client-streaming RPCs exist; nothing to wrap

    def _unary(self, method: str, inner):
        async def call(request, context: grpc.aio.ServicerContext):
            principal = await self._admit(method, request, context)
            token = current_principal.set(principal)
            try:
                response = await inner(request, context)
            except BaseException:
                await self._after(method, request, context, principal, failed=True)
                raise
            finally:
                current_principal.reset(token)
            await self._after(method, request, context, principal, failed=False)
            return response

        return call

    def _stream(self, method: str, inner):
        async def call(request, context: grpc.aio.ServicerContext):
            principal = await self._admit(method, request, context)
            token = current_principal.set(principal)
            try:
                async for response in inner(request, context):
                    yield response
            finally:
                current_principal.reset(token)

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
            await self._record(method, request, context, principal, f"denied:{error.reason}")
            await context.abort_with_status(to_status(error))
        return principal

    async def _after(self, method: str, request, context, principal: Principal, *, failed: bool) -> None:
        if METHOD_PERMISSIONS.get(method) is Permission.READ:
            return  # reads are not audited, only refused reads
        error = last_error.get()
        outcome = "ok"
        if failed:
            code = context.code() if context.code() is not None else grpc.StatusCode.UNKNOWN
            outcome = f"error:{code.name}:{error.reason if error else ''}"
        await self._record(method, request, context, principal, outcome)

    async def _record(self, method: str, request, context, principal: Principal | None, outcome: str) -> None:
        await self.audit.record(AuditRow(
            tenant_id=principal.tenant_id if principal else "", actor=principal.actor if principal else "",
            role=principal.role.value if principal else "", action=method.rsplit("/", 1)[-1][:96],
            target=_target(request)[:256], outcome=outcome[:96], request_id=_request_id(request)[:128],
            peer=(context.peer() or "")[:128], time_us=self.clock()))


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
