"""Who is asking: the same credentials, cache and role check as the gRPC API (service/auth and the RPC
permission map), read from an `Authorization: Bearer` header or the console's cookie.

The cookie holds the API key (or token) itself, HttpOnly and SameSite=Strict, so scripts cannot read it and
other sites cannot send it; the console only reads, so there is nothing for a forged request to change."""

from __future__ import annotations

import asyncio
import logging
from http.cookies import CookieError, SimpleCookie

from tally.domain.auth import METHOD_PERMISSIONS, Principal
from tally.domain.errors import ErrorKind, LedgerError
from tally.service.auth.authn import claimed_actor
from tally.service.container import Services
from tally.storage.auth_repo import AuditRow

COOKIE = "tally_console"
COOKIE_LIFETIME_S = 8 * 3600
CREDENTIAL_LENGTH_MAX = 4096
log = logging.getLogger(__name__)


def credential(headers) -> str | None:
    """The `Bearer ...` authorization the request carries: its header, else its cookie."""
    header = headers.get("Authorization")
    if header:
        return header
    try:
        jar = SimpleCookie(headers.get("Cookie", ""))
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return f"Bearer {morsel.value}" if morsel is not None and morsel.value else None


def authenticate(services: Services, authorization: str | None) -> Principal:
    """The principal, or UNAUTHENTICATED (the gRPC API's reasons)."""
    if authorization is not None and len(authorization) > CREDENTIAL_LENGTH_MAX:
        raise LedgerError(ErrorKind.UNAUTHENTICATED, "CREDENTIALS_MALFORMED", "the credential is too long")
    cached = services.authenticator.cached(authorization)
    return cached if cached is not None else services.authenticator.authenticate(authorization)


def authorize(principal: Principal, method: str) -> None:
    """The role check of the RPC the view mirrors: a key that may not call it may not see the page."""
    permission = METHOD_PERMISSIONS.get(method)
    if permission is None:
        raise LedgerError(ErrorKind.PERMISSION_DENIED, "METHOD_NOT_ALLOWED", "this view is not available")
    principal.require(permission)


def login_cookie(value: str) -> str:
    return f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_LIFETIME_S}"


def logout_cookie() -> str:
    return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"


class RefusalLog:
    """Refused console requests go to the tenant's audit log as refused RPCs do, written by the server's
    audit writer on its event loop."""

    def __init__(self, services: Services, loop: asyncio.AbstractEventLoop) -> None:
        self.services, self.loop = services, loop

    def refused(self, method: str, principal: Principal | None, authorization: str | None, error: LedgerError,
                peer: str, target: str) -> None:
        row = AuditRow(tenant_id=principal.tenant_id if principal else "",
                       actor=principal.actor if principal else claimed_actor(authorization),
                       role=principal.role.value if principal else "", action=method.rsplit("/", 1)[-1],
                       target=target, outcome=f"denied:{error.reason}", request_id="",
                       peer=f"console:{peer}", time_us=self.services.clock())
        try:
            asyncio.run_coroutine_threadsafe(self.services.audit.record(row), self.loop)
        except RuntimeError:  # the loop has stopped: the server is going down
            log.info("console refusal not audited (server stopping): %s", row.outcome)
