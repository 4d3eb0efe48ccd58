"""The load generator: a separate process driving a real gRPC channel with grpc.aio.

    python -m bench.loadgen CONFIG.json OUT.json

CONFIG names the target, the streams (what to call, on which workload, with how many concurrent callers)
and the time window (monotonic nanoseconds, shared by every process on the machine): callers start at
`start_ns`, calls that complete in [start_ns + warmup_ns, start_ns + warmup_ns + duration_ns] are counted,
and nobody starts a call after the window closes. Every call has a deadline and every caller a bound on
its number of calls, so the process always ends. OUT gets a JSON summary per stream; latencies
(microseconds, one per counted call) go to OUT.<stream>.lat as native int64.
"""

from __future__ import annotations

import array
import asyncio
import json
import random
import resource
import sys
import time
from dataclasses import dataclass, field

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import flows_pb2, types_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
CURRENCY = "USD"
# Refusals of the request itself (the ledger said no); anything else is an error of the service.
REJECTION_CODES = frozenset({"FAILED_PRECONDITION", "INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS",
                             "OUT_OF_RANGE"})


def classify(code_name: str, reason: str) -> tuple[str, str]:
    """('rejection', reason) for a refusal by the ledger, ('error', 'CODE' or 'CODE:REASON') otherwise."""
    if code_name in REJECTION_CODES:
        return "rejection", reason or code_name
    return "error", f"{code_name}:{reason}" if reason else code_name


def account_code(prefix: str, index: int) -> str:
    return f"{prefix}{index:05d}"


def pick_pair(rng: random.Random, accounts: int, workload: str) -> tuple[int, int | None]:
    """(source, destination) account indexes; destination None means the merchant (hot workload)."""
    src = rng.randrange(accounts)
    if workload == "hot":
        return src, None
    dst = rng.randrange(accounts - 1)
    return src, dst + 1 if dst >= src else dst  # uniform over the others: never the source


def transfer_request(rng: random.Random, stream: dict, request_id: str) -> post_pb.PostRequest:
    """A transfer of 1..amount_max between the stream's accounts (to the merchant on the hot workload)."""
    src, dst = pick_pair(rng, stream["accounts"], stream["workload"])
    prefix = stream["prefix"]
    to_code = stream["merchant"] if dst is None else account_code(prefix, dst)
    flow = flows_pb2.TransferFlow(to=types_pb2.AccountRef(code=to_code),
                                  amount=rng.randint(1, stream["amount_max"]), currency=CURRENCY)
    getattr(flow, "from").code = account_code(prefix, src)
    return post_pb.PostRequest(request_id=request_id, transfer=flow)


@dataclass
class StreamResult:
    name: str
    kind: str
    workload: str
    callers: int
    batch: int
    calls: int = 0  # calls completed inside the window
    items: int = 0  # requests carried by those calls (1 for Post, the batch size for PostBatch)
    vouchers: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    calls_total: int = 0  # every call, warm-up and drain included
    latencies_us: array.array = field(default_factory=lambda: array.array("q"))

    def count(self, table: dict[str, int], key: str, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "latencies_us"}


def _error_reason(exc: grpc.aio.AioRpcError) -> str:
    try:
        for key, value in exc.trailing_metadata() or ():
            if key == STATUS_DETAILS_KEY:
                status = status_pb2.Status.FromString(value)
                for detail in status.details:
                    info = error_details_pb2.ErrorInfo()
                    if detail.Unpack(info):
                        return info.reason
    except Exception:  # noqa: BLE001 - a reason we cannot read is just absent
        return ""
    return ""


class Generator:
    def __init__(self, config: dict) -> None:
        self.config = config
        self.start_ns = int(config["start_ns"])
        self.window_start_ns = self.start_ns + int(config["warmup_ns"])
        self.window_end_ns = self.window_start_ns + int(config["duration_ns"])
        self.deadline_s = float(config.get("deadline_s", 30))
        self.max_calls = int(config.get("max_calls_per_caller", 1_000_000))
        self.run_id = config["run_id"]
        self.results = [StreamResult(s["name"], s["kind"], s.get("workload", ""), s["callers"], s.get("batch", 1))
                        for s in config["streams"]]
        self.cpu: dict[str, float] = {}

    # -- callers -----------------------------------------------------------------------------------
    async def _caller(self, channel: grpc.aio.Channel, stream: dict, result: StreamResult, index: int) -> None:
        kind = stream["kind"]
        rng = random.Random(f"{self.run_id}/{self.config['proc_index']}/{result.name}/{index}")
        key = stream.get("api_key", "")
        metadata = (("authorization", f"Bearer {key}"),) if key else ()
        id_prefix = f"{self.run_id}-{self.config['proc_index']}-{result.name}-{index}-"
        if kind == "empty":
            call = health_pb2_grpc.HealthStub(channel).Check
        elif kind == "post":
            call = post_grpc.AccountingServiceStub(channel).Post
        elif kind == "batch":
            call = post_grpc.AccountingServiceStub(channel).PostBatch
        else:
            raise ValueError(f"unknown stream kind {kind!r}")
        now = time.monotonic_ns()
        if now < self.start_ns:
            await asyncio.sleep((self.start_ns - now) / 1e9)
        seq = 0
        while seq < self.max_calls and time.monotonic_ns() < self.window_end_ns:
            seq += 1
            if kind == "empty":
                request, items = health_pb2.HealthCheckRequest(service=""), 1
            elif kind == "post":
                request, items = transfer_request(rng, stream, f"{id_prefix}{seq}"), 1
            else:
                items = result.batch
                request = post_pb.PostBatchRequest(
                    requests=[transfer_request(rng, stream, f"{id_prefix}{seq}.{i}") for i in range(items)])
            t0 = time.monotonic_ns()
            response, failure = None, None
            try:
                response = await call(request, metadata=metadata, timeout=self.deadline_s)
            except grpc.aio.AioRpcError as exc:
                failure = classify(exc.code().name, _error_reason(exc))
            t1 = time.monotonic_ns()
            result.calls_total += 1
            if not self.window_start_ns <= t1 <= self.window_end_ns:
                continue
            result.calls += 1
            result.items += items
            result.latencies_us.append((t1 - t0) // 1000)
            if failure is not None:
                kind_, key = failure
                result.count(result.rejections if kind_ == "rejection" else result.errors, key, items)
            elif kind == "post":
                result.vouchers += len(response.vouchers)
            elif kind == "batch":
                for item in response.results:
                    if item.HasField("posted"):
                        result.vouchers += len(item.posted.vouchers)
                    else:
                        kind_, key = classify(code_pb2.Code.Name(item.error.code), item.error.reason)
                        result.count(result.rejections if kind_ == "rejection" else result.errors, key)

    async def _cpu_sampler(self) -> None:
        for label, at in (("start", self.window_start_ns), ("end", self.window_end_ns)):
            now = time.monotonic_ns()
            if now < at:
                await asyncio.sleep((at - now) / 1e9)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.cpu[label] = usage.ru_utime + usage.ru_stime
            self.cpu[f"{label}_ns"] = time.monotonic_ns()

    async def run(self) -> None:
        channel_count = max(1, int(self.config.get("channels", 1)))
        options = [("grpc.use_local_subchannel_pool", 1)] if channel_count > 1 else []
        channels = [grpc.aio.insecure_channel(self.config["target"], options=options) for _ in range(channel_count)]
        try:
            for ch in channels:
                await asyncio.wait_for(ch.channel_ready(), timeout=30)
            tasks = [asyncio.ensure_future(self._cpu_sampler())]
            n = 0
            for stream, result in zip(self.config["streams"], self.results, strict=True):
                for i in range(stream["callers"]):
                    tasks.append(asyncio.ensure_future(self._caller(channels[n % channel_count], stream, result, i)))
                    n += 1
            # Bounded: callers stop at the window's end and every call has a deadline.
            limit_s = (self.window_end_ns - time.monotonic_ns()) / 1e9 + self.deadline_s + 30
            done, pending = await asyncio.wait(tasks, timeout=max(1.0, limit_s))
            for t in pending:
                t.cancel()
            for t in done:
                if t.exception() is not None:
                    raise t.exception()
        finally:
            for ch in channels:
                await ch.close()

    def write(self, out_path: str) -> None:
        cpu_s = self.cpu.get("end", 0.0) - self.cpu.get("start", 0.0)
        cpu_window_ns = int(self.cpu.get("end_ns", 0) - self.cpu.get("start_ns", 0))
        summary = {"proc_index": self.config["proc_index"], "cpu_s": cpu_s, "cpu_window_ns": cpu_window_ns,
                   "window_ns": self.window_end_ns - self.window_start_ns, "streams": []}
        for r in self.results:
            lat_path = f"{out_path}.{r.name}.lat"
            with open(lat_path, "wb") as f:
                r.latencies_us.tofile(f)
            summary["streams"].append({**r.summary(), "latency_file": lat_path})
        with open(out_path, "w") as f:
            json.dump(summary, f)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m bench.loadgen CONFIG.json OUT.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        config = json.load(f)
    gen = Generator(config)
    asyncio.run(gen.run())
    gen.write(argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
