"""Authentication at the gateway: every gRPC call and HTTP request presents a valid bearer
token, except health, reflection and the public documents. A refused call is answered
UNAUTHENTICATED (HTTP 401 with `WWW-Authenticate`) with the reason, and nothing is forwarded;
an accepted one is held to its principal's limits (gateway.limits) and runs with its Principal in
`careops_platform.identity.PRINCIPAL`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from aiohttp import web
from careops_platform.api_keys import API_KEY_PREFIX, ApiKeyStore
from careops_platform.errors import PermissionDenied
from careops_platform.identity import AuthError, Principal, TokenVerifier, bearer_token, run_as
from careops_platform.interceptors import (
    is_public_method,
    refusal_handler,
    reshaped,
)
from careops_platform.permissions import PermissionTable

from gateway.errors import error_body, error_response
from gateway.http_api import JWKS_PATH
from gateway.ical import SHIFTS_METHOD, is_feed, query_credential
from gateway.limits import Limits, grpc_refusal_trailers
from gateway.limits import http_refusal as over_rate
from gateway.status_page import PATHS as STATUS_PATHS
from gateway.web_rpc import is_procedure
from gateway.web_rpc import refusal as shaped
from gateway.webconsole import is_console_path


def is_intake_path(path: str) -> bool:
    """True for the alert intake routes (gateway.intake): PagerDuty clients send their key in
    the body, so those routes authenticate the integration key themselves."""
    return path == "/v2/enqueue" or path.startswith("/v1/integrations/")


# HTTP paths served without a token: health, the issuer's public keys, the API documents and
# the public status page (gateway.status_page).
PUBLIC_PATHS = frozenset({"/healthz", JWKS_PATH, "/openapi.json", "/docs", *STATUS_PATHS})
REALM = "careops"
# POST /v1/<package.Service>/<Method> over HTTP is the gRPC method /<package.Service>/<Method>;
# so is POST /<package.Service>/<Method> (Connect, gRPC-Web).
RPC_PATH_PREFIX = "/v1/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def rpc_method(path: str) -> str | None:
    """Returns the gRPC method an HTTP path calls, or None for a path that calls none."""
    if path.startswith(RPC_PATH_PREFIX):
        return path[len(RPC_PATH_PREFIX) - 1 :]
    return path if is_procedure(path) else None


def _authorization(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            return value
    return None


class Authenticator:
    """Bearer credentials: API keys (`cok_…`) from the key store, anything else as a JWT; then
    the permission table (every RPC to the roles allowed)."""

    def __init__(
        self,
        tokens: TokenVerifier,
        api_keys: ApiKeyStore | None = None,
        permissions: PermissionTable | None = None,
    ) -> None:
        self._tokens = tokens
        self._api_keys = api_keys
        self._permissions = permissions

    @property
    def permissions(self) -> PermissionTable | None:
        """Returns the permission table enforced; None: no table (every verified call passes)."""
        return self._permissions

    def authorize(self, principal: Principal, method: str) -> None:
        """Raises PermissionDenied naming the permission unless the principal's roles hold it.
        A method the table does not know is no RPC of the platform: its handler answers
        UNIMPLEMENTED / NOT_FOUND (a test keeps every RPC in the table)."""
        table = self._permissions
        if table is not None and table.permission(method) is not None:
            table.authorize(principal.roles, method)

    async def principal(self, authorization: str | None) -> Principal:
        """Returns the principal of an `authorization` value; raises AuthError with the reason."""
        credential = bearer_token(authorization)
        if self._api_keys is not None and credential.startswith(API_KEY_PREFIX):
            return self._api_keys.verify(credential)
        return await self._tokens.verify(credential)


def _status(error: AuthError) -> grpc.StatusCode:
    return grpc.StatusCode.UNAVAILABLE if error.unavailable else grpc.StatusCode.UNAUTHENTICATED


def _as_principal(
    handler: grpc.RpcMethodHandler, principal: Principal, limits: Limits | None = None
) -> grpc.RpcMethodHandler:
    """Returns the handler with its behaviour running as `principal`, refusing a request over
    the size limit RESOURCE_EXHAUSTED (before anything is forwarded)."""
    behavior = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    # A streamed request is an iterator, not one message: the size check is for single ones
    # (the gateway forwards no client-streaming RPC).
    single = handler.unary_unary is not None or handler.unary_stream is not None

    async def check(request: Any, context: grpc.aio.ServicerContext) -> None:
        reason = limits.too_large(request) if limits is not None and single else None
        if reason is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, reason)

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await check(request, context)
        restore = run_as(principal)
        try:
            return await behavior(request, context)
        finally:
            restore()

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        # Set, not reset: grpc.aio serves each call in a task of its own, whose context ends
        # with it, and a generator may be closed from another context than the one it ran in.
        await check(request, context)
        run_as(principal)
        async for message in behavior(request, context):
            yield message

    return reshaped(handler, unary, streaming)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Requires a valid bearer token on every gRPC call but the public ones, and holds the
    call to its principal's limits."""

    def __init__(self, authenticator: Authenticator, limits: Limits | None = None) -> None:
        self._authenticator = authenticator
        self._limits = limits

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or is_public_method(method):
            return handler
        metadata = handler_call_details.invocation_metadata  # type: ignore[attr-defined]
        try:
            principal = await self._authenticator.principal(_authorization(metadata))
        except AuthError as error:
            return refusal_handler(handler, _status(error), error.reason)
        try:
            self._authenticator.authorize(principal, method)
        except PermissionDenied as denied:
            return refusal_handler(handler, grpc.StatusCode.PERMISSION_DENIED, str(denied))
        wait = self._limits.rate.acquire(principal.subject) if self._limits else None
        if wait is not None:
            reason, trailers = grpc_refusal_trailers(principal.subject, wait)
            return refusal_handler(handler, grpc.StatusCode.RESOURCE_EXHAUSTED, reason, trailers)
        return _as_principal(handler, principal, self._limits)


def challenge(error: AuthError, credentials_sent: bool) -> str:
    """Returns the RFC 6750 `WWW-Authenticate` value for a refusal."""
    if not credentials_sent:
        return f'Bearer realm="{REALM}"'
    description = error.reason.replace("\\", "\\\\").replace('"', '\\"')
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'


def http_refusal(error: AuthError, credentials_sent: bool) -> web.Response:
    """Returns the 401 (or 503: the issuer's keys unreadable) JSON error for a refusal."""
    body = error_body(_status(error), error.reason)
    headers = {"WWW-Authenticate": challenge(error, credentials_sent)}
    return error_response(body, headers=headers)


def auth_middleware(authenticator: Authenticator, limits: Limits | None = None) -> Any:
    """Returns the aiohttp middleware requiring a valid bearer token and holding the request
    to its principal's rate (429). Public paths and CORS preflights (which never carry
    credentials) pass without one. A Connect or gRPC-Web call is refused in its own protocol."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" or request.path in PUBLIC_PATHS:
            return await handler(request)
        if is_console_path(request.path):
            return await handler(request)  # the console's files; its API calls carry a token
        if is_intake_path(request.path):
            return await handler(request)  # the integration key is checked there (intake)
        authorization = request.headers.get("Authorization")
        feed = is_feed(request.path)
        if feed and authorization is None:  # calendar clients send no header (gateway.ical)
            authorization = query_credential(request)
        try:
            principal = await authenticator.principal(authorization)
        except AuthError as error:
            return shaped(request, http_refusal(error, bool(authorization)))
        method = SHIFTS_METHOD if feed else rpc_method(request.path)
        if method is not None:
            try:
                authenticator.authorize(principal, method)
            except PermissionDenied as denied:
                denial = error_body(grpc.StatusCode.PERMISSION_DENIED, str(denied))
                return shaped(request, error_response(denial))
        wait = limits.rate.acquire(principal.subject) if limits is not None else None
        if wait is not None:
            return shaped(request, over_rate(principal.subject, wait))
        restore = run_as(principal)
        try:
            return await handler(request)
        finally:
            restore()

    return middleware
