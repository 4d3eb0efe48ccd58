"""The composition root: the only module that wires settings, storage, services and the server."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from tally import logs, metrics, telemetry
from tally.api.server import GrpcServer
from tally.config import ConfigError, Settings
from tally.console.server import ConsoleServer
from tally.domain.auth import Role
from tally.domain.calendar import AccountingCalendar
from tally.domain.errors import LedgerError
from tally.domain.vouchers import EffectiveWindow
from tally.rules import RuleSet, load_default_rule_set, load_rule_set
from tally.rules.loader import RuleSetError
from tally.service.auth import keys
from tally.service.auth.audit import AuditLog
from tally.service.auth.authn import Authenticator
from tally.service.auth.jwt_keys import KeyFileError, load_jwks_keys, load_pem_keys
from tally.service.auth.jwt_tokens import JwtConfig
from tally.service.books.auditor import Auditor
from tally.service.books.days import DayBook
from tally.service.books.interest import InterestBook
from tally.service.books.statements import StatementBook
from tally.service.books.summaries import SummaryBook
from tally.service.container import Services
from tally.service.controls import ControlBook
from tally.service.hierarchy import Hierarchy
from tally.service.posting.controls import template_controls
from tally.service.posting.expiry import HoldExpirer
from tally.service.posting.handlers import Posting
from tally.service.posting.pipeline import PipelineLimits, PostingPipeline, now_us
from tally.service.posting.templates import template_opener
from tally.service.queries import Queries
from tally.service.settlement.payouts import PayoutConfig, Payouts
from tally.service.settlement.reconciliation import Reconciliation
from tally.service.sweeps import DaySweeps
from tally.service.webhooks.manage import WebhookAdmin
from tally.service.webhooks.secrets import SecretBox, check_key
from tally.storage import system_repo
from tally.storage.engine import Engines, make_engines
from tally.storage.migrate import migrate
from tally.storage.replica import LaggingReads
from tally.storage.roles import may_administer, may_migrate, row_security_bypass
from tally.storage.uow import Scope, UnitOfWork
from tally.streaming.hub import EventHub
from tally.streaming.pg_listener import PgListener
from tally.streaming.webhooks.dispatcher import WebhookDispatcher
from tally.streaming.webhooks.sender import Sender

log = logging.getLogger("tally")
LOCAL_TENANT = "local"


def build_services(settings: Settings, engines: Engines) -> Services:
    uow = UnitOfWork(engines, retries_max=settings.retries_max)
    calendar = AccountingCalendar(settings.day_cutoff_offset_minutes)
    rules = load_rules(settings)
    controls = ControlBook(uow, now_us, template_controls(rules))
    pipeline = PostingPipeline(uow, calendar, PipelineLimits(
        batch_size_max=settings.batch_size_max, linger_ms=settings.linger_ms,
        queue_depth_max=settings.queue_depth_max, tenant_submissions_max=settings.tenant_submissions_max,
        writers=settings.writers if engines.dialect == "postgresql" else 1,
        memory_accounts_max=settings.writer_memory_accounts_max),
        opener=template_opener(rules, settings.currencies), controls=controls)
    window = EffectiveWindow(settings.effective_time_past_max_s, settings.effective_time_future_max_s)
    posting = Posting(pipeline, uow, rules, settings.currencies, now_us, window)
    expirer = HoldExpirer(uow, pipeline, now_us, interval_s=settings.hold_expiry_interval_s)
    hub = EventHub(uow, settings)
    uow.after_commit.append(hub.wake)  # called in the writing thread after each commit that wrote events
    authenticator = Authenticator(uow, jwt_config(settings), cache_ttl_s=settings.auth_cache_ttl_s)
    audit_log = AuditLog(uow)
    auditor = Auditor(uow, now_us, audit_log, interval_s=settings.audit_interval_s)
    webhooks, dispatcher = build_webhooks(settings, uow, hub)
    interest = InterestBook(uow, posting, rules.interest, frozenset(settings.currencies), now_us)
    days = DayBook(uow, calendar, now_us, auto=settings.day_close_auto, grace_s=settings.day_close_grace_s,
                   interval_s=settings.day_close_interval_s, interest=interest, summarize=rules.summaries,
                   sweeps=DaySweeps(uow, pipeline).run)
    reconciliation = Reconciliation(uow, posting, rules, settings.currencies, now_us)
    payouts = Payouts(uow, posting, rules, settings.currencies, calendar, now_us,
                      PayoutConfig(settings.payout_settlement_days, settings.bank_holidays))
    lagging = LaggingReads.connect(uow, settings.read_database_url, pool_size=settings.db_pool_size,
                                   wait_ms_max=settings.replica_wait_ms_max)
    return Services(settings, uow, pipeline, Queries(uow, calendar, now_us, lagging), now_us, hub, posting, expirer,
                    authenticator, audit_log, auditor, Hierarchy(uow, calendar, now_us), webhooks, dispatcher,
                    days, StatementBook(uow, calendar, lagging), SummaryBook(uow), reconciliation, payouts,
                    controls)


def build_webhooks(settings: Settings, uow: UnitOfWork, hub: EventHub) -> tuple[WebhookAdmin, WebhookDispatcher]:
    """Subscriptions and their delivery: woken with the streams (this process's commits, other processes'
    NOTIFY), and by changes to a subscription."""
    check_key(settings.webhook_key)
    box = SecretBox(settings.webhook_key, settings.webhook_key_file)
    sender = Sender(connect_timeout_ms=settings.webhook_connect_timeout_ms,
                    read_timeout_ms=settings.webhook_read_timeout_ms,
                    response_bytes_max=settings.webhook_response_bytes_max,
                    allowed_networks=settings.webhook_allowed_networks)
    dispatcher = WebhookDispatcher(uow, settings, now_us, sender, box.open)
    hub.listeners.append(dispatcher.wake_in_loop)
    return WebhookAdmin(uow, settings, box, now_us, wake=dispatcher.changed), dispatcher


def jwt_config(settings: Settings) -> JwtConfig | None:
    """The JWT verification settings, or None when only API keys are accepted; checked at start-up."""
    if not (settings.jwt_secret or settings.jwt_public_key_file or settings.jwt_jwks_file):
        return None
    algorithms = frozenset(a.strip() for a in settings.jwt_algorithms.split(","))
    keys = []
    for variable, path, load in (("TALLY_JWT_PUBLIC_KEY_FILE", settings.jwt_public_key_file, load_pem_keys),
                                 ("TALLY_JWT_JWKS_FILE", settings.jwt_jwks_file, load_jwks_keys)):
        try:
            keys += load(path) if path else ()
        except KeyFileError as exc:
            raise ConfigError(f"{variable}: {exc}") from exc
    try:
        return JwtConfig(settings.jwt_secret.encode(), algorithms, settings.jwt_issuer, settings.jwt_audience,
                         public_keys=tuple(keys), lifetime_max_s=settings.jwt_lifetime_max_s)
    except ValueError as exc:
        raise ConfigError(f"TALLY_JWT_*: {exc}") from exc


def ensure_local_admin(services: Services) -> None:
    """Zero set-up: on the first start of an empty ledger, a tenant `local` and an admin key for it, written
    to a file only its owner can read (the key is not logged). A PostgreSQL service role may not create
    tenants or keys: the start is refused, saying what the operator does instead."""
    settings = services.settings
    if not settings.bootstrap_admin or services.uow.read(Scope.SYSTEM, system_repo.tenant_count) > 0:
        return
    with services.uow.engines.write.connect() as conn:
        allowed = may_administer(conn)
    if not allowed:
        raise ConfigError(FIRST_START_REFUSED)
    try:
        keys.create_tenant(services.uow, LOCAL_TENANT, "local tenant created at first start", now_us)
    except LedgerError:
        return  # another process created it first
    issued = keys.create_key(services.uow, LOCAL_TENANT, Role.ADMIN, "first-start admin", "bootstrap", now_us)
    path = Path(settings.admin_key_file)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(issued.secret_key + "\n")
    log.warning("created tenant %r and an admin API key in %s; use it with: export TALLY_API_KEY=$(cat %s)",
                LOCAL_TENANT, path.resolve(), path)


FIRST_START_REFUSED = (
    "TALLY_BOOTSTRAP_ADMIN: the database has no tenant, and the role of TALLY_DATABASE_URL (the service role) may "
    "not create tenants or API keys. As the schema owner, create them: `tally tenants create ID` and `tally keys "
    "create --tenant ID --role admin` with TALLY_MIGRATE_DATABASE_URL set (or --database-url); or set "
    "TALLY_BOOTSTRAP_ADMIN=false (see README, Tenant isolation)")


def load_rules(settings: Settings) -> RuleSet:
    """The rule set to post with; an invalid file stops the server before it serves anything."""
    if not settings.rules_file:
        return load_default_rule_set()
    try:
        return load_rule_set(settings.rules_file)
    except (OSError, RuleSetError) as exc:
        problem = "; ".join(str(exc).splitlines()) if isinstance(exc, RuleSetError) else exc.strerror
        raise ConfigError(f"TALLY_RULES_FILE={settings.rules_file!r}: {problem}") from exc


@dataclass
class App:
    settings: Settings
    engines: Engines
    services: Services
    server: GrpcServer
    listener: PgListener | None = None
    metrics_endpoint: telemetry.MetricsEndpoint | None = None
    console: ConsoleServer | None = None

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        """Health NOT_SERVING (balancers stop sending), streams end (they would hold the drain for the
        whole grace period), in-flight calls drain, queued postings finish, connections close."""
        await self.server.health.enter_graceful_shutdown()
        if self.console is not None:
            await asyncio.to_thread(self.console.close)
        await _stop_streams(self.services.hub, self.listener)
        await self.services.dispatcher.stop()
        await self.server.stop()
        await _stop_writers(self.services, self.engines)
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()


async def _start_streams(services: Services, engines: Engines, settings: Settings) -> PgListener | None:
    await services.hub.start()
    if settings.webhook_delivery:
        await services.dispatcher.start()
    if engines.dialect != "postgresql":
        return None  # SQLite serves one process: the after-commit wake-ups see every commit
    listener = PgListener(settings.database_url, services.hub)
    await listener.start()
    return listener


async def _stop_streams(hub: EventHub, listener: PgListener | None) -> None:
    await hub.stop()
    if listener is not None:
        await listener.stop()


async def _stop_writers(services: Services, engines: Engines) -> None:
    """No new expiries or audits, every queued posting written, every audit row flushed, then the connections
    go."""
    await services.days.stop()
    await services.auditor.stop()
    await services.expirer.stop()
    await services.pipeline.stop()
    await services.audit.stop()
    services.queries.lagging.dispose()
    engines.dispose()


def check_row_security(engines: Engines, settings: Settings) -> None:
    """A PostgreSQL role that is a superuser or has BYPASSRLS skips every tenant policy: a warning, and in
    production a refusal to start."""
    with engines.write.connect() as conn:
        bypass = row_security_bypass(conn)
    if not bypass:
        return
    if settings.env == "production":
        raise ConfigError(f"TALLY_ENV=production: TALLY_DATABASE_URL's {bypass}, so row security does not bind "
                          "it; run the server as a role that owns nothing (see README, Tenant isolation)")
    log.warning("TALLY_DATABASE_URL's %s: row security does not bind it, and tenants are kept apart by the "
                "queries alone; run the server as a role that owns nothing (TALLY_ENV=production refuses this)",
                bypass)


def auto_migrate(engines: Engines) -> None:
    """Migrates at start-up, unless the service connects as a role that cannot: a PostgreSQL service role
    that owns nothing, for which `tally migrate` runs as the owner (and grants the role; replicas starting
    together do not race to GRANT), and TALLY_AUTO_MIGRATE=false says so."""
    with engines.write.connect() as conn:
        allowed = may_migrate(conn)
    if not allowed:
        log.warning("not migrating at start-up: the database role of TALLY_DATABASE_URL does not own the schema "
                    "(run `tally migrate` as the owner, and set TALLY_AUTO_MIGRATE=false for this deployment)")
        return
    migrate(engines.write)


async def start(settings: Settings) -> App:
    if settings.unsafe_isolation:
        log.warning("TALLY_UNSAFE_ISOLATION=%s: writers run weakened, without locks; a test setting only",
                    settings.unsafe_isolation)
    engines = make_engines(settings.database_url, pool_size=settings.db_pool_size,
                           unsafe_isolation=settings.unsafe_isolation)
    try:
        await asyncio.to_thread(check_row_security, engines, settings)
    except BaseException:
        engines.dispose()
        raise
    if settings.auto_migrate:
        await asyncio.to_thread(auto_migrate, engines)
    services = build_services(settings, engines)
    try:
        await asyncio.to_thread(ensure_local_admin, services)
    except BaseException:
        engines.dispose()
        raise
    services.audit.start()
    services.pipeline.start()
    services.expirer.start()
    services.auditor.start()
    services.days.start()
    listener = endpoint = console = None
    try:
        endpoint = telemetry.meter_provider(settings.otel_exporter, settings.metrics_address)
        metrics.observe(services.pipeline.queue_depth, lambda: services.hub.subscriber_count,
                        lambda: services.expirer.expired, services.auditor.findings_by_tenant)
        services.uow.on_retry.append(metrics.write_retried)
        listener = await _start_streams(services, engines, settings)
        server = GrpcServer(services)
        await server.start()
        console = start_console(services)
    except BaseException:
        if console is not None:
            console.close()
        await _stop_streams(services.hub, listener)
        await services.dispatcher.stop()
        await _stop_writers(services, engines)
        if endpoint is not None:
            endpoint.close()
        raise
    return App(settings, engines, services, server, listener, endpoint, console)


def start_console(services: Services) -> ConsoleServer | None:
    """The read-only web console, when TALLY_CONSOLE_ADDRESS asks for it."""
    address = services.settings.console_address
    if not address:
        return None
    console = ConsoleServer(services, address, asyncio.get_running_loop())
    log.info("web console on %s (port %d)", address, console.port)
    return console


# The cyclic garbage collector's young-generation threshold in serve. A batch of 1,000 vouchers allocates
# a few hundred thousand objects, nearly all freed by reference counting; at the default of 700 the
# collector ran every few vouchers, scanning the batch's live objects again each time. 20,000 took PostBatch
# 1000 from 2,800 to 3,200 vouchers/s (PostgreSQL) and 2,900 to 3,200 (SQLite). Collections still run, and
# the memory soak (bench/run.py --soak-s) checks that memory stays flat.
GC_YOUNG_OBJECTS = 20_000


def tune_gc() -> None:
    """Moves what start-up made (modules, rule set, services) out of the collector's view, for good, and
    lets the young generation grow before a collection."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_OBJECTS, middle, old)


async def _serve(settings: Settings) -> None:
    app = await start(settings)
    tune_gc()
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
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(_serve(settings))
    return 0
