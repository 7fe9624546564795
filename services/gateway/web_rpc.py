"""Connect and gRPC-Web on the HTTP port, at the standard paths `POST /<package.Service>/<Method>`.

The request's Content-Type picks the protocol (gateway.connect, gateway.grpc_web) and its
codec; the call then goes the way of a `/v1/` call: the same middlewares (authentication, the
permission table, rate limits, CORS, metrics, tracing), the body size limit, the forwarded
headers, the caller's deadline (`Connect-Timeout-Ms`, `grpc-timeout`) bounding the backend
call, and backends.call_unary / call_stream with the raw protobuf bytes. Every refusal and
error is written in the caller's protocol: Connect's error JSON (end-stream message on a
stream), gRPC-Web's trailers.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING

import grpc
from aiohttp import hdrs, web
from careops_platform.errors import ServiceError
from careops_platform.interceptors import status_message
from google.protobuf.message import Message
from google.rpc import status_pb2

from gateway.backends import CallKind, Route, call_stream, call_unary
from gateway.connect import STREAM_TYPES, UNARY_TYPES, ConnectStream, ConnectUnary, check_version
from gateway.errors import error_body, error_response
from gateway.grpc_web import TYPES as GRPC_WEB_TYPES
from gateway.grpc_web import GrpcWeb
from gateway.http_api import ROUTE_KEY, forwarded_metadata
from gateway.limits import bounded, header_timeout, too_large_message
from gateway.wire import (
    WireError,
    kept_headers,
    new_message,
    status,
    status_of_body,
    status_of_error,
    status_of_response,
)

if TYPE_CHECKING:
    from gateway.http_api import Endpoint

Shape = ConnectUnary | ConnectStream | GrpcWeb

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# /<package.Service>/<Method>: a dotted service name, so `/v1/…` and the documents never match.
PROCEDURE = re.compile(rf"/{NAME}(?:\.{NAME})+/{NAME}")
ROUTE = rf"/{{service:{NAME}(?:\.{NAME})+}}/{{method:{NAME}}}"
MEDIA_TYPES = (*UNARY_TYPES, *STREAM_TYPES, *GRPC_WEB_TYPES)


def is_procedure(path: str) -> bool:
    """Returns whether `path` is a Connect / gRPC-Web procedure path."""
    return PROCEDURE.fullmatch(path) is not None


def shape_of(content_type: str) -> Shape | None:
    """Returns the protocol and codec a Content-Type asks for, or None."""
    media = content_type.partition(";")[0].strip().lower()
    if media in UNARY_TYPES:
        return ConnectUnary(UNARY_TYPES[media])
    if media in STREAM_TYPES:
        return ConnectStream(STREAM_TYPES[media])
    if media in GRPC_WEB_TYPES:
        codec, text = GRPC_WEB_TYPES[media]
        return GrpcWeb(codec, text)
    return None


def refusal(request: web.Request, response: web.Response) -> web.Response:
    """Returns one of the gateway's JSON error responses (authentication, permission, rate)
    in the protocol of a Connect or gRPC-Web request; any other request's unchanged."""
    shape = shape_of(request.headers.get(hdrs.CONTENT_TYPE, ""))
    if shape is None or not is_procedure(request.path):
        return response
    return shape.refusal(status_of_response(response), kept_headers(response))


def _mismatch(shape: Shape, route_kind: bool) -> str | None:
    """Returns why a Connect shape does not fit the method (`route_kind`: server streaming)."""
    if isinstance(shape, ConnectUnary) and route_kind:
        return "is a server-streaming method: send application/connect+json or +proto"
    if isinstance(shape, ConnectStream) and not route_kind:
        return "is a unary method: send application/json or application/proto"
    return None


class WebRpc:
    """The Connect and gRPC-Web handler of every endpoint of the HTTP edge."""

    def __init__(self, *, timeout: float, heartbeat: float) -> None:
        self._timeout = timeout  # the bound of a unary call, as on /v1/
        self._headers_after = heartbeat  # a stream's headers leave at the latest then
        self._endpoints: Mapping[str, Endpoint] = {}

    def register(self, app: web.Application, endpoints: Mapping[str, Endpoint]) -> None:
        """Adds the one procedure route serving `endpoints` (unknown ones: unimplemented)."""
        self._endpoints = endpoints
        app.router.add_post(ROUTE, self._call)

    async def _call(self, request: web.Request) -> web.StreamResponse:
        shape = shape_of(request.headers.get(hdrs.CONTENT_TYPE, ""))
        if shape is None:
            wanted = f"Content-Type must be one of {', '.join(MEDIA_TYPES)}"
            body = error_body(grpc.StatusCode.INVALID_ARGUMENT, wanted)
            return error_response(body, 415, {"Accept-Post": ", ".join(MEDIA_TYPES)})
        endpoint = self._endpoints.get(request.path)
        if endpoint is None:
            unknown = status(grpc.StatusCode.UNIMPLEMENTED, f"no method {request.path[1:]}")
            return shape.refusal(unknown, {})
        request[ROUTE_KEY] = f"{request.path} ({shape.label})"
        mismatch = _mismatch(shape, endpoint.method.server_streaming)
        if mismatch is not None:
            wrong = status(grpc.StatusCode.INVALID_ARGUMENT, f"{request.path[1:]} {mismatch}")
            return shape.refusal(wrong, {})
        try:
            message = await self._request(request, shape, endpoint)
        except WireError as error:
            return shape.refusal(error.status, {})
        if endpoint.local is not None:
            return await self._local(shape, endpoint, message)
        assert endpoint.route is not None
        metadata = forwarded_metadata(request.headers)
        if isinstance(metadata, web.Response):
            return shape.refusal(status_of_response(metadata), {})
        try:
            route = endpoint.route.for_call(metadata)
        except ServiceError as exc:  # a shared service's call names no (known) backend
            return shape.refusal(status_message(exc), {})
        timeout = header_timeout(request.headers)
        if isinstance(timeout, web.Response):
            return shape.refusal(status_of_response(timeout), {})
        if timeout is not None and timeout <= 0:  # spent already: gRPC itself would race it
            spent = status(grpc.StatusCode.DEADLINE_EXCEEDED, "the caller's timeout is 0")
            return shape.refusal(spent, {})
        if route.kind is CallKind.SERVER_STREAMING:
            return await self._stream(request, shape, route, message, metadata, timeout)
        try:
            raw = await call_unary(
                route,
                message.SerializeToString(),
                metadata,
                bounded(timeout, self._timeout),
            )
        except grpc.aio.AioRpcError as error:
            return shape.refusal(status_of_error(route, error), {})
        return shape.reply(shape.codec.encode_raw(raw, endpoint.method.output_type))

    @staticmethod
    async def _request(request: web.Request, shape: Shape, endpoint: Endpoint) -> Message:
        """Returns the request message; raises WireError for a body the protocol refuses."""
        if not isinstance(shape, GrpcWeb):
            check_version(request.headers)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            too_large = too_large_message(request.content_length, request.client_max_size)
            raise WireError(grpc.StatusCode.RESOURCE_EXHAUSTED, too_large) from exc
        message = new_message(endpoint.method.input_type)
        shape.codec.decode(shape.request_message(body), message)
        return message

    @staticmethod
    async def _local(shape: Shape, endpoint: Endpoint, message: Message) -> web.Response:
        """Answers one of the gateway's own RPCs."""
        assert endpoint.local is not None
        try:
            reply = await endpoint.local(message, None)
        except ServiceError as exc:
            violations = [{"field": v.field, "description": v.description} for v in exc.violations]
            return shape.refusal(status_of_body(error_body(exc.code, exc.message, violations)), {})
        return shape.reply(shape.codec.encode(reply))

    async def _stream(
        self,
        request: web.Request,
        shape: Shape,
        route: Route,
        message: Message,
        metadata: Sequence[tuple[str, str]],
        timeout: float | None,
    ) -> web.StreamResponse:
        """Streams the backend's messages as envelopes and ends with the protocol's end-stream
        message / trailers. A failure before the backend accepts the call is a refusal (a
        gRPC-Web trailers-only reply); otherwise the headers leave once it has, or after
        `heartbeat` seconds at the latest, so a browser sees the stream open while it is idle."""
        assert not isinstance(shape, ConnectUnary)
        accepted = asyncio.Event()
        messages: AsyncIterator[bytes] = call_stream(
            route, message.SerializeToString(), metadata, timeout, accepted
        )
        pending = asyncio.ensure_future(anext(messages, None))
        response: web.StreamResponse | None = None
        end: status_pb2.Status | None = None
        try:
            headers = asyncio.ensure_future(accepted.wait())
            await asyncio.wait(
                (pending, headers), timeout=self._headers_after, return_when=asyncio.FIRST_COMPLETED
            )
            headers.cancel()
            early = pending.exception() if pending.done() else None
            if isinstance(early, grpc.aio.AioRpcError):
                return shape.refusal(status_of_error(route, early), {})
            response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: shape.content_type})
            await response.prepare(request)
            while (raw := await pending) is not None:
                await response.write(
                    shape.frame(shape.codec.encode_raw(raw, route.method.output_type))
                )
                pending = asyncio.ensure_future(anext(messages, None))
        except grpc.aio.AioRpcError as error:
            end = status_of_error(route, error)
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                    await pending
            await messages.aclose()  # type: ignore[attr-defined]
        assert response is not None
        await response.write(shape.end(end))
        await response.write_eof()
        return response
