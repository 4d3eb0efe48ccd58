"""Tenants and API keys. A key reads `tly_<key id>_<secret>`; only a salted hash of the secret is
stored, and the whole key is shown once, when it is created."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from tally.domain.auth import Principal, Role
from tally.domain.errors import ErrorKind, LedgerError, invalid, not_found
from tally.domain.fields import check_tenant, check_text
from tally.storage import auth_repo, system_repo
from tally.storage.auth_repo import KeyRecord
from tally.storage.uow import UnitOfWork

KEY_PREFIX = "tly_"
_KEY = re.compile(r"^tly_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    tenant_id: str
    role: Role
    secret_key: str  # the full key: shown once, never stored


def secret_hash(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def create_tenant(uow: UnitOfWork, tenant_id: str, name: str, clock: Callable[[], int]) -> None:
    check_tenant(tenant_id)
    check_text(name, "name", 256)

    def work(conn: Connection) -> None:
        if auth_repo.tenant_exists(conn, tenant_id):
            raise LedgerError(ErrorKind.ALREADY_EXISTS, "TENANT_EXISTS", f"tenant {tenant_id} exists")
        auth_repo.insert_tenant(conn, tenant_id, name, clock())

    uow.write({tenant_id}, work)


def create_key(uow: UnitOfWork, tenant_id: str, role: Role, name: str, created_by: str,
               clock: Callable[[], int]) -> IssuedKey:
    check_text(name, "name", 128)
    key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
    record = KeyRecord(key_id, tenant_id, role.value, name, salt, secret_hash(salt, secret), created_by, clock())

    def work(conn: Connection) -> None:
        if not auth_repo.tenant_exists(conn, tenant_id):
            raise not_found("TENANT_NOT_FOUND", f"tenant {tenant_id} not found", tenant=tenant_id)
        auth_repo.insert_key(conn, record)

    uow.write({tenant_id}, work)
    return IssuedKey(key_id, tenant_id, role, f"{KEY_PREFIX}{key_id}_{secret}")


def revoke_key(uow: UnitOfWork, tenant_id: str, key_id: str, clock: Callable[[], int]) -> None:
    if not uow.write({tenant_id}, lambda conn: auth_repo.revoke_key(conn, tenant_id, key_id, clock())):
        raise not_found("KEY_NOT_FOUND", f"no active key {key_id} in tenant {tenant_id}", key_id=key_id)


def verify_key(conn: Connection, key: str) -> Principal:
    """The principal an API key proves; a wrong or unknown key is refused the same way."""
    match = _KEY.fullmatch(key)
    if match is None:
        raise LedgerError(ErrorKind.UNAUTHENTICATED, "CREDENTIALS_MALFORMED", "the API key is malformed")
    key_id, secret = match.groups()
    record = system_repo.api_key(conn, key_id)  # the system path: the key names its tenant
    expected = secret_hash(record.salt, secret) if record else secret_hash("", "")
    if record is None or not hmac.compare_digest(expected, record.secret_hash):
        raise LedgerError(ErrorKind.UNAUTHENTICATED, "CREDENTIALS_INVALID", "the API key is not valid")
    if record.revoked_us is not None:
        raise LedgerError(ErrorKind.UNAUTHENTICATED, "KEY_REVOKED", "the API key has been revoked")
    return Principal(record.tenant_id, f"key:{key_id}", Role(record.role), "api_key")


def key_id_of(credential: str) -> str:
    """The key id of a well-formed API key, or "" for anything else."""
    match = _KEY.fullmatch(credential)
    return match.group(1) if match else ""


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise invalid("ROLE_INVALID", f"role must be one of {', '.join(r.value for r in Role)}") from None
