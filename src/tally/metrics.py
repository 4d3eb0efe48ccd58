"""Tally's metric instruments, by name: what the Prometheus endpoint, OTLP and docs/grafana-dashboard.json
show. They are created on OpenTelemetry's global meter, which is a no-op until telemetry.meter_provider sets
an exporter; recording is per RPC or per batch, never per voucher inside a write."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

# Seconds: a lone posting takes about a millisecond, a batch of 1,000 a few hundred.
DURATION_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)

_meter = metrics.get_meter("tally")
postings = _meter.create_counter(
    "tally.postings", unit="{request}", description="Posting requests accepted (Post, PostBatch items), by flow")
refusals = _meter.create_counter(
    "tally.refusals", unit="{request}", description="Posting requests refused, by flow, gRPC code and reason")
post_duration = _meter.create_histogram(
    "tally.post.duration", unit="s", description="Post and PostBatch latency as the server sees it, by rpc",
    explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S)
write_duration = _meter.create_histogram(
    "tally.write.duration", unit="s", description="One batch's write transaction, retries included",
    explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S)
batch_size = _meter.create_histogram(
    "tally.batch.size", unit="{submission}", description="Submissions written per transaction",
    explicit_bucket_boundaries_advisory=BATCH_SIZE_BUCKETS)
write_retries = _meter.create_counter(
    "tally.write.retries", unit="{retry}",
    description="Write transactions retried, by cause: serialization (SQLSTATE 40001/40P01, SQLite busy) or "
                "connection (lost)")
write_openings = _meter.create_counter(
    "tally.write.openings", unit="{batch}",
    description="Batch write transactions by where they started: remembered (the writer's memory of its last "
                "commit, no opening reads), read, or rewritten (a remembered start failed and was written again "
                "from reads; cause: stale, another writer wrote the tenant since, or other)")
audit_runs = _meter.create_counter(
    "tally.ledger_audit.runs", unit="{run}", description="Ledger audits finished, by result: intact or findings")

UNKNOWN_FLOW = "unspecified"


def posted_one(rpc: str, flow: str) -> None:
    postings.add(1, {"rpc": rpc, "flow": flow})


def posted(rpc: str, flows: Iterable[str]) -> None:
    for flow, count in Counter(flows).items():
        postings.add(count, {"rpc": rpc, "flow": flow})


def refused(rpc: str, refusals_by_kind: Iterable[tuple[str, str, str]]) -> None:
    """`refusals_by_kind`: (flow, gRPC code name, reason) per refused request."""
    for (flow, code, reason), count in Counter(refusals_by_kind).items():
        refusals.add(count, {"rpc": rpc, "flow": flow, "code": code, "reason": reason})


def post_finished(rpc: str, started: float) -> None:
    post_duration.record(time.perf_counter() - started, {"rpc": rpc})


def batch_written(size: int, seconds: float) -> None:
    batch_size.record(size)
    write_duration.record(seconds)


def write_opened(opening: str, cause: str = "") -> None:
    write_openings.add(1, {"opening": opening, "cause": cause} if cause else {"opening": opening})


def write_retried(cause: str) -> None:
    write_retries.add(1, {"cause": cause})


def audit_finished(intact: bool) -> None:
    audit_runs.add(1, {"result": "intact" if intact else "findings"})


# What the observable instruments read: the running server's parts. Registered once per process (a second
# registration would be refused by the SDK and would keep the first server's parts alive); a server that
# starts later in the same process (tests) takes the sources over.
_sources: dict[str, Callable[[], object]] = {}


def observe(queue_depth: Callable[[], int], subscribers: Callable[[], int], holds_expired: Callable[[], int],
            findings_by_tenant: Callable[[], dict[str, int]]) -> None:
    """The values read when an exporter collects: the posting queue, the streams, the expirer, the audits.
    The labelled counters start at 0, so that a dashboard shows a series before its first event."""
    first = not _sources
    _sources.update(queue_depth=queue_depth, subscribers=subscribers, holds_expired=holds_expired,
                    findings_by_tenant=findings_by_tenant)
    if not first:
        return
    for cause in ("serialization", "connection"):
        write_retries.add(0, {"cause": cause})
    for intact in (True, False):
        audit_runs.add(0, {"result": "intact" if intact else "findings"})
    _meter.create_observable_gauge("tally.posting.queue.depth", [_one("queue_depth")], unit="{entry}",
                                   description="Entries (a Post, or a PostBatch whole) waiting for the writer")
    _meter.create_observable_gauge("tally.stream.subscribers", [_one("subscribers")], unit="{stream}",
                                   description="Open StreamEvents and StreamBalanceChanges calls")
    _meter.create_observable_counter("tally.holds.expired", [_one("holds_expired")], unit="{hold}",
                                     description="Holds released by the server at their expiry")
    _meter.create_observable_gauge("tally.ledger_audit.findings", [_findings], unit="{finding}",
                                   description="Findings of the tenant's last ledger audit; 0 when its ledger "
                                               "checked out")


def _one(source: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    return lambda _options: [Observation(_sources[source]())]


def _findings(_options: CallbackOptions) -> Iterable[Observation]:
    by_tenant = _sources["findings_by_tenant"]()
    return [Observation(count, {"tenant": tenant}) for tenant, count in sorted(by_tenant.items())]
