"""OpenTelemetry: where traces and metrics go, and the gRPC server interceptor (health checks not traced).

- Metrics: a Prometheus scrape endpoint on TALLY_METRICS_ADDRESS; OTLP (gRPC) when the standard
  OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) is set; JSON on stdout every minute
  with TALLY_OTEL_EXPORTER=console. With none of them the meter is OpenTelemetry's no-op one.
- Traces: OTLP on the same condition (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and/or the console. With no
  exporter nothing would read a span, and Tally makes no outgoing calls that would carry a trace context on:
  the interceptor is left out, since it costs a sixth of a small request's CPU.
The OTLP exporters read the other standard OTEL_EXPORTER_OTLP_* variables (headers, TLS, timeout)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry import metrics
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from tally.config import ConfigError

log = logging.getLogger(__name__)
CONSOLE_METRICS_INTERVAL_MS = 60_000
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def _resource() -> Resource:
    return Resource.create({"service.name": "tally"})


def otlp_wanted(signal: str, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"))


def tracer_provider(*exporters: SpanExporter) -> TracerProvider:
    provider = TracerProvider(resource=_resource(), sampler=ParentBased(ALWAYS_ON))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class MetricsEndpoint:
    """The Prometheus scrape endpoint's HTTP server, closed when the server stops."""

    def __init__(self, address: str) -> None:
        from prometheus_client import start_http_server

        host, _, port = address.rpartition(":")
        try:
            self.server, self.thread = start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0")
        except OSError as exc:
            raise ConfigError(f"TALLY_METRICS_ADDRESS={address!r}: cannot listen ({exc.strerror})") from exc
        self.port = self.server.server_port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def meter_provider(exporter: str, metrics_address: str = "") -> MetricsEndpoint | None:
    """Sets the process's meter provider once, with a reader per configured destination; returns the scrape
    endpoint when TALLY_METRICS_ADDRESS asks for one."""
    if isinstance(metrics.get_meter_provider(), MeterProvider):
        return None  # a second server in one process (tests): the first one's provider stays
    readers: list[MetricReader] = []
    endpoint = None
    if metrics_address:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers.append(PrometheusMetricReader())
        endpoint = MetricsEndpoint(metrics_address)
        log.info("metrics: Prometheus endpoint on %s (port %d)", metrics_address, endpoint.port)
    if otlp_wanted("METRICS"):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))  # OTEL_METRIC_EXPORT_INTERVAL
    if exporter == "console":
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(),
                                                     export_interval_millis=CONSOLE_METRICS_INTERVAL_MS))
    if readers:
        metrics.set_meter_provider(MeterProvider(resource=_resource(), metric_readers=readers))
    return endpoint


def span_exporters(exporter: str) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    if otlp_wanted("TRACES"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())
    if exporter == "console":
        exporters.append(ConsoleSpanExporter())
    return exporters


def server_interceptors(exporter: str) -> list:
    exporters = span_exporters(exporter)
    if not exporters:
        return []
    provider = tracer_provider(*exporters)
    return [aio_server_interceptor(tracer_provider=provider, filter_=filters.negate(filters.health_check()))]
