"""The system under test: a durable throwaway PostgreSQL, the fault proxy in front of it, and two
`tally serve` processes that reach the database only through the proxy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from bench.tally_server import TallyServer
from reliability.proxy import FaultProxy
from tests.pgserver import LocalServer, start_server

APPLICATION_NAME = "tally-bank"  # how the fault that ends the service's sessions finds them
# Durable, as in production: an acknowledged commit is on disk before the answer leaves PostgreSQL.
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


@dataclass
class Cluster:
    workdir: Path
    weaken: str = ""  # TALLY_UNSAFE_ISOLATION of the control run; "" for the real thing
    pg: LocalServer | None = None
    proxy: FaultProxy | None = None
    servers: list[TallyServer] = field(default_factory=list)
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
        env = {"PYTHONUNBUFFERED": "1", "TALLY_BOOTSTRAP_ADMIN": "true" if bootstrap else "false",
               "TALLY_ADMIN_KEY_FILE": str(self.workdir / "admin.key"), "TALLY_SHUTDOWN_GRACE_S": "2",
               "TALLY_UNSAFE_ISOLATION": self.weaken}
        server = TallyServer(self.service_url(), self.workdir, name, env)
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
