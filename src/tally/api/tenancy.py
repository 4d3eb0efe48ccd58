"""Who a call acts for: the principal the auth interceptor proved, kept for the duration of the call.
The tenant comes from the credential only, never from anything else the request says."""

from __future__ import annotations

from contextvars import ContextVar

import grpc

from tally.domain.auth import Principal
from tally.domain.errors import ErrorKind, LedgerError

current_principal: ContextVar[Principal | None] = ContextVar("tally_principal", default=None)


def principal_of(context: grpc.aio.ServicerContext | None = None) -> Principal:
    principal = current_principal.get()
    if principal is None:
        raise LedgerError(ErrorKind.UNAUTHENTICATED, "CREDENTIALS_MISSING", "the call carries no credentials")
    return principal


def tenant_of(context: grpc.aio.ServicerContext | None = None) -> str:
    return principal_of(context).tenant_id
