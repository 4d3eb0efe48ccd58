"""Bounded retries with exponential backoff and full jitter, for calls that are safe to repeat."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from tally_client.errors import TallyError

T = TypeVar("T")

# UNAVAILABLE: no connection, or it broke (the call may or may not have run); ABORTED: the server gave up on
# a conflict (serialization retries exhausted); DEADLINE_EXCEEDED: no answer in time. Each may have left the
# call done on the server, so only calls whose repetition changes nothing are retried.
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED,
                             grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class RetryPolicy:
    attempts_max: int = 10  # tries in all, the first included: about 4.6 s of waits on average, 9 s at most,
    # so that a call rides out a server restart (its channel reconnects at most every 2 s)
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0
    backoff_multiplier: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.attempts_max <= 100:
            raise ValueError("attempts_max: expected 1..100")
        if not 0 <= self.backoff_initial_s <= self.backoff_max_s <= 60:
            raise ValueError("expected 0 <= backoff_initial_s <= backoff_max_s <= 60")

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, initial * multiplier**retry)], so clients that failed
        together do not come back together."""
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * self.backoff_multiplier ** min(retry, 32))
        return rng.uniform(0, ceiling)


NO_RETRY = RetryPolicy(attempts_max=1)


def call_with_retry(attempt: Callable[[], T], policy: RetryPolicy, rng: random.Random,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """Runs `attempt` until it succeeds, fails with a code that is not retryable, or the tries run out; a
    failure comes out as TallyError."""
    for tries in range(1, policy.attempts_max + 1):
        try:
            return attempt()
        except grpc.RpcError as error:
            if error.code() not in RETRYABLE_CODES or tries == policy.attempts_max:
                raise TallyError.from_rpc(error, attempts=tries) from None
        sleep(policy.backoff_s(tries - 1, rng))
    raise AssertionError("unreachable: the loop returns or raises")
