"""grpc.aio server interceptors: tracing, request context, error mapping and request metrics.

Tracing is OpenTelemetry's own gRPC instrumentation (a server span per call, unary and
streaming alike, continuing the caller's W3C trace context from metadata); the others are ours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from careops_eventstore import ConcurrencyConflict, LogUnavailable
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from prometheus_client import Counter, Histogram

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
from careops_platform.requests import ACTOR, IDEMPOTENCY_KEY

log = logging.getLogger(__name__)

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


class _UnaryInterceptor(grpc.aio.ServerInterceptor):
    """Base: wraps unary-unary behaviours; streaming handlers pass through untouched."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        return _wrap_unary(  # type: ignore[return-value]
            handler,
            self.wrap,
            handler_call_details.method,
            self.wrap_stream,
            lenient=self.lenient_decoding,
        )

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


async def _abort(
    exc: Exception, context: grpc.aio.ServicerContext, error_map: ErrorMap, method: str
) -> grpc.StatusCode:
    """Ends the call with the status `exc` maps to; returns its code. AbortError passes."""
    if isinstance(exc, grpc.aio.AbortError):
        return context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[no-any-return]
    error = status_of(exc, error_map)
    if error is None:
        log.exception("unhandled error", extra={"method": method})
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        return grpc.StatusCode.INTERNAL
    trace.get_current_span().set_attribute("rpc.grpc.status", error.code.name)
    await context.abort_with_status(rich_status(error))
    return error.code


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
                code = await _abort(exc, context, self._error_map, method)
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
                async for item in behavior(_decoded(request), context):
                    yield item
            except Exception as exc:
                code = await _abort(exc, context, self._error_map, method)
                raise
            finally:
                REQUESTS.labels(method, code.name).inc()

        return mapped


def default_interceptors(
    error_map: ErrorMap | None = None,
) -> list[grpc.aio.ServerInterceptor]:
    """Returns the standard chain: tracing, request context, then status mapping and metrics."""
    tracing: grpc.aio.ServerInterceptor = aio_server_interceptor()
    return [tracing, RequestContextInterceptor(), StreamStatusInterceptor(error_map)]
