"""CORS for the HTTP edge: an allowlist of origins, preflights answered for the headers that
browser clients of the HTTP/JSON, Connect and gRPC-Web protocols send.

A small policy instead of `aiohttp-cors`: that library grants per registered route, so the
gateway's own JSON rejections (404, 405, 413) and streams prepared inside a handler would need
extra wiring, and it would be one more dependency for some forty lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import hdrs, web

# What Connect (connect-es), gRPC-Web (grpc-web, improbable-eng) and this API's clients send.
REQUEST_HEADERS = (
    "authorization",
    "content-type",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-accept-encoding",
    "connect-content-encoding",
    "grpc-timeout",
    "grpc-accept-encoding",
    "x-grpc-web",
    "x-user-agent",
    "traceparent",
    "tracestate",
)
# What a browser script must read: gRPC-Web statuses ride in headers (trailers-only replies),
# a 401 says why, and a 429 says when to come back.
EXPOSED_HEADERS = (
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
    "grpc-accept-encoding",
    "retry-after",
    "www-authenticate",
    "connect-content-encoding",
    "connect-accept-encoding",
    "content-encoding",
)
METHODS = ("GET", "POST")


@dataclass(frozen=True)
class CorsPolicy:
    """The origins allowed to call from a browser (none: no cross-origin access)."""

    origins: frozenset[str]
    request_headers: tuple[str, ...]
    max_age_seconds: int = 7200

    @classmethod
    def of(
        cls, origins: Iterable[str], extra_headers: Iterable[str] = (), max_age_seconds: int = 7200
    ) -> CorsPolicy:
        """Returns the policy for `origins` that also lets `extra_headers` (the API's own, such
        as `Idempotency-Key`) through a preflight."""
        headers = dict.fromkeys([*REQUEST_HEADERS, *(h.lower() for h in extra_headers)])
        return cls(frozenset(o.lower() for o in origins), tuple(headers), max_age_seconds)

    def allows(self, request: web.Request) -> str | None:
        """Returns the request's Origin when it is allowed."""
        origin = request.headers.get(hdrs.ORIGIN)
        return origin if origin is not None and origin.lower() in self.origins else None

    @staticmethod
    def is_preflight(request: web.Request) -> bool:
        """Returns whether `request` is a CORS preflight (not any OPTIONS request)."""
        return (
            request.method == hdrs.METH_OPTIONS
            and hdrs.ORIGIN in request.headers
            and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        )

    def preflight(self, request: web.Request) -> web.Response | None:
        """Returns the 204 granting a preflight from an allowed origin for a method the API
        serves, or None: then the caller refuses it."""
        origin = self.allows(request)
        method = request.headers[hdrs.ACCESS_CONTROL_REQUEST_METHOD].upper()
        if origin is None or method not in METHODS:
            return None
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: ", ".join(METHODS),
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ", ".join(self.request_headers),
                hdrs.ACCESS_CONTROL_MAX_AGE: str(self.max_age_seconds),
            },
        )

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Grants an allowed origin on every response, errors and streams included (a stream's
        headers leave in its handler, so a middleware would be too late)."""
        if not self.origins:
            return
        response.headers.add(hdrs.VARY, hdrs.ORIGIN)  # the grant depends on it: caches must know
        origin = self.allows(request)
        if origin is None:
            return
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        if not self.is_preflight(request):
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = ", ".join(EXPOSED_HEADERS)
