"""Schema migrations with Alembic, driven from code (`tally migrate`, and `tally serve` on first start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine

from tally.storage.engine import set_tenant_scope
from tally.storage.roles import grant_service_role
from tally.storage.uow import Scope

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(url_or_engine: str | Engine, *, service_role: str = "") -> None:
    """Brings the database to the newest schema; safe to run again. Runs as the schema owner. On
    PostgreSQL, a `service_role` then gets exactly the privileges the service needs (see roles.py); on
    SQLite there are no roles and it is ignored."""
    engine = create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.begin() as conn:
            # Row security binds a non-superuser owner too: a migration that moves data sees every tenant.
            set_tenant_scope(conn, Scope.SYSTEM.value)
            command.upgrade(alembic_config(conn), "head")
            if service_role and conn.dialect.name == "postgresql":
                grant_service_role(conn, service_role)
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()
