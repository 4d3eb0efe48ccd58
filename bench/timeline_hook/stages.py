"""The timeline hook's wrappers (see sitecustomize.py in this folder and bench/timeline.py)."""

from __future__ import annotations

import collections
import functools
import json
import os
import signal
import time

RECORDS_MAX = 2_000_000
_records: collections.deque = collections.deque(maxlen=RECORDS_MAX)


def note(stage: str, started_ns: int, items: int = 1) -> None:
    ended = time.monotonic_ns()
    _records.append((stage, ended, ended - started_ns, items))  # deque.append is atomic: threads share it


def dump(path: str) -> None:
    """Writes what is held to `path` and forgets it."""
    held = [_records.popleft() for _ in range(len(_records))]
    temporary = f"{path}.tmp"
    with open(temporary, "w") as f:
        json.dump(held, f)
    os.replace(temporary, path)


def _timed(stage: str, function, items=None):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.monotonic_ns()
        try:
            return function(*args, **kwargs)
        finally:
            note(stage, started, items(*args) if items else 1)

    return wrapper


def _timed_async(stage: str, function):
    @functools.wraps(function)
    async def wrapper(*args, **kwargs):
        started = time.monotonic_ns()
        try:
            return await function(*args, **kwargs)
        finally:
            note(stage, started)

    return wrapper


def install(path: str) -> None:
    from tally.api import auth_interceptor
    from tally.service.posting import pipeline
    from tally.storage import uow

    interceptor = auth_interceptor.AuthInterceptor
    unary = interceptor._unary
    interceptor._unary = lambda self, method, inner, deserialize: _timed_async(
        "call", unary(self, method, inner, deserialize))
    pipeline.PostingPipeline.submit_many = _timed_async("pipeline", pipeline.PostingPipeline.submit_many)
    pipeline.write_batch = _timed("apply", pipeline.write_batch, items=lambda conn, subs, *rest: len(subs))
    uow.UnitOfWork.write = _timed("transaction", uow.UnitOfWork.write)
    uow.commit = _timed("commit", uow.commit)
    signal.signal(signal.SIGUSR1, lambda *_: dump(path))
