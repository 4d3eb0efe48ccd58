"""Experiment, not used by the server: the posting pipeline's writer in a process of its own.

One process runs everything under one GIL, and the writer thread waits for the GIL while the event loop
serves calls. This measures what a writer with a GIL of its own gives on this machine. `serve` runs
`tally serve` with its pipeline replaced by `ProcessPipeline`: the server process maps and checks each
request as usual and sends the submissions, pickled, to a spawned child, which runs the real
`PostingPipeline` (same batching, same transaction, same writer thread) and sends the outcomes back.
Streams, the hold expirer and account creation are not part of what it measures.

    .venv/bin/python bench/writer_process.py bench --duration-s 10 --only post-uniform-16   # the harness
    .venv/bin/python bench/writer_process.py serve                                          # the server alone

`bench` takes bench/run.py's arguments. Figures and what they showed: bench/README.md.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "src")]

from tally.domain.errors import ErrorKind, LedgerError  # noqa: E402

# An outcome that is a LedgerError crosses the pipe as this tuple: the exception's own pickling
# would call its constructor with the message alone.
_ERROR = "error"


def _error_out(error: LedgerError) -> tuple:
    return (_ERROR, error.kind.value, error.reason, error.message, error.metadata)


def _error_in(wire: tuple) -> LedgerError:
    error = LedgerError(ErrorKind(wire[1]), wire[2], wire[3])
    error.metadata = wire[4]
    return error


def _is_error(item: object) -> bool:
    return isinstance(item, tuple) and len(item) == 5 and item[0] == _ERROR


def _child(conn: Connection) -> None:
    """The writer process: the real pipeline, fed from the pipe."""
    from tally.bootstrap import load_rules, template_opener, tune_gc
    from tally.config import Settings
    from tally.domain.calendar import AccountingCalendar
    from tally.service.posting.pipeline import PipelineLimits, PostingPipeline
    from tally.storage.engine import make_engines
    from tally.storage.uow import UnitOfWork

    settings = Settings.from_env()
    uow = UnitOfWork(make_engines(settings.database_url, pool_size=settings.db_pool_size),
                     retries_max=settings.retries_max)
    limits = PipelineLimits(settings.batch_size_max, settings.linger_ms, settings.queue_depth_max)
    pipeline = PostingPipeline(uow, AccountingCalendar(settings.day_cutoff_offset_minutes), limits,
                               opener=template_opener(load_rules(settings), settings.currencies))
    sending = threading.Lock()

    async def answer(message_id: int, subs: list) -> None:
        try:
            outcomes = await pipeline.submit_many(subs)
            reply: object = [_error_out(o) if isinstance(o, LedgerError) else o for o in outcomes]
        except LedgerError as error:
            reply = _error_out(error)
        with sending:
            conn.send((message_id, reply))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pipeline.start()
        tune_gc()
        closed = loop.create_future()

        def receive() -> None:
            while (message := conn.recv()) is not None:
                loop.call_soon_threadsafe(loop.create_task, answer(*message))
            loop.call_soon_threadsafe(closed.set_result, None)

        threading.Thread(target=receive, name="pipe-reader", daemon=True).start()
        await closed
        await pipeline.stop()

    asyncio.run(main())


class ProcessPipeline:
    """`PostingPipeline`'s interface, in the server process; the writing happens in the child."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._sending = threading.Lock()

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(target=_child, args=(child_end,), name="tally-writer", daemon=True)
        self._process.start()
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._receive, name="pipe-reader", daemon=True).start()

    def _receive(self) -> None:
        while True:
            try:
                message_id, reply = self._conn.recv()
            except EOFError:
                return
            self._loop.call_soon_threadsafe(self._deliver, message_id, reply)

    def _deliver(self, message_id: int, reply: object) -> None:
        future = self._waiting.pop(message_id)
        if future.done():
            return
        if _is_error(reply):
            future.set_exception(_error_in(reply))
        else:
            future.set_result([_error_in(o) if _is_error(o) else o for o in reply])

    async def submit(self, sub):
        return (await self.submit_many([sub]))[0]

    async def submit_many(self, subs: list) -> list:
        message_id = next(self._ids)
        future = self._loop.create_future()
        self._waiting[message_id] = future
        with self._sending:
            self._conn.send((message_id, subs))
        return await future

    async def stop(self) -> None:
        with self._sending:
            self._conn.send(None)
        await asyncio.to_thread(self._process.join, 30)


def serve() -> int:
    from tally import bootstrap
    from tally.cli import main

    bootstrap.PostingPipeline = lambda *_args, **_kwargs: ProcessPipeline()
    return main(["serve"])


def bench(argv: list[str]) -> int:
    from bench import harness, tally_server

    tally_server.SERVE_COMMAND = [sys.executable, str(Path(__file__).resolve()), "serve"]
    return harness.main(argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        sys.exit(serve())
    if sys.argv[1:2] == ["bench"]:
        sys.exit(bench(sys.argv[2:]))
    sys.exit(__doc__)
