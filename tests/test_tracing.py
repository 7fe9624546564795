"""One trace runs from the caller through the command, the NATS message and the projection, or
the reaction and the notifications it sends; streaming RPCs get their server span too."""

from __future__ import annotations

from pathlib import Path

from careops.incident.v1 import incident_pb2 as ipb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as it
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform.telemetry import configure_tracing
from grpc_health.v1 import health_pb2, health_pb2_grpc
from incident.tests.conftest import running_incident_service, write_config
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from ticketing.application import STREAM, SUBJECT_PREFIX
from ticketing.tests.conftest import running_service

from tests.receivers import http_receiver, smtp_receiver
from tests.support import channel_to, eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
INCIDENT_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
WATCH_TRACE_ID = "5b8efff798038103d269b633813fc60c"


def traceparent(trace_id: str) -> tuple[tuple[str, str], ...]:
    return (("traceparent", f"00-{trace_id}-b7ad6b7169203331-01"),)


def span_names(exporter: InMemorySpanExporter, trace_id: str) -> set[str]:
    """Returns the names of the finished spans of one trace."""
    return {
        span.name
        for span in exporter.get_finished_spans()
        if format(span.context.trace_id, "032x") == trace_id
    }


def install_exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


class StartedSpans(SpanProcessor):
    """Records (name, trace id, kind) of every span as it starts."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, trace.SpanKind]] = []

    @classmethod
    def install(cls) -> StartedSpans:
        processor = cls()
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)  # install_exporter() set it
        provider.add_span_processor(processor)
        return processor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.spans.append((span.name, format(span.context.trace_id, "032x"), span.kind))


async def test_trace_context_crosses_grpc_nats_and_projection(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    exporter = install_exporter()
    async with running_service(tmp_path, nats_server.url) as service:
        assert service.server is not None and service.store is not None
        async with channel_to(service) as channel:
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
            names = span_names(exporter, TRACE_ID)
            return names if "project tickets" in names else None

        names = await eventually(traced, what="the projection's span")
    assert "/careops.ticketing.v1.TicketingService/OpenTicket" in names
    assert "command ticket" in names
    assert "project tickets" in names


async def test_trace_context_crosses_a_reaction_into_its_notifications_and_a_stream(
    tmp_path: Path, own_nats: EmbeddedNats
) -> None:
    # Its own log: the pager's durable consumer on the session's log may hold what an earlier
    # test's killed worker left unacknowledged, to be redelivered before this test's incident.
    exporter = install_exporter()
    started = StartedSpans.install()
    with http_receiver() as http, smtp_receiver() as mail:
        config = write_config(tmp_path / "config", http, mail.port)
        async with running_incident_service(tmp_path / "data", own_nats.url, **config) as svc:
            assert svc.server is not None
            async with channel_to(svc) as channel:
                stub = incident_pb2_grpc.IncidentServiceStub(channel)
                declared = await stub.DeclareIncident(
                    ipb.DeclareIncidentRequest(
                        type="server_crash",
                        title="Core cluster down",
                        source=it.INCIDENT_SOURCE_MONITORING,
                        factors=it.RiskFactors(users_affected=200_000, core_system=1.0),
                    ),
                    metadata=traceparent(INCIDENT_TRACE_ID),
                )
                assert declared.incident.level == it.INCIDENT_LEVEL_A

                def webhooks() -> list[str] | None:
                    posted = [p.headers.get("traceparent", "") for p in http.received]
                    traced = [h for h in posted if INCIDENT_TRACE_ID in h]
                    return traced or None

                # The page reaction ran in the caller's trace, and so did its webhook post.
                await eventually(webhooks, what="a webhook post in the incident's trace")

                def reacted() -> set[str] | None:
                    names = span_names(exporter, INCIDENT_TRACE_ID)
                    return names if {"react incident-pager", "notify webhook"} <= names else None

                names = await eventually(reacted, what="the reaction's and delivery's spans")
                assert "/careops.incident.v1.IncidentService/DeclareIncident" in names

                call = stub.WatchAlerts(
                    ipb.WatchAlertsRequest(team_id="technical_support"),
                    metadata=traceparent(WATCH_TRACE_ID),
                )
                async for _alert in call:
                    break
                call.cancel()
    # Looked for among the started spans: a stream's span ends when its handler does, which
    # after a client's cancel is up to grpc and asyncio (a cancel swallowed by wait_for kept
    # watches open: incident.alerts.raise_if_cancel_swallowed), not what this test is about.
    assert (
        "/careops.incident.v1.IncidentService/WatchAlerts",
        WATCH_TRACE_ID,
        trace.SpanKind.SERVER,
    ) in started.spans


async def test_outgoing_calls_get_a_client_span_that_the_server_continues(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    exporter = install_exporter()
    configure_tracing("test")  # instruments grpc.aio channels opened from now on
    try:
        async with running_service(tmp_path, nats_server.url) as service:
            assert service.server is not None
            async with channel_to(service) as channel:
                with trace.get_tracer(__name__).start_as_current_span("caller") as caller:
                    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    finally:
        GrpcAioInstrumentorClient().uninstrument()
    trace_id = caller.get_span_context().trace_id
    spans = {
        span.kind: span
        for span in exporter.get_finished_spans()
        if span.context.trace_id == trace_id and span.name == "/grpc.health.v1.Health/Check"
    }
    client, server = spans[trace.SpanKind.CLIENT], spans[trace.SpanKind.SERVER]
    assert client.parent is not None and client.parent.span_id == caller.get_span_context().span_id
    assert server.parent is not None and server.parent.span_id == client.context.span_id
