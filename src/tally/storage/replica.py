"""Reads that may lag: on the read replica (`TALLY_READ_DATABASE_URL`, a PostgreSQL hot standby) when there is
one, else on the primary's read engine, with read-your-writes by voucher sequence.

A caller that has just posted names the tenant's voucher sequence its read must include. The ledger head row
(`ledger_heads.voucher_sequence`) moves in the same transaction as every voucher, and a standby replays whole
transactions, so a replica snapshot whose head has reached that sequence holds every voucher up to it. The
read waits for that, polling, at most `wait_ms_max`, then answers UNAVAILABLE / REPLICA_BEHIND: the caller
retries or asks without the sequence. A sequence the primary does not hold either was never posted:
FAILED_PRECONDITION / VOUCHER_SEQUENCE_NOT_POSTED at once, not after a wait. A replica that cannot be reached
sends the read to the primary: the answer is then only fresher.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from tally.domain.errors import ErrorKind, LedgerError, invalid, precondition
from tally.storage import ledger_repo
from tally.storage.engine import Engines, make_engines, set_tenant_scope
from tally.storage.uow import UnitOfWork, scope_setting

T = TypeVar("T")
log = logging.getLogger(__name__)

REPLICA_POLL_MS = 10  # between looks at the replica's head while it catches up
REPLICA_POOL_SIZE_MAX = 8


def check_min_sequence(value: int) -> None:
    if value < 0:
        raise invalid("MIN_VOUCHER_SEQUENCE_INVALID", "min_voucher_sequence must not be negative",
                      field="min_voucher_sequence")


class _Behind(Exception):
    def __init__(self, seen: int) -> None:
        super().__init__(seen)
        self.seen = seen


class LaggingReads:
    """Read transactions that may be answered from a replica. `replica` None: the primary's read engine."""

    def __init__(self, uow: UnitOfWork, replica: Engines | None, *, wait_ms_max: int) -> None:
        self.uow, self.replica, self.wait_ms_max = uow, replica, wait_ms_max
        self.fallbacks = 0  # reads the unreachable replica sent to the primary

    @classmethod
    def connect(cls, uow: UnitOfWork, url: str, *, pool_size: int, wait_ms_max: int) -> LaggingReads:
        replica = make_engines(url, pool_size=min(pool_size, REPLICA_POOL_SIZE_MAX)) if url else None
        return cls(uow, replica, wait_ms_max=wait_ms_max)

    def dispose(self) -> None:
        if self.replica is not None:
            self.replica.dispose()

    def read(self, tenant_id: str, work: Callable[[Connection], T], min_voucher_sequence: int = 0) -> T:
        """`work` in one read snapshot of `tenant_id` that holds its vouchers up to `min_voucher_sequence`."""
        check_min_sequence(min_voucher_sequence)
        if self.replica is None:
            return read_primary(self.uow, tenant_id, work, min_voucher_sequence)
        deadline = time.monotonic() + self.wait_ms_max / 1000
        posted = False  # whether the primary has been seen to hold the sequence
        while True:
            try:
                return self._on_replica(tenant_id, work, min_voucher_sequence)
            except _Behind as behind:
                if not posted:  # a sequence the tenant has not reached is refused at once, not waited for
                    read_primary(self.uow, tenant_id, lambda conn: None, min_voucher_sequence)
                    posted = True
                if time.monotonic() >= deadline:
                    raise LedgerError(ErrorKind.UNAVAILABLE, "REPLICA_BEHIND",
                                      f"the read replica has not reached voucher sequence {min_voucher_sequence} "
                                      f"within {self.wait_ms_max} ms; retry", seen=behind.seen,
                                      wanted=min_voucher_sequence) from None
                time.sleep(REPLICA_POLL_MS / 1000)
            except OperationalError as exc:  # unreachable, or a query cancelled by a conflict with recovery
                self.fallbacks += 1
                log.warning("read replica unreachable (%s): reading from the primary", type(exc.orig).__name__)
                return read_primary(self.uow, tenant_id, work, min_voucher_sequence)

    def _on_replica(self, tenant_id: str, work: Callable[[Connection], T], wanted: int) -> T:
        with self.replica.read.begin() as conn:
            set_tenant_scope(conn, scope_setting({tenant_id}))
            return _checked(tenant_id, work, wanted)(conn)


def read_primary(uow: UnitOfWork, tenant_id: str, work: Callable[[Connection], T], wanted: int) -> T:
    """`work` on the primary, where every voucher a caller can have seen is visible: a sequence past the
    tenant's head was never posted."""
    try:
        return uow.read({tenant_id}, _checked(tenant_id, work, wanted))
    except _Behind as behind:
        raise precondition("VOUCHER_SEQUENCE_NOT_POSTED",
                           f"the tenant has no voucher sequence {wanted} yet (its last is {behind.seen})",
                           seen=behind.seen, wanted=wanted) from None


def _checked(tenant_id: str, work: Callable[[Connection], T], wanted: int) -> Callable[[Connection], T]:
    """`work`, once the snapshot's ledger head has reached voucher sequence `wanted` (else `_Behind`)."""

    def checked(conn: Connection) -> T:
        if wanted:
            head = ledger_repo.load_heads_readonly(conn, tenant_id)
            seen = head.voucher_sequence if head else 0
            if seen < wanted:
                raise _Behind(seen)
        return work(conn)

    return checked
