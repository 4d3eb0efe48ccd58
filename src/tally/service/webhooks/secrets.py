"""Signing secrets: made by the server, shown once, stored encrypted.

A receiver verifies with the secret itself (HMAC-SHA256 per Standard Webhooks), so the server must keep
it readable to sign: it is encrypted with Fernet (AES-128-CBC and HMAC-SHA256, from `cryptography`) under a
server key, so a copy of the database alone does not give the secrets. The key comes from
TALLY_WEBHOOK_KEY (every replica needs the same one), else from TALLY_WEBHOOK_KEY_FILE, created on first use
(mode 0600) for a single process with zero set-up.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from tally.config import ConfigError

SECRET_BYTES = 32
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class SecretBox:
    """Encrypts and decrypts secrets with the server key, loaded (or made) on first use."""

    def __init__(self, key: str, key_file: str) -> None:
        self._key, self._key_file = key, key_file
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    def seal(self, secret: str) -> str:
        return self._box().encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._box().decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ConfigError("a webhook secret does not decrypt with this server's TALLY_WEBHOOK_KEY: every "
                              "replica needs the same key") from None

    def _box(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                self._fernet = Fernet(self._key.encode() if self._key else _key_from_file(Path(self._key_file)))
            return self._fernet


def _key_from_file(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    # Written whole under a temporary name, then linked into place: a process starting at the same time
    # finds no file or the whole key, never half of one, and the first link wins.
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(Fernet.generate_key() + b"\n")
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink()
    return path.read_bytes().strip()


def check_key(key: str) -> None:
    """A TALLY_WEBHOOK_KEY must be a Fernet key (32 bytes, url-safe base64): checked at start-up."""
    if key:
        try:
            Fernet(key.encode())
        except ValueError as exc:
            raise ConfigError(f"TALLY_WEBHOOK_KEY: {exc} (make one with: python -c 'from cryptography.fernet "
                              "import Fernet; print(Fernet.generate_key().decode())')") from None
