"""Metrics and traces of a real `tally serve` process: the Prometheus endpoint (TALLY_METRICS_ADDRESS) after
real gRPC traffic moves by exactly that traffic, on SQLite and PostgreSQL; every metric the Grafana dashboard
names is in the scrape; over OTLP, a real receiver gets the metrics and a failed call's span with its real
status code."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import bookkeeping_service_pb2 as books_pb
from tally.v1 import bookkeeping_service_pb2_grpc as books_grpc
from tally.v1 import types_pb2
from tests.e2e.conftest import adjustment_request, line, ref, transfer_request
from tests.e2e.test_e2e_serve_process import free_port
from tests.tally_process import BACKENDS, TallyProcess, module_process

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
WAIT_S = 20.0
CALL_S = 10.0
Samples = dict[tuple[str, frozenset], float]


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TallyProcess]:
    yield from module_process(request, tmp_path_factory, TALLY_METRICS_ADDRESS=f"127.0.0.1:{free_port()}")


class Wire:
    def __init__(self, process: TallyProcess) -> None:
        self.channel = grpc.insecure_channel(process.target)
        self.auth = (("authorization", f"Bearer {process.api_key}"),)
        self.accounts = acc_grpc.AccountServiceStub(self.channel)
        self.accounting = post_grpc.AccountingServiceStub(self.channel)
        self.books = books_grpc.BookkeepingServiceStub(self.channel)
        self.metrics_url = f"http://{process.extra_env.get('TALLY_METRICS_ADDRESS', '')}/metrics"

    def open(self, *codes: str) -> None:
        bank = acc_pb.CreateAccountRequest(request_id="create-bank", code="bank", type=types_pb2.ACCOUNT_TYPE_INTERNAL,
                                           normal_side=types_pb2.SIDE_DEBIT, currency="USD",
                                           floor_policy=types_pb2.FLOOR_POLICY_UNBOUNDED)
        self.accounts.CreateAccount(bank, metadata=self.auth, timeout=CALL_S)
        for code in codes:
            self.accounts.CreateAccount(acc_pb.CreateAccountRequest(
                request_id=f"create-{code}", code=code, type=types_pb2.ACCOUNT_TYPE_DEPOSIT, currency="USD"),
                metadata=self.auth, timeout=CALL_S)

    def post(self, request: post_pb.PostRequest) -> None:
        self.accounting.Post(request, metadata=self.auth, timeout=CALL_S)

    def scrape(self) -> Samples:
        text = urllib.request.urlopen(self.metrics_url, timeout=CALL_S).read().decode()
        return {(s.name, frozenset((k, v) for k, v in s.labels.items() if not k.startswith("otel_"))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0)


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_counters_move_by_exactly_the_traffic(served: TallyProcess) -> None:
    wire = Wire(served)
    wire.open("m-alice", "m-bob")
    before = wire.scrape()

    wire.post(adjustment_request("m-fund", [line("bank", "debit", 1_000), line("m-alice", "credit", 1_000)]))
    wire.post(transfer_request("m-t1", "m-alice", "m-bob", 100))
    wire.post(transfer_request("m-t2", "m-alice", "m-bob", 100))
    with pytest.raises(grpc.RpcError) as refused:
        wire.post(transfer_request("m-t3", "m-alice", "m-bob", 1_000_000))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    batch = post_pb.PostBatchRequest(requests=[transfer_request("m-b1", "m-alice", "m-bob", 10),
                                               transfer_request("m-b2", "m-alice", "m-bob", 1_000_000),
                                               transfer_request("m-b3", "m-alice", "m-bob", 10)])
    results = wire.accounting.PostBatch(batch, metadata=wire.auth, timeout=CALL_S).results
    assert [r.WhichOneof("result") for r in results] == ["posted", "error", "posted"]
    after = wire.scrape()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("tally_postings_total", rpc="Post", flow="adjustment") == 1
    assert moved("tally_postings_total", rpc="Post", flow="transfer") == 2
    assert moved("tally_postings_total", rpc="PostBatch", flow="transfer") == 2
    refusal = {"flow": "transfer", "code": "FAILED_PRECONDITION", "reason": "INSUFFICIENT_FUNDS"}
    assert moved("tally_refusals_total", rpc="Post", **refusal) == 1
    assert moved("tally_refusals_total", rpc="PostBatch", **refusal) == 1
    assert moved("tally_post_duration_seconds_count", rpc="Post") == 4
    assert moved("tally_post_duration_seconds_count", rpc="PostBatch") == 1
    assert moved("tally_post_duration_seconds_sum", rpc="Post") > 0
    assert moved("tally_batch_size_sum") == 7  # every submission reached the writer, the refused ones too
    assert 1 <= moved("tally_batch_size_count") <= 7
    assert moved("tally_write_duration_seconds_count") == moved("tally_batch_size_count")
    started = sum(moved("tally_write_openings_total", opening=o) for o in ("remembered", "read"))
    assert started == moved("tally_batch_size_count")  # every batch says how it started
    assert value(after, "tally_posting_queue_depth") == 0
    assert moved("tally_write_retries_total", cause="serialization") >= 0  # present from the start


def test_gauges_and_background_work(served: TallyProcess) -> None:
    wire = Wire(served)
    wire.open("g-alice")
    wire.post(adjustment_request("g-fund", [line("bank", "debit", 500), line("g-alice", "credit", 500)]))
    before = wire.scrape()
    base_streams = value(before, "tally_stream_subscribers")

    stream = wire.accounting.StreamEvents(post_pb.StreamEventsRequest(), metadata=wire.auth)
    stream.initial_metadata()  # the subscription exists once its position is sent
    assert value(wire.scrape(), "tally_stream_subscribers") == base_streams + 1
    stream.cancel()
    wait_for(lambda: value(wire.scrape(), "tally_stream_subscribers") == base_streams, "the stream to close")

    expire = timestamp_pb2.Timestamp()
    expire.FromNanoseconds(time.time_ns() + 500_000_000)
    wire.accounting.CreateHold(post_pb.CreateHoldRequest(request_id="g-hold", account=ref("g-alice"), amount=50,
                                                         currency="USD", expire_time=expire),
                               metadata=wire.auth, timeout=CALL_S)
    expired = value(before, "tally_holds_expired_total")
    wait_for(lambda: value(wire.scrape(), "tally_holds_expired_total") == expired + 1, "the hold to expire")

    intact = value(before, "tally_ledger_audit_runs_total", result="intact")
    for _ in wire.books.AuditLedger(books_pb.AuditLedgerRequest(), metadata=wire.auth, timeout=CALL_S):
        pass
    after = wire.scrape()
    assert value(after, "tally_ledger_audit_runs_total", result="intact") == intact + 1
    assert value(after, "tally_ledger_audit_runs_total", result="findings") == 0


def dashboard_metrics() -> set[str]:
    """The metric names the dashboard's queries use (histogram series by their base name)."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", ())]
    assert len(exprs) >= 8
    return {re.sub(r"_(bucket|sum|count)$", "", name) for e in exprs for name in re.findall(r"\btally_\w+", e)}


def test_every_dashboard_metric_is_scraped(served: TallyProcess) -> None:
    wire = Wire(served)
    wire.open("d-alice")
    wire.post(adjustment_request("d-fund", [line("bank", "debit", 5), line("d-alice", "credit", 5)]))
    with pytest.raises(grpc.RpcError):
        wire.post(transfer_request("d-over", "d-alice", "bank", 6))
    wire.accounting.PostBatch(post_pb.PostBatchRequest(requests=[transfer_request("d-b", "d-alice", "bank", 1)]),
                              metadata=wire.auth, timeout=CALL_S)
    for _ in wire.books.AuditLedger(books_pb.AuditLedgerRequest(), metadata=wire.auth, timeout=CALL_S):
        pass  # the findings gauge has a series once a tenant's ledger was audited
    scraped = {re.sub(r"_(bucket|sum|count)$", "", name) for name, _ in wire.scrape()}
    wanted = dashboard_metrics()
    assert wanted - scraped == set()
    assert {"tally_postings_total", "tally_refusals_total", "tally_post_duration_seconds"} <= wanted


# --------------------------------------------------------------------------------------------- OTLP


class Receiver(trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    """An OTLP/gRPC receiver keeping what it was sent."""

    def __init__(self) -> None:
        self.spans: list = []
        self.metric_names: set[str] = set()
        self.lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802 - gRPC method name (both services call it Export)
        with self.lock:
            if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                self.spans += [s for r in request.resource_spans for ss in r.scope_spans for s in ss.spans]
                return trace_service_pb2.ExportTraceServiceResponse()
            self.metric_names |= {m.name for r in request.resource_metrics for sm in r.scope_metrics
                                  for m in sm.metrics}
            return metrics_service_pb2.ExportMetricsServiceResponse()

    def span(self, name: str):
        with self.lock:
            return next((s for s in self.spans if s.name == name), None)


def test_otlp_gets_metrics_and_a_failed_call_span_with_its_code(tmp_path: Path) -> None:
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    process = TallyProcess(tmp_path, f"sqlite:///{tmp_path / 'tally.db'}",
                           OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}", OTEL_EXPORTER_OTLP_INSECURE="true",
                           OTEL_BSP_SCHEDULE_DELAY="100", OTEL_METRIC_EXPORT_INTERVAL="300")
    process.start()
    try:
        wire = Wire(process)
        with pytest.raises(grpc.RpcError) as missing:
            wire.accounts.GetAccount(acc_pb.GetAccountRequest(account=ref("nobody")), metadata=wire.auth,
                                     timeout=CALL_S)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        name = "/tally.v1.AccountService/GetAccount"
        wait_for(lambda: receiver.span(name) is not None, "the GetAccount span")
        span = receiver.span(name)
        attributes = {a.key: a.value for a in span.attributes}
        assert attributes["rpc.grpc.status_code"].int_value == grpc.StatusCode.NOT_FOUND.value[0]
        # OpenTelemetry's semantic conventions leave a server span's status unset for NOT_FOUND (a client's
        # mistake, not the server's); never OK.
        assert span.status.code != span.status.STATUS_CODE_OK
        wait_for(lambda: "tally.posting.queue.depth" in receiver.metric_names, "metrics over OTLP")
    finally:
        process.stop()
        server.stop(0)
