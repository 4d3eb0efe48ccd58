"""Domain errors: a kind (how the API answers) and a stable UPPER_SNAKE reason (what clients branch on)."""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    INVALID_ARGUMENT = "invalid_argument"
    FAILED_PRECONDITION = "failed_precondition"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    ABORTED = "aborted"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    INTERNAL = "internal"  # a fault that will happen again on the same request: a bug, never worth a retry


class LedgerError(Exception):
    """Raised by domain, service and storage code; the API maps it to a gRPC status with ErrorInfo."""

    def __init__(self, kind: ErrorKind, reason: str, message: str, **metadata: object) -> None:
        super().__init__(message)
        self.kind = kind
        self.reason = reason
        self.message = message
        self.metadata = {k: str(v) for k, v in metadata.items()}

    def __repr__(self) -> str:
        return f"LedgerError({self.kind.name}, {self.reason}, {self.message!r})"


def invalid(reason: str, message: str, **metadata: object) -> LedgerError:
    return LedgerError(ErrorKind.INVALID_ARGUMENT, reason, message, **metadata)


def precondition(reason: str, message: str, **metadata: object) -> LedgerError:
    return LedgerError(ErrorKind.FAILED_PRECONDITION, reason, message, **metadata)


def not_found(reason: str, message: str, **metadata: object) -> LedgerError:
    return LedgerError(ErrorKind.NOT_FOUND, reason, message, **metadata)


def not_accessible(kind: str, identifier: str) -> LedgerError:
    """The answer for an id the caller may not see: absent and another tenant's are the same answer, so
    nothing tells whether it exists. (A code or request id is a name inside the caller's own tenant; a
    missing one is plainly NOT_FOUND.)"""
    return LedgerError(ErrorKind.PERMISSION_DENIED, f"{kind.upper()}_NOT_ACCESSIBLE",
                       f"{kind} {identifier} does not exist or is not yours", **{kind: identifier})


def missing_account(ref: object) -> LedgerError:
    """No such account: by id, not accessible; by code (a name in the tenant), not found."""
    code = getattr(ref, "code", "")
    if code:
        return not_found("ACCOUNT_NOT_FOUND", f"account {ref} not found", account=str(ref))
    return not_accessible("account", getattr(ref, "id", str(ref)))
