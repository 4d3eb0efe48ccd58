"""What a failure no check foresaw answers: UNAVAILABLE for a fault that may pass, INTERNAL with an error id
for one that will happen again. Shared by the API and the posting pipeline, which answers callers itself."""

from __future__ import annotations

import logging
import secrets

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from tally.domain.errors import ErrorKind, LedgerError

log = logging.getLogger(__name__)
RETRY = "retry with the same request_id"


def transient(exc: BaseException) -> bool:
    """A database or network fault that may pass: the connection failed or the server was away. A
    statement the database refused for what it holds (a value, a constraint) fails the same way again."""
    return isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


def unexpected(exc: BaseException, advice: str = RETRY) -> LedgerError:
    """A transient fault: UNAVAILABLE, with how to carry on. Any other: INTERNAL with an error id, logged
    with its traceback under that id, since a retry would fail the same way."""
    if transient(exc):
        log.warning("database unavailable: %s", exc)
        return LedgerError(ErrorKind.UNAVAILABLE, "DATABASE_UNAVAILABLE", f"the database did not answer; {advice}")
    error_id = secrets.token_hex(8)
    log.error("internal error %s", error_id, exc_info=exc)
    return LedgerError(ErrorKind.INTERNAL, "INTERNAL_ERROR",
                       f"the call failed on a fault of the server (error id {error_id}); retrying will not help, "
                       "report the error id", error_id=error_id)
