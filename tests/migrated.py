"""Fresh databases at the newest schema for fixtures, copied from one migrated template per test process.

Alembic costs about 0.15 s of CPU per database (PostgreSQL's own DDL work on top), and hundreds of tests each
start on a fresh database: copying a template migrated once (a file copy on SQLite, ``CREATE DATABASE ...
TEMPLATE`` on PostgreSQL) gives the same schema for a fraction of that. The migrations themselves still run
from empty in their own tests (tests/integration/test_storage_migrations.py, test_rls.py, the `tally serve`
process tests), and a server started on a copy still runs its auto-migration, which finds the schema at head.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tally.storage.migrate import migrate
from tests.pgserver import unique_database_name

_lock = threading.Lock()
_sqlite_template: Path | None = None
_pg_templates: dict[str, str] = {}  # admin URL of a server -> name of its migrated template database


def _sqlite_template_path() -> Path:
    global _sqlite_template
    with _lock:
        if _sqlite_template is None:
            directory = Path(tempfile.mkdtemp(prefix="tally-template-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            path = directory / "template.db"
            migrate(f"sqlite:///{path}")
            _sqlite_template = path
        return _sqlite_template


def _pg_template_name(server) -> str:
    with _lock:
        name = _pg_templates.get(server.admin_url)
        if name is None:
            name = unique_database_name("template")
            migrate(server.create_database(name))  # disposes its engine: no session left on the template
            _pg_templates[server.admin_url] = name
        return name


def make_migrated(request: pytest.FixtureRequest, url: str) -> None:
    """Turns the empty database that a fixture has just made at `url` (``database_url``, ``sqlite_url``,
    ``postgres_url``) into one at the newest schema, as ``migrate(url)`` would."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        if path.exists() and path.stat().st_size:
            raise ValueError(f"{path} is not a fresh database")
        shutil.copyfile(_sqlite_template_path(), path)
        return
    server = request.getfixturevalue("pg_server")
    template = _pg_template_name(server)
    name = sql.Identifier(parsed.database)
    with server.connect_admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(name, sql.Identifier(template)))
