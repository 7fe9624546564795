"""OpenTelemetry tracing: W3C trace context, OTLP export when an endpoint is configured."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased


def configure_tracing(service: str, otlp_endpoint: str = "") -> TracerProvider:
    """Installs a tracer provider for `service` and traces the process's outgoing grpc.aio
    calls (a client span each, its context in the metadata); spans are exported only with an
    endpoint."""
    provider = tracer_provider(service, otlp_endpoint)
    trace.set_tracer_provider(provider)
    instrumentor = GrpcAioInstrumentorClient()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()  # grpc.aio channels opened from now on
    return provider


def tracer_provider(service: str, otlp_endpoint: str = "") -> TracerProvider:
    """Returns the provider: OTLP export with an endpoint. Without one, root spans are not
    sampled (nothing would read them; recording the server, append and per-projection spans
    was a few percent of an OpenTicket's CPU): their trace ids still reach logs, events and
    callees, and a caller's sampled context is still honoured."""
    resource = Resource.create({"service.name": f"careops-{service}"})
    sampler = ParentBased(ALWAYS_ON if otlp_endpoint else ALWAYS_OFF)
    provider = TracerProvider(resource=resource, sampler=sampler)
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True))
        )
    return provider
