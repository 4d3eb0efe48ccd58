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

from tally import logs
from tally.api.errors import abort_status, grpc_code, last_error, to_status
from tally.api.tenancy import current_principal
from tally.domain.auth import METHOD_PERMISSIONS, PUBLIC_PREFIXES, Permission, Principal
from tally.domain.errors import ErrorKind, LedgerError, invalid
from tally.service.auth.audit import AuditLog
from tally.service.auth.authn import Authenticator, claimed_actor
from tally.service.faults import unexpected
from tally.storage.auth_repo import AuditRow

TARGET_FIELDS = ("voucher_id", "hold_id", "account", "code", "original_request_id", "webhook_id",
                 "accounting_date", "item_id", "batch_id", "payout_id", "bank_account_id")
# How a read may end without having been refused; any other error code of a read is audited.
NOT_REFUSALS = frozenset({grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED,
                          grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.UNKNOWN})
log = logging.getLogger(__name__)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator, audit: AuditLog, clock: Callable[[], int]) -> None:
        self.authenticator, self.audit, self.clock = authenticator, audit, clock

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None or details.method.startswith(PUBLIC_PREFIXES):
            return handler
        method = details.method
        # The body arrives as bytes and is decoded only once the caller is admitted.
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary, handler.request_deserializer), None,
                handler.response_serializer)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream, handler.request_deserializer), None,
                handler.response_serializer)
        # A client-streaming RPC would need its own admission: until one is written, it is refused.
        return grpc.stream_stream_rpc_method_handler(_refuse_unadmitted) if handler.stream_stream else \
            grpc.stream_unary_rpc_method_handler(_refuse_unadmitted)

    def _unary(self, method: str, inner, deserialize):
        async def call(body: bytes, context: grpc.aio.ServicerContext):
            principal, request = await self._admit(method, body, deserialize, context)
            token = current_principal.set(principal)
            context_token = logs.rpc_context.set((principal.tenant_id, _request_id(request)))
            try:
                response = await inner(request, context)
            except BaseException:
                await self._after(method, request, context, principal, None)
                raise
            finally:
                log.debug("%s served", method)  # TALLY_LOG_LEVEL=DEBUG: a line per call, with tenant and request id
                current_principal.reset(token)
                logs.rpc_context.reset(context_token)
            await self._after(method, request, context, principal, response)
            return response

        return call

    def _stream(self, method: str, inner, deserialize):
        async def call(body: bytes, context: grpc.aio.ServicerContext):
            principal, request = await self._admit(method, body, deserialize, context)
            current_principal.set(principal)  # the stream's own task: nothing to restore afterwards
            logs.rpc_context.set((principal.tenant_id, ""))
            try:
                async for response in inner(request, context):
                    yield response
            except BaseException:
                await self._after(method, request, context, principal, None)
                raise

        return call

    async def _admit(self, method: str, body: bytes, deserialize, context: grpc.aio.ServicerContext):
        """The caller's principal and the decoded request, or the call ends here, audited: UNAUTHENTICATED
        (the body of an unknown caller is never read), PERMISSION_DENIED, or INVALID_ARGUMENT BODY_MALFORMED."""
        authorization = _header(context, "authorization")
        principal = self.authenticator.cached(authorization)
        try:
            if principal is None:
                principal = await asyncio.to_thread(self.authenticator.authenticate, authorization)
        except LedgerError as error:
            await self._refuse(method, None, context, None, error, claimed_actor(authorization))
        except Exception as exc:  # noqa: BLE001 - a failure to check is a refusal, never a pass or an UNKNOWN
            await self._refuse(method, None, context, None, unexpected(exc, "retry"), claimed_actor(authorization))
        permission = METHOD_PERMISSIONS.get(method)
        try:
            if permission is None:
                raise LedgerError(ErrorKind.PERMISSION_DENIED, "METHOD_NOT_ALLOWED", "this method is not available")
            principal.require(permission)
        except LedgerError as error:
            await self._refuse(method, _decoded_or_none(deserialize, body), context, principal, error)
        return principal, await self._decoded(method, body, deserialize, context, principal)

    async def _decoded(self, method: str, body: bytes, deserialize, context, principal: Principal):
        try:
            return deserialize(body)
        except Exception as exc:  # noqa: BLE001 - whatever the decoder raises, the body is not a request
            log.info("%s from %s (%s): the body (%d bytes) is not a valid request: %s", method, principal.actor,
                     context.peer(), len(body), exc)
        error = invalid("BODY_MALFORMED", "the request body is not a valid protobuf message of this RPC")
        await self._record(method, None, context, principal, f"error:INVALID_ARGUMENT:{error.reason}")
        await abort_status(context, to_status(error))

    async def _refuse(self, method: str, request, context, principal: Principal | None, error: LedgerError,
                      actor: str = ""):
        await self._record(method, request, context, principal, f"denied:{error.reason}", actor)
        await abort_status(context, to_status(error))

    async def _after(self, method: str, request, context, principal: Principal, response) -> None:
        """Audits a call that may have changed something, and every refusal (of a read, too)."""
        error = last_error.get()
        if response is None:
            code = context.code() or (grpc_code(error) if error else grpc.StatusCode.UNKNOWN)
            if METHOD_PERMISSIONS.get(method) is Permission.READ and code in NOT_REFUSALS:
                return  # a read that ended without being refused: cancelled, timed out, cut short by an outage
            reason = error.reason if error else ""
            await self._record(method, request, context, principal, f"error:{code.name}:{reason}")
        elif METHOD_PERMISSIONS.get(method) is not Permission.READ:
            await self._record(method, request, context, principal, "ok" + _refused_items(response))

    async def _record(self, method: str, request, context, principal: Principal | None, outcome: str,
                      actor: str = "") -> None:
        await self.audit.record(AuditRow(
            tenant_id=principal.tenant_id if principal else "", actor=principal.actor if principal else actor,
            role=principal.role.value if principal else "", action=method.rsplit("/", 1)[-1],
            target=_target(request) if request is not None else "", outcome=outcome,
            request_id=_request_id(request), peer=context.peer() or "", time_us=self.clock()))


def _decoded_or_none(deserialize, body: bytes):
    """The request, for the audit row of a refused but authenticated caller; None if it cannot be read."""
    try:
        return deserialize(body)
    except Exception:  # noqa: BLE001 - the call is refused anyway
        return None


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
    return getattr(request, "request_id", "") if request is not None else ""


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
