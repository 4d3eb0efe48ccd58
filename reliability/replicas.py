"""Replicas: N `tally serve` processes on one PostgreSQL, several tenants, each tenant's clients spread over every
process (client k of a tenant starts on process k mod N and moves on when one stops answering). Each tenant
runs the bank workload with its own history, checker, stream consumer and webhook receiver (a real HTTP
server): a consumer and a subscription are served by one process and must see the postings every process
made. Used by tests/reliability/test_replicas.py and bench/replicas.py (throughput per process count).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

from bench.credentials import auth_metadata, tenant_key
from bench.tally_server import TallyServer
from reliability.bank import Bank, Client, Stubs, open_bank
from reliability.checker import check
from reliability.consumer import Consumer
from reliability.history import History
from tally.v1 import webhook_service_pb2 as hook_pb
from tally.v1 import webhook_service_pb2_grpc as hook_grpc
from tests.e2e.webhook_receiver import Receiver, receiving
from tests.pgserver import LocalServer, start_server

CONSUMER_CATCH_UP_S = 60
WEBHOOK_CATCH_UP_S = 60
CLIENT_BASE = 100  # client numbers of tenant t start at t * CLIENT_BASE


@dataclass(frozen=True)
class ReplicaPlan:
    servers: int
    tenants: int = 3
    clients_per_tenant: int = 2
    accounts: int = 8
    duration_s: int = 10


@dataclass
class _Tenant:
    name: str
    metadata: tuple
    bank: Bank
    receiver: Receiver
    history: History = field(default_factory=History)
    clients: list[Client] = field(default_factory=list)
    consumer: Consumer | None = None


def server_env(webhook_key: str, workdir: Path) -> dict[str, str]:
    return {"PYTHONUNBUFFERED": "1", "TALLY_BOOTSTRAP_ADMIN": "false", "TALLY_SHUTDOWN_GRACE_S": "2",
            "TALLY_ADMIN_KEY_FILE": str(workdir / "admin.key"), "TALLY_WEBHOOK_KEY": webhook_key,
            "TALLY_WEBHOOK_HTTP_HOSTS": "127.0.0.1", "TALLY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "TALLY_WEBHOOK_POLL_MS": "200"}


def run_replicas(plan: ReplicaPlan, workdir: Path, seed: int, pg_settings: dict[str, str] | None = None) -> dict:
    pg = start_server(pg_settings)
    if not isinstance(pg, LocalServer):
        raise RuntimeError("the replica run measures its own PostgreSQL: unset TALLY_TEST_PG_URL")
    servers: list[TallyServer] = []
    try:
        url = pg.create_database("replicas")
        env = server_env(Fernet.generate_key().decode(), workdir)
        servers = [TallyServer(url, workdir, f"server-{i}", env) for i in range(plan.servers)]
        servers[0].start()  # alone: it migrates; the others start together
        _together([s.start for s in servers[1:]])
        with ExitStack() as stack:
            tenants = [_open_tenant(t, plan, url, [s.target for s in servers], stack.enter_context(receiving()))
                       for t in range(plan.tenants)]
            return _run(plan, pg, servers, tenants, seed)
    finally:
        _together([s.stop for s in servers])
        pg.stop()


def _together(calls: list) -> None:
    """Runs the calls in threads and waits for all; the first failure raises."""
    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


def _open_tenant(t: int, plan: ReplicaPlan, url: str, targets: list[str], receiver: Receiver) -> _Tenant:
    name = f"tenant-{t}"
    metadata = auth_metadata(tenant_key(url, name))
    tenant = _Tenant(name, metadata, Bank(plan.accounts, 1_000_000), receiver)
    setup = Stubs(targets, t, metadata)
    try:
        open_bank(setup, tenant.bank)
        created = hook_grpc.WebhookServiceStub(setup.channel).CreateWebhook(hook_pb.CreateWebhookRequest(
            request_id=f"hook-{t}", url=receiver.url, after_sequence=0), metadata=metadata, timeout=10)
        receiver.secrets.append(created.secret)
    finally:
        setup.close()
    return tenant


def _run(plan: ReplicaPlan, pg: LocalServer, servers: list[TallyServer], tenants: list[_Tenant], seed: int) -> dict:
    from reliability.run import _final, _resolve  # the same resolution and final read as every run

    targets, stop = [s.target for s in servers], threading.Event()
    for t, tenant in enumerate(tenants):
        tenant.clients = [Client(t * CLIENT_BASE + t + i, tenant.bank, tenant.history, targets, tenant.metadata, stop,
                                 seed * 1000 + t * CLIENT_BASE + i) for i in range(plan.clients_per_tenant)]
        # On another process than the tenant's set-up and first client: it sees the others' postings.
        tenant.consumer = Consumer(t + 1, targets, tenant.metadata, stop)
    threads = [thread for tenant in tenants for thread in (*tenant.clients, tenant.consumer)]
    cpu_before = _cpu_s(servers, pg)
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(plan.duration_s)
    stop.set()
    for tenant in tenants:
        for client in tenant.clients:
            client.join()
    elapsed_s = time.monotonic() - started
    cpu_after = _cpu_s(servers, pg)
    finals = {}
    for tenant in tenants:
        setup = Stubs(targets, 0, tenant.metadata)
        _resolve(setup, tenant.bank, tenant.history)
        finals[tenant.name] = _final(setup, tenant.bank)
        setup.close()
        tenant.consumer.until = finals[tenant.name].event_sequence  # all told first: they catch up together
    results = {}
    for tenant in tenants:
        final = finals[tenant.name]
        tenant.consumer.join(CONSUMER_CATCH_UP_S)
        counts = check(tenant.bank, tenant.history.ops, final, [tenant.consumer.seen])
        counts["webhook_events_missing"] = _webhook_missing(tenant.receiver, final.event_sequence)
        results[tenant.name] = (counts, final, tenant)
    return _report(plan, results, elapsed_s, cpu_before, cpu_after)


def _webhook_missing(receiver: Receiver, last: int) -> int:
    deadline = time.monotonic() + WEBHOOK_CATCH_UP_S
    while set(range(1, last + 1)) - set(receiver.acknowledged()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(set(range(1, last + 1)) - set(receiver.acknowledged())) + receiver.bad_signatures


def _report(plan: ReplicaPlan, results: dict, elapsed_s: float, cpu_before: dict, cpu_after: dict) -> dict:
    acknowledged = sum(op.kind == "transfer" and op.outcome == "ok" and not op.resolved
                       for _, _, tenant in results.values() for op in tenant.history.ops)
    counts: dict[str, int] = {}
    for tenant_counts, _, _ in results.values():
        for name, n in tenant_counts.items():
            counts[name] = counts.get(name, 0) + n
    by_tenant = {}
    for _, final, tenant in results.values():
        by_tenant[tenant.name] = {"vouchers": len(final.vouchers), "event_sequence": final.event_sequence,
                                  "stream_events_seen": len(tenant.consumer.seen),
                                  "webhook_events_acknowledged": len(set(tenant.receiver.acknowledged()))}
    cpu = {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_before}
    return {
        "plan": {"servers": plan.servers, "tenants": plan.tenants, "clients_per_tenant": plan.clients_per_tenant,
                 "accounts": plan.accounts, "duration_s": plan.duration_s},
        "transfers_acknowledged": acknowledged,
        "transfers_per_s": round(acknowledged / elapsed_s, 1),
        "cpu_s": cpu,  # over the load: every server process together, PostgreSQL, and this driver
        "cpu_cores_busy": {k: round(v / elapsed_s, 2) for k, v in cpu.items()},
        "tenants": by_tenant,
        "checker": counts,
    }


def _cpu_s(servers: list[TallyServer], pg: LocalServer) -> dict[str, float]:
    """CPU seconds so far of the server processes, of PostgreSQL (postmaster, its live children, and the
    children it has reaped) and of this process (the load generator)."""
    postmaster = int((pg.datadir / "postmaster.pid").read_text().split()[0])
    children = [pid for pid in _pids() if _stat(pid)[1] == postmaster]
    pm = _stat(postmaster)
    return {"servers": sum(_stat(s.pid)[0] for s in servers),
            "postgres": pm[0] + pm[2] + sum(_stat(pid)[0] for pid in children),
            "load_generator": time.process_time()}


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _stat(pid: int) -> tuple[float, int, float]:
    """(own CPU seconds, parent pid, reaped children's CPU seconds) from /proc/PID/stat; zeros once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, int(fields[1]), (int(fields[13]) + int(fields[14])) / tick
