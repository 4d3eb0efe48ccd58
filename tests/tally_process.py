"""`tally serve` as a real process for tests: on a fixed port, stopped with SIGTERM and started again on the same
database; one per backend (SQLite, PostgreSQL) for a whole module, since a start costs seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_e2e_serve_process import free_port, open_channel, stop, tally_serve, wait_serving
from tests.pgserver import unique_database_name

BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)]


class TallyProcess:
    """`tally serve` on a fixed port, which can be stopped (SIGTERM) and started again on the same database."""

    def __init__(self, tmp_path: Path, database_url: str, **extra_env: str) -> None:
        self.dir, self.database_url, self.extra_env = tmp_path, database_url, extra_env
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.log = tmp_path / "serve.log"
        self._context = None

    def start(self) -> None:
        self._context = tally_serve(self.dir / "tally.db", self.port, self.log, TALLY_DATABASE_URL=self.database_url,
                                    TALLY_ADMIN_KEY_FILE=str(self.dir / "tally-admin.key"), **self.extra_env)
        self.proc = self._context.__enter__()
        channel = open_channel(self.target, timeout_s=5)
        try:
            wait_serving(self.proc, channel, self.log)
        finally:
            channel.close()

    def stop(self) -> None:
        stop(self.proc, self.log)
        self._context.__exit__(None, None, None)
        self._context = None

    @property
    def api_key(self) -> str:
        return (self.dir / "tally-admin.key").read_text().strip()


def module_process(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                   **extra_env: str) -> Iterator[TallyProcess]:
    """For a module-scoped fixture parametrized with BACKENDS: the process, started, stopped at the end."""
    directory = tmp_path_factory.mktemp(f"tally-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{directory / 'tally.db'}"
    else:
        url = request.getfixturevalue("pg_server").create_database(unique_database_name(request.module.__name__))
    process = TallyProcess(directory, url, **extra_env)
    process.start()
    try:
        yield process
    finally:
        if process._context is not None:
            process.stop()
