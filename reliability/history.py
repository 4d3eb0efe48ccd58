"""What the clients did and what they were told: every operation as invoked, ok, failed or unknown."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

# Answers that say what happened: the request was refused and changed nothing. Anything else (a timeout,
# a lost connection, a conflict, a server error) leaves the outcome unknown until a resend tells.
DEFINITE = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
                      grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
                      grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.OUT_OF_RANGE})
SERVER_ERRORS = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})


@dataclass(frozen=True)
class Transfer:
    source: int  # account index
    destination: int
    amount: int


@dataclass
class Op:
    id: int
    client: int
    kind: str  # "transfer", "resend" (exact), "changed" (same request_id, other body), "snapshot"
    request_id: str = ""
    body: Transfer | None = None
    original: int | None = None  # for resends: the op resent
    outcome: str = "invoked"  # invoked -> ok | failed | unknown
    code: str = ""  # gRPC status name
    reason: str = ""  # ErrorInfo reason
    voucher_ids: tuple[str, ...] = ()
    replayed: bool = False
    resolved: bool = False  # an unknown outcome learnt from a resend after the faults
    invoked_s: float = field(default_factory=time.monotonic)
    completed_s: float = 0.0
    snapshot: tuple[int, tuple[int, ...]] | None = None  # (voucher_sequence, balances by account index)

    def answer(self) -> tuple:
        """What a resend must be answered again: the vouchers, or the refusal."""
        return ("ok", self.voucher_ids) if self.outcome == "ok" else ("failed", self.code, self.reason)


def reason_of(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


def complete(op: Op, response=None, error: grpc.RpcError | None = None) -> None:
    op.completed_s = time.monotonic()
    if error is None:
        op.outcome, op.code = "ok", "OK"
        op.voucher_ids = tuple(v.id for v in response.vouchers)
        op.replayed = response.replayed
        return
    op.code, op.reason = error.code().name, reason_of(error)
    op.outcome = "failed" if error.code() in DEFINITE else "unknown"


class History:
    def __init__(self) -> None:
        self.ops: list[Op] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def invoke(self, client: int, kind: str, **fields) -> Op:
        op = Op(next(self._ids), client, kind, **fields)
        with self._lock:
            self.ops.append(op)
        return op

    def of(self, *kinds: str) -> list[Op]:
        with self._lock:
            return [op for op in self.ops if op.kind in kinds]
