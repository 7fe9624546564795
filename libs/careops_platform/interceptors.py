"""grpc.aio server interceptors: tracing, the gateway's identity, request context, error
mapping and request metrics.

Tracing makes the spans of OpenTelemetry's gRPC server instrumentation (a server span per
call, unary and streaming alike, continuing the caller's trace context from metadata) with the
per-call work of a span nobody samples left out; the others are ours too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import Token
from typing import Any
from urllib.parse import unquote

import grpc
from careops_eventstore import ConcurrencyConflict, LogUnavailable
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.grpc._aio_server import _OpenTelemetryAioServicerContext
from opentelemetry.instrumentation.grpc.version import __version__ as OTEL_GRPC_VERSION
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.semconv._incubating.attributes.net_attributes import (
    NET_PEER_IP,
    NET_PEER_NAME,
    NET_PEER_PORT,
)
from opentelemetry.semconv._incubating.attributes.rpc_attributes import (
    RPC_GRPC_STATUS_CODE,
    RPC_METHOD,
    RPC_SERVICE,
    RPC_SYSTEM,
)
from prometheus_client import Counter, Histogram

from careops_platform.collectors import cached_labels, preinitialise
from careops_platform.errors import (
    MAX_DESCRIPTION_BYTES,
    MAX_FIELD_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_VIOLATIONS,
    Aborted,
    ErrorMap,
    FieldViolation,
    InvalidArgument,
    ServiceError,
    Unavailable,
    Unimplemented,
    clip,
    service_error,
)
from careops_platform.identity import Principal, run_as
from careops_platform.internal_identity import (
    IDENTITY_METADATA,
    REFUSAL_REASONS,
    InternalRefusal,
    InternalVerifier,
)
from careops_platform.requests import ACTOR, IDEMPOTENCY_KEY

log = logging.getLogger(__name__)

IDEMPOTENCY_METADATA = "idempotency-key"
# A caller's claim of who it is: no longer believed by any service (the gateway's signed
# identity is), and stripped by the gateway.
ACTOR_METADATA = "careops-actor"
# Callable without an identity: probes and tooling work before anyone logs in.
PUBLIC_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
)
THROUGH_GATEWAY = "calls to this service come through the gateway"
MAX_IDEMPOTENCY_KEY = 200

REQUESTS = Counter(
    "careops_grpc_requests_total", "gRPC requests by method and status code.", ["method", "code"]
)
LATENCY = Histogram(
    "careops_grpc_request_duration_seconds",
    "gRPC request latency by method.",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
_requests = cached_labels(REQUESTS)
_latency = cached_labels(LATENCY)

INTERNAL_REFUSALS = Counter(
    "careops_internal_identity_refusals_total",
    "Calls refused at a service port for lacking a valid gateway identity, by reason.",
    ["reason"],
)
preinitialise(INTERNAL_REFUSALS, REFUSAL_REASONS)

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
HandlerWrapper = Callable[[Behavior, str], Behavior]


def _wrap_unary(
    continuation_handler: grpc.RpcMethodHandler | None,
    wrapper: HandlerWrapper,
    method: str,
    stream_wrapper: Callable[[Any, str], Any] | None = None,
    *,
    lenient: bool = False,
) -> grpc.RpcMethodHandler | None:
    handler = continuation_handler
    if handler is None:
        return None
    deserializer = (
        _lenient(handler.request_deserializer) if lenient else handler.request_deserializer
    )
    if handler.unary_stream and stream_wrapper is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream_wrapper(handler.unary_stream, method),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    if not handler.unary_unary:
        return handler
    return grpc.unary_unary_rpc_method_handler(
        wrapper(handler.unary_unary, method),
        request_deserializer=deserializer,
        response_serializer=handler.response_serializer,
    )


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]


class _Around(grpc.aio.ServerInterceptor):
    """An interceptor whose work is what it makes of the inner handler (`around`): grpc.aio
    runs it as any interceptor, and `ChainedInterceptors` runs several in one."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        return self.around(await continuation(handler_call_details), handler_call_details)

    def around(
        self, handler: grpc.RpcMethodHandler | None, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        """Returns the handler the call runs, given the one the inner interceptors returned."""
        raise NotImplementedError


class ChainedInterceptors(grpc.aio.ServerInterceptor):
    """Several `_Around` interceptors as one, outermost first: the same handler as grpc.aio
    running them one by one, without its per-interceptor coroutines and continuations on
    every call (for the four of the standard chain, 15 k of its 155 k instructions per call,
    docs/benchmarks.md §16, session 28)."""

    def __init__(self, parts: Sequence[_Around]) -> None:
        self._innermost_first = tuple(reversed(parts))

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        for part in self._innermost_first:
            handler = part.around(handler, handler_call_details)
        return handler


class _UnaryInterceptor(_Around):
    """Base: wraps unary-unary behaviours; streaming handlers pass through untouched."""

    def around(
        self, handler: grpc.RpcMethodHandler | None, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        # The wrapped handler depends only on the inner handler and the method: built once,
        # not on every call (the inner one is the same object each time unless it is per call).
        wrapped: dict[str, tuple[Any, Any]] = self.__dict__.setdefault("_wrapped", {})
        cached = wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]  # type: ignore[no-any-return]
        outer = _wrap_unary(
            handler, self.wrap, method, self.wrap_stream, lenient=self.lenient_decoding
        )
        wrapped[method] = (handler, outer)
        return outer  # type: ignore[return-value]

    def wrap(self, behavior: Behavior, method: str) -> Behavior:
        raise NotImplementedError

    wrap_stream: Callable[[Any, str], Any] | None = None
    # Only the innermost interceptor decodes leniently; the outer ones copy its deserializer.
    lenient_decoding = False


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {
        key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
    }


class RequestContextInterceptor(_UnaryInterceptor):
    """Exposes the `idempotency-key` metadata to command handlers."""

    def wrap(self, behavior: Behavior, method: str) -> Behavior:
        async def with_context(request: Any, context: grpc.aio.ServicerContext) -> Any:
            key = _metadata(context).get(IDEMPOTENCY_METADATA, "")
            if len(key) > MAX_IDEMPOTENCY_KEY:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"idempotency-key is longer than {MAX_IDEMPOTENCY_KEY} characters",
                )
            key_token = IDEMPOTENCY_KEY.set(f"{method}:{key}" if key else "")
            try:
                return await behavior(request, context)
            finally:
                IDEMPOTENCY_KEY.reset(key_token)

        return with_context


def is_public_method(method: str) -> bool:
    """Returns whether the gRPC method `/<service>/<method>` is public (health, reflection)."""
    return method.lstrip("/").partition("/")[0] in PUBLIC_SERVICES


def reshaped(handler: grpc.RpcMethodHandler, unary: Any, streaming: Any) -> grpc.RpcMethodHandler:
    """Returns a handler of `handler`'s shape and codecs with the given behaviours."""
    codecs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming, **codecs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary, **codecs)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(streaming, **codecs)
    return grpc.unary_unary_rpc_method_handler(unary, **codecs)


def refusal_handler(
    handler: grpc.RpcMethodHandler,
    code: grpc.StatusCode,
    reason: str,
    trailers: tuple[Any, ...] = (),
) -> grpc.RpcMethodHandler:
    """Returns a handler of `handler`'s shape that only aborts with `code` and `reason`:
    nothing of the method runs."""

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, reason, trailing_metadata=trailers)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(code, reason, trailing_metadata=trailers)
        yield  # pragma: no cover - abort raises; this makes the function a generator

    return reshaped(handler, unary, streaming)


def _as_caller(principal: Principal) -> None:
    """Makes `principal` current and its subject the actor for the rest of the call. Set, not
    reset: grpc.aio serves each call in a task of its own (interceptors, handler and a
    streaming generator alike), whose context ends with it, so nothing leaks to another call;
    the handler stays the same object for every call, so the interceptors around it reuse
    their wrappers."""
    run_as(principal)
    ACTOR.set(principal.subject)


class InternalIdentityInterceptor(_Around):
    """A service's second wall: every call but health and reflection presents the gateway's
    signed identity (`careops-identity`), else it is refused UNAUTHENTICATED and nothing runs.
    The verified principal is current for the call (`identity.current_principal()`) and its
    subject is the actor of the events the call causes."""

    def __init__(self, verifier: InternalVerifier) -> None:
        self._verifier = verifier

    def around(
        self, handler: grpc.RpcMethodHandler | None, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or is_public_method(method):
            return handler  # type: ignore[return-value]
        metadata = handler_call_details.invocation_metadata  # type: ignore[attr-defined]
        token = next((value for key, value in metadata or () if key == IDENTITY_METADATA), None)
        try:
            principal = self._verifier.verify(token if isinstance(token, str) else None)
        except InternalRefusal as refused:
            INTERNAL_REFUSALS.labels(refused.kind).inc()
            log.info("internal identity refused", extra={"method": method, "why": refused.kind})
            reason = f"{THROUGH_GATEWAY}: {refused.reason}"
            return refusal_handler(handler, grpc.StatusCode.UNAUTHENTICATED, reason)
        _as_caller(principal)
        return handler


class Undecodable:
    """A request body that does not parse as the method's request message."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """Wraps a request deserializer so a bad body reaches the handler chain as `Undecodable`
    (grpc-python would answer UNKNOWN before any handler ran)."""
    if deserializer is None:
        return None

    def deserialize(body: bytes) -> Any:
        try:
            return deserializer(body)
        except Exception as exc:  # DecodeError, and anything else a parser raises
            return Undecodable(exc)

    return deserialize


def _decoded(request: Any) -> Any:
    if isinstance(request, Undecodable):
        raise InvalidArgument(
            "the request body is not a valid message of this method's request type",
            [FieldViolation("request", "undecodable protobuf")],
        )
    return request


def status_of(exc: Exception, error_map: ErrorMap) -> ServiceError | None:
    """Returns the status an exception maps to (None: a bug, answered INTERNAL). The one
    mapping path of every service: ServiceErrors, event-store errors, then `error_map`."""
    if isinstance(exc, ConcurrencyConflict):
        return Aborted(f"concurrent update, please retry: {exc}")
    if isinstance(exc, LogUnavailable):
        return Unavailable(str(exc))
    if isinstance(exc, NotImplementedError):
        return Unimplemented("method not implemented")
    return service_error(exc, error_map)


def rich_status(error: ServiceError) -> grpc.Status:
    """Returns `error` as a grpc.Status with google.rpc.BadRequest field violations; echoed
    text is clipped so the trailers stay far below gRPC's 16 KiB limit."""
    return rpc_status.to_status(status_message(error))


def status_message(error: ServiceError) -> status_pb2.Status:
    """Returns `error` as a google.rpc.Status message (field violations as BadRequest)."""
    message = clip(error.message, MAX_MESSAGE_BYTES)
    status = status_pb2.Status(code=getattr(code_pb2, error.code.name), message=message)
    if error.violations:
        bad_request = error_details_pb2.BadRequest()
        for violation in error.violations[:MAX_VIOLATIONS]:
            bad_request.field_violations.add(
                field=clip(violation.field, MAX_FIELD_BYTES),
                description=clip(violation.description, MAX_DESCRIPTION_BYTES),
            )
        status.details.add().Pack(bad_request)
    return status


def _code_of(exc: Exception, context: grpc.aio.ServicerContext, error_map: ErrorMap) -> Any:
    """Returns the status code a failed call ends with (an abort's own, or what `exc` maps to)."""
    if isinstance(exc, grpc.aio.AbortError):
        return context.code() or grpc.StatusCode.UNKNOWN
    error = status_of(exc, error_map)
    return error.code if error is not None else grpc.StatusCode.INTERNAL


async def _abort(
    exc: Exception, context: grpc.aio.ServicerContext, error_map: ErrorMap, method: str
) -> None:
    """Ends the call with the status `exc` maps to; an AbortError has ended it already.
    Aborting raises: callers take the code first (`_code_of`), for the request metrics."""
    if isinstance(exc, grpc.aio.AbortError):
        return
    error = status_of(exc, error_map)
    if error is None:
        log.exception("unhandled error", extra={"method": method})
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        return
    trace.get_current_span().set_attribute("rpc.grpc.status", error.code.name)
    await context.abort_with_status(rich_status(error))


class StatusInterceptor(_UnaryInterceptor):
    """Maps exceptions to gRPC statuses (with field violations) and records request metrics;
    an undecodable request body is INVALID_ARGUMENT."""

    lenient_decoding = True

    def __init__(self, error_map: ErrorMap | None = None) -> None:
        self._error_map = dict(error_map or {})

    def wrap(self, behavior: Behavior, method: str) -> Behavior:
        async def mapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await behavior(_decoded(request), context)
            except Exception as exc:
                code = _code_of(exc, context, self._error_map)
                await _abort(exc, context, self._error_map, method)
                raise
            finally:
                _requests(method, code.name).inc()
                _latency(method).observe(time.perf_counter() - started)

        return mapped


class StreamStatusInterceptor(StatusInterceptor):
    """StatusInterceptor for server-streaming RPCs as well."""

    def wrap_stream(self, behavior: Any, method: str) -> Any:  # type: ignore[override]
        async def mapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            code = grpc.StatusCode.OK
            try:
                async for item in behavior(_decoded(request), context):
                    yield item
            except Exception as exc:
                code = _code_of(exc, context, self._error_map)
                await _abort(exc, context, self._error_map, method)
                raise
            finally:
                _requests(method, code.name).inc()

        return mapped


# What OpenTelemetry's gRPC instrumentation names its tracer and logger: the spans keep their
# instrumentation scope, a peer address it cannot parse is logged under the same name.
TRACER_NAME = "opentelemetry.instrumentation.grpc"
TRACER_SCHEMA = "https://opentelemetry.io/schemas/1.11.0"
_otel_log = logging.getLogger("opentelemetry.instrumentation.grpc._server")


def span_attributes(method: str) -> dict[str, Any]:
    """Returns a server span's attributes that depend only on the method."""
    attributes: dict[str, Any] = {RPC_SYSTEM: "grpc", RPC_GRPC_STATUS_CODE: 0}
    if method:
        service, name = method.lstrip("/").split("/", 1)
        attributes.update({RPC_METHOD: name, RPC_SERVICE: service})
    return attributes


def call_attributes(context: grpc.aio.ServicerContext) -> dict[str, Any]:
    """Returns a server span's attributes of this call: user agent and peer, parsed as
    OpenTelemetry's interceptor parses them."""
    attributes: dict[str, Any] = {}
    metadata = dict(context.invocation_metadata() or ())
    if "user-agent" in metadata:
        attributes["rpc.user_agent"] = metadata["user-agent"]
    peer = context.peer()
    if not peer.startswith("unix:"):
        try:
            ip, port = peer.split(",")[0].split(":", 1)[1].rsplit(":", 1)
            ip = unquote(ip)
            attributes.update({NET_PEER_IP: ip, NET_PEER_PORT: port})
            if ip in ("[::1]", "127.0.0.1"):
                attributes[NET_PEER_NAME] = "localhost"
        except IndexError:
            _otel_log.warning("Failed to parse peer address '%s'", peer)
    return attributes


def _start_server_span(
    tracer: trace.Tracer, method: str, attributes: dict[str, Any], context: Any
) -> tuple[trace.Span, Token[Context], Any]:
    """Starts the call's server span and makes it current (on the caller's context from the
    metadata); returns it, the token that restores the context, and the servicer context the
    behaviour gets (OpenTelemetry's status-tracking proxy when the span records)."""
    metadata = context.invocation_metadata()
    parent = propagate.extract({item.key: item.value for item in metadata}) if metadata else None
    span = tracer.start_span(
        method,
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes=attributes,
        set_status_on_exception=False,
    )
    if span.is_recording():
        span.set_attributes(call_attributes(context))
        context = _OpenTelemetryAioServicerContext(context, span)
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    return span, token, context


def _end_server_span(span: trace.Span, error: BaseException | None) -> None:
    """Records an exception as OpenTelemetry's interceptor and `use_span` both do (twice,
    for any but a bare Exception; a BaseException such as a cancellation not at all), then
    ends the span."""
    if isinstance(error, Exception):
        if type(error) is not Exception:
            span.record_exception(error)
        span.record_exception(error)
    span.end()


class TracingInterceptor(_Around):
    """A server span per call, unary and streaming alike, as OpenTelemetry's
    `aio_server_interceptor()` makes it: the same tracer (instrumentation scope), span name,
    kind, attributes, parent (the caller's context from metadata, W3C by default), status
    and exception events. What it leaves out is the per-call work of a span that is not
    recorded (without an OTLP endpoint, nothing is): the call's attributes and the context
    proxy are made only for a recording span, and the wrapped handler is built once per
    method instead of on every call. A span that is not recorded still has its ids, current
    for the call, so they reach logs, events and callees. The sampler sees the method's
    attributes only (our samplers read none)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(
            TRACER_NAME, OTEL_GRPC_VERSION, tracer_provider, schema_url=TRACER_SCHEMA
        )
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def around(
        self, handler: grpc.RpcMethodHandler | None, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        if handler is None:
            return None  # type: ignore[return-value]
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        outer = self._wrap(handler, method)
        self._wrapped[method] = (handler, outer)
        return outer

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        tracer, attributes = self._tracer, span_attributes(method)
        behavior = (
            handler.unary_unary
            or handler.unary_stream
            or handler.stream_unary
            or handler.stream_stream
        )

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if not is_instrumentation_enabled():
                return await behavior(request, context)
            span, token, context = _start_server_span(tracer, method, attributes, context)
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                otel_context.detach(token)
                _end_server_span(span, error)

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if not is_instrumentation_enabled():
                async for message in behavior(request, context):
                    yield message
                return
            span, token, context = _start_server_span(tracer, method, attributes, context)
            error: BaseException | None = None
            try:
                async for message in behavior(request, context):
                    yield message
            except BaseException as exc:
                error = exc
                raise
            finally:
                otel_context.detach(token)
                _end_server_span(span, error)

        return reshaped(handler, unary, streaming)


def default_interceptors(
    error_map: ErrorMap | None = None, identity: InternalVerifier | None = None
) -> list[grpc.aio.ServerInterceptor]:
    """Returns the standard chain, as one interceptor: tracing, the gateway's identity (with a
    verifier: every service; the gateway authenticates its callers itself), request context,
    then status mapping and metrics."""
    tracing: _Around = TracingInterceptor()
    wall: list[_Around] = [InternalIdentityInterceptor(identity)] if identity is not None else []
    parts = [tracing, *wall, RequestContextInterceptor(), StreamStatusInterceptor(error_map)]
    return [ChainedInterceptors(parts)]
