"""The web console (issue 15, docs/console.md): static ES modules served at `/console/` with a
strict Content-Security-Policy, `/` sending a browser there, `/console/config.json` telling
the page how to sign in, and — only while the gateway is its own (embedded) issuer and
CAREOPS_CONSOLE_USERS names users — `POST /console/sign-in`, which mints a token for one of
those configured users. Everything else the console does goes through the same HTTP API any
frontend calls (`POST /v1/<package.Service>/<Method>`, bearer token): no private back door."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from aiohttp import web
from careops_platform.local_issuer import LocalIssuer

from gateway.errors import error_body, error_response
from gateway.http_api import ROUTE_KEY, Endpoint

STATIC_DIR = Path(__file__).parent / "console"
PREFIX = "/console/"
CONFIG_PATH = "/console/config.json"
SIGN_IN_PATH = "/console/sign-in"
ROUTE = "/console"  # one bounded metrics label for every static file
# No build step means no content-hashed file names: every file is revalidated (ETag, 304).
CACHE_CONTROL = "no-cache"
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def is_console_path(path: str) -> bool:
    """Returns whether `path` is the console's (served without a token: the page, its files,
    its configuration and the embedded issuer's sign-in, which checks its own input)."""
    return path == "/" or path == "/console" or path.startswith(PREFIX)


@dataclass(frozen=True)
class ConsoleUser:
    """A user the embedded issuer's sign-in page offers: a subject and its roles."""

    subject: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class OidcClient:
    """A public OIDC client of an external provider: authorization code with PKCE."""

    authorization_url: str
    token_url: str
    client_id: str
    scope: str = "openid"

    def document(self) -> dict[str, str]:
        return {
            "authorizationUrl": self.authorization_url,
            "tokenUrl": self.token_url,
            "clientId": self.client_id,
            "scope": self.scope,
        }


@dataclass
class Console:
    """The console's routes; a protocol of gateway.http_api.HttpApi."""

    issuer: LocalIssuer | None = None
    users: Sequence[ConsoleUser] = ()
    session: timedelta = timedelta(hours=8)
    oidc: OidcClient | None = None
    static_dir: Path = STATIC_DIR
    _users: dict[str, ConsoleUser] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._users = {user.subject: user for user in self.users}

    @property
    def sign_in(self) -> str:
        """How the page signs in: `local` (the embedded issuer's users), `oidc`, or `none`
        (a token obtained elsewhere, pasted)."""
        if self.issuer is not None and self._users:
            return "local"
        return "oidc" if self.oidc is not None else "none"

    def security_policy(self) -> str:
        """Returns the Content-Security-Policy of every console response: only its own files,
        no inline script or style, calls to this origin (and the OIDC token endpoint)."""
        connect = ["'self'"]
        if self.oidc is not None:
            parts = urlsplit(self.oidc.token_url)
            connect.append(f"{parts.scheme}://{parts.netloc}")
        return "; ".join(
            [
                "default-src 'none'",
                "script-src 'self'",
                "style-src 'self'",
                "img-src 'self' data:",
                f"connect-src {' '.join(connect)}",
                "base-uri 'none'",
                "form-action 'self'",
                "frame-ancestors 'none'",
            ]
        )

    def headers(self) -> dict[str, str]:
        return {
            "Content-Security-Policy": self.security_policy(),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": CACHE_CONTROL,
        }

    def register(self, app: web.Application, endpoints: Mapping[str, Endpoint]) -> None:
        app.router.add_get("/", self._root)
        app.router.add_get("/console", self._root)
        app.router.add_get(CONFIG_PATH, self._config)
        app.router.add_post(SIGN_IN_PATH, self._sign_in)
        app.router.add_get(PREFIX + "{path:.*}", self._file)

    async def _root(self, request: web.Request) -> web.StreamResponse:
        request[ROUTE_KEY] = ROUTE
        # Returned, not raised: the observing middleware answers raised HTTP errors as JSON.
        return web.Response(status=302, headers={"Location": PREFIX, **self.headers()})

    async def _config(self, request: web.Request) -> web.Response:
        request[ROUTE_KEY] = CONFIG_PATH
        document: dict[str, Any] = {
            "signIn": self.sign_in,
            "languages": ["zh", "en"],
            "users": [
                {"subject": user.subject, "roles": list(user.roles)}
                for user in (self.users if self.sign_in == "local" else ())
            ],
            "oidc": self.oidc.document() if self.oidc is not None else None,
        }
        return web.json_response(document, headers=self.headers())

    async def _sign_in(self, request: web.Request) -> web.Response:
        request[ROUTE_KEY] = SIGN_IN_PATH
        if self.issuer is None or not self._users:
            body = error_body(
                grpc.StatusCode.FAILED_PRECONDITION,
                "the console's sign-in is off: it needs the embedded issuer and "
                "CAREOPS_CONSOLE_USERS",
            )
            return error_response(body)
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        subject = payload.get("subject") if isinstance(payload, dict) else None
        if not isinstance(subject, str) or not subject:
            return _invalid("subject", "is required")
        user = self._users.get(subject)
        if user is None:
            return _invalid("subject", f"{subject[:64]!r} is not a console user")
        now = datetime.now(UTC)
        token = self.issuer.issue(
            subject=user.subject,
            roles=user.roles,
            ttl=self.session,
            client_id="careops-console",
            now=now,
        )
        expires = (now + self.session).isoformat().replace("+00:00", "Z")
        return web.json_response(
            {
                "token": token,
                "subject": user.subject,
                "roles": list(user.roles),
                "expiresAt": expires,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def _file(self, request: web.Request) -> web.StreamResponse:
        request[ROUTE_KEY] = ROUTE
        relative = request.match_info["path"] or "index.html"
        root = self.static_dir.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file() or path.name.startswith("."):
            body = error_body(grpc.StatusCode.NOT_FOUND, f"no console file {relative[:100]}")
            return error_response(body)
        headers = self.headers()
        headers["Content-Type"] = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        return web.FileResponse(path, headers=headers)


def _invalid(name: str, reason: str) -> web.Response:
    body = error_body(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{name} {reason}",
        [{"field": name, "description": reason}],
    )
    return error_response(body)


def openapi_paths() -> dict[str, Any]:
    """Returns the console's OpenAPI path items (public: no security requirement)."""

    def page(operation_id: str, summary: str, status: str, media: str) -> dict[str, Any]:
        return {
            "get": {
                "operationId": operation_id,
                "tags": ["console"],
                "summary": summary,
                "security": [],
                "responses": {status: {"description": summary, "content": {media: {"schema": {}}}}},
            }
        }

    def redirect(operation_id: str) -> dict[str, Any]:
        summary = "Sends the browser to the console"
        found = page(operation_id, summary, "302", "text/plain")
        # A redirect has no body: only its Location.
        found["get"]["responses"]["302"] = {
            "description": summary,
            "headers": {"Location": {"schema": {"type": "string"}}},
        }
        return found

    file = page("console_file", "A file of the console (ES module, CSS, HTML)", "200", "*/*")
    file["get"]["parameters"] = [
        {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    file["get"]["responses"]["404"] = {"description": "No such file (google.rpc.Status JSON)."}
    user = {
        "type": "object",
        "properties": {
            "subject": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}},
        },
    }
    config_schema = {
        "type": "object",
        "properties": {
            "signIn": {"type": "string", "enum": ["local", "oidc", "none"]},
            "languages": {"type": "array", "items": {"type": "string"}},
            "users": {"type": "array", "items": user},
            "oidc": {"type": ["object", "null"]},
        },
    }
    config = page("console_config", "How the console signs in", "200", "application/json")
    config["get"]["responses"]["200"]["content"]["application/json"]["schema"] = config_schema
    sign_in = {
        "post": {
            "operationId": "console_sign_in",
            "tags": ["console"],
            "summary": "The embedded issuer's sign-in: a token for a configured console user",
            "security": [],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["subject"],
                            "properties": {"subject": {"type": "string"}},
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The token, its subject, roles and expiry",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "400": {"description": "Not a configured user (google.rpc.Status JSON)."},
                "412": {"description": "The sign-in is off (google.rpc.Status JSON)."},
            },
        }
    }
    return {
        "/": redirect("console_root"),
        "/console": redirect("console_bare"),
        CONFIG_PATH: config,
        SIGN_IN_PATH: sign_in,
        PREFIX + "{path}": file,
    }
