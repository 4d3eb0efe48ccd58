"""Signed JWTs (RFC 7519) from a configured issuer, verified with PyJWT.

The accepted algorithms and keys come from configuration, never from the token: a header naming any
other algorithm (`none` included) is refused before the signature is looked at, HMAC tokens verify with
the configured secret only, and RSA, EC and EdDSA tokens with the configured public keys only (a `kid`
picks among those). PyJWT checks the signature, issuer and audience; the times are checked here, with
exact NumericDates (a string or a boolean is no date) and a bound on how far ahead `exp` may lie.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.utils import base64url_decode, base64url_encode

from tally.domain.auth import Principal, Role
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.fields import check_tenant

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}  # curve -> its algorithm
ALGORITHMS = HMAC_ALGORITHMS | RSA_ALGORITHMS | frozenset(EC_ALGORITHMS.values()) | {"EdDSA"}
TOKEN_LENGTH_MAX = 8192
LEEWAY_S = 30  # clock skew tolerated on exp and nbf
LIFETIME_MAX_S = 86_400  # default bound on how far ahead of now a token's exp may lie
SECRET_LENGTH_MIN = 32
SUBJECT_LENGTH_MAX = 124  # the actor, "jwt:" + sub, fits the 128 characters of every actor column
_CONTROL = frozenset({"Cc", "Cf", "Cs"})  # control, format (invisible) and surrogate characters


@dataclass(frozen=True)
class PublicKey:
    """A verification key from a PEM or JWKS file; `kid` is the JWKS key id ("" from a PEM file)."""

    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
    kid: str = ""
    algorithm: str = ""  # the one algorithm a JWKS entry names with "alg"; "" when it names none

    def verifies(self, algorithm: str) -> bool:
        if self.algorithm and self.algorithm != algorithm:
            return False
        if isinstance(self.key, rsa.RSAPublicKey):
            return algorithm in RSA_ALGORITHMS
        if isinstance(self.key, ec.EllipticCurvePublicKey):
            return EC_ALGORITHMS.get(self.key.curve.name) == algorithm
        return algorithm == "EdDSA"


@dataclass(frozen=True)
class JwtConfig:
    secret: bytes
    algorithms: frozenset[str]
    issuer: str
    audience: str
    tenant_claim: str = "tenant_id"
    role_claim: str = "role"
    public_keys: tuple[PublicKey, ...] = ()
    lifetime_max_s: int = LIFETIME_MAX_S

    def __post_init__(self) -> None:
        if not self.algorithms or self.algorithms - ALGORITHMS:
            raise ValueError(f"JWT algorithms must be among {', '.join(sorted(ALGORITHMS))}")
        for algorithm in sorted(self.algorithms - HMAC_ALGORITHMS):
            if not any(k.verifies(algorithm) for k in self.public_keys):
                raise ValueError(f"{algorithm} needs a public key of its kind (a PEM or JWKS file); with a secret "
                                 f"alone, JWT algorithms must be among {', '.join(sorted(HMAC_ALGORITHMS))}")
        if (self.secret or self.algorithms & HMAC_ALGORITHMS) and len(self.secret) < SECRET_LENGTH_MIN:
            raise ValueError(f"the JWT secret must be at least {SECRET_LENGTH_MIN} bytes")
        if self.secret and not self.algorithms & HMAC_ALGORITHMS:
            raise ValueError("a JWT secret is set but no HMAC algorithm (HS256, HS384, HS512) is accepted")
        if not self.issuer or not self.audience:
            raise ValueError("JWT issuer and audience are required")
        if self.lifetime_max_s <= 0:
            raise ValueError("the JWT lifetime bound must be positive")


def _refuse(reason: str, message: str, **metadata: object) -> LedgerError:
    return LedgerError(ErrorKind.UNAUTHENTICATED, reason, message, **metadata)


def verify_jwt(token: str, config: JwtConfig, now_s: int) -> Principal:
    if len(token) > TOKEN_LENGTH_MAX or token.count(".") != 2:
        raise _refuse("TOKEN_INVALID", "the token is not a signed JWT")
    header_b64, _, signature_b64 = token.split(".")
    header = _header(header_b64)
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in config.algorithms:
        raise _refuse("TOKEN_ALGORITHM_NOT_ALLOWED", f"algorithm {str(algorithm)[:16]!r} is not accepted")
    if _b64(signature_b64) is None:  # cannot verify: refused as a bad signature, like any other
        raise _refuse("TOKEN_SIGNATURE_INVALID", "the token's signature does not verify")
    claims = _decoded(token, algorithm, _keys(algorithm, header.get("kid"), config), config)
    _check_times(claims, config, now_s)
    return _principal(claims, config)


def _b64(segment: str) -> bytes | None:
    """A base64url segment's bytes, or None unless it is the canonical unpadded encoding of them."""
    try:
        data = base64url_decode(segment)
        return data if base64url_encode(data).decode() == segment else None
    except (ValueError, TypeError):
        return None


def _header(segment: str) -> dict:
    """The JOSE header, to choose the configured algorithm and key (PyJWT reads it again, to verify)."""
    raw = _b64(segment)
    try:
        header = json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise _refuse("TOKEN_INVALID", "the token's header is not a base64url JSON object")
    return header


def _keys(algorithm: str, kid: object, config: JwtConfig) -> list:
    """The configured keys that may verify a token of this algorithm (and this kid, when it names one)."""
    if algorithm in HMAC_ALGORITHMS:
        return [config.secret]
    keys = [k for k in config.public_keys if k.verifies(algorithm) and (kid is None or k.kid == kid)]
    if not keys:
        raise _refuse("TOKEN_KEY_UNKNOWN", "no configured key verifies this token (unknown kid)")
    return [k.key for k in keys]


_OPTIONS = {"require": ["exp", "iss", "aud", "sub"], "verify_exp": False, "verify_nbf": False,
            "verify_iat": False}
_CLAIM_REASONS = {"iss": "TOKEN_ISSUER_INVALID", "aud": "TOKEN_AUDIENCE_INVALID"}


def _decoded(token: str, algorithm: str, keys: list, config: JwtConfig) -> dict:
    """The claims, once a key verified the signature and PyJWT checked issuer and audience."""
    for key in keys:
        try:
            return jwt.decode(token, key, algorithms=[algorithm], issuer=config.issuer, audience=config.audience,
                              options=_OPTIONS)
        except jwt.InvalidSignatureError:
            continue
        except jwt.MissingRequiredClaimError as exc:
            raise _refuse(_CLAIM_REASONS.get(exc.claim, "TOKEN_INVALID"), f"the token has no {exc.claim}") from None
        except jwt.InvalidIssuerError:
            raise _refuse("TOKEN_ISSUER_INVALID", "the token comes from another issuer") from None
        except jwt.InvalidAudienceError:
            raise _refuse("TOKEN_AUDIENCE_INVALID", "the token is meant for another audience") from None
        except jwt.InvalidAlgorithmError:
            raise _refuse("TOKEN_ALGORITHM_NOT_ALLOWED", "the token's algorithm is not accepted") from None
        except (jwt.PyJWTError, RecursionError):
            raise _refuse("TOKEN_INVALID", "the token is malformed") from None
    raise _refuse("TOKEN_SIGNATURE_INVALID", "the token's signature does not verify")


def _numeric_date(value: object, claim: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _refuse("TOKEN_INVALID", f"the token's {claim} is not a NumericDate")
    return value


def _check_times(claims: dict, config: JwtConfig, now_s: int) -> None:
    exp = _numeric_date(claims.get("exp"), "exp")
    if now_s > exp + LEEWAY_S:
        raise _refuse("TOKEN_EXPIRED", "the token has expired")
    if "nbf" in claims and now_s + LEEWAY_S < _numeric_date(claims["nbf"], "nbf"):
        raise _refuse("TOKEN_NOT_YET_VALID", "the token is not valid yet (nbf)")
    if exp > now_s + config.lifetime_max_s + LEEWAY_S:
        raise _refuse("TOKEN_LIFETIME_TOO_LONG", f"the token expires more than {config.lifetime_max_s} s from now",
                      lifetime_max_s=config.lifetime_max_s)


def _principal(claims: dict, config: JwtConfig) -> Principal:
    tenant, role, subject = claims.get(config.tenant_claim), claims.get(config.role_claim), claims.get("sub")
    if not isinstance(tenant, str) or not isinstance(subject, str) or not subject:
        raise _refuse("TOKEN_INVALID", f"the token needs string claims {config.tenant_claim} and sub")
    _check_subject(subject)
    try:
        check_tenant(tenant)
        return Principal(tenant, f"jwt:{subject}", Role(role), "jwt")
    except (ValueError, LedgerError):
        raise _refuse("TOKEN_INVALID", "the token's tenant or role is not valid") from None


def _check_subject(subject: str) -> None:
    """The subject names the actor on every voucher, hold and audit row: it must be storable as it is."""
    if len(subject) > SUBJECT_LENGTH_MAX:
        raise _refuse("TOKEN_CLAIM_INVALID", f"the token's sub is longer than {SUBJECT_LENGTH_MAX} characters",
                      claim="sub")
    if any(unicodedata.category(ch) in _CONTROL for ch in subject):
        raise _refuse("TOKEN_CLAIM_INVALID", "the token's sub holds control characters", claim="sub")
