"""The server tracing interceptor makes the spans OpenTelemetry's own aio server interceptor
makes (name, kind, scope, attributes, parent, status, exception events), unary and streaming,
and does no more than keep the ids current when nothing samples the call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from careops_platform.interceptors import TracingInterceptor

SERVICE = "test.Traced"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
SAMPLED = (("traceparent", f"00-{TRACE_ID}-{PARENT_SPAN}-01"), ("baggage", "tenant=t1"))
UNSAMPLED = (("traceparent", f"00-{TRACE_ID}-{PARENT_SPAN}-00"),)
# What each handler saw of the current span: (trace id, is recording).
SEEN: list[tuple[int, bool]] = []


def _identity(body: bytes) -> bytes:
    return body


def _record_current() -> None:
    context = trace.get_current_span().get_span_context()
    SEEN.append((context.trace_id, trace.get_current_span().is_recording()))


async def ok(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    _record_current()
    return request


async def not_found(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    return b""  # pragma: no cover - abort raises


async def unavailable(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    context.set_code(grpc.StatusCode.UNAVAILABLE)
    context.set_details("try later")
    return b""


async def broken(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise ValueError("a bug")


async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    _record_current()
    for _ in range(3):
        yield request


async def broken_stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield request
    raise RuntimeError("mid-stream")


def _handlers() -> grpc.GenericRpcHandler:
    codecs: dict[str, Any] = {"request_deserializer": _identity, "response_serializer": _identity}
    unary = {"Ok": ok, "NotFound": not_found, "Unavailable": unavailable, "Broken": broken}
    streaming = {"Stream": stream, "BrokenStream": broken_stream}
    methods = {
        name: grpc.unary_unary_rpc_method_handler(fn, **codecs) for name, fn in unary.items()
    }
    methods |= {
        name: grpc.unary_stream_rpc_method_handler(fn, **codecs) for name, fn in streaming.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, methods)


CALLS = (
    ("Ok", SAMPLED),
    ("Ok", ()),
    ("Ok", UNSAMPLED),
    ("NotFound", SAMPLED),
    ("Unavailable", SAMPLED),
    ("Broken", SAMPLED),
    ("Stream", SAMPLED),
    ("BrokenStream", SAMPLED),
)


async def _serve_and_call(interceptor: grpc.aio.ServerInterceptor) -> None:
    """Serves the test methods behind `interceptor` and makes every call of CALLS, twice."""
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers((_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for _ in range(2):  # the second time through handlers built on the first
                for method, metadata in CALLS:
                    path = f"/{SERVICE}/{method}"
                    try:
                        if method.endswith("Stream"):
                            call = channel.unary_stream(path, _identity, _identity)
                            async for _message in call(b"x", metadata=metadata):
                                pass
                        else:
                            await channel.unary_unary(path, _identity, _identity)(
                                b"x", metadata=metadata
                            )
                    except grpc.aio.AioRpcError:
                        pass
    finally:
        await server.stop(None)


def _provider(sampler: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _without_stack(attributes: Any) -> dict[str, Any]:
    return {k: v for k, v in (attributes or {}).items() if k != "exception.stacktrace"}


def _comparable(span: ReadableSpan) -> dict[str, Any]:
    """A finished span without what differs between any two runs (ids, times, the peer's
    port, the stack traces' frames)."""
    attributes = dict(span.attributes or {})
    attributes.pop("net.peer.port")
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind,
        "scope": span.instrumentation_scope,
        "attributes": list(attributes.items()),
        "status": (span.status.status_code, span.status.description),
        "parent": (parent.trace_id, parent.span_id, parent.is_remote) if parent else None,
        "trace_id": span.context.trace_id if parent else None,
        "events": [
            (
                event.name,
                {k: v for k, v in (event.attributes or {}).items() if k != "exception.stacktrace"},
            )
            for event in span.events
        ],
    }


async def test_sampled_spans_equal_opentelemetrys_unary_and_streaming() -> None:
    theirs, their_spans = _provider(ALWAYS_ON)
    ours, our_spans = _provider(ALWAYS_ON)
    await _serve_and_call(aio_server_interceptor(tracer_provider=theirs))
    await _serve_and_call(TracingInterceptor(tracer_provider=ours))
    expected = [_comparable(span) for span in their_spans.get_finished_spans()]
    assert len(expected) == 2 * len(CALLS)
    assert [_comparable(span) for span in our_spans.get_finished_spans()] == expected
    by_name = {span["name"]: span for span in expected}
    assert by_name[f"/{SERVICE}/Broken"]["events"]  # the comparison saw exception events


async def test_unsampled_calls_still_carry_their_trace_ids_and_record_nothing() -> None:
    provider, exporter = _provider(ParentBased(ALWAYS_OFF))
    SEEN.clear()
    await _serve_and_call(TracingInterceptor(tracer_provider=provider))
    # Ok with a sampled parent, without a parent, with an unsampled parent; then Stream.
    first = SEEN[:4]
    assert first[0] == (int(TRACE_ID, 16), True)
    assert first[1][0] != 0 and first[1][0] != int(TRACE_ID, 16) and not first[1][1]
    assert first[2] == (int(TRACE_ID, 16), False)
    assert first[3] == (int(TRACE_ID, 16), True)
    recorded = exporter.get_finished_spans()
    assert recorded and all(span.context.trace_id == int(TRACE_ID, 16) for span in recorded)
    assert len(recorded) == 2 * (len(CALLS) - 2)  # every call but the two unsampled ones
