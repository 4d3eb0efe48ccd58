"""The faults, and the schedule that injects them one after another while the clients work."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable

from reliability.cluster import APPLICATION_NAME, Cluster

KINDS = ("kill_server", "restart_postgres", "terminate_connections", "proxy_latency", "proxy_reset",
         "drop_after_commit", "pause_server")
LATENCY_MS = (20, 200)  # the range the latency fault draws from
HOLD_S = 2.0  # how long a lasting fault (latency, pause, a dead server) stays before it is healed


class Faults:
    def __init__(self, cluster: Cluster, seed: int) -> None:
        self.cluster = cluster
        self.random = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.started_s = time.monotonic()
        self.log: list[tuple[float, str, str]] = []  # (time, kind, detail), reported as the run's fault log

    def inject(self, kind: str) -> None:
        detail = getattr(self, f"_{kind}")() or ""
        self.injected[kind] += 1
        self.log.append((time.monotonic(), kind, detail))

    def _server(self):
        return self.random.choice([s for s in self.cluster.servers if s.alive()])

    def _kill_server(self) -> str:
        server = self._server()
        server.kill()
        time.sleep(HOLD_S)
        server.start()
        return server.name

    def _restart_postgres(self) -> None:
        self.cluster.pg.crash_and_restart(down_s=HOLD_S / 2)

    def _terminate_connections(self) -> str:
        with self.cluster.admin() as conn:
            ended = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                 "WHERE application_name = %s", (APPLICATION_NAME,)).fetchone()[0]
        return f"{ended} sessions"

    def _proxy_latency(self) -> str:
        latency_ms = self.random.randint(*LATENCY_MS)
        self.cluster.proxy.set_latency_ms(latency_ms)
        time.sleep(HOLD_S)
        self.cluster.proxy.set_latency_ms(0)
        return f"{latency_ms} ms"

    def _proxy_reset(self) -> str:
        return f"{self.cluster.proxy.reset_all()} connections"

    def _drop_after_commit(self) -> str:
        proxy = self.cluster.proxy
        before = proxy.stats()["commits_dropped"]
        proxy.arm_drop_after_commit(3)
        deadline = time.monotonic() + HOLD_S * 2
        while proxy.stats()["commits_dropped"] - before < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        proxy.arm_drop_after_commit(0)
        return f"{proxy.stats()['commits_dropped'] - before} commits"

    def _pause_server(self) -> str:
        server = self._server()
        server.pause()
        time.sleep(HOLD_S)
        server.resume()
        return server.name


class Schedule(threading.Thread):
    """Injects every kind in turn (shuffled each round), with a quiet gap between faults."""

    def __init__(self, faults: Faults, stop: threading.Event, gap_s: float,
                 on_error: Callable[[BaseException], None]) -> None:
        super().__init__(name="faults", daemon=True)
        self.faults, self.stop, self.gap_s, self.on_error = faults, stop, gap_s, on_error

    def run(self) -> None:
        try:
            while not self.stop.wait(self.gap_s):
                kinds = list(KINDS)
                self.faults.random.shuffle(kinds)
                for kind in kinds:
                    if self.stop.is_set():
                        return
                    self.faults.inject(kind)
                    if self.stop.wait(self.gap_s):
                        return
        except BaseException as exc:  # reported by the runner: a fault that cannot be injected fails the run
            self.on_error(exc)
