"""grpc.aio server interceptors: tracing, request context, error mapping and request metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from careops_eventstore import ConcurrencyConflict, LogUnavailable
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram

from careops_platform.errors import ServiceError
from careops_platform.requests import ACTOR, IDEMPOTENCY_KEY

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

IDEMPOTENCY_METADATA = "idempotency-key"
ACTOR_METADATA = "careops-actor"
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

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
HandlerWrapper = Callable[[Behavior, str], Behavior]


def _wrap_unary(
    continuation_handler: grpc.RpcMethodHandler | None,
    wrapper: HandlerWrapper,
    method: str,
    stream_wrapper: Callable[[Any, str], Any] | None = None,
) -> grpc.RpcMethodHandler | None:
    handler = continuation_handler
    if handler is not None and handler.unary_stream and stream_wrapper is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream_wrapper(handler.unary_stream, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler is None or not handler.unary_unary:
        return handler
    return grpc.unary_unary_rpc_method_handler(
        wrapper(handler.unary_unary, method),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class _UnaryInterceptor(grpc.aio.ServerInterceptor):
    """Base: wraps unary-unary behaviours; streaming handlers pass through untouched."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        return _wrap_unary(  # type: ignore[return-value]
            handler, self.wrap, handler_call_details.method, self.wrap_stream
        )

    def wrap(self, behavior: Behavior, method: str) -> Behavior:
        raise NotImplementedError

    wrap_stream: Callable[[Any, str], Any] | None = None


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {
        key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
    }


class TracingInterceptor(_UnaryInterceptor):
    """Starts a server span, continuing the caller's W3C trace context from metadata."""

    def wrap(self, behavior: Behavior, method: str) -> Behavior:
        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            parent = propagate.extract(_metadata(context))
            with tracer.start_as_current_span(
                method, context=parent, kind=SpanKind.SERVER, attributes={"rpc.method": method}
            ):
                return await behavior(request, context)

        return traced


class RequestContextInterceptor(_UnaryInterceptor):
    """Exposes the `idempotency-key` and `careops-actor` metadata to command handlers."""

    def wrap(self, behavior: Behavior, method: str) -> Behavior:
        async def with_context(request: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = _metadata(context)
            key = metadata.get(IDEMPOTENCY_METADATA, "")
            if len(key) > MAX_IDEMPOTENCY_KEY:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"idempotency-key is longer than {MAX_IDEMPOTENCY_KEY} characters",
                )
            key_token = IDEMPOTENCY_KEY.set(f"{method}:{key}" if key else "")
            actor_token = ACTOR.set(metadata.get(ACTOR_METADATA, "anonymous")[:100])
            try:
                return await behavior(request, context)
            finally:
                IDEMPOTENCY_KEY.reset(key_token)
                ACTOR.reset(actor_token)

        return with_context


def _status_of(
    exc: Exception, error_map: Mapping[type[Exception], grpc.StatusCode]
) -> tuple[grpc.StatusCode, str, tuple[Any, ...]] | None:
    if isinstance(exc, ServiceError):
        return exc.code, exc.message, exc.violations
    if isinstance(exc, ConcurrencyConflict):
        return grpc.StatusCode.ABORTED, f"concurrent update, please retry: {exc}", ()
    if isinstance(exc, LogUnavailable):
        return grpc.StatusCode.UNAVAILABLE, str(exc), ()
    for error_type, code in error_map.items():
        if isinstance(exc, error_type):
            return code, str(exc), tuple(getattr(exc, "violations", ()))
    return None


def _rich_status(code: grpc.StatusCode, message: str, violations: tuple[Any, ...]) -> grpc.Status:
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    if violations:
        bad_request = error_details_pb2.BadRequest()
        for violation in violations:
            bad_request.field_violations.add(
                field=violation.field, description=violation.description
            )
        status.details.add().Pack(bad_request)
    return rpc_status.to_status(status)


class StatusInterceptor(_UnaryInterceptor):
    """Maps exceptions to gRPC statuses (with field violations) and records request metrics."""

    def __init__(self, error_map: Mapping[type[Exception], grpc.StatusCode] | None = None) -> None:
        self._error_map = dict(error_map or {})

    def wrap(self, behavior: Behavior, method: str) -> Behavior:
        async def mapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await behavior(request, context)
            except Exception as exc:
                mapped_status = _status_of(exc, self._error_map)
                if mapped_status is None:
                    code = context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[assignment]
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    code = grpc.StatusCode.INTERNAL
                    log.exception("unhandled error", extra={"method": method})
                    await context.abort(code, "internal error")
                    raise
                code, message, violations = mapped_status
                trace.get_current_span().set_attribute("rpc.grpc.status", code.name)
                await context.abort_with_status(_rich_status(code, message, violations))
                raise
            finally:
                REQUESTS.labels(method, code.name).inc()
                LATENCY.labels(method).observe(time.perf_counter() - started)

        return mapped


class StreamStatusInterceptor(StatusInterceptor):
    """StatusInterceptor for server-streaming RPCs as well."""

    def wrap_stream(self, behavior: Any, method: str) -> Any:  # type: ignore[override]
        async def mapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            code = grpc.StatusCode.OK
            try:
                async for item in behavior(request, context):
                    yield item
            except Exception as exc:
                mapped_status = _status_of(exc, self._error_map)
                if mapped_status is None:
                    raise
                code, message, violations = mapped_status
                await context.abort_with_status(_rich_status(code, message, violations))
            finally:
                REQUESTS.labels(method, code.name).inc()

        return mapped


def default_interceptors(
    error_map: Mapping[type[Exception], grpc.StatusCode] | None = None,
) -> list[grpc.aio.ServerInterceptor]:
    """Returns the standard chain: tracing, request context, then status mapping and metrics."""
    return [TracingInterceptor(), RequestContextInterceptor(), StreamStatusInterceptor(error_map)]
