"""Authentication: the principal an `authorization: Bearer ...` header proves.

Verified credentials are cached for `cache_ttl_s`, so a busy client costs one hash and one dictionary
look-up per call; a revoked key stops working within that time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from tally.domain.auth import Principal
from tally.domain.errors import ErrorKind, LedgerError
from tally.service.auth.jwt_tokens import JwtConfig, verify_jwt
from tally.service.auth.keys import KEY_PREFIX, key_id_of, verify_key
from tally.storage import auth_repo
from tally.storage.uow import Scope, UnitOfWork


def _refuse(reason: str, message: str) -> LedgerError:
    return LedgerError(ErrorKind.UNAUTHENTICATED, reason, message)


class Authenticator:
    def __init__(self, uow: UnitOfWork, jwt: JwtConfig | None, *, cache_ttl_s: float = 5.0,
                 cache_size_max: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.uow, self.jwt, self.clock = uow, jwt, clock
        self.cache_ttl_s, self.cache_size_max = cache_ttl_s, cache_size_max
        self._cache: dict[str, tuple[Principal, float]] = {}

    def cached(self, authorization: str | None) -> Principal | None:
        """The principal, when this header was verified less than cache_ttl_s ago."""
        if not authorization:
            return None
        hit = self._cache.get(_digest(authorization))
        return hit[0] if hit is not None and hit[1] > self.clock() else None

    def authenticate(self, authorization: str | None) -> Principal:
        """Verifies the header (reading the database for API keys and tenants); raises UNAUTHENTICATED."""
        token = _bearer(authorization)
        if token.startswith(KEY_PREFIX):
            principal = self.uow.read(Scope.SYSTEM, lambda conn: verify_key(conn, token))  # the key names the tenant
        elif self.jwt is not None and token.count(".") == 2:
            principal = verify_jwt(token, self.jwt, int(time.time()))
            if not self.uow.read({principal.tenant_id},
                                 lambda conn: auth_repo.tenant_exists(conn, principal.tenant_id)):
                raise _refuse("TOKEN_INVALID", "the token names an unknown tenant")
        else:
            raise _refuse("CREDENTIALS_INVALID", "the credentials are not an API key or an accepted token")
        self._remember(authorization, principal)
        return principal

    def _remember(self, authorization: str, principal: Principal) -> None:
        if len(self._cache) >= self.cache_size_max:
            now = self.clock()
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            if len(self._cache) >= self.cache_size_max:
                self._cache.clear()
        self._cache[_digest(authorization)] = (principal, self.clock() + self.cache_ttl_s)


def claimed_actor(authorization: str | None) -> str:
    """The actor a refused credential claims to be, for the audit log: `key:<id>` for a well-formed API key
    (the key id is no secret), else nothing (an unverified token's claims are not trusted even there)."""
    try:
        key_id = key_id_of(_bearer(authorization))
    except LedgerError:
        return ""
    return f"key:{key_id}" if key_id else ""


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise _refuse("CREDENTIALS_MISSING", "send `authorization: Bearer <API key or token>`")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _refuse("CREDENTIALS_MALFORMED", "the authorization header must read `Bearer <credential>`")
    return token.strip()


def _digest(authorization: str) -> str:
    return hashlib.sha256(authorization.encode()).hexdigest()
