"""A throwaway PostgreSQL for the benchmark with the DEFAULT durable settings.

tests/pgserver.py switches durability off for test speed; a benchmark must not, so this starter sets only
the port, the socket directory, listen_addresses, max_connections and a modest shared_buffers, and leaves
fsync, synchronous_commit and full_page_writes at their defaults (on). It runs the binaries as the
`postgres` user when we are root, like the test helper.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from tests.pgserver import PostgresStartError, find_bindir

PG_USER = "postgres"
READY_TIMEOUT_S = 60
OWNER_ROLE = "tally_owner"  # owns the database and schema; only `tally migrate` uses it
SERVICE_ROLE = "tally_app"  # the server: owns nothing, under row security (README, tenant isolation)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_root() -> bool:
    return os.geteuid() == 0


class BenchPostgres:
    """keep_dir: a data directory kept between runs (initialised on first use, never removed)."""

    def __init__(self, max_connections: int = 200, shared_buffers: str = "256MB", keep_dir: Path | None = None) -> None:
        self.bindir = find_bindir()
        self.keep_dir = keep_dir
        self.settings = {
            "listen_addresses": "'127.0.0.1'",
            "max_connections": str(max_connections),
            "shared_buffers": f"'{shared_buffers}'",
        }
        self.tmpdir: Path | None = None
        self.port: int | None = None
        self.reused = False  # started on a kept data directory that was already initialised
        self._running = False

    # -- helpers ---------------------------------------------------------------------------
    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", PG_USER, "--", *argv] if _is_root() else list(argv)

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(self._cmd(*argv), cwd=self.tmpdir, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def _log_tail(self) -> str:
        try:
            return (self.tmpdir / "server.log").read_text(errors="replace")[-4000:]
        except OSError as exc:
            return f"(no log: {exc})"

    def _make_tmpdir(self) -> Path:
        if self.keep_dir is not None:
            self.keep_dir.mkdir(parents=True, exist_ok=True)
            if _is_root():
                pw = pwd.getpwnam(PG_USER)
                os.chown(self.keep_dir, pw.pw_uid, pw.pw_gid)
            return self.keep_dir.resolve()
        if not _is_root():
            return Path(tempfile.mkdtemp(prefix="tally-bench-pg-"))
        pw = pwd.getpwnam(PG_USER)
        d = Path(tempfile.mkdtemp(prefix="tally-bench-pg-", dir="/tmp"))
        os.chown(d, pw.pw_uid, pw.pw_gid)
        return d

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> BenchPostgres:
        self.tmpdir = self._make_tmpdir()
        data = self.tmpdir / "data"
        self.reused = (data / "PG_VERSION").exists()
        if not self.reused:
            proc = self._run(str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER,
                             "--encoding=UTF8", "--no-locale")
            if proc.returncode != 0:
                raise PostgresStartError(f"initdb failed: {proc.stderr.strip()}")
            settings = dict(self.settings, unix_socket_directories=f"'{self.tmpdir}'")
            with open(data / "postgresql.conf", "a") as f:
                f.write("\n# tally bench: durable defaults; only these are set\n")
                f.writelines(f"{k} = {v}\n" for k, v in settings.items())
        for attempt in range(5):
            self.port = free_port()
            proc = self._run(str(self.bindir / "pg_ctl"), "start", "-D", str(data), "-l",
                             str(self.tmpdir / "server.log"), "-w", "-t", str(READY_TIMEOUT_S),
                             "-o", f"-p {self.port}", timeout=READY_TIMEOUT_S + 30)
            if proc.returncode == 0:
                break
            if "could not bind" in self._log_tail() and attempt < 4:
                continue
            raise PostgresStartError(f"pg_ctl start failed: {proc.stderr.strip()}\n{self._log_tail()}")
        self._running = True
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                break
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return self

    @property
    def postmaster_pid(self) -> int | None:
        try:
            return int((self.tmpdir / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError, TypeError):
            return None

    def conninfo(self, dbname: str = "postgres", user: str = PG_USER) -> str:
        return f"host=127.0.0.1 port={self.port} user={user} dbname={dbname}"

    def sqlalchemy_url(self, dbname: str, user: str = PG_USER) -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.conninfo(dbname), autocommit=True, connect_timeout=10)

    def create_database(self, name: str, owner: str = PG_USER) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))

    def has_database(self, name: str) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None

    def create_service_database(self, name: str) -> tuple[str, str]:
        """The README's production set-up: login roles tally_owner (owns the database, so its schema) and
        tally_app (owns nothing), and the database, each unless it exists. Returns the SQLAlchemy URLs
        (owner, service role); authentication is `trust`, so no passwords. Migrate with the owner's URL,
        serve with the other."""
        with self.connect() as conn:
            for role in (OWNER_ROLE, SERVICE_ROLE):
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        if not self.has_database(name):
            self.create_database(name, owner=OWNER_ROLE)
        return self.sqlalchemy_url(name, OWNER_ROLE), self.sqlalchemy_url(name, SERVICE_ROLE)

    def describe(self) -> dict[str, str]:
        """Version and the durability settings actually in force, for the report."""
        with self.connect() as conn:
            out = {"version": conn.execute("SHOW server_version").fetchone()[0]}
            for name in ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_connections",
                         "wal_sync_method"):
                out[name] = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]
        return out

    def stop(self) -> None:
        if self.tmpdir is None:
            return
        if self._running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._run(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.tmpdir / "data"), "-m", "fast",
                          "-w", "-t", "30", timeout=60)
            self._running = False
        if self.keep_dir is None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        self.tmpdir = None
