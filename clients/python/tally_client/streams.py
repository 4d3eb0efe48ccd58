"""A server stream of sequenced items that survives disconnects: it reopens from the last sequence it handed
out, so the caller sees every item once, in order, across server restarts."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import grpc

from tally_client.errors import TallyError
from tally_client.retry import RETRYABLE_CODES, RetryPolicy

T = TypeVar("T")
AFTER_SEQUENCE_HEADER = "tally-after-sequence"  # where a stream starts, sent before any item
TOO_SLOW_REASON = "STREAM_CONSUMER_TOO_SLOW"  # the server dropped us for lagging; resuming is the remedy
STREAM_REMOVED = "Stream removed"  # gRPC's details when the transport drops a stream


class ResumableStream(Generic[T]):
    """Iterate it for items; `last_sequence` is the sequence of the last item handed out (or where the stream
    started). After `policy.attempts_max` reconnects in a row that deliver nothing, it raises TallyError.
    `cancel()` (from any thread) ends the iteration."""

    def __init__(self, open_call: Callable[[int | None], grpc.Call], sequence_of: Callable[[T], int],
                 from_sequence: int | None, policy: RetryPolicy, rng: random.Random) -> None:
        self._open = open_call
        self._sequence_of = sequence_of
        self._policy = policy
        self._rng = rng
        self._lock = threading.Lock()
        self._call: grpc.Call | None = None
        self._cancelled = False
        self.last_sequence = from_sequence
        self.reconnects = 0

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._call is not None:
                self._call.cancel()

    def __iter__(self) -> Iterator[T]:
        failures = 0
        while True:
            with self._lock:
                if self._cancelled:
                    return
                self._call = call = self._open(self.last_sequence)
            try:
                self._position(call)
                for item in call:
                    failures = 0
                    self.last_sequence = self._sequence_of(item)
                    yield item
                error: grpc.RpcError | None = None  # a stream that ends is a server going away: resume
            except grpc.RpcError as exc:
                if self._cancelled:
                    return
                if not _resumable(exc):
                    raise TallyError.from_rpc(exc) from None
                error = exc
            failures += 1
            if failures >= self._policy.attempts_max:
                if error is not None:
                    raise TallyError.from_rpc(error, attempts=failures) from None
                raise TallyError(grpc.StatusCode.UNAVAILABLE, "the stream kept ending", attempts=failures)
            self.reconnects += 1
            time.sleep(self._policy.backoff_s(failures - 1, self._rng))

    def _position(self, call: grpc.Call) -> None:
        """A stream "from now" learns where now is from its first headers, so a resume misses nothing even
        when the disconnect comes before the first item."""
        if self.last_sequence is not None:
            return
        for key, value in call.initial_metadata() or ():
            if key == AFTER_SEQUENCE_HEADER:
                self.last_sequence = int(value)


def _resumable(error: grpc.RpcError) -> bool:
    """Reading again from the last sequence repeats nothing, so any end the server or the network caused
    resumes. A server that goes away with the stream open can end it CANCELLED (the consumer's own cancel
    returns before this is asked) or UNKNOWN "Stream removed" (gRPC's transport; grpc/grpc#34076). Other
    UNKNOWN ends are a failure of the server's code and raise."""
    code = error.code()
    if code in RETRYABLE_CODES or code == grpc.StatusCode.CANCELLED:
        return True
    if code == grpc.StatusCode.UNKNOWN:
        return error.details() == STREAM_REMOVED
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED and TallyError.from_rpc(error).reason == TOO_SLOW_REASON
