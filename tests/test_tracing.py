"""One trace runs from the caller through the command, the NATS message and the projection."""

from __future__ import annotations

from pathlib import Path

import grpc
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from ticketing.application import STREAM, SUBJECT_PREFIX
from ticketing.tests.conftest import running_service

from tests.support import eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def install_exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def test_trace_context_crosses_grpc_nats_and_projection(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    exporter = install_exporter()
    async with running_service(tmp_path, nats_server.url) as service:
        assert service.server is not None and service.store is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.server.port}") as channel:
            stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
            opened = await stub.OpenTicket(
                pb.OpenTicketRequest(
                    customer_id="C-trace",
                    channel=t.CHANNEL_WEB,
                    type=t.TICKET_TYPE_CONSULTATION,
                    priority=t.PRIORITY_LOW,
                    subject="How do I reset it?",
                ),
                metadata=(("traceparent", TRACEPARENT),),
            )
        messages = await service.store.read_subject(
            stream=STREAM.name, subject=f"{SUBJECT_PREFIX}.{opened.ticket.ticket_id}"
        )
        assert TRACE_ID in messages[0].headers["traceparent"]
        assert TRACE_ID in messages[0].batch.events[0].trace_context["traceparent"]
        assert await service.wait_for("tickets", opened.sequence, 10)

        def traced() -> set[str] | None:
            names = {
                span.name
                for span in exporter.get_finished_spans()
                if format(span.context.trace_id, "032x") == TRACE_ID
            }
            return names if "project tickets" in names else None

        names = await eventually(traced, what="the projection's span")
    assert "/careops.ticketing.v1.TicketingService/OpenTicket" in names
    assert "command ticket" in names
    assert "project tickets" in names
