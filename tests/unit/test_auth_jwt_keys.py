"""JWTs signed with asymmetric keys (RS256, PS256, ES256, EdDSA), as identity providers issue them, verified
with public keys from a PEM file or a JWKS file; the key files are checked at start-up. Keys are real ones,
generated here with `cryptography`; tokens are signed with PyJWT."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from tally.bootstrap import jwt_config
from tally.config import ConfigError, Settings
from tally.domain.auth import Principal, Role
from tally.domain.errors import ErrorKind, LedgerError
from tally.service.auth.jwt_keys import KeyFileError, load_jwks_keys, load_pem_keys
from tally.service.auth.jwt_tokens import JwtConfig, PublicKey, verify_jwt

ISSUER, AUDIENCE = "https://idp.test", "tally"
NOW = 1_800_000_000
SECRET = b"an-hmac-secret-of-at-least-32-bytes!"


def claims(**changes) -> dict:
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "billing", "tenant_id": "acme", "role": "poster",
            "exp": NOW + 300}
    return {k: v for k, v in (base | changes).items() if v is not None}


def pem_public(private) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def pem_private(private) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def jwk(private, kid: str, **extra) -> dict:
    algorithm = {rsa.RSAPrivateKey: jwt.algorithms.RSAAlgorithm, ec.EllipticCurvePrivateKey: jwt.algorithms.ECAlgorithm,
                 ed25519.Ed25519PrivateKey: jwt.algorithms.OKPAlgorithm}
    kind = next(cls for base, cls in algorithm.items() if isinstance(private, base))
    return {**kind.to_jwk(private.public_key(), as_dict=True), "kid": kid, **extra}


@pytest.fixture(scope="module")
def keys() -> dict:
    return {"rsa": rsa.generate_private_key(65537, 2048), "rsa2": rsa.generate_private_key(65537, 2048),
            "ec": ec.generate_private_key(ec.SECP256R1()), "ec2": ec.generate_private_key(ec.SECP256R1()),
            "ed": ed25519.Ed25519PrivateKey.generate(), "ed2": ed25519.Ed25519PrivateKey.generate()}


def config(public_keys, algorithms=("RS256", "PS256", "ES256", "EdDSA"), secret: bytes = b"") -> JwtConfig:
    return JwtConfig(secret, frozenset(algorithms), ISSUER, AUDIENCE, public_keys=tuple(public_keys))


def refusal(token: str, cfg: JwtConfig) -> str:
    with pytest.raises(LedgerError) as caught:
        verify_jwt(token, cfg, NOW)
    assert caught.value.kind is ErrorKind.UNAUTHENTICATED
    return caught.value.reason


@pytest.mark.parametrize(("name", "algorithm"), [("rsa", "RS256"), ("rsa", "PS256"), ("ec", "ES256"),
                                                 ("ed", "EdDSA")])
def test_tokens_verify_with_keys_from_a_pem_file(tmp_path, keys, name: str, algorithm: str) -> None:
    path = tmp_path / "keys.pem"
    path.write_bytes(b"".join(pem_public(keys[k]) for k in ("rsa", "ec", "ed")))
    cfg = config(load_pem_keys(str(path)))
    token = jwt.encode(claims(), keys[name], algorithm=algorithm)
    assert verify_jwt(token, cfg, NOW) == Principal("acme", "jwt:billing", Role.POSTER, "jwt")
    # The same token signed by another key of the same kind is refused.
    other = {"rsa": "rsa2", "ec": "ec2", "ed": "ed2"}[name]
    assert refusal(jwt.encode(claims(), keys[other], algorithm=algorithm), cfg) == "TOKEN_SIGNATURE_INVALID"


def test_a_certificate_in_the_pem_file_gives_its_public_key(tmp_path, keys) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.test")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(keys["rsa"].public_key()).serial_number(1).not_valid_before(start)
                   .not_valid_after(start + datetime.timedelta(days=3650)).sign(keys["rsa"], hashes.SHA256()))
    path = tmp_path / "idp.crt"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    cfg = config(load_pem_keys(str(path)), algorithms=("RS256",))
    assert verify_jwt(jwt.encode(claims(), keys["rsa"], algorithm="RS256"), cfg, NOW).tenant_id == "acme"


def test_a_jwks_key_is_picked_by_kid_and_may_pin_its_algorithm(tmp_path, keys) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [
        jwk(keys["rsa"], "r1", alg="RS256", use="sig"), jwk(keys["rsa2"], "r2"), jwk(keys["ec"], "e1"),
        jwk(keys["ed"], "d1"), {**jwk(keys["ed2"], "enc1"), "use": "enc"}]}))
    cfg = config(load_jwks_keys(str(path)))
    assert [k.kid for k in cfg.public_keys] == ["r1", "r2", "e1", "d1"]  # the encryption key is not used
    for private, kid, algorithm in (("rsa", "r1", "RS256"), ("rsa2", "r2", "PS256"), ("ec", "e1", "ES256"),
                                    ("ed", "d1", "EdDSA")):
        token = jwt.encode(claims(), keys[private], algorithm=algorithm, headers={"kid": kid})
        assert verify_jwt(token, cfg, NOW).actor == "jwt:billing", kid
    # Without a kid every key of the kind is tried; with a kid, only that key.
    assert verify_jwt(jwt.encode(claims(), keys["rsa2"], algorithm="RS256"), cfg, NOW).tenant_id == "acme"
    wrong_kid = jwt.encode(claims(), keys["rsa2"], algorithm="RS256", headers={"kid": "r1"})
    assert refusal(wrong_kid, cfg) == "TOKEN_SIGNATURE_INVALID"
    assert refusal(jwt.encode(claims(), keys["rsa"], algorithm="RS256", headers={"kid": "nope"}), cfg) \
        == "TOKEN_KEY_UNKNOWN"
    # r1 names RS256: a PS256 token under its kid has no key to verify it.
    assert refusal(jwt.encode(claims(), keys["rsa"], algorithm="PS256", headers={"kid": "r1"}), cfg) \
        == "TOKEN_KEY_UNKNOWN"
    assert refusal(jwt.encode(claims(), keys["ed2"], algorithm="EdDSA", headers={"kid": "enc1"}), cfg) \
        == "TOKEN_KEY_UNKNOWN"


def test_the_checks_of_hmac_tokens_hold_for_asymmetric_ones(keys) -> None:
    cfg = config([PublicKey(keys["ec"].public_key())], algorithms=("ES256",))

    def es256(**changes) -> str:
        return jwt.encode(claims(**changes), keys["ec"], algorithm="ES256")

    assert refusal(es256(iss="https://evil.test"), cfg) == "TOKEN_ISSUER_INVALID"
    assert refusal(es256(aud="other"), cfg) == "TOKEN_AUDIENCE_INVALID"
    assert refusal(es256(exp=NOW - 3600), cfg) == "TOKEN_EXPIRED"
    assert refusal(es256(exp=1e300), cfg) == "TOKEN_LIFETIME_TOO_LONG"
    assert refusal(es256(nbf=NOW + 3600), cfg) == "TOKEN_NOT_YET_VALID"
    assert refusal(es256(sub="svc\x00"), cfg) == "TOKEN_CLAIM_INVALID"
    assert refusal(es256(role="root"), cfg) == "TOKEN_INVALID"
    head, payload, signature = es256().split(".")
    forged = jwt.utils.base64url_encode(json.dumps(claims(tenant_id="globex")).encode()).decode()
    assert refusal(f"{head}.{forged}.{signature}", cfg) == "TOKEN_SIGNATURE_INVALID"


def test_the_public_key_is_never_used_as_an_hmac_secret(keys) -> None:
    """Algorithm confusion: a token 'HS256'-signed with the public key PEM (which an attacker has) is refused,
    whether HS256 is not accepted at all or verified with the configured secret alone."""
    public = pem_public(keys["rsa"])
    forged = _hmac_token(claims(), public)
    rsa_only = config([PublicKey(keys["rsa"].public_key())], algorithms=("RS256",))
    assert refusal(forged, rsa_only) == "TOKEN_ALGORITHM_NOT_ALLOWED"
    both = config([PublicKey(keys["rsa"].public_key())], algorithms=("RS256", "HS256"), secret=SECRET)
    assert refusal(forged, both) == "TOKEN_SIGNATURE_INVALID"
    assert verify_jwt(_hmac_token(claims(), SECRET), both, NOW).tenant_id == "acme"
    # And an RS256 token is not checked against the secret.
    assert refusal(_hmac_token(claims(), SECRET, header_alg="RS256"), both) == "TOKEN_SIGNATURE_INVALID"


def _hmac_token(payload: dict, secret: bytes, header_alg: str = "HS256") -> str:
    """An HS256 signature, made by hand (PyJWT refuses to sign with a PEM as HMAC secret)."""
    b64 = jwt.utils.base64url_encode
    signing_input = (b64(json.dumps({"alg": header_alg, "typ": "JWT"}).encode()) + b"."
                     + b64(json.dumps(payload).encode()))
    return (signing_input + b"." + b64(hmac.new(secret, signing_input, hashlib.sha256).digest())).decode()


@pytest.mark.parametrize(("content", "message"), [
    ("", "no PEM public key"),
    ("not a key", "no PEM public key"),
    ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "cannot be read"),
    ("PRIVATE", "public keys or certificates only"),
])
def test_a_pem_file_without_a_usable_public_key_stops_the_start(tmp_path, keys, content: str, message: str) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(pem_private(keys["rsa"]) if content == "PRIVATE" else content.encode())
    with pytest.raises(KeyFileError, match=message):
        load_pem_keys(str(path))
    settings = _settings(jwt_public_key_file=str(path))
    with pytest.raises(ConfigError, match=f"TALLY_JWT_PUBLIC_KEY_FILE: .*{message}"):
        jwt_config(settings)


@pytest.mark.parametrize(("document", "message"), [
    ("not json", "not a JWKS document"),
    ("[]", "not a JWKS document"),
    ('{"keys": {}}', "must be a list"),
    ('{"keys": []}', "no signature key"),
    ('{"keys": [1]}', "not a JSON object"),
    ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "symmetric or private"),
    ("PRIVATE", "symmetric or private"),
    ('{"keys": [{"kty": "RSA", "n": "AQAB"}]}', "cannot be used"),
])
def test_a_jwks_file_without_a_usable_public_key_stops_the_start(tmp_path, keys, document: str,
                                                                   message: str) -> None:
    if document == "PRIVATE":
        document = json.dumps({"keys": [json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys["rsa"]))]})
    path = tmp_path / "jwks.json"
    path.write_text(document)
    with pytest.raises(ConfigError, match=f"TALLY_JWT_JWKS_FILE: .*{message}"):
        jwt_config(_settings(jwt_jwks_file=str(path)))


def test_the_key_files_are_checked_together_with_the_algorithms(tmp_path, keys) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(pem_public(keys["ec"]))
    assert jwt_config(_settings(jwt_public_key_file=str(path), jwt_algorithms="ES256")).public_keys
    with pytest.raises(ConfigError, match="RS256 needs a public key"):
        jwt_config(_settings(jwt_public_key_file=str(path), jwt_algorithms="RS256"))
    with pytest.raises(ConfigError, match="TALLY_JWT_PUBLIC_KEY_FILE: .*cannot be read"):
        jwt_config(_settings(jwt_public_key_file=str(tmp_path / "missing.pem")))
    assert jwt_config(_settings()) is None  # neither secret nor key file: API keys only


def test_the_lifetime_bound_comes_from_the_environment() -> None:
    settings = Settings.from_env({"TALLY_JWT_LIFETIME_MAX_S": "3600", "TALLY_JWT_SECRET": SECRET.decode(),
                                  "TALLY_JWT_ISSUER": ISSUER, "TALLY_JWT_AUDIENCE": AUDIENCE})
    assert jwt_config(settings).lifetime_max_s == 3600
    assert Settings().jwt_lifetime_max_s == 86_400
    with pytest.raises(ConfigError, match="TALLY_JWT_LIFETIME_MAX_S"):
        Settings.from_env({"TALLY_JWT_LIFETIME_MAX_S": "0"})


def _settings(**overrides) -> Settings:
    base = {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, "jwt_algorithms": "RS256,ES256,EdDSA"}
    return dataclasses.replace(Settings(), **(base | overrides))
