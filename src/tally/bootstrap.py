"""The composition root: the only module that wires settings, storage, services and the server."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from tally.api.server import GrpcServer
from tally.config import Settings
from tally.domain.calendar import AccountingCalendar
from tally.service.container import Services
from tally.service.pipeline import PipelineLimits, PostingPipeline, now_us
from tally.service.queries import Queries
from tally.storage.engine import Engines, make_engines
from tally.storage.migrate import migrate
from tally.storage.uow import UnitOfWork

log = logging.getLogger("tally")


def build_services(settings: Settings, engines: Engines) -> Services:
    uow = UnitOfWork(engines, retries_max=settings.retries_max)
    calendar = AccountingCalendar(settings.day_cutoff_offset_minutes)
    pipeline = PostingPipeline(uow, calendar, PipelineLimits(
        batch_size_max=settings.batch_size_max, linger_ms=settings.linger_ms,
        queue_depth_max=settings.queue_depth_max))
    return Services(settings, uow, pipeline, Queries(uow, calendar, now_us), now_us)


@dataclass
class App:
    settings: Settings
    engines: Engines
    services: Services
    server: GrpcServer

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        await self.server.stop()
        await self.services.pipeline.stop()
        self.engines.dispose()


async def start(settings: Settings) -> App:
    engines = make_engines(settings.database_url, pool_size=settings.db_pool_size)
    if settings.auto_migrate:
        await asyncio.to_thread(migrate, engines.write)
    services = build_services(settings, engines)
    services.pipeline.start()
    server = GrpcServer(services)
    await server.start()
    return App(settings, engines, services, server)


async def _serve(settings: Settings) -> None:
    app = await start(settings)
    log.info("tally serving on port %d (database: %s)", app.port, engines_label(settings.database_url))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("stopping: draining for up to %ds", settings.shutdown_grace_s)
    await app.stop()


def engines_label(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def serve_forever(settings: Settings) -> int:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(settings))
    return 0
