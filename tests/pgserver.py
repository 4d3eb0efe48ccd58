"""Throwaway PostgreSQL server for the test suite.

``start_server()`` returns a running server:

* if ``TALLY_TEST_PG_URL`` is set (e.g. ``postgresql://postgres@localhost:5432/postgres``),
  that existing server is used and nothing is started;
* otherwise a fresh cluster is created with ``initdb`` in a temporary directory and started
  on a free TCP port on 127.0.0.1 (unix socket inside the temporary directory), with
  durability switched off for speed.  When running as root, the directory is owned by the
  ``postgres`` OS user and the binaries run through ``runuser -u postgres --``, because
  PostgreSQL refuses to run as root.

If the server cannot be started, ``PostgresStartError`` is raised (tests are never skipped).
This module deliberately imports nothing from the ``tally`` package.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

ENV_URL = "TALLY_TEST_PG_URL"
ENV_BINDIR = "TALLY_TEST_PG_BINDIR"
PG_USER = "postgres"
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "max_wal_size": "1GB",
    "log_min_messages": "warning",
    "log_connections": "off",
    "log_disconnections": "off",
    "timezone": "'UTC'",
}
READY_TIMEOUT = 60.0
# Variables that would make libpq/pg_ctl talk to some other server or cluster.
_PG_ENV_VARS = ("PGDATA", "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE", "PGOPTIONS")


class PostgresStartError(RuntimeError):
    """The throwaway PostgreSQL server could not be found, initialised or started."""


def _is_root() -> bool:
    return os.geteuid() == 0


def _has_server_binaries(d: Path) -> bool:
    return all(os.access(d / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,)
    return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.name)) or (0,)


def find_bindir() -> Path:
    """Directory holding the real initdb/pg_ctl/postgres binaries."""
    candidates: list[Path] = []
    if os.environ.get(ENV_BINDIR):
        candidates.append(Path(os.environ[ENV_BINDIR]))
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        candidates.append(Path(os.path.realpath(pg_ctl)).parent)
    candidates.extend(Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True))
    for d in candidates:
        if _has_server_binaries(d):
            return d
    raise PostgresStartError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; looked in: "
        + (", ".join(str(c) for c in candidates) or "(no pg_ctl on PATH, no /usr/lib/postgresql/*/bin)")
        + ". Install the Debian 'postgresql' package (scripts/test does this) or set "
        + f"{ENV_BINDIR} or {ENV_URL}."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PG_ENV_VARS}
    env["LC_ALL"] = "C"
    env.pop("LANG", None)
    return env


def _psycopg_conninfo(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlalchemy_url(url: URL) -> URL:
    return url.set(drivername="postgresql+psycopg")


_db_counter = itertools.count(1)


def unique_database_name(hint: str = "") -> str:
    """A fresh, valid database name like ``t_test_foo_3_1a2b3c4d`` (at most 63 bytes)."""
    hint = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:32]
    parts = ["t", hint, str(next(_db_counter)), uuid.uuid4().hex[:8]]
    return "_".join(p for p in parts if p)


class _ServerBase:
    """Common API: ``admin_url``, ``url_for(name)``, ``create_database(name)``, ``drop_database``."""

    external = False
    _admin: URL

    @property
    def admin_url(self) -> str:
        """SQLAlchemy URL of the maintenance database ``postgres``."""
        return _sqlalchemy_url(self._admin).render_as_string(hide_password=False)

    def url_for(self, name: str) -> str:
        return _sqlalchemy_url(self._admin.set(database=name)).render_as_string(hide_password=False)

    def connect_admin(self) -> psycopg.Connection:
        return psycopg.connect(_psycopg_conninfo(self._admin), autocommit=True, connect_timeout=10)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        name = name or unique_database_name()
        with self.connect_admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def create_login_role(self, name: str) -> None:
        """``CREATE ROLE name LOGIN`` unless it exists (roles are cluster-wide: shared by every test database)."""
        with self.connect_admin() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            if exists is None:
                with contextlib.suppress(psycopg.errors.DuplicateObject):  # another session was quicker
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        with self.connect_admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self) -> None:  # pragma: no cover - overridden
        pass


class ExternalServer(_ServerBase):
    """A server somebody else runs, given by ``TALLY_TEST_PG_URL``; never stopped by us."""

    external = True

    def __init__(self, url: str) -> None:
        self._admin = make_url(url)
        self.startup_seconds = 0.0
        try:
            with self.connect_admin() as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise PostgresStartError(f"cannot connect to {ENV_URL}={url!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"ExternalServer({self._admin.render_as_string(hide_password=True)})"


class LocalServer(_ServerBase):
    """A throwaway cluster in a temporary directory; ``stop()`` kills it and deletes the directory."""

    def __init__(self, bindir: Path | None = None, settings: dict[str, str] | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.settings = dict(SERVER_SETTINGS, **(settings or {}))
        self.tmpdir: Path | None = None
        self.datadir: Path | None = None
        self.logfile: Path | None = None
        self.port: int | None = None
        self.host = "127.0.0.1"
        self._running = False
        self.startup_seconds: float | None = None

    # -- helpers ---------------------------------------------------------------------------
    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", PG_USER, "--", *argv] if _is_root() else list(argv)

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._cmd(*argv),
            cwd=self.tmpdir,
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _log_tail(self, limit: int = 8000) -> str:
        try:
            text = self.logfile.read_text(errors="replace") if self.logfile else ""
        except OSError as exc:
            return f"(cannot read server log: {exc})"
        return text[-limit:] or "(server log is empty)"

    def _fail(self, what: str, proc: subprocess.CompletedProcess[str] | None = None) -> PostgresStartError:
        msg = [
            f"throwaway PostgreSQL server: {what}",
            f"binaries: {self.bindir}",
            f"directory: {self.tmpdir}",
        ]
        if proc is not None:
            msg += [f"command: {' '.join(proc.args)}", f"exit status: {proc.returncode}"]
            msg += [f"stdout:\n{proc.stdout.strip()}", f"stderr:\n{proc.stderr.strip()}"]
        msg.append(f"server log ({self.logfile}):\n{self._log_tail()}")
        return PostgresStartError("\n".join(msg))

    def _make_tmpdir(self) -> Path:
        if not _is_root():
            return Path(tempfile.mkdtemp(prefix="tally-pg-"))
        try:
            pw = pwd.getpwnam(PG_USER)
        except KeyError:
            raise PostgresStartError(
                f"running as root but there is no '{PG_USER}' OS user to run PostgreSQL as "
                "(installing the Debian 'postgresql' package creates it)"
            ) from None
        # The postgres user must be able to reach the directory: $TMPDIR may be private to root.
        base = tempfile.gettempdir()
        probe = subprocess.run(
            ["runuser", "-u", PG_USER, "--", "test", "-x", base, "-a", "-w", base],
            capture_output=True,
            check=False,
        )
        if probe.returncode != 0:
            base = "/tmp"
        d = Path(tempfile.mkdtemp(prefix="tally-pg-", dir=base))
        os.chown(d, pw.pw_uid, pw.pw_gid)
        return d

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> LocalServer:
        t0 = time.monotonic()
        self.tmpdir = self._make_tmpdir()
        atexit.register(self.stop)
        self.datadir = self.tmpdir / "data"
        self.logfile = self.tmpdir / "server.log"

        proc = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-A",
            "trust",
            "-U",
            PG_USER,
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        if proc.returncode != 0:
            raise self._fail("initdb failed", proc)

        settings = dict(self.settings, unix_socket_directories=f"'{self.tmpdir}'")
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\n# tally test settings\n")
            f.writelines(f"{k} = {v}\n" for k, v in settings.items())

        # The port is picked before the server binds it, so retry if someone else got it first.
        for attempt in range(5):
            self.port = _free_port()
            proc = self._run(
                str(self.bindir / "pg_ctl"),
                "start",
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                str(int(READY_TIMEOUT)),
                "-o",
                f"-p {self.port}",
                timeout=READY_TIMEOUT + 30,
            )
            if proc.returncode == 0:
                break
            if "could not bind" in self._log_tail() and attempt < 4:
                self._run(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "immediate")
                continue
            raise self._fail("pg_ctl start failed", proc)
        self._running = True
        self._admin = URL.create("postgresql", username=PG_USER, host=self.host, port=self.port, database="postgres")
        self._wait_ready(t0 + READY_TIMEOUT)
        self.startup_seconds = time.monotonic() - t0
        return self

    def crash_and_restart(self, down_s: float = 1.0) -> None:
        """Stops the server the way a crash would (immediate mode: no checkpoint, recovery on start) and
        starts it again on the same port."""
        pg_ctl = str(self.bindir / "pg_ctl")
        proc = self._run(pg_ctl, "stop", "-D", str(self.datadir), "-m", "immediate", "-w", "-t", "30", timeout=60)
        if proc.returncode != 0:
            raise self._fail("pg_ctl stop -m immediate failed", proc)
        time.sleep(down_s)
        proc = self._run(pg_ctl, "start", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t",
                         str(int(READY_TIMEOUT)), "-o", f"-p {self.port}", timeout=READY_TIMEOUT + 30)
        if proc.returncode != 0:
            raise self._fail("pg_ctl start after the crash failed", proc)
        self._wait_ready(time.monotonic() + READY_TIMEOUT)

    def _wait_ready(self, deadline: float) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with self.connect_admin() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.Error as exc:
                last = exc
                time.sleep(0.1)
        raise self._fail(f"server did not accept connections on {self.host}:{self.port}: {last}")

    def stop(self) -> None:
        if self.tmpdir is None:
            return
        if self._running and self.datadir is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.datadir),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                    timeout=60,
                )
            self._running = False
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        self.tmpdir = None

    def __repr__(self) -> str:
        return f"LocalServer(port={self.port}, dir={self.tmpdir})"


def start_server(settings: dict[str, str] | None = None) -> LocalServer | ExternalServer:
    """Return a usable server: the one in ``TALLY_TEST_PG_URL`` or a freshly started throwaway one (with
    these settings over the fast, non-durable defaults)."""
    url = os.environ.get(ENV_URL)
    if url:
        return ExternalServer(url)
    server = LocalServer(settings=settings)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise


if __name__ == "__main__":  # manual check: python tests/pgserver.py
    srv = start_server()
    try:
        print(f"{srv!r} up in {srv.startup_seconds:.2f}s; admin_url={srv.admin_url}")
        print("created", srv.create_database())
    finally:
        srv.stop()
