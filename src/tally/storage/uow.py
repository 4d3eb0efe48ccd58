"""The unit of work: owns every transaction and its bounded retry. Repositories never commit.

Every transaction names its tenant scope: the tenants it works for, or `Scope.SYSTEM` for the few
operations that must see every tenant (API-key verification, counting and listing tenants, the hold
expirer's scan for due holds: storage/system_repo.py). The argument is required, so no call site can
forget it. On PostgreSQL the scope becomes the transaction-local setting `tally.tenants`, which the
row-level security policies read (migrations 0006, 0010): a query that forgets its tenant filter still
sees only the tenants of its transaction, and a transaction without a scope sees nothing. Under
`Scope.SYSTEM` the policies show every tenant to the schema owner only; the service role sees none, and
crosses tenants only through the system functions. SQLite (one embedded process, no roles) sets nothing.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Callable, Collection
from typing import Literal, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from tally.domain.errors import ErrorKind, LedgerError
from tally.storage import epochs, ledger_repo
from tally.storage.engine import (
    Engines,
    commit,
    defer_tenant_scope,
    defer_write_gate,
    deferring,
    locking,
    set_tenant_scope,
)

T = TypeVar("T")
log = logging.getLogger(__name__)


class Scope(enum.Enum):
    """The one scope that is not a set of tenants."""

    SYSTEM = "*"  # every tenant: only for the few operations that must cross tenants


# The tenant ids a transaction works for, or Scope.SYSTEM.
Tenants = Collection[str] | Literal[Scope.SYSTEM]


def scope_setting(tenants: Tenants) -> str:
    """The value of `tally.tenants` for a scope: "*", or the tenant ids joined by commas. The id "" names the
    audit rows of callers that could not be identified (the policies split "," into two such ids). Refuses
    what the policies could misread: a bare string (a collection of characters), an empty scope, an id with
    a comma or one that reads "*"."""
    if tenants is Scope.SYSTEM:
        return Scope.SYSTEM.value
    if isinstance(tenants, str | bytes) or not isinstance(tenants, Collection):
        raise TypeError(f"a tenant scope is a collection of tenant ids or Scope.SYSTEM, not {tenants!r}")
    ids = sorted(set(tenants))
    if not ids:
        raise ValueError("a tenant scope names at least one tenant (or is Scope.SYSTEM)")
    for tenant_id in ids:
        if not isinstance(tenant_id, str) or "," in tenant_id or tenant_id == Scope.SYSTEM.value:
            raise ValueError(f"{tenant_id!r} cannot be part of a tenant scope")
    return ",".join(ids) or ","  # ids == [""]: an empty setting would match nothing

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    # A lost connection leaves the transaction's outcome unknown; retrying is safe because the
    # idempotency record is written in the same transaction as what it guards.
    return exc.connection_invalidated or _contended(exc)


class UnitOfWork:
    def __init__(self, engines: Engines, *, retries_max: int = 8, backoff_ms: int = 5,
                 backoff_max_ms: int = 500) -> None:
        self.engines = engines
        self.retries_max = retries_max
        self.backoff_ms = backoff_ms
        self.backoff_max_ms = backoff_max_ms
        # Called in the writing thread after each commit that wrote events, with their tenants.
        self.after_commit: list[Callable[[set[str]], None]] = []
        # Called before a write transaction is retried, with the cause: "serialization" or "connection".
        self.on_retry: list[Callable[[str], None]] = []

    @property
    def dialect(self) -> str:
        return self.engines.dialect

    @property
    def locking(self) -> bool:
        """Whether writers take gates and locks: always, but in the reliability suite's weakened control run."""
        return locking(self.engines.write)

    def write(self, tenants: Tenants, work: Callable[[Connection], T]) -> T:
        """Runs `work` in one write transaction scoped to `tenants`, holding their gates (writers of other
        tenants run beside it; REPEATABLE READ under the gates is serializable, storage/engine.py), moves
        their epochs (storage/epochs.py) and commits, retrying it whole on serialization failures and lost
        connections, at most `retries_max` times. After the commit, the listeners hear which tenants got
        new events."""
        setting = scope_setting(tenants)
        gated = None if tenants is Scope.SYSTEM else tenants  # None: every tenant's gate and epoch
        attempt = 0
        while True:
            try:
                with self.engines.write.connect() as conn:
                    # Explicit: statements sent through the driver do not autobegin. On PostgreSQL the BEGIN
                    # is deferred (engine.py) and goes out with the gate, the scope and the first statement.
                    transaction = conn.begin()
                    epochs.begun(conn)
                    ledger_repo.take_event_tenants(conn)  # nothing left over from an earlier checkout
                    # The tenants' gates first, ahead of the BEGIN; the SELECT of the scope takes the snapshot.
                    # Both go out with the work's first statement, in its round trip.
                    defer_write_gate(conn, gated)
                    defer_tenant_scope(conn, setting)
                    result = work(conn)
                    written = ledger_repo.take_event_tenants(conn)
                    # What the work deferred, the epochs, NOTIFY and COMMIT in one round trip; raises (the
                    # transaction undone) when any of them failed.
                    with deferring(conn):
                        epochs.bump(conn, gated)
                        ledger_repo.notify_events(conn, written)
                    commit(conn, transaction)
                self._tell_listeners(written)
                return result
            except DBAPIError as exc:
                if not is_retryable(exc):
                    raise
                attempt += 1
                if attempt > self.retries_max:
                    raise _exhausted(exc) from exc
                log.info("write transaction retry %d after %s", attempt, type(exc.orig).__name__)
                for listener in self.on_retry:
                    listener("connection" if exc.connection_invalidated else "serialization")
                self._sleep(attempt)

    def append(self, tenants: Tenants, work: Callable[[Connection], T]) -> T:
        """A write transaction for append-only rows that no posting reads (the audit log): it takes no
        tenant's gate, so it never waits for a batch."""
        return self._scoped(self.engines.write, tenants, work)

    def _tell_listeners(self, tenants: set[str]) -> None:
        # The transaction has committed: a listener's failure must not turn it into an error.
        for listener in self.after_commit if tenants else ():
            try:
                listener(tenants)
            except Exception:
                log.exception("after-commit listener failed")

    def read(self, tenants: Tenants, work: Callable[[Connection], T]) -> T:
        """Runs `work` in one read-only snapshot scoped to `tenants`."""
        return self._scoped(self.engines.read, tenants, work)

    def _scoped(self, engine: Engine, tenants: Tenants, work: Callable[[Connection], T]) -> T:
        """One transaction scoped to `tenants`, retried on contention and lost connections."""
        setting = scope_setting(tenants)
        attempt = 0
        while True:
            try:
                with engine.begin() as conn:
                    set_tenant_scope(conn, setting)
                    return work(conn)
            except DBAPIError as exc:
                attempt += 1
                if not is_retryable(exc) or attempt > self.retries_max:
                    raise
                self._sleep(attempt)

    def _sleep(self, attempt: int) -> None:
        ceiling = min(self.backoff_max_ms, self.backoff_ms * 2 ** (attempt - 1))
        time.sleep(random.uniform(0, ceiling) / 1000)  # full jitter


def refuses_content(exc: BaseException) -> bool:
    """The database refused what was written (a value too long or malformed, a constraint): sending the
    same rows again fails the same way."""
    return isinstance(exc, DataError | IntegrityError)


def _contended(exc: DBAPIError) -> bool:
    if getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def _exhausted(exc: DBAPIError) -> LedgerError:
    if exc.connection_invalidated or not _contended(exc):
        return LedgerError(ErrorKind.UNAVAILABLE, "DATABASE_UNAVAILABLE",
                           "the database could not be reached; retry with the same request_id")
    return LedgerError(ErrorKind.ABORTED, "RETRIES_EXHAUSTED",
                       "the transaction kept conflicting; retry with the same request_id")
