"""Root fixtures shared by all test suites: database URLs for SQLite and a real PostgreSQL.

Generic on purpose: nothing from the ``tally`` package is imported here; schema creation
belongs to fixtures closer to the tests that need it.

* ``pg_server`` (session): a throwaway PostgreSQL server (see ``tests/pgserver.py``), or the
  one named by ``TALLY_TEST_PG_URL``.  Started lazily, only by tests that need it.
* ``database_url``: parametrized ``sqlite`` / ``postgresql``; a fresh, empty database each test.
* ``sqlite_url`` / ``postgres_url``: a fresh, empty database on one backend only.

Tests that use PostgreSQL get the ``postgres`` marker automatically, so
``pytest -m "not postgres"`` runs without starting a server.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.pgserver import start_server, unique_database_name

# The properties are about results, not speed: a busy machine may stall one example past Hypothesis's
# default 200 ms deadline, which would fail the test for nothing.
settings.register_profile("tally", deadline=None)
settings.load_profile("tally")

POSTGRES_FIXTURES = {"pg_server", "postgres_url"}


@pytest.fixture(scope="session")
def pg_server() -> Iterator:
    """The session's PostgreSQL server: ``.admin_url``, ``.create_database(name) -> url``."""
    server = start_server()
    if not server.external:
        print(
            f"\n[tally tests] PostgreSQL started in {server.startup_seconds:.2f}s: {server!r}",
            file=sys.stderr,
        )
    try:
        yield server
    finally:
        server.stop()


def _fresh_postgres_database(request: pytest.FixtureRequest) -> Iterator[str]:
    server = request.getfixturevalue("pg_server")
    name = unique_database_name(request.node.name)
    url = server.create_database(name)
    yield url
    # Keeps the throwaway cluster small and leaves no litter on a developer's own server.
    try:
        server.drop_database(name)
    except Exception as exc:  # a failed cleanup must not fail the test
        warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=1)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """SQLAlchemy URL of a fresh SQLite database file in the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'tally.db'}"


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest, pg_server) -> Iterator[str]:
    """SQLAlchemy URL (postgresql+psycopg) of a fresh, empty database on the session server."""
    yield from _fresh_postgres_database(request)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database per test, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tally.db'}"
    elif request.param == "postgresql":
        yield from _fresh_postgres_database(request)  # the server starts here, lazily
    else:
        raise ValueError(f"unknown database backend {request.param!r}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        indirect_pg = callspec is not None and callspec.params.get("database_url") == "postgresql"
        if indirect_pg or POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A test failed by pytest-timeout gets the stack of every asyncio task still pending beside its report:
    an asyncio test that hangs waits in its event loop, whose thread traceback says nothing of what for."""
    report = yield
    if call.excinfo is not None and "Timeout" in str(call.excinfo.value):
        report.sections.append(("asyncio tasks at the timeout", _pending_tasks()))
    return report


def _pending_tasks() -> str:
    """Each pending task's chain of awaits, outermost first, down to what it waits on."""
    lines = []
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and not o.is_closed()]
    for loop in loops:
        for task in asyncio.all_tasks(loop):
            lines.append(f"{task.get_name()}:")
            awaited = task.get_coro()
            while awaited is not None:
                frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
                if frame is None:
                    lines.append(f"    waits on {awaited!r:.200}")
                    break
                lines.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
                awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
    return "\n".join(lines) or "(none)"
