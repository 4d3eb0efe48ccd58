"""Public keys that verify JWTs, read once at start-up from the files identity providers publish: PEM
(public keys or certificates, one or more) and JWKS (RFC 7517). A file that holds no usable key, or a
private or symmetric key, is an error: the server does not start."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tally.service.auth.jwt_tokens import PublicKey

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)
_PUBLIC_TYPES = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)
KEYS_MAX = 100


class KeyFileError(ValueError):
    pass


def load_pem_keys(path: str) -> tuple[PublicKey, ...]:
    blocks = _PEM_BLOCK.finditer(_read(path))
    keys = tuple(PublicKey(_pem_key(path, block.group(1), block.group(0).encode())) for block in blocks)
    if not keys:
        raise KeyFileError(f"{path}: no PEM public key or certificate found")
    return _bounded(path, keys)


def _pem_key(path: str, kind: str, data: bytes):
    try:
        if kind == "CERTIFICATE":
            key = x509.load_pem_x509_certificate(data).public_key()
        elif kind == "PUBLIC KEY":
            key = load_pem_public_key(data)
        else:
            raise KeyFileError(f"{path}: holds a {kind}; give public keys or certificates only")
    except ValueError as exc:
        raise KeyFileError(f"{path}: a {kind} cannot be read: {exc}") from None
    if not isinstance(key, _PUBLIC_TYPES):
        raise KeyFileError(f"{path}: a {type(key).__name__} cannot verify JWTs (RSA, EC or Ed25519/Ed448 only)")
    return key


def load_jwks_keys(path: str) -> tuple[PublicKey, ...]:
    try:
        document = json.loads(_read(path))
        entries = document["keys"]
    except (ValueError, TypeError, KeyError):
        raise KeyFileError(f"{path}: not a JWKS document (a JSON object with a \"keys\" list)") from None
    if not isinstance(entries, list):
        raise KeyFileError(f"{path}: \"keys\" must be a list")
    keys = tuple(_jwk(path, i, entry) for i, entry in enumerate(entries)
                 if not (isinstance(entry, dict) and entry.get("use", "sig") != "sig"))  # encryption keys skipped
    if not keys:
        raise KeyFileError(f"{path}: no signature key in the JWKS")
    return _bounded(path, keys)


def _jwk(path: str, index: int, entry: object) -> PublicKey:
    where = f"{path}: keys[{index}]"
    if not isinstance(entry, dict):
        raise KeyFileError(f"{where} is not a JSON object")
    if entry.get("kty") == "oct" or "d" in entry:
        raise KeyFileError(f"{where} is a symmetric or private key; a JWKS here holds public keys only")
    try:
        key = jwt.PyJWK(entry).key
    except jwt.PyJWTError as exc:
        raise KeyFileError(f"{where} cannot be used: {exc}") from None
    algorithm, kid = entry.get("alg", ""), entry.get("kid", "")
    if not isinstance(algorithm, str) or not isinstance(kid, str):
        raise KeyFileError(f"{where}: alg and kid must be strings")
    return PublicKey(key, kid, algorithm)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot be read: {exc}") from None


def _bounded(path: str, keys: tuple[PublicKey, ...]) -> tuple[PublicKey, ...]:
    if len(keys) > KEYS_MAX:
        raise KeyFileError(f"{path}: more than {KEYS_MAX} keys")
    return keys
