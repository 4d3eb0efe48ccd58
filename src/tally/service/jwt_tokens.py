"""Signed JWTs (RFC 7519) from a configured issuer, verified with the standard library.

The accepted algorithms come from configuration, never from the token: a header naming any other
algorithm (`none` included) is refused before the signature is looked at. Issuer, audience and expiry
are required and checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from decimal import Decimal

from tally.domain.auth import Principal, Role
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.fields import check_tenant

HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
TOKEN_LENGTH_MAX = 8192
LEEWAY_S = 30  # clock skew tolerated on exp and nbf


@dataclass(frozen=True)
class JwtConfig:
    secret: bytes
    algorithms: frozenset[str]
    issuer: str
    audience: str
    tenant_claim: str = "tenant_id"
    role_claim: str = "role"

    def __post_init__(self) -> None:
        unknown = self.algorithms - HASHES.keys()
        if unknown or not self.algorithms:
            raise ValueError(f"JWT algorithms must be among {', '.join(sorted(HASHES))}")
        if len(self.secret) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes")
        if not self.issuer or not self.audience:
            raise ValueError("JWT issuer and audience are required")


def _refuse(reason: str, message: str) -> LedgerError:
    return LedgerError(ErrorKind.UNAUTHENTICATED, reason, message)


def _b64(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (ValueError, TypeError):
        raise _refuse("TOKEN_INVALID", "the token is not base64url") from None


def verify_jwt(token: str, config: JwtConfig, now_s: int) -> Principal:
    if len(token) > TOKEN_LENGTH_MAX or token.count(".") != 2:
        raise _refuse("TOKEN_INVALID", "the token is not a signed JWT")
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = _json(_b64(header_b64))
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in config.algorithms:
        raise _refuse("TOKEN_ALGORITHM_NOT_ALLOWED", f"algorithm {str(algorithm)[:16]!r} is not accepted")
    expected = hmac.new(config.secret, f"{header_b64}.{payload_b64}".encode(), HASHES[algorithm]).digest()
    if not hmac.compare_digest(expected, _b64(signature_b64)):
        raise _refuse("TOKEN_SIGNATURE_INVALID", "the token's signature does not verify")
    claims = _json(_b64(payload_b64))
    _check_claims(claims, config, now_s)
    return _principal(claims, config)


def _json(raw: bytes) -> dict:
    try:
        value = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise _refuse("TOKEN_INVALID", "the token is not JSON") from None
    if not isinstance(value, dict):
        raise _refuse("TOKEN_INVALID", "the token's parts must be JSON objects")
    return value


def _check_claims(claims: dict, config: JwtConfig, now_s: int) -> None:
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | Decimal) or isinstance(exp, bool):
        raise _refuse("TOKEN_INVALID", "the token has no expiry (exp)")
    if now_s > exp + LEEWAY_S:
        raise _refuse("TOKEN_EXPIRED", "the token has expired")
    if isinstance(nbf, int | Decimal) and not isinstance(nbf, bool) and now_s + LEEWAY_S < nbf:
        raise _refuse("TOKEN_NOT_YET_VALID", "the token is not valid yet (nbf)")
    if claims.get("iss") != config.issuer:
        raise _refuse("TOKEN_ISSUER_INVALID", "the token comes from another issuer")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if config.audience not in audiences:
        raise _refuse("TOKEN_AUDIENCE_INVALID", "the token is meant for another audience")


def _principal(claims: dict, config: JwtConfig) -> Principal:
    tenant, role, subject = claims.get(config.tenant_claim), claims.get(config.role_claim), claims.get("sub")
    if not isinstance(tenant, str) or not isinstance(subject, str) or not subject:
        raise _refuse("TOKEN_INVALID", f"the token needs string claims {config.tenant_claim} and sub")
    try:
        check_tenant(tenant)
        return Principal(tenant, f"jwt:{subject[:100]}", Role(role), "jwt")
    except (ValueError, LedgerError):
        raise _refuse("TOKEN_INVALID", "the token's tenant or role is not valid") from None
