"""verify_jwt: every refusal reason, the leeway on exp and nbf, audience lists, and the rule that the
token's header never chooses how it is verified (only configured HMAC algorithms, with the configured
secret). Tokens are minted here with the standard library; asymmetric tokens are in test_auth_jwt_keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from tally.domain.auth import Principal, Role
from tally.domain.errors import ErrorKind, LedgerError
from tally.service.auth.jwt_tokens import LEEWAY_S, SUBJECT_LENGTH_MAX, TOKEN_LENGTH_MAX, JwtConfig, verify_jwt

SECRET = b"unit-test-secret-0123456789abcdefghij"
OTHER = b"another-secret-0123456789abcdefghijklm"
ISSUER, AUDIENCE = "https://issuer.test", "tally"
NOW = 1_800_000_000
CONFIG = JwtConfig(SECRET, frozenset({"HS256"}), ISSUER, AUDIENCE)
HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def part(value) -> str:
    return b64(json.dumps(value).encode())


def sign(signing_input: str, algorithm: str = "HS256", secret: bytes = SECRET) -> str:
    return b64(hmac.new(secret, signing_input.encode(), HASHES[algorithm]).digest())


def token(claims: dict | None = None, *, alg="HS256", header: dict | None = None, secret: bytes = SECRET,
          sign_as: str | None = None) -> str:
    head = {"alg": alg, "typ": "JWT"} if header is None else header
    signing_input = f"{part(head)}.{part(good_claims() if claims is None else claims)}"
    algorithm = sign_as or alg
    return f"{signing_input}.{'' if algorithm == 'none' else sign(signing_input, algorithm, secret)}"


def good_claims(**changes) -> dict:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "billing", "tenant_id": "acme", "role": "poster",
              "iat": NOW, "exp": NOW + 300}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def refusal(raw: str, config: JwtConfig = CONFIG, now: int = NOW) -> str:
    with pytest.raises(LedgerError) as caught:
        verify_jwt(raw, config, now)
    assert caught.value.kind is ErrorKind.UNAUTHENTICATED
    return caught.value.reason


def test_a_valid_token_proves_its_tenant_subject_and_role() -> None:
    assert verify_jwt(token(), CONFIG, NOW) == Principal("acme", "jwt:billing", Role.POSTER, "jwt")
    for role in Role:
        assert verify_jwt(token(good_claims(role=role.value)), CONFIG, NOW).role is role


def test_the_actor_is_the_whole_subject_up_to_its_bound() -> None:
    principal = verify_jwt(token(good_claims(sub="s" * SUBJECT_LENGTH_MAX)), CONFIG, NOW)
    assert principal.actor == "jwt:" + "s" * SUBJECT_LENGTH_MAX
    assert len(principal.actor) == 128  # what every actor column holds


@pytest.mark.parametrize("sub", [
    "s" * (SUBJECT_LENGTH_MAX + 1), "s" * 500,  # longer than an actor column holds (it was cut short)
    "svc\x00", "\x00", "a\nb", "tab\there", "\x7f", "\x85next-line",  # control characters, C0, DEL and C1
    "bi\u202edi", "zero\u200bwidth",  # invisible format characters
    "lone\ud800surrogate",  # not encodable: PostgreSQL refuses it
])
def test_a_subject_that_could_not_be_stored_as_it_is_is_refused(sub: str) -> None:
    with pytest.raises(LedgerError) as caught:
        verify_jwt(token(good_claims(sub=sub)), CONFIG, NOW)
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.UNAUTHENTICATED, "TOKEN_CLAIM_INVALID")
    assert caught.value.metadata == {"claim": "sub"}


def test_a_subject_in_any_script_is_accepted() -> None:
    assert verify_jwt(token(good_claims(sub="Zoë-ünïcödé-名前")), CONFIG, NOW).actor == "jwt:Zoë-ünïcödé-名前"


@pytest.mark.parametrize(("exp", "reason"), [
    (NOW + 86_400 + LEEWAY_S + 1, "TOKEN_LIFETIME_TOO_LONG"),
    (1e300, "TOKEN_LIFETIME_TOO_LONG"),
    (10**30, "TOKEN_LIFETIME_TOO_LONG"),
    (float("inf"), "TOKEN_INVALID"),
    (float("nan"), "TOKEN_INVALID"),
])
def test_a_token_that_lives_too_long_is_refused(exp, reason: str) -> None:
    assert refusal(token(good_claims(exp=exp))) == reason


def test_the_lifetime_bound_is_configurable_and_inclusive() -> None:
    config = JwtConfig(SECRET, frozenset({"HS256"}), ISSUER, AUDIENCE, lifetime_max_s=600)
    assert verify_jwt(token(good_claims(exp=NOW + 600 + LEEWAY_S)), config, NOW).tenant_id == "acme"
    assert refusal(token(good_claims(exp=NOW + 601 + LEEWAY_S)), config) == "TOKEN_LIFETIME_TOO_LONG"
    assert verify_jwt(token(good_claims(exp=NOW + 86_400)), CONFIG, NOW).tenant_id == "acme"  # the default: a day


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "TOKEN_INVALID"),
    ("a.b", "TOKEN_INVALID"),
    ("a.b.c.d", "TOKEN_INVALID"),
    ("x" * (TOKEN_LENGTH_MAX + 1), "TOKEN_INVALID"),
    ("é.b.c", "TOKEN_INVALID"),  # not base64url
    (f"{b64(b'not json')}.{part({})}.", "TOKEN_INVALID"),
    (f"{part(['HS256'])}.{part({})}.", "TOKEN_INVALID"),  # a header that is not an object
])
def test_what_is_not_a_jwt_is_refused(raw: str, reason: str) -> None:
    assert refusal(raw) == reason


def test_a_token_longer_than_the_limit_is_refused_before_anything_is_decoded() -> None:
    claims = good_claims(pad="p" * TOKEN_LENGTH_MAX)
    assert refusal(token(claims)) == "TOKEN_INVALID"


@pytest.mark.parametrize(("claims", "reason"), [
    (good_claims(exp=None), "TOKEN_INVALID"),
    (good_claims(exp="1900000000"), "TOKEN_INVALID"),
    (good_claims(exp=True), "TOKEN_INVALID"),
    (good_claims(nbf="soon"), "TOKEN_INVALID"),
    (good_claims(exp=NOW - LEEWAY_S - 1), "TOKEN_EXPIRED"),
    (good_claims(nbf=NOW + LEEWAY_S + 1), "TOKEN_NOT_YET_VALID"),
    (good_claims(iss=None), "TOKEN_ISSUER_INVALID"),
    (good_claims(iss="https://issuer.test/"), "TOKEN_ISSUER_INVALID"),
    (good_claims(aud=None), "TOKEN_AUDIENCE_INVALID"),
    (good_claims(aud="tally-staging"), "TOKEN_AUDIENCE_INVALID"),
    (good_claims(aud=["a", "b"]), "TOKEN_AUDIENCE_INVALID"),
    (good_claims(aud=[]), "TOKEN_AUDIENCE_INVALID"),
    (good_claims(sub=None), "TOKEN_INVALID"),
    (good_claims(sub=""), "TOKEN_INVALID"),
    (good_claims(sub=42), "TOKEN_INVALID"),
    (good_claims(tenant_id=None), "TOKEN_INVALID"),
    (good_claims(tenant_id=["acme"]), "TOKEN_INVALID"),
    (good_claims(tenant_id="Not A Tenant!"), "TOKEN_INVALID"),
    (good_claims(role=None), "TOKEN_INVALID"),
    (good_claims(role="root"), "TOKEN_INVALID"),
    (good_claims(role=["admin"]), "TOKEN_INVALID"),
    ([1, 2], "TOKEN_INVALID"),  # claims that are not an object
])
def test_claims_are_checked(claims, reason: str) -> None:
    assert refusal(token(claims)) == reason


def test_expiry_and_not_before_allow_the_leeway_and_no_more() -> None:
    assert verify_jwt(token(good_claims(exp=NOW - LEEWAY_S)), CONFIG, NOW).tenant_id == "acme"
    assert refusal(token(good_claims(exp=NOW - LEEWAY_S - 1))) == "TOKEN_EXPIRED"
    assert verify_jwt(token(good_claims(nbf=NOW + LEEWAY_S)), CONFIG, NOW).tenant_id == "acme"
    assert refusal(token(good_claims(nbf=NOW + LEEWAY_S + 1))) == "TOKEN_NOT_YET_VALID"
    assert verify_jwt(token(good_claims(exp=NOW + 10, nbf=NOW - 10)), CONFIG, NOW).tenant_id == "acme"
    # Fractional NumericDates are read exactly (no float rounding at the edge).
    assert verify_jwt(token(good_claims(exp=NOW - LEEWAY_S + 0.5)), CONFIG, NOW).tenant_id == "acme"
    assert refusal(token(good_claims(exp=NOW - LEEWAY_S - 0.5))) == "TOKEN_EXPIRED"


def test_an_audience_list_is_accepted_when_it_names_this_service() -> None:
    assert verify_jwt(token(good_claims(aud=["other", AUDIENCE])), CONFIG, NOW).tenant_id == "acme"
    assert verify_jwt(token(good_claims(aud=[AUDIENCE])), CONFIG, NOW).tenant_id == "acme"
    assert refusal(token(good_claims(aud=[f"{AUDIENCE}-x", "other"]))) == "TOKEN_AUDIENCE_INVALID"


def test_custom_tenant_and_role_claims() -> None:
    config = JwtConfig(SECRET, frozenset({"HS256"}), ISSUER, AUDIENCE, tenant_claim="org", role_claim="scope")
    claims = good_claims(tenant_id=None, role=None, org="globex", scope="reader")
    assert verify_jwt(token(claims), config, NOW) == Principal("globex", "jwt:billing", Role.READER, "jwt")
    assert refusal(token(good_claims()), config) == "TOKEN_INVALID"  # tenant_id/role are not the claims read


def test_a_bad_signature_is_refused() -> None:
    assert refusal(token(secret=OTHER)) == "TOKEN_SIGNATURE_INVALID"
    good = token()
    head, payload, signature = good.split(".")
    assert refusal(f"{head}.{part(good_claims(tenant_id='globex'))}.{signature}") == "TOKEN_SIGNATURE_INVALID"
    assert refusal(f"{head}.{payload}.") == "TOKEN_SIGNATURE_INVALID"
    assert refusal(f"{head}.{payload}.{signature[:-4]}") == "TOKEN_SIGNATURE_INVALID"
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert refusal(f"{head}.{payload}.{flipped}") == "TOKEN_SIGNATURE_INVALID"


def test_claims_are_not_trusted_before_the_signature_verifies() -> None:
    """An expired token with a bad signature is refused for its signature: nothing in an unverified
    payload is looked at."""
    assert refusal(token(good_claims(exp=NOW - 10_000), secret=OTHER)) == "TOKEN_SIGNATURE_INVALID"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", "HS384", "HS512", "hs256", "HS256 ", "RS256",
                                 "ES256", "PS256", "EdDSA", None, 256, True])
def test_only_configured_algorithms_are_accepted(alg) -> None:
    # Signed every way an attacker might hope the header selects: unsigned, and with the real secret.
    for sign_as in ("none", "HS256", "HS384", "HS512"):
        assert refusal(token(alg=alg, sign_as=sign_as)) == "TOKEN_ALGORITHM_NOT_ALLOWED", (alg, sign_as)


def test_a_header_without_alg_is_refused() -> None:
    assert refusal(token(header={"typ": "JWT"}, sign_as="HS256")) == "TOKEN_ALGORITHM_NOT_ALLOWED"


def test_the_header_never_selects_another_key_or_a_weaker_check() -> None:
    """Key hints in the header (kid, jwk, jku, x5u) are ignored: the configured secret verifies; a token
    signed with the attacker's own key is refused even when the header hands over that key."""
    for hint in ({"kid": "attacker"}, {"jwk": {"kty": "oct", "k": b64(OTHER)}}, {"jku": "https://evil.test/k"},
                 {"x5u": "https://evil.test/c"}):
        header = {"alg": "HS256", "typ": "JWT", **hint}
        assert refusal(token(header=header, secret=OTHER)) == "TOKEN_SIGNATURE_INVALID"
        assert verify_jwt(token(header=header), CONFIG, NOW).tenant_id == "acme"


def test_with_several_algorithms_configured_each_verifies_with_its_own_hash() -> None:
    config = JwtConfig(SECRET, frozenset({"HS256", "HS512"}), ISSUER, AUDIENCE)
    for alg in ("HS256", "HS512"):
        assert verify_jwt(token(alg=alg), config, NOW).tenant_id == "acme"
    # The header names one algorithm and the signature was made with the other: never accepted.
    assert refusal(token(alg="HS512", sign_as="HS256"), config) == "TOKEN_SIGNATURE_INVALID"
    assert refusal(token(alg="HS256", sign_as="HS512"), config) == "TOKEN_SIGNATURE_INVALID"
    assert refusal(token(alg="HS384"), config) == "TOKEN_ALGORITHM_NOT_ALLOWED"


@pytest.mark.parametrize("alg", [["HS256"], {"name": "HS256"}])
def test_an_alg_that_is_not_a_string_is_refused(alg) -> None:
    assert refusal(token(alg=alg, sign_as="HS256")) == "TOKEN_ALGORITHM_NOT_ALLOWED"


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(secret=b"short"), "at least 32 bytes"),
    (dict(algorithms=frozenset()), "among"),
    (dict(algorithms=frozenset({"none"})), "among"),
    (dict(algorithms=frozenset({"RS256"})), "among"),
    (dict(algorithms=frozenset({"ES256", "HS256"})), "needs a public key"),
    (dict(algorithms=frozenset({"RS1"})), "among"),
    (dict(lifetime_max_s=0), "positive"),
    (dict(algorithms=frozenset({"HS256", "none"})), "among"),
    (dict(issuer=""), "issuer and audience"),
    (dict(audience=""), "issuer and audience"),
])
def test_the_configuration_is_checked(kwargs: dict, message: str) -> None:
    settings = dict(secret=SECRET, algorithms=frozenset({"HS256"}), issuer=ISSUER, audience=AUDIENCE) | kwargs
    with pytest.raises(ValueError, match=message):
        JwtConfig(**settings)
