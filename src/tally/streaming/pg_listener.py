"""PostgreSQL LISTEN: how a stream on this process hears about commits made by other processes.

Every write transaction that adds events runs `pg_notify('tally_events', tenant_id)`; PostgreSQL delivers
it at commit. One dedicated connection per process listens and wakes the hub's feed of that tenant. A
notification only says "read again": the feeds read by cursor, so a lost one costs latency (the hub's poll
still catches up), never a gap. After a reconnect every feed reads again, since notifications sent while
the connection was down are gone.
"""

from __future__ import annotations

import asyncio
import logging
import random

import psycopg
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import make_url

from tally.storage.ledger_repo import EVENTS_CHANNEL
from tally.streaming.hub import EventHub
from tally.streaming.waits import woken_within

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
FIRST_CONNECT_WAIT_S = 5
BACKOFF_MS = 100
BACKOFF_MAX_MS = 5_000
# Finds a peer that vanished without closing the TCP connection within about a minute.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def libpq_url(sqlalchemy_url: str) -> str:
    """`postgresql+psycopg://...` (SQLAlchemy) -> `postgresql://...` (libpq), password kept. A multi-host URL
    (`?host=a:5432&host=b:5432&target_session_attrs=read-write`, for failover) becomes a conninfo string
    with libpq's comma-separated hosts and ports, as the driver gets it: libpq reads a repeated URI
    parameter as the last one only."""
    url = make_url(sqlalchemy_url)
    if isinstance(url.query.get("host"), tuple):
        _, params = PGDialect_psycopg().create_connect_args(url)
        return psycopg.conninfo.make_conninfo(**params)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def backoff_s(attempt: int) -> float:
    """Full-jitter exponential backoff for reconnect attempt `attempt` (1, 2, ...), bounded."""
    ceiling_ms = min(BACKOFF_MAX_MS, BACKOFF_MS * 2 ** min(attempt - 1, 16))
    return random.uniform(ceiling_ms / 2, ceiling_ms) / 1000


class PgListener:
    def __init__(self, database_url: str, hub: EventHub) -> None:
        self.conninfo = libpq_url(database_url)
        self.hub = hub
        self.connected = asyncio.Event()
        self.connects = 0  # successful LISTENs so far (1 + reconnects)
        self.backend_pid: int | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Starts listening; waits a little for the first connection, but never fails the start-up on it:
        the connection is retried in the background and the hub's poll covers the meantime."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pg-event-listener")
        if not await woken_within(self.connected, FIRST_CONNECT_WAIT_S):
            log.warning("event listener: no PostgreSQL connection yet; retrying in the background")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        attempt = 0
        while True:
            connects = self.connects
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                log.warning("event listener: %s", exc)
            finally:
                self.connected.clear()
                self.backend_pid = None
            attempt = 1 if self.connects > connects else attempt + 1  # a working connection resets it
            await asyncio.sleep(backoff_s(attempt))

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True,
                                                     connect_timeout=CONNECT_TIMEOUT_S, **KEEPALIVE)
        async with conn:
            await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
            self.backend_pid = conn.info.backend_pid
            self.connects += 1
            self.connected.set()
            self.hub.wake_all()  # whatever was committed while we were not listening
            async for note in conn.notifies():
                self.hub.wake_in_loop((note.payload,))
