"""OpenTelemetry: a tracer provider and the gRPC server interceptor (health checks are not traced)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

_provider: TracerProvider | None = None


def tracer_provider(exporter: str) -> TracerProvider:
    global _provider
    if _provider is None:
        # With no exporter nothing would read the spans: sample none, so the interceptor stays on (and
        # propagates trace context) without recording every call.
        sampler = ALWAYS_OFF if exporter == "none" else ParentBased(ALWAYS_ON)
        _provider = TracerProvider(resource=Resource.create({"service.name": "tally"}), sampler=sampler)
        if exporter == "console":
            _provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return _provider


def server_interceptors(exporter: str) -> list:
    provider = tracer_provider(exporter)
    return [aio_server_interceptor(tracer_provider=provider, filter_=filters.negate(filters.health_check()))]


def tracer(exporter: str) -> trace.Tracer:
    return tracer_provider(exporter).get_tracer("tally")
