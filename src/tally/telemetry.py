"""OpenTelemetry: a tracer provider and the gRPC server interceptor (health checks are not traced).

With no exporter nothing would read a span, and Tally makes no outgoing calls that would carry a trace
context on: the interceptor is left out, since it costs a sixth of a small request's CPU."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased


def tracer_provider(exporter: SpanExporter) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "tally"}), sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def meter_provider(exporter: str) -> None:
    """Metrics go where traces go: printed as JSON every minute with `console`; with `none` the meter is
    OpenTelemetry's no-op one. Set once per process."""
    if exporter == "none" or isinstance(metrics.get_meter_provider(), MeterProvider):
        return
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=60_000)
    metrics.set_meter_provider(MeterProvider(resource=Resource.create({"service.name": "tally"}),
                                             metric_readers=[reader]))


def audit_findings_gauge(findings_by_tenant: Callable[[], dict[str, int]]) -> None:
    """`tally.ledger_audit.findings`: per tenant, the findings of its last ledger audit (0: intact)."""

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {"tenant": tenant}) for tenant, count in sorted(findings_by_tenant().items())]

    metrics.get_meter("tally").create_observable_gauge(
        "tally.ledger_audit.findings", callbacks=[observe], unit="{finding}",
        description="Findings of the tenant's last ledger audit; 0 when its ledger checked out")


def server_interceptors(exporter: str) -> list:
    if exporter == "none":
        return []
    provider = tracer_provider(ConsoleSpanExporter())
    return [aio_server_interceptor(tracer_provider=provider, filter_=filters.negate(filters.health_check()))]
