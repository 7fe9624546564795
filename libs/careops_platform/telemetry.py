"""OpenTelemetry tracing: W3C trace context, OTLP export when an endpoint is configured."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def configure_tracing(service: str, otlp_endpoint: str = "") -> TracerProvider:
    """Installs a tracer provider for `service` and traces the process's outgoing grpc.aio
    calls (a client span each, its context in the metadata); spans are exported only with an
    endpoint."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"careops-{service}"}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True))
        )
    trace.set_tracer_provider(provider)
    instrumentor = GrpcAioInstrumentorClient()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()  # grpc.aio channels opened from now on
    return provider
