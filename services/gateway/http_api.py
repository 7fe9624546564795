"""HTTP/JSON edge: `POST /v1/<package.Service>/<Method>` with the protobuf JSON mapping.

A request body is the method's request message in JSON; the reply is its response message, or
for a server-streaming method one JSON object per line: `{"result": …}` per message,
`{"heartbeat": {"at": …}}` whenever the stream was idle for the configured interval, and
`{"error": …}` last if the stream fails; its status line and headers go out at once. Errors
are google.rpc.Status JSON (gateway.errors). `/openapi.json` documents the routes, `/docs`
renders it; CORS grants the configured origins (gateway.cors). The same endpoints over Connect
and gRPC-Web are gateway.web_rpc's, registered through `protocols`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from aiohttp import web
from careops_platform.errors import ServiceError
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.message import Message
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram

from gateway import openapi
from gateway.backends import AnyRoute, CallKind, Route, call_stream, call_unary
from gateway.cors import CorsPolicy
from gateway.errors import HTTP_STATUS, error_body, error_of, error_response
from gateway.limits import bounded, header_timeout, too_large_message
from gateway.reference_page import PAGE

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

__all__ = ["HTTP_STATUS", "HttpApi", "HttpServer", "error_body", "error_of", "error_response"]

# aiohttp's own rejections (no route, wrong verb, body too large) as gRPC codes in error bodies.
HTTP_REJECTIONS = {
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
# HTTP request headers forwarded as gRPC metadata (trace context travels separately).
# CareOps-Backend names the service a ProjectionAdminService call is for (backends.SharedRoute).
FORWARDED_HEADERS = {
    "Idempotency-Key": "idempotency-key",
    "CareOps-Actor": "careops-actor",
    "CareOps-Backend": "careops-backend",
}
PRINTABLE_ASCII = re.compile(openapi.PRINTABLE_ASCII)
NDJSON = "application/x-ndjson"
JWKS_PATH = "/.well-known/jwks.json"
ROUTE_KEY = web.RequestKey("route", str)
UNMATCHED = "unmatched"

LocalMethod = Callable[[Any, Any], Awaitable[Message]]


@dataclass(frozen=True)
class Endpoint:
    """A method reachable over HTTP: forwarded to a backend, or served by the gateway itself."""

    method: MethodDescriptor
    route: AnyRoute | None = None
    local: LocalMethod | None = None


def _message(descriptor: Descriptor) -> Message:
    message: Message = message_factory.GetMessageClass(descriptor)()
    return message


def to_json(message: Message) -> dict[str, Any]:
    """Returns `message` in the protobuf JSON mapping, zero values included."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


class HttpApi:
    """The aiohttp application serving the JSON edge."""

    def __init__(
        self,
        *,
        routes: Mapping[str, AnyRoute],
        local: Mapping[str, tuple[MethodDescriptor, LocalMethod]],
        timeout: float,
        heartbeat: float = 15.0,
        middlewares: Sequence[Any] = (),
        jwks: Mapping[str, Any] | None = None,
        cors_origins: Sequence[str] = (),
        cors_max_age_seconds: int = 7200,
        max_body_bytes: int = 1024**2,
        protocols: Sequence[Callable[[web.Application, Mapping[str, Endpoint]], None]] = (),
        extra_paths: Mapping[str, Any] | None = None,
        extra_schemes: Mapping[str, Any] | None = None,
    ) -> None:
        # The OpenAPI path items and security schemes of routes a protocol adds (gateway.ical).
        self._extra_paths = dict(extra_paths or {})
        self._extra_schemes = dict(extra_schemes or {})
        self._heartbeat = heartbeat
        # More protocols on the same endpoints (Connect, gRPC-Web: gateway.web_rpc).
        self._protocols = list(protocols)
        self._max_body_bytes = max_body_bytes
        # Inside the observing middleware, so refusals are counted, traced and JSON too.
        self._middlewares = list(middlewares)
        self._jwks = dict(jwks) if jwks is not None else None
        self._endpoints = {
            path: Endpoint(route.method, route=route) for path, route in routes.items()
        }
        for path, (method, behavior) in local.items():
            self._endpoints[path] = Endpoint(method, local=behavior)
        self._timeout = timeout
        self._cors = CorsPolicy.of(cors_origins, FORWARDED_HEADERS, cors_max_age_seconds)
        self._document: bytes | None = None

    def application(self) -> web.Application:
        """Returns the app: one POST route per method, health, the issuer's keys (when the
        gateway is its own issuer), the document and its page. Preflights are answered before
        authentication (they never carry credentials)."""
        app = web.Application(
            middlewares=[self._observe, self._preflight, *self._middlewares],
            client_max_size=self._max_body_bytes,
        )
        app.on_response_prepare.append(self._cors.on_prepare)
        app.router.add_get("/healthz", self._healthz)
        if self._jwks is not None:
            app.router.add_get(JWKS_PATH, self._jwks_document)
        app.router.add_get("/openapi.json", self._openapi)
        app.router.add_get("/docs", self._docs)
        for path in sorted(self._endpoints):
            app.router.add_post(f"/v1{path}", self._call)
        for register in self._protocols:
            register(app, self._endpoints)
        return app

    def document(self) -> dict[str, Any]:
        """Returns the OpenAPI 3.1 document of the routes `application` serves."""
        methods = {path: endpoint.method for path, endpoint in self._endpoints.items()}
        return openapi.document(
            methods,
            FORWARDED_HEADERS,
            title="CareOps gateway HTTP/JSON API",
            version="v1",
            extra_paths=self._extra_paths,
            extra_schemes=self._extra_schemes,
        )

    @web.middleware
    async def _preflight(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Answers CORS preflights on any path (routes take no OPTIONS): granted, or 403."""
        if not self._cors.is_preflight(request):
            return await handler(request)
        request[ROUTE_KEY] = "preflight"
        granted = self._cors.preflight(request)
        if granted is not None:
            return granted
        origin = request.headers["Origin"]
        denied = error_body(grpc.StatusCode.PERMISSION_DENIED, f"origin {origin} is not allowed")
        return error_response(denied)

    async def _openapi(self, request: web.Request) -> web.Response:
        request[ROUTE_KEY] = "/openapi.json"
        if self._document is None:  # built on first use: nothing at import or start
            self._document = json.dumps(self.document(), ensure_ascii=False).encode()
        return web.Response(body=self._document, content_type="application/json")

    async def _docs(self, request: web.Request) -> web.Response:
        request[ROUTE_KEY] = "/docs"
        return web.Response(text=PAGE, content_type="text/html")

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
                body = error_body(code, rejection_message(request, exc))
                allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
                return error_response(body, status, allow)
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
        path = request.path.removeprefix("/v1")
        endpoint = self._endpoints[path]  # one route per endpoint
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
            try:
                reply = await endpoint.local(message, None)
            except ServiceError as exc:  # the gateway's own RPCs say what was wrong, as gRPC
                return error_response(error_body(exc.code, exc.message, _violations(exc)))
            return web.json_response(to_json(reply))
        assert endpoint.route is not None
        metadata = forwarded_metadata(request.headers)
        if isinstance(metadata, web.Response):
            return metadata
        try:
            route = endpoint.route.for_call(metadata)
        except ServiceError as exc:  # a shared service's call names no (known) backend
            return error_response(error_body(exc.code, exc.message, _violations(exc)))
        # The caller's own timeout bounds the backend call, as a gRPC caller's deadline does.
        timeout = header_timeout(request.headers)
        if isinstance(timeout, web.Response):
            return timeout
        if route.kind is CallKind.SERVER_STREAMING:
            return await self._stream(request, route, message, metadata, timeout)
        try:
            raw = await call_unary(
                route, message.SerializeToString(), metadata, bounded(timeout, self._timeout)
            )
        except grpc.aio.AioRpcError as error:
            return error_response(error_of(route, error))
        reply = _message(endpoint.method.output_type)
        reply.ParseFromString(raw)
        return web.json_response(to_json(reply))

    async def _stream(
        self,
        request: web.Request,
        route: Route,
        message: Message,
        metadata: Sequence[tuple[str, str]],
        timeout: float | None = None,
    ) -> web.StreamResponse:
        """NDJSON. A rejection before the backend accepts the call keeps its HTTP status;
        otherwise the status line and headers go out as soon as the backend sends its own (at
        the latest after one heartbeat interval), and a heartbeat line follows every
        `heartbeat` seconds without a message, so clients and proxies see a live stream even
        while no message comes."""
        accepted = asyncio.Event()
        messages: AsyncIterator[bytes] = call_stream(
            route, message.SerializeToString(), metadata, timeout, accepted
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


def forwarded_metadata(headers: Mapping[str, str]) -> list[tuple[str, str]] | web.Response:
    """Returns the gRPC metadata of the forwarded headers, or the 400 for a value gRPC cannot
    carry (a metadata value is printable ASCII; gRPC would refuse the call as INTERNAL)."""
    metadata = []
    for header, key in FORWARDED_HEADERS.items():
        value = headers.get(header)
        if not value:
            continue
        if not PRINTABLE_ASCII.fullmatch(value):
            message = f"header {header} must be printable ASCII (0x20-0x7E)"
            return error_response(error_body(grpc.StatusCode.INVALID_ARGUMENT, message))
        metadata.append((key, value))
    return metadata


def rejection_message(request: web.Request, exc: web.HTTPException) -> str:
    """Returns the message of aiohttp's own rejection; a missing method is named, a body over
    the limit measured."""
    if exc.status == 404 and request.path.startswith("/v1/"):
        return f"no method {request.path.removeprefix('/v1/')}"
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return too_large_message(request.content_length, request.client_max_size)
    return exc.reason


def heartbeat_line() -> bytes:
    """The NDJSON line sent while a stream is idle: `{"heartbeat": {"at": <RFC 3339 UTC>}}`."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (json.dumps({"heartbeat": {"at": at}}) + "\n").encode()


class HttpServer:
    """Runs an HttpApi on host:port until stopped."""

    def __init__(
        self,
        api: HttpApi,
        *,
        host: str,
        port: int,
        grace: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
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
        self._ssl_context = ssl_context  # None: plaintext HTTP
        self.port = 0

    @property
    def app(self) -> web.Application:
        """Returns the served application (its router lists the routes)."""
        return self._runner.app

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        await self._runner.shutdown()
        await self._runner.cleanup()


def _violations(error: ServiceError) -> list[dict[str, str]]:
    return [{"field": v.field, "description": v.description} for v in error.violations]
