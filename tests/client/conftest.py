"""Fixtures for tally-client's tests: the package from clients/python (not installed: imported from the
source tree, as CI has it), a real `tally serve` process, and a real gRPC proxy that injects failures."""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from tests.tally_process import BACKENDS, TallyProcess, module_process

CLIENT_ROOT = Path(__file__).resolve().parents[2] / "clients" / "python"
if str(CLIENT_ROOT) not in sys.path:
    sys.path.insert(0, str(CLIENT_ROOT))

FORWARD_TIMEOUT_S = 10.0


@pytest.fixture(scope="module", params=BACKENDS)
def tally_process(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[TallyProcess]:
    """One server per backend for the module; tests keep to their own accounts."""
    yield from module_process(request, tmp_path_factory)


@dataclass
class Fault:
    code: grpc.StatusCode
    after_forward: bool  # True: the server ran the call, and its answer is lost on the way back


@dataclass
class FaultProxy:
    """A gRPC proxy in front of the server for unary calls: it relays request and answer bytes untouched
    (with the caller's authorization and the server's error details), except for the faults queued per
    method, and records every request it saw."""

    upstream: grpc.Channel
    faults: dict[str, deque[Fault]] = field(default_factory=dict)
    seen: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, method: str, *faults: Fault) -> None:
        with self.lock:
            self.faults.setdefault(method, deque()).extend(faults)

    def requests(self, method: str) -> list[bytes]:
        with self.lock:
            return [body for name, body in self.seen if name.endswith(f"/{method}")]

    def relay(self, method: str, body: bytes, context: grpc.ServicerContext) -> bytes:
        with self.lock:
            self.seen.append((method, body))
            queue = self.faults.get(method.rsplit("/", 1)[-1])
            fault = queue.popleft() if queue else None
        if fault is not None and not fault.after_forward:
            context.abort(fault.code, "injected by the test proxy")
        auth = [(k, v) for k, v in context.invocation_metadata() if k == "authorization"]
        try:
            answer = self.upstream.unary_unary(method)(body, metadata=auth, timeout=FORWARD_TIMEOUT_S)
        except grpc.RpcError as error:
            context.set_trailing_metadata(error.trailing_metadata())
            context.abort(error.code(), error.details())
        if fault is not None:
            context.abort(fault.code, "the answer was lost (injected by the test proxy)")
        return answer


class _Relay(grpc.GenericRpcHandler):
    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy

    def service(self, details: grpc.HandlerCallDetails):
        method = details.method
        return grpc.unary_unary_rpc_method_handler(lambda body, context: self.proxy.relay(method, body, context))


@pytest.fixture
def fault_proxy(tally_process: TallyProcess) -> Iterator[tuple[FaultProxy, str]]:
    """A FaultProxy in front of tally_process, and the target to dial it at."""
    upstream = grpc.insecure_channel(tally_process.target)
    proxy = FaultProxy(upstream)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[_Relay(proxy)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield proxy, f"127.0.0.1:{port}"
    finally:
        server.stop(0).wait()
        upstream.close()
