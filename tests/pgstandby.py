"""A streaming hot standby of a throwaway PostgreSQL (tests/pgserver.py): `pg_basebackup -R` of the primary,
started on another port, for the read-replica tests. Its replay can be paused to hold it behind."""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL

from tests.pgserver import PG_USER, LocalServer, _free_port

READY_TIMEOUT_S = 60


@dataclass
class Standby:
    primary: LocalServer
    datadir: Path
    port: int = 0

    def url_for(self, database: str) -> str:
        return URL.create("postgresql+psycopg", username=PG_USER, host="127.0.0.1", port=self.port,
                          database=database).render_as_string(hide_password=False)

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname=database, autocommit=True,
                               connect_timeout=5)

    def pause_replay(self) -> None:
        with self.connect() as conn:
            conn.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        with self.connect() as conn:
            conn.execute("SELECT pg_wal_replay_resume()")

    def stop(self) -> None:
        if self.port:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.primary._run(str(self.primary.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m",
                                  "immediate", "-w", "-t", "30", timeout=60)
            self.port = 0


def start_standby(primary: LocalServer) -> Standby:
    """Copies the primary with its replication settings (`-R`: standby.signal and primary_conninfo) and
    starts the copy as a hot standby; returns once it answers queries."""
    standby = Standby(primary, primary.tmpdir / "standby")
    done = primary._run(str(primary.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U",
                        PG_USER, "-D", str(standby.datadir), "-R", "-X", "stream", "-c", "fast", "--no-sync")
    if done.returncode != 0:
        raise RuntimeError(f"pg_basebackup failed: {done.stderr}")
    standby.port = _free_port()
    done = primary._run(str(primary.bindir / "pg_ctl"), "start", "-D", str(standby.datadir), "-l",
                        str(primary.tmpdir / "standby.log"), "-w", "-t", str(READY_TIMEOUT_S), "-o",
                        f"-p {standby.port} -c hot_standby=on", timeout=READY_TIMEOUT_S + 30)
    if done.returncode != 0:
        standby.port = 0
        raise RuntimeError(f"standby did not start: {done.stderr}\n{(primary.tmpdir / 'standby.log').read_text()}")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            with standby.connect() as conn:
                if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return standby
        except psycopg.Error:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the standby did not answer")
        time.sleep(0.1)
