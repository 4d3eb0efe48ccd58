"""Runs `tally serve` as a separate process and waits until its health check says SERVING; it can be
killed, paused and started again on the same port (the reliability suite's faults)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.pg import free_port

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 90
STOP_GRACE_S = 20
SERVE_COMMAND: list[str] | None = None  # instead of `tally serve` (bench/writer_process.py's experiment)


def tally_executable() -> str:
    """The venv's `tally` entry point next to the running interpreter (so the same venv is used)."""
    candidate = Path(sys.executable).parent / "tally"
    return str(candidate) if candidate.exists() else "tally"


def migrate_as_owner(owner_url: str, service_role: str, env: dict[str, str] | None = None) -> str:
    """`tally migrate` as the README's production set-up runs it: the owner migrates and grants the service
    role what the service needs. Returns its output; raises when it fails."""
    done = subprocess.run([tally_executable(), "migrate"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {}), "TALLY_MIGRATE_DATABASE_URL": owner_url,
                               "TALLY_SERVICE_ROLE": service_role}, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tally migrate exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


class TallyServer:
    def __init__(self, database_url: str, workdir: Path, name: str = "tally", extra_env: dict | None = None,
                 admin_url: str = "") -> None:
        self.database_url = database_url
        self.admin_url = admin_url or database_url  # who creates tenants and keys: the schema owner
        self.workdir = workdir
        self.name = name
        self.extra_env = extra_env or {}
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.log_path = workdir / f"{name}.log"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> TallyServer:
        """Starts the process, on the port of an earlier start if there was one."""
        self.port = self.port or free_port()
        env = dict(os.environ)
        env.update({
            "TALLY_DATABASE_URL": self.database_url,
            "TALLY_LISTEN_ADDRESS": self.target,
            "TALLY_LOG_LEVEL": "WARNING",
        })
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(SERVE_COMMAND or [tally_executable(), "serve"], env=env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.workdir)
        self.paused = False
        self._wait_serving()
        return self

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def _wait_serving(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"tally serve exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tally serve not SERVING within {READY_TIMEOUT_S}s:\n{self.log_tail()}")
                time.sleep(0.2)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, with no shutdown of any kind."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a grace; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if self.paused:
                self.resume()  # a stopped process would hold SIGTERM until it goes on
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode
