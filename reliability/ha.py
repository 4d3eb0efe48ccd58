"""A PostgreSQL primary with a synchronous standby, managed by pg_auto_failover, on loopback only.

    python -m reliability.ha --workdir /tmp/tally-ha     # starts monitor + two nodes, prints the URL, waits

The monitor watches both nodes; when the primary dies it promotes the standby. Tally reaches whichever node is
primary with one multi-host URL and `target_session_attrs=read-write`: libpq tries each host in turn and keeps
the one that takes writes. pg_auto_failover comes from Debian (`apt-get install pg-auto-failover-cli
postgresql-15-auto-failover`); the nodes run as the `postgres` OS user when started as root, as the test
suite's own server does.

The monitor's health checks are tightened from their defaults (a failure noticed in about a second, not
twenty). `primary_demote_timeout` (how long the promoted standby refuses writes, in case the old primary is
alive but cut off and still taking them) is 2 s here, where its default is 30 s: on one machine a killed
primary is dead for certain. In production keep it above the keepers' network partition timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL

from bench.pg import free_port
from tests.pgserver import find_bindir

HOST = "127.0.0.1"
PG_USER = "postgres"
READY_TIMEOUT_S = 120
PROMOTE_TIMEOUT_S = 60
POLL_S = 0.1
# Monitor settings (ms): a failure noticed in about a second; see the module's note on the demote timeout.
MONITOR_SETTINGS = {
    "pgautofailover.health_check_period": 500,
    "pgautofailover.health_check_timeout": 500,
    "pgautofailover.health_check_max_retries": 1,
    "pgautofailover.health_check_retry_delay": 200,
    "pgautofailover.node_considered_unhealthy_timeout": 1000,
    "pgautofailover.startup_grace_period": 1000,
    "pgautofailover.primary_demote_timeout": 2000,
}


def available() -> bool:
    return shutil.which("pg_autoctl") is not None


@dataclass
class Node:
    name: str
    port: int
    pgdata: Path
    proc: subprocess.Popen | None = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class HaCluster:
    workdir: Path | None = None  # None: a fresh directory under the system's temp dir, removed at stop
    database: str = "bank"
    owned: bool = False
    monitor: Node | None = None
    nodes: list[Node] = field(default_factory=list)

    def start(self) -> HaCluster:
        """Starts the monitor and both nodes; on any failure stops whatever it started, then raises."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> HaCluster:
        if not available():
            raise RuntimeError("pg_autoctl not found: apt-get install pg-auto-failover-cli postgresql-15-auto-failover")
        if self.workdir is None:  # not under pytest's private tmp: the postgres user must reach it
            self.workdir, self.owned = Path(tempfile.mkdtemp(prefix="tally-ha-")), True
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, PG_USER)
        self.monitor = self._node("monitor")
        self._run(self.monitor, "monitor")
        # Retried whole: pg_autoctl restarts the monitor's PostgreSQL once while it sets it up.
        self._wait_sql(self.monitor.port, "pg_auto_failover", "SELECT count(*) FROM pgautofailover.formation",
                       *(f"ALTER SYSTEM SET {name} = {int(value)}" for name, value in MONITOR_SETTINGS.items()),
                       "SELECT pg_reload_conf()")
        for i in (1, 2):
            node = self._node(f"node{i}")
            self.nodes.append(node)
            self._run(node, "postgres")
            self._wait_states({"primary", "wait_primary", "single"} if i == 1 else {"secondary"})
        self._wait_synchronous()
        return self

    def _node(self, name: str) -> Node:
        return Node(name, free_port(), self.workdir / name)

    def _env(self) -> list[str]:
        base = self.workdir
        return [f"XDG_CONFIG_HOME={base}/config", f"XDG_DATA_HOME={base}/data", f"XDG_RUNTIME_DIR={base}/run",
                f"PG_CONFIG={find_bindir() / 'pg_config'}", f"PATH={os.environ.get('PATH', '')}"]

    def _run(self, node: Node, kind: str) -> None:
        (self.workdir / "run").mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir / "run", PG_USER)
        argv = ["pg_autoctl", "create", kind, "--pgdata", str(node.pgdata), "--pgport", str(node.port),
                "--hostname", HOST, "--listen", HOST, "--auth", "trust", "--no-ssl",
                "--pgctl", str(find_bindir() / "pg_ctl"), "--run"]
        if kind == "postgres":
            argv += ["--monitor", self.monitor_url(), "--dbname", self.database, "--name", node.name]
        user = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
        with open(self.workdir / f"{node.name}.log", "ab") as log:
            # Its own process group: a kill takes the keeper and its PostgreSQL down together.
            node.proc = subprocess.Popen([*user, "env", *self._env(), *argv], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def monitor_url(self) -> str:
        return f"postgres://autoctl_node@{HOST}:{self.monitor.port}/pg_auto_failover?sslmode=disable"

    def url(self, database: str | None = None, user: str = PG_USER, password: str | None = None) -> str:
        """The SQLAlchemy URL of whichever node takes writes (libpq tries the hosts in turn)."""
        hosts = tuple(f"{HOST}:{n.port}" for n in self.nodes)
        return URL.create("postgresql+psycopg", username=user, password=password, database=database or self.database,
                          query={"host": hosts, "target_session_attrs": "read-write", "sslmode": "disable",
                                 "connect_timeout": "2"}).render_as_string(hide_password=False)

    def _connect(self, port: int, database: str | None = None) -> psycopg.Connection:
        return psycopg.connect(host=HOST, port=port, user=PG_USER, dbname=database or self.database,
                               autocommit=True, connect_timeout=2)

    def connect_primary(self, database: str | None = None) -> psycopg.Connection:
        hosts = ",".join(HOST for _ in self.nodes)
        ports = ",".join(str(n.port) for n in self.nodes)
        return psycopg.connect(host=hosts, port=ports, user=PG_USER, dbname=database or self.database,
                               target_session_attrs="read-write", autocommit=True, connect_timeout=2)

    def _wait_sql(self, port: int, database: str, *statements: str) -> None:
        """Until `statements` all run, one after the other, in one session (the monitor answers before its
        extension is created, and is restarted once while it is set up)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                with self._connect(port, database) as conn:
                    for statement in statements:
                        conn.execute(statement)
                    return
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL on port {port} not ready:\n{self.log_tail()}") from None
                time.sleep(POLL_S * 3)

    def states(self) -> dict[str, tuple[str, str]]:
        """Each node's (reported, assigned) state, as the monitor sees them."""
        with self._connect(self.monitor.port, "pg_auto_failover") as conn:
            rows = conn.execute("SELECT nodename, reportedstate::text, goalstate::text FROM pgautofailover.node")
            return {name: (reported, goal) for name, reported, goal in rows}

    def _reported(self, node: Node) -> str:
        """The node's reported state; "" while the monitor does not answer."""
        with contextlib.suppress(psycopg.Error):
            return self.states().get(node.name, ("", ""))[0]
        return ""

    def _wait_states(self, wanted: set[str]) -> None:
        """Until the newest node reports one of `wanted`. A standby's base backup waits for a checkpoint,
        which is asked for at once (a spread one would take minutes)."""
        node, deadline = self.nodes[-1], time.monotonic() + READY_TIMEOUT_S
        while self._reported(node) not in wanted:
            if not node.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} did not reach {wanted}: {self.states()}\n{self.log_tail()}")
            if len(self.nodes) > 1:
                with contextlib.suppress(psycopg.Error), self.connect_primary("postgres") as conn:
                    conn.execute("CHECKPOINT")
            time.sleep(POLL_S * 5)

    def _wait_synchronous(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            with self.connect_primary("postgres") as conn:
                names = conn.execute("SHOW synchronous_standby_names").fetchone()[0]
            if names:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the standby never became synchronous")
            time.sleep(POLL_S * 3)

    def primary(self) -> Node:
        for node in self.nodes:
            if not node.alive():
                continue
            with contextlib.suppress(psycopg.Error), self._connect(node.port, "postgres") as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return node
        raise RuntimeError(f"no primary: {self.states()}")

    def kill_primary(self) -> tuple[Node, float]:
        """SIGKILL to the primary's keeper and its PostgreSQL together: the machine is gone. Returns the node
        and the monotonic time of the kill."""
        node = self.primary()
        killed_s = time.monotonic()
        os.killpg(node.proc.pid, signal.SIGKILL)
        node.proc.wait(10)
        return node, killed_s

    def wait_writable(self, timeout_s: float = PROMOTE_TIMEOUT_S) -> float:
        """Until some node takes a write; returns the monotonic time it first did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.Error), self.connect_primary("postgres") as conn:
                conn.execute("SELECT txid_current()")  # a write: assigns a transaction id
                return time.monotonic()
            time.sleep(POLL_S)
        raise RuntimeError(f"no node took writes within {timeout_s} s: {self.states()}\n{self.log_tail()}")

    def rejoin(self, node: Node) -> None:
        """Starts a killed node again: its keeper rewinds it and it follows the new primary as a standby."""
        argv = ["pg_autoctl", "run", "--pgdata", str(node.pgdata)]
        user = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
        with open(self.workdir / f"{node.name}.log", "ab") as log:
            node.proc = subprocess.Popen([*user, "env", *self._env(), *argv], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self._reported(node) != "secondary":
            if not node.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} did not rejoin: {self.states()}\n{self.log_tail()}")
            with contextlib.suppress(psycopg.Error), self.connect_primary("postgres") as conn:
                conn.execute("CHECKPOINT")
            time.sleep(POLL_S * 5)
        self._wait_synchronous()

    def log_tail(self, limit: int = 3000) -> str:
        parts = []
        for node in (self.monitor, *self.nodes):
            if node is not None:
                with contextlib.suppress(OSError):
                    parts.append(f"--- {node.name}\n" + (self.workdir / f"{node.name}.log").read_text(
                        errors="replace")[-limit:])
        return "\n".join(parts)

    def stop(self) -> None:
        for node in (*self.nodes, self.monitor):
            if node is None or node.proc is None:
                continue
            if node.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.proc.wait(30)
            with contextlib.suppress(ProcessLookupError):  # whatever of the group outlived its leader
                os.killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait(10)
        if self.owned:
            shutil.rmtree(self.workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    # Stopped by Ctrl-C or SIGTERM (a background job ignores SIGINT): either way the nodes are stopped.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    cluster = HaCluster(args.workdir).start()
    print(f"TALLY_DATABASE_URL={cluster.url()}", flush=True)
    print(f"monitor: {cluster.monitor_url()}  (Ctrl-C or SIGTERM stops everything)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
