"""The system under test: a durable throwaway PostgreSQL, the fault proxy in front of it, and two
`tally serve` processes that reach the database only through the proxy."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from reliability.proxy import FaultProxy
from tests.pgserver import LocalServer, start_server

APPLICATION_NAME = "tally-bank"  # how the fault that ends the service's sessions finds them
# Durable, as in production: an acknowledged commit is on disk before the answer leaves PostgreSQL.
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """One `tally serve`, restartable on its own port."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    paused: bool = False
    starts: int = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from tally.cli import main; raise SystemExit(main(['serve']))"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.log.parent)
        self.starts += 1
        self.paused = False
        wait_serving(self)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT_S)

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        if self.paused:
            self.resume()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()


def wait_serving(server: ServerProcess) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if not server.alive():
                raise RuntimeError(f"{server.name} exited: {server.log.read_text()[-3000:]}")
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} did not become healthy: {server.log.read_text()[-3000:]}")
            time.sleep(0.2)


@dataclass
class Cluster:
    workdir: Path
    weaken: str = ""  # TALLY_UNSAFE_ISOLATION of the control run; "" for the real thing
    pg: LocalServer | None = None
    proxy: FaultProxy | None = None
    servers: list[ServerProcess] = field(default_factory=list)
    database: str = "bank"
    api_key: str = ""

    def start(self, servers: int = 2) -> Cluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pg = start_server(DURABLE)
        if not isinstance(self.pg, LocalServer):
            raise RuntimeError("the reliability suite crashes and restarts PostgreSQL: it needs its own server, "
                               "unset TALLY_TEST_PG_URL")
        self.pg.create_database(self.database)
        self.proxy = FaultProxy("127.0.0.1", self.pg.port).start()
        for i in range(servers):
            self._add_server(f"server-{i}", bootstrap=i == 0)
        self.api_key = (self.workdir / "admin.key").read_text().strip()
        return self

    def unprotect(self) -> list[str]:
        """For the control run only: drops the unique constraints that keep voucher, entry and event numbers
        single, the last line of defence behind the isolation level. Returns what it dropped."""
        with self.admin() as conn:
            found = conn.execute(
                "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype IN ('u', 'p') "
                "AND conrelid::regclass::text IN ('vouchers', 'voucher_lines', 'events') "
                "AND (pg_get_constraintdef(oid) LIKE '%sequence%' OR pg_get_constraintdef(oid) LIKE '%entry_number%')"
            ).fetchall()
            for table, name in found:
                conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        return [f"{table}.{name}" for table, name in found]

    def service_url(self) -> str:
        url = make_url(self.pg.url_for(self.database)).set(
            host="127.0.0.1", port=self.proxy.port,
            query={"sslmode": "disable", "gssencmode": "disable", "application_name": APPLICATION_NAME})
        return url.render_as_string(hide_password=False)

    def _add_server(self, name: str, *, bootstrap: bool) -> None:
        env = {**os.environ, "TALLY_DATABASE_URL": self.service_url(), "PYTHONUNBUFFERED": "1",
               "TALLY_LISTEN_ADDRESS": f"127.0.0.1:{free_port()}", "TALLY_LOG_LEVEL": "WARNING",
               "TALLY_BOOTSTRAP_ADMIN": "true" if bootstrap else "false",
               "TALLY_ADMIN_KEY_FILE": str(self.workdir / "admin.key"), "TALLY_SHUTDOWN_GRACE_S": "2",
               "TALLY_UNSAFE_ISOLATION": self.weaken}
        server = ServerProcess(name, int(env["TALLY_LISTEN_ADDRESS"].rsplit(":", 1)[1]), env,
                               self.workdir / f"{name}.log")
        self.servers.append(server)
        server.start()  # one at a time: the first migrates the schema and makes the admin key

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),)

    def admin(self) -> psycopg.Connection:
        """A direct session (not through the proxy) for faults and the final checks."""
        return psycopg.connect(f"host=127.0.0.1 port={self.pg.port} user=postgres dbname={self.database}",
                               autocommit=True)

    def heal(self) -> None:
        """Ends every fault still in force: no latency, no armed drop, every server running."""
        self.proxy.set_latency_ms(0)
        self.proxy.arm_drop_after_commit(0)
        for server in self.servers:
            if server.paused:
                server.resume()
            if not server.alive():
                server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.proxy is not None:
            self.proxy.stop()
        if self.pg is not None:
            self.pg.stop()
