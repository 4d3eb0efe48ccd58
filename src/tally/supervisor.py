"""`tally serve` with TALLY_PROCESSES > 1: several serving processes on one port, kept running.

One Python process runs Tally's Python (the gRPC calls, rules, the batch writer) on one core at a time; a
machine with more cores serves more with more processes. Each child is an ordinary `tally serve` that
listens with SO_REUSEPORT on the same address, so the kernel spreads incoming connections over them. They
share nothing but the database: writers of one tenant take turns at its gate (storage/engine.py), so
postings through any of them keep every guarantee they have in one process. Streams reach subscribers of
every process (PostgreSQL NOTIFY), and the background jobs (hold expiry, day close, webhook deliveries,
the ledger audit) already run safely in several processes at once.

The first child starts alone, so that a first start on an empty ledger makes its one admin key; the others
start once it listens. Process i serves metrics on the metrics port + i; only the first serves the console.
SIGTERM or SIGINT goes to every child, each drains as a lone server would. A child that dies is started again,
at most RESTARTS_MAX times in RESTART_WINDOW_S; past that the supervisor stops the rest and fails.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque

from tally.config import Settings

log = logging.getLogger("tally.supervisor")

READY_TIMEOUT_S = 120  # the first child: migrations may run before it listens
RESTARTS_MAX = 5
RESTART_WINDOW_S = 60
RESTART_DELAY_S = 1.0
POLL_S = 0.2
KILL_AFTER_S = 15  # past the shutdown grace: a child still running is killed


@dataclasses.dataclass
class _Child:
    index: int
    proc: subprocess.Popen


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: list[_Child] = []
        self.restarts: deque[float] = deque()
        self.stopping = False

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        log.info("tally serving with %d processes on %s", self.settings.processes, self.settings.listen_address)
        first = self._spawn(0)
        if not self._wait_listening(first):
            return self._shutdown(0 if self.stopping else 1)
        for index in range(1, self.settings.processes):
            self._spawn(index)
        return self._watch()

    def _spawn(self, index: int) -> _Child:
        child = _Child(index, subprocess.Popen([sys.executable, "-m", "tally.cli", "serve"], env=self._env(index),
                                               stdin=subprocess.DEVNULL,
                                               preexec_fn=functools.partial(die_with_parent, os.getpid())))
        self.children = [c for c in self.children if c.index != index] + [child]
        return child

    def _env(self, index: int) -> dict[str, str]:
        """The child's settings: the parent's (command-line overrides included), one process, a shared port."""
        s = self.settings
        env = {**os.environ, "TALLY_PROCESSES": "1", "TALLY_REUSE_PORT": "1", "TALLY_PROCESS_INDEX": str(index),
               "TALLY_LISTEN_ADDRESS": s.listen_address, "TALLY_DATABASE_URL": s.database_url,
               "TALLY_METRICS_ADDRESS": _shifted(s.metrics_address, index),
               "TALLY_CONSOLE_ADDRESS": s.console_address if index == 0 else ""}
        if index > 0:
            env["TALLY_BOOTSTRAP_ADMIN"] = "false"  # the first child made the admin key, if any was to be made
        return env

    def _wait_listening(self, child: _Child) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not self.stopping:
            if child.proc.poll() is not None:
                log.error("the first serving process exited with %s before it listened", child.proc.returncode)
                return False
            if _listening(self.settings.listen_address):
                return True
            time.sleep(POLL_S)
        if not self.stopping:
            log.error("the first serving process did not listen within %ds", READY_TIMEOUT_S)
        return False

    def _watch(self) -> int:
        while not self.stopping:
            for child in list(self.children):
                code = child.proc.poll()
                if code is None or self.stopping:
                    continue
                log.error("serving process %d (pid %d) exited with %s", child.index, child.proc.pid, code)
                if not self._may_restart():
                    log.error("more than %d restarts in %ds: stopping", RESTARTS_MAX, RESTART_WINDOW_S)
                    return self._shutdown(1)
                time.sleep(RESTART_DELAY_S)
                self._spawn(child.index)
            time.sleep(POLL_S)
        return self._shutdown(0)

    def _may_restart(self) -> bool:
        now = time.monotonic()
        while self.restarts and now - self.restarts[0] > RESTART_WINDOW_S:
            self.restarts.popleft()
        self.restarts.append(now)
        return len(self.restarts) <= RESTARTS_MAX

    def _stop(self, _signum, _frame) -> None:
        self.stopping = True

    def _shutdown(self, code: int) -> int:
        """Every child gets SIGTERM and its shutdown grace; one still running after that is killed."""
        for child in self.children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_s + KILL_AFTER_S
        for child in self.children:
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("serving process %d did not stop in time: killed", child.index)
                child.proc.kill()
                child.proc.wait()
        failed = [c.index for c in self.children if c.proc.returncode not in (0, -signal.SIGTERM)]
        return code or (1 if failed else 0)


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """In the child, before it runs: SIGTERM when the supervisor dies, however it dies (a SIGKILL too), so no
    serving process outlives it holding the port. A supervisor already dead by then sends no signal, so the
    child does not run at all. Linux only; elsewhere the children outlive a killed parent."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:
            os._exit(1)  # not a signal to itself: until exec it still has the supervisor's SIGTERM handler


def _shifted(address: str, index: int) -> str:
    """host:port moved up by `index` ("" stays none; port 0 stays any)."""
    if not address:
        return ""
    host, _, port = address.rpartition(":")
    return address if int(port) == 0 else f"{host}:{int(port) + index}"


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def serve_processes(settings: Settings) -> int:
    return Supervisor(settings).run()
