"""Settings from the environment, validated once at start-up: a bad value stops the server with a
message naming the variable."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tally.domain.money import DEFAULT_CURRENCIES, Currency, parse_currencies
from tally.domain.webhooks import parse_networks


class ConfigError(ValueError):
    pass


_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


PROCESSES_MAX = 64  # serving processes of one `tally serve`

@dataclass(frozen=True)
class Settings:
    env: str = "development"  # "production" refuses what development only warns about (see README)
    database_url: str = "sqlite:///tally.db"
    migrate_database_url: str = ""  # `tally migrate` connects with it (the schema owner); empty: database_url
    read_database_url: str = ""  # a PostgreSQL hot standby for reads that may lag; empty: the primary
    replica_wait_ms_max: int = 2_000  # how long such a read waits for the replica to reach the sequence it names
    service_role: str = ""  # PostgreSQL role the service runs as; `tally migrate` grants it what it needs
    listen_address: str = "0.0.0.0:50051"
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one object per line (see logs.py)
    metrics_address: str = ""  # host:port of the Prometheus scrape endpoint; empty: none
    console_address: str = ""  # host:port of the read-only web console; empty: none
    auto_migrate: bool = True
    currencies: dict[str, Currency] = field(default_factory=lambda: parse_currencies(DEFAULT_CURRENCIES))
    day_cutoff_offset_minutes: int = 0
    batch_size_max: int = 1000
    linger_ms: int = 0
    queue_depth_max: int = 20_000
    tenant_submissions_max: int = 10_000  # one tenant's submissions queued or being written
    writers: int = 4  # posting writer threads (PostgreSQL; SQLite has one writer at a time, so one)
    writer_memory_accounts_max: int = 20_000  # accounts each writer remembers from its commits; 0: none
    processes: int = 1  # serving processes sharing the listen port (PostgreSQL; see supervisor.py)
    reuse_port: bool = False  # listen with SO_REUSEPORT, beside other processes on the same port
    retries_max: int = 8
    db_pool_size: int = 8
    rpc_concurrency_max: int = 4096
    shutdown_grace_s: int = 10
    otel_exporter: str = "none"
    bootstrap_admin: bool = True  # first start with no tenant: create tenant `local` and an admin key
    admin_key_file: str = "tally-admin.key"
    jwt_secret: str = ""  # with no secret and no key file, only API keys are accepted
    jwt_public_key_file: str = ""  # PEM public keys or certificates that verify RS*/PS*/ES*/EdDSA tokens
    jwt_jwks_file: str = ""  # the same as a JWKS document (RFC 7517), keys picked by kid
    jwt_algorithms: str = "HS256"
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_lifetime_max_s: int = 86_400  # a token whose exp lies further ahead than this is refused
    auth_cache_ttl_s: int = 5
    tls_cert_file: str = ""  # PEM certificate chain; with tls_key_file the port speaks TLS only
    tls_key_file: str = ""  # PEM private key (unencrypted) of that certificate
    tls_client_ca_file: str = ""  # PEM CA certificates: clients must present a certificate they signed (mTLS)
    rules_file: str = ""  # empty: the default rule set that ships with Tally
    hold_expiry_interval_s: int = 1
    effective_time_past_max_s: int = 400 * 86_400  # how far back a voucher's effective time may lie
    effective_time_future_max_s: int = 7 * 86_400  # and how far ahead
    page_bytes_max: int = 1024 * 1024  # a List page stops before its items pass this many encoded bytes
    audit_interval_s: int = 0  # the scheduled ledger audit of every tenant; 0: never
    day_close_auto: bool = False  # the server closes each day itself, day_close_grace_s after its cut-off
    day_close_grace_s: int = 300
    day_close_interval_s: int = 60  # how often the scheduled close looks for a due day
    stream_subscribers_max: int = 1000
    stream_subscribers_per_tenant_max: int = 250  # one tenant's share of the server's streams
    stream_subscribers_per_key_max: int = 50  # one API key's (or token subject's) share of its tenant's
    stream_lag_events_max: int = 10_000
    stream_idle_poll_s: int = 5
    stream_page_size: int = 500
    unsafe_isolation: str = ""  # the reliability suite's control run only: weakens PostgreSQL writers
    webhook_delivery: bool = True  # this process delivers webhooks (takes leases); the API works either way
    webhook_key: str = ""  # Fernet key that encrypts signing secrets; every replica needs the same one
    webhook_key_file: str = "tally-webhook.key"  # used (and created) when webhook_key is empty
    webhook_http_hosts: str = ""  # hosts a subscription may reach over plain http, comma-separated
    webhook_allowed_networks: str = ""  # CIDRs exempt from the deny list of non-public addresses
    webhook_subscriptions_per_tenant_max: int = 20
    webhook_deliveries_in_flight_per_tenant_max: int = 8  # concurrent HTTP requests per tenant and process
    webhook_payload_bytes_max: int = 256 * 1024  # a larger event is sent without its payload (truncated)
    webhook_response_bytes_max: int = 4096  # of a receiver's answer, read and kept
    webhook_connect_timeout_ms: int = 5_000
    webhook_read_timeout_ms: int = 10_000
    webhook_attempts_max: int = 12  # failed attempts at one event before the subscription is paused
    webhook_backoff_ms: int = 1_000  # first wait after a failure, doubled each time, with jitter
    webhook_backoff_max_ms: int = 3_600_000
    webhook_lease_s: int = 15  # a dead process's subscriptions move to another after this
    webhook_poll_ms: int = 1_000  # safety re-read of idle subscriptions and new leases
    webhook_leases_max: int = 200  # subscriptions one process delivers at once
    webhook_secret_overlap_max_s: int = 7 * 86_400  # the longest an old secret may keep signing after rotation
    bank_holidays: frozenset[str] = frozenset()  # payouts: dates the bank does not settle on, besides weekends
    payout_settlement_days: int = 1  # payouts: business days from sending a batch to its expected settlement
    payout_debtor_name: str = "Tally platform"  # payouts: the debtor of exported bank instructions (pain.001)
    payout_debtor_iban: str = ""
    payout_debtor_bic: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        try:
            settings = cls(
                env=_choice(env, "TALLY_ENV", d.env, {"development", "production"}),
                database_url=_database_url(env, "TALLY_DATABASE_URL", d.database_url),
                migrate_database_url=_database_url(env, "TALLY_MIGRATE_DATABASE_URL", d.migrate_database_url),
                read_database_url=_database_url(env, "TALLY_READ_DATABASE_URL", d.read_database_url),
                replica_wait_ms_max=_int(env, "TALLY_REPLICA_WAIT_MS_MAX", d.replica_wait_ms_max, 0, 30_000),
                service_role=_role(env, "TALLY_SERVICE_ROLE", d.service_role),
                listen_address=(_address(env, "TALLY_LISTEN_ADDRESS", d.listen_address, unix_ok=True)
                                or d.listen_address),
                log_level=_choice(env, "TALLY_LOG_LEVEL", d.log_level, {"DEBUG", "INFO", "WARNING", "ERROR"}),
                log_format=_choice(env, "TALLY_LOG_FORMAT", d.log_format, {"text", "json"}),
                metrics_address=_address(env, "TALLY_METRICS_ADDRESS", d.metrics_address),
                console_address=_address(env, "TALLY_CONSOLE_ADDRESS", d.console_address),
                auto_migrate=_bool(env, "TALLY_AUTO_MIGRATE", d.auto_migrate),
                currencies=_currencies(env, "TALLY_CURRENCIES"),
                day_cutoff_offset_minutes=_int(env, "TALLY_DAY_CUTOFF_OFFSET_MINUTES", 0, -1439, 1439),
                batch_size_max=_int(env, "TALLY_BATCH_SIZE_MAX", d.batch_size_max, 1, 10_000),
                linger_ms=_int(env, "TALLY_LINGER_MS", d.linger_ms, 0, 1000),
                queue_depth_max=_int(env, "TALLY_QUEUE_DEPTH_MAX", d.queue_depth_max, 1, 1_000_000),
                tenant_submissions_max=_int(env, "TALLY_TENANT_SUBMISSIONS_MAX", d.tenant_submissions_max, 1_000,
                                            10_000_000),
                writers=_int(env, "TALLY_WRITERS", d.writers, 1, 32),
                writer_memory_accounts_max=_int(env, "TALLY_WRITER_MEMORY_ACCOUNTS_MAX",
                                                d.writer_memory_accounts_max, 0, 10_000_000),
                processes=_int(env, "TALLY_PROCESSES", d.processes, 1, PROCESSES_MAX),
                reuse_port=_bool(env, "TALLY_REUSE_PORT", d.reuse_port),
                retries_max=_int(env, "TALLY_RETRIES_MAX", d.retries_max, 0, 100),
                db_pool_size=_int(env, "TALLY_DB_POOL_SIZE", d.db_pool_size, 1, 200),
                rpc_concurrency_max=_int(env, "TALLY_RPC_CONCURRENCY_MAX", d.rpc_concurrency_max, 1, 100_000),
                shutdown_grace_s=_int(env, "TALLY_SHUTDOWN_GRACE_S", d.shutdown_grace_s, 0, 3600),
                otel_exporter=_choice(env, "TALLY_OTEL_EXPORTER", d.otel_exporter, {"none", "console"}),
                bootstrap_admin=_bool(env, "TALLY_BOOTSTRAP_ADMIN", d.bootstrap_admin),
                admin_key_file=env.get("TALLY_ADMIN_KEY_FILE", d.admin_key_file),
                jwt_secret=env.get("TALLY_JWT_SECRET", d.jwt_secret),
                jwt_public_key_file=env.get("TALLY_JWT_PUBLIC_KEY_FILE", d.jwt_public_key_file),
                jwt_jwks_file=env.get("TALLY_JWT_JWKS_FILE", d.jwt_jwks_file),
                jwt_algorithms=env.get("TALLY_JWT_ALGORITHMS", d.jwt_algorithms),
                jwt_issuer=env.get("TALLY_JWT_ISSUER", d.jwt_issuer),
                jwt_audience=env.get("TALLY_JWT_AUDIENCE", d.jwt_audience),
                jwt_lifetime_max_s=_int(env, "TALLY_JWT_LIFETIME_MAX_S", d.jwt_lifetime_max_s, 60, 31_536_000),
                auth_cache_ttl_s=_int(env, "TALLY_AUTH_CACHE_TTL_S", d.auth_cache_ttl_s, 0, 300),
                tls_cert_file=env.get("TALLY_TLS_CERT_FILE", d.tls_cert_file),
                tls_key_file=env.get("TALLY_TLS_KEY_FILE", d.tls_key_file),
                tls_client_ca_file=env.get("TALLY_TLS_CLIENT_CA_FILE", d.tls_client_ca_file),
                rules_file=env.get("TALLY_RULES_FILE", d.rules_file),
                hold_expiry_interval_s=_int(env, "TALLY_HOLD_EXPIRY_INTERVAL_S", d.hold_expiry_interval_s, 1, 3600),
                effective_time_past_max_s=_int(env, "TALLY_EFFECTIVE_TIME_PAST_MAX_S", d.effective_time_past_max_s,
                                               0, 100 * 366 * 86_400),
                effective_time_future_max_s=_int(env, "TALLY_EFFECTIVE_TIME_FUTURE_MAX_S",
                                                 d.effective_time_future_max_s, 0, 100 * 366 * 86_400),
                page_bytes_max=_int(env, "TALLY_PAGE_BYTES_MAX", d.page_bytes_max, 64 * 1024, 3 * 1024 * 1024),
                audit_interval_s=_int(env, "TALLY_AUDIT_INTERVAL_S", d.audit_interval_s, 0, 7 * 86_400),
                day_close_auto=_bool(env, "TALLY_DAY_CLOSE_AUTO", d.day_close_auto),
                day_close_grace_s=_int(env, "TALLY_DAY_CLOSE_GRACE_S", d.day_close_grace_s, 0, 86_400),
                day_close_interval_s=_int(env, "TALLY_DAY_CLOSE_INTERVAL_S", d.day_close_interval_s, 1, 3600),
                stream_subscribers_max=_int(env, "TALLY_STREAM_SUBSCRIBERS_MAX", d.stream_subscribers_max, 1,
                                            100_000),
                stream_subscribers_per_tenant_max=_int(env, "TALLY_STREAM_SUBSCRIBERS_PER_TENANT_MAX",
                                                       d.stream_subscribers_per_tenant_max, 1, 100_000),
                stream_subscribers_per_key_max=_int(env, "TALLY_STREAM_SUBSCRIBERS_PER_KEY_MAX",
                                                    d.stream_subscribers_per_key_max, 1, 100_000),
                stream_lag_events_max=_int(env, "TALLY_STREAM_LAG_EVENTS_MAX", d.stream_lag_events_max, 1,
                                           1_000_000),
                stream_idle_poll_s=_int(env, "TALLY_STREAM_IDLE_POLL_S", d.stream_idle_poll_s, 1, 3600),
                stream_page_size=_int(env, "TALLY_STREAM_PAGE_SIZE", d.stream_page_size, 1, 10_000),
                unsafe_isolation=_choice(env, "TALLY_UNSAFE_ISOLATION", d.unsafe_isolation,
                                         {"", "repeatable_read", "read_committed"}),
                **_webhook_settings(env, d),
                bank_holidays=_holidays(env, "TALLY_BANK_HOLIDAYS"),
                payout_settlement_days=_int(env, "TALLY_PAYOUT_SETTLEMENT_DAYS", d.payout_settlement_days, 0, 10),
                payout_debtor_name=env.get("TALLY_PAYOUT_DEBTOR_NAME", d.payout_debtor_name),
                payout_debtor_iban=env.get("TALLY_PAYOUT_DEBTOR_IBAN", d.payout_debtor_iban),
                payout_debtor_bic=env.get("TALLY_PAYOUT_DEBTOR_BIC", d.payout_debtor_bic),
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        check_tls(settings)
        check_webhooks(settings)
        check_replica(settings)
        return settings


def _webhook_settings(env: Mapping[str, str], d: Settings) -> dict:
    return dict(
        webhook_delivery=_bool(env, "TALLY_WEBHOOK_DELIVERY", d.webhook_delivery),
        webhook_key=env.get("TALLY_WEBHOOK_KEY", d.webhook_key),
        webhook_key_file=env.get("TALLY_WEBHOOK_KEY_FILE", d.webhook_key_file),
        webhook_http_hosts=env.get("TALLY_WEBHOOK_HTTP_HOSTS", d.webhook_http_hosts),
        webhook_allowed_networks=env.get("TALLY_WEBHOOK_ALLOWED_NETWORKS", d.webhook_allowed_networks),
        webhook_subscriptions_per_tenant_max=_int(env, "TALLY_WEBHOOK_SUBSCRIPTIONS_PER_TENANT_MAX",
                                                  d.webhook_subscriptions_per_tenant_max, 1, 10_000),
        webhook_deliveries_in_flight_per_tenant_max=_int(env, "TALLY_WEBHOOK_DELIVERIES_IN_FLIGHT_PER_TENANT_MAX",
                                                         d.webhook_deliveries_in_flight_per_tenant_max, 1, 1_000),
        webhook_payload_bytes_max=_int(env, "TALLY_WEBHOOK_PAYLOAD_BYTES_MAX", d.webhook_payload_bytes_max,
                                       1024, 16 * 1024 * 1024),
        webhook_response_bytes_max=_int(env, "TALLY_WEBHOOK_RESPONSE_BYTES_MAX", d.webhook_response_bytes_max,
                                        0, 1024 * 1024),
        webhook_connect_timeout_ms=_int(env, "TALLY_WEBHOOK_CONNECT_TIMEOUT_MS", d.webhook_connect_timeout_ms,
                                        10, 60_000),
        webhook_read_timeout_ms=_int(env, "TALLY_WEBHOOK_READ_TIMEOUT_MS", d.webhook_read_timeout_ms, 10, 300_000),
        webhook_attempts_max=_int(env, "TALLY_WEBHOOK_ATTEMPTS_MAX", d.webhook_attempts_max, 1, 100),
        webhook_backoff_ms=_int(env, "TALLY_WEBHOOK_BACKOFF_MS", d.webhook_backoff_ms, 1, 3_600_000),
        webhook_backoff_max_ms=_int(env, "TALLY_WEBHOOK_BACKOFF_MAX_MS", d.webhook_backoff_max_ms, 1, 86_400_000),
        webhook_lease_s=_int(env, "TALLY_WEBHOOK_LEASE_S", d.webhook_lease_s, 1, 3600),
        webhook_poll_ms=_int(env, "TALLY_WEBHOOK_POLL_MS", d.webhook_poll_ms, 10, 60_000),
        webhook_leases_max=_int(env, "TALLY_WEBHOOK_LEASES_MAX", d.webhook_leases_max, 1, 100_000),
        webhook_secret_overlap_max_s=_int(env, "TALLY_WEBHOOK_SECRET_OVERLAP_MAX_S",
                                          d.webhook_secret_overlap_max_s, 0, 30 * 86_400),
    )


def check_webhooks(settings: Settings) -> None:
    try:
        parse_networks(settings.webhook_allowed_networks)
    except ValueError as exc:
        raise ConfigError(f"TALLY_WEBHOOK_ALLOWED_NETWORKS: {exc}") from None
    if settings.webhook_backoff_max_ms < settings.webhook_backoff_ms:
        raise ConfigError("TALLY_WEBHOOK_BACKOFF_MAX_MS must be at least TALLY_WEBHOOK_BACKOFF_MS")
def _holidays(env: Mapping[str, str], name: str) -> frozenset[str]:
    from tally.domain.payouts import parse_holidays

    try:
        return parse_holidays(env.get(name, ""))
    except ValueError:
        raise ValueError(f"{name} must be ISO dates separated by commas, e.g. 2026-12-25,2027-01-01") from None


def check_processes(settings: Settings) -> None:
    """Several serving processes share one TCP port and write one PostgreSQL database (SQLite has one writer
    at a time). Checked after the command line's overrides."""
    if settings.processes == 1:
        return
    if make_url(settings.database_url).get_backend_name() != "postgresql":
        raise ConfigError("TALLY_PROCESSES > 1 needs PostgreSQL: SQLite writes one transaction at a time, so more "
                          "processes would only wait for each other")
    host, _, port = settings.listen_address.rpartition(":")
    if settings.listen_address.startswith("unix:") or not host or int(port) == 0:
        raise ConfigError(f"TALLY_PROCESSES > 1 shares one TCP port: the listen address "
                          f"{settings.listen_address!r} must name a port other than 0")


def check_replica(settings: Settings) -> None:
    """A read replica is a PostgreSQL hot standby of a PostgreSQL primary."""
    urls = (settings.database_url, settings.read_database_url)
    if settings.read_database_url and any(make_url(u).get_backend_name() != "postgresql" for u in urls):
        raise ConfigError("TALLY_READ_DATABASE_URL: a read replica is a PostgreSQL standby of a PostgreSQL "
                          "TALLY_DATABASE_URL")


def check_tls(settings: Settings) -> None:
    """TLS needs a certificate and its key together; client certificates are checked only over TLS."""
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        raise ConfigError("TALLY_TLS_CERT_FILE and TALLY_TLS_KEY_FILE go together: set both or neither")
    if settings.tls_client_ca_file and not settings.tls_cert_file:
        raise ConfigError("TALLY_TLS_CLIENT_CA_FILE needs TLS: set TALLY_TLS_CERT_FILE and TALLY_TLS_KEY_FILE too")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value}: expected {low}..{high}")
    return value


def _database_url(env: Mapping[str, str], name: str, default: str) -> str:
    """A SQLAlchemy URL of SQLite or PostgreSQL, or "" where the setting may be empty."""
    raw = env.get(name, default)
    if not raw:
        return raw
    try:
        backend = make_url(raw).get_backend_name()
    except ArgumentError:
        raise ConfigError(f"{name}: not a database URL (expected e.g. sqlite:///tally.db or "
                          "postgresql+psycopg://user@host/db)") from None
    if backend not in {"sqlite", "postgresql"}:
        raise ConfigError(f"{name}: unsupported database {backend!r}: use sqlite or postgresql")
    return raw


def _currencies(env: Mapping[str, str], name: str) -> dict[str, Currency]:
    try:
        return parse_currencies(env.get(name, DEFAULT_CURRENCIES))
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _address(env: Mapping[str, str], name: str, default: str, *, unix_ok: bool = False) -> str:
    """host:port (host may be empty, a name, an IPv4 or a [bracketed] IPv6 address), or "" for none; with
    `unix_ok`, gRPC's unix:PATH too."""
    raw = env.get(name, default)
    if not raw or (unix_ok and raw.startswith("unix:")):
        return raw
    host, colon, port = raw.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535 or (":" in host and not host.startswith("[")):
        raise ConfigError(f"{name}={raw!r}: expected host:port, e.g. 0.0.0.0:9464")
    return raw


def _role(env: Mapping[str, str], name: str, default: str) -> str:
    return role_name(env.get(name, default), name)


def role_name(raw: str, source: str) -> str:
    """A PostgreSQL role name, or "" for none."""
    if raw and not _ROLE.fullmatch(raw):
        raise ConfigError(f"{source}={raw!r}: expected a PostgreSQL role name (lower case letters, digits, _)")
    return raw


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes"}:
        return True
    if raw.lower() in {"0", "false", "no"}:
        return False
    raise ConfigError(f"{name}={raw!r}: expected true or false")


def _choice(env: Mapping[str, str], name: str, default: str, allowed: set[str]) -> str:
    raw = env.get(name, default)
    value = raw.upper() if name.endswith("LEVEL") else raw.lower()
    if value not in allowed:
        raise ConfigError(f"{name}={raw!r}: expected one of {', '.join(sorted(allowed))}")
    return value
