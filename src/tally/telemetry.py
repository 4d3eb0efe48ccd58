"""OpenTelemetry: a tracer provider and the gRPC server interceptor (health checks are not traced).

With no exporter nothing would read a span, and Tally makes no outgoing calls that would carry a trace
context on: the interceptor is left out, since it costs a sixth of a small request's CPU."""

from __future__ import annotations

from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased


def tracer_provider(exporter: SpanExporter) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "tally"}), sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def server_interceptors(exporter: str) -> list:
    if exporter == "none":
        return []
    provider = tracer_provider(ConsoleSpanExporter())
    return [aio_server_interceptor(tracer_provider=provider, filter_=filters.negate(filters.health_check()))]
