"""HTTP/JSON edge: `POST /v1/<package.Service>/<Method>` with the protobuf JSON mapping.

A request body is the method's request message in JSON; the reply is its response message, or
for a server-streaming method one JSON object per line: `{"result": …}` per message,
`{"heartbeat": {"at": …}}` whenever the stream was idle for the configured interval, and
`{"error": …}` last if the stream fails; its status line and headers go out at once. Errors
are `{"error": {"code", "status", "message", "field_violations"}}` with the HTTP status of
google/rpc/code.proto (FAILED_PRECONDITION is 400, as there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram

from gateway.backends import (
    STATUS_DETAILS_KEY,
    CallKind,
    Route,
    call_stream,
    call_unary,
    unavailable_message,
)

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

HTTP_REQUESTS = Counter(
    "careops_http_requests_total",
    "HTTP requests at the gateway by route and HTTP status code.",
    ["route", "code"],
)
HTTP_LATENCY = Histogram(
    "careops_http_request_duration_seconds",
    "HTTP request latency at the gateway by route (a stream: until it ends).",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# google/rpc/code.proto's HTTP mapping.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
# aiohttp's own rejections (no route, wrong verb, body too large) as gRPC codes in error bodies.
HTTP_REJECTIONS = {
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
# HTTP request headers forwarded as gRPC metadata (trace context travels separately).
FORWARDED_HEADERS = {"Idempotency-Key": "idempotency-key", "CareOps-Actor": "careops-actor"}
NDJSON = "application/x-ndjson"
JWKS_PATH = "/.well-known/jwks.json"
ROUTE_KEY = web.RequestKey("route", str)
UNMATCHED = "unmatched"

LocalMethod = Callable[[Any, Any], Awaitable[Message]]


@dataclass(frozen=True)
class Endpoint:
    """A method reachable over HTTP: forwarded to a backend, or served by the gateway itself."""

    method: MethodDescriptor
    route: Route | None = None
    local: LocalMethod | None = None


def _message(descriptor: Descriptor) -> Message:
    message: Message = message_factory.GetMessageClass(descriptor)()
    return message


def to_json(message: Message) -> dict[str, Any]:
    """Returns `message` in the protobuf JSON mapping, zero values included."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def field_violations(trailers: Sequence[tuple[str, str | bytes]]) -> list[dict[str, str]]:
    """Returns the google.rpc.BadRequest field violations in a status's trailers."""
    violations: list[dict[str, str]] = []
    for key, value in trailers:
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            continue
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                violations.extend(
                    {"field": v.field, "description": v.description}
                    for v in bad_request.field_violations
                )
    return violations


def error_body(
    code: grpc.StatusCode, message: str, violations: Sequence[Mapping[str, str]] = ()
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": HTTP_STATUS[code], "status": code.name, "message": message}
    if violations:
        error["field_violations"] = list(violations)
    return {"error": error}


def error_of(route: Route, error: grpc.aio.AioRpcError) -> dict[str, Any]:
    """Returns the JSON error for a backend's status, exactly as the gRPC edge would return it."""
    named = unavailable_message(route, error)
    if named is not None:
        return error_body(grpc.StatusCode.UNAVAILABLE, named)
    trailers = list(error.trailing_metadata() or ())
    return error_body(error.code(), error.details() or "", field_violations(trailers))


def error_response(body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=body["error"]["code"])


class HttpApi:
    """The aiohttp application serving the JSON edge."""

    def __init__(
        self,
        *,
        routes: Mapping[str, Route],
        local: Mapping[str, tuple[MethodDescriptor, LocalMethod]],
        timeout: float,
        heartbeat: float = 15.0,
        middlewares: Sequence[Any] = (),
        jwks: Mapping[str, Any] | None = None,
    ) -> None:
        self._heartbeat = heartbeat
        # Inside the observing middleware, so refusals are counted, traced and JSON too.
        self._middlewares = list(middlewares)
        self._jwks = dict(jwks) if jwks is not None else None
        self._endpoints = {
            path: Endpoint(route.method, route=route) for path, route in routes.items()
        }
        for path, (method, behavior) in local.items():
            self._endpoints[path] = Endpoint(method, local=behavior)
        self._timeout = timeout

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._observe, *self._middlewares])
        app.router.add_get("/healthz", self._healthz)
        if self._jwks is not None:
            app.router.add_get(JWKS_PATH, self._jwks_document)
        app.router.add_post("/v1/{service}/{method}", self._call)
        return app

    @web.middleware
    async def _observe(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Counts and times every request under a bounded route label; traces it; JSON errors."""
        started = time.perf_counter()
        request[ROUTE_KEY] = UNMATCHED
        status = 500
        with tracer.start_as_current_span(
            f"HTTP {request.method}",
            context=propagate.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.path},
        ) as span:
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                code = HTTP_REJECTIONS.get(status, grpc.StatusCode.INVALID_ARGUMENT)
                body = error_body(code, exc.reason)
                body["error"]["code"] = status
                allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
                return web.json_response(body, status=status, headers=allow)
            finally:
                route = request[ROUTE_KEY]
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                HTTP_REQUESTS.labels(route, str(status)).inc()
                HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)
                log.debug("http request", extra={"route": route, "status": status})

    async def _healthz(self, request: web.Request) -> web.Response:
        request[ROUTE_KEY] = "/healthz"
        return web.json_response({"status": "SERVING"})

    async def _jwks_document(self, request: web.Request) -> web.Response:
        request[ROUTE_KEY] = JWKS_PATH
        return web.json_response(self._jwks, headers={"Cache-Control": "public, max-age=300"})

    async def _call(self, request: web.Request) -> web.StreamResponse:
        path = f"/{request.match_info['service']}/{request.match_info['method']}"
        endpoint = self._endpoints.get(path)
        if endpoint is None:
            return error_response(error_body(grpc.StatusCode.NOT_FOUND, f"no method {path[1:]}"))
        request[ROUTE_KEY] = path
        message = _message(endpoint.method.input_type)
        try:
            text = (await request.read()).decode("utf-8")
            if text.strip():
                json_format.Parse(text, message)
        except (json_format.ParseError, UnicodeDecodeError, ValueError, TypeError) as exc:
            return error_response(
                error_body(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the body is not a {endpoint.method.input_type.full_name} in JSON: {exc}",
                )
            )
        if endpoint.local is not None:
            reply = await endpoint.local(message, None)
            return web.json_response(to_json(reply))
        assert endpoint.route is not None
        metadata = [
            (key, request.headers[header])
            for header, key in FORWARDED_HEADERS.items()
            if request.headers.get(header)
        ]
        if endpoint.route.kind is CallKind.SERVER_STREAMING:
            return await self._stream(request, endpoint.route, message, metadata)
        try:
            raw = await call_unary(
                endpoint.route, message.SerializeToString(), metadata, self._timeout
            )
        except grpc.aio.AioRpcError as error:
            return error_response(error_of(endpoint.route, error))
        reply = _message(endpoint.method.output_type)
        reply.ParseFromString(raw)
        return web.json_response(to_json(reply))

    async def _stream(
        self,
        request: web.Request,
        route: Route,
        message: Message,
        metadata: Sequence[tuple[str, str]],
    ) -> web.StreamResponse:
        """NDJSON. A rejection before the backend accepts the call keeps its HTTP status;
        otherwise the status line and headers go out as soon as the backend sends its own (at
        the latest after one heartbeat interval), and a heartbeat line follows every
        `heartbeat` seconds without a message, so clients and proxies see a live stream even
        while no message comes."""
        accepted = asyncio.Event()
        messages: AsyncIterator[bytes] = call_stream(
            route, message.SerializeToString(), metadata, None, accepted
        )
        reply = _message(route.method.output_type)
        pending = asyncio.ensure_future(anext(messages, None))
        response: web.StreamResponse | None = None
        try:
            headers = asyncio.ensure_future(accepted.wait())
            await asyncio.wait(
                (pending, headers), timeout=self._heartbeat, return_when=asyncio.FIRST_COMPLETED
            )
            headers.cancel()
            if pending.done() and pending.exception() is not None:
                error = pending.exception()
                if isinstance(error, grpc.aio.AioRpcError):
                    return error_response(error_of(route, error))
            response = web.StreamResponse(headers={"Content-Type": NDJSON})
            await response.prepare(request)
            while True:
                await asyncio.wait((pending,), timeout=self._heartbeat)
                if not pending.done():
                    await response.write(heartbeat_line())
                    continue
                raw = pending.result()
                if raw is None:
                    break
                reply.Clear()
                reply.ParseFromString(raw)
                line = json.dumps({"result": to_json(reply)}, ensure_ascii=False) + "\n"
                await response.write(line.encode())
                pending = asyncio.ensure_future(anext(messages, None))
        except grpc.aio.AioRpcError as error:
            assert response is not None
            line = json.dumps(error_of(route, error), ensure_ascii=False) + "\n"
            await response.write(line.encode())
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                    await pending
            await messages.aclose()  # type: ignore[attr-defined]
        await response.write_eof()
        return response


def heartbeat_line() -> bytes:
    """The NDJSON line sent while a stream is idle: `{"heartbeat": {"at": <RFC 3339 UTC>}}`."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (json.dumps({"heartbeat": {"at": at}}) + "\n").encode()


class HttpServer:
    """Runs an HttpApi on host:port until stopped."""

    def __init__(self, api: HttpApi, *, host: str, port: int, grace: float) -> None:
        # handler_cancellation: a client that hangs up ends its (stream) handler and backend
        # call at once; a positive shutdown timeout, as aiohttp reads 0 as "wait forever".
        self._runner = web.AppRunner(
            api.application(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=max(grace, 0.01),
            handler_cancellation=True,
        )
        self._host = host
        self._port = port
        self.port = 0

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        await self._runner.shutdown()
        await self._runner.cleanup()
