"""Gateway process: wiring only. It holds no state and writes no events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import grpc
from careops.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from careops_platform import registry
from careops_platform import service as skeleton
from careops_platform.api_keys import ApiKeyStore
from careops_platform.identity import (
    JwksKeys,
    TokenVerifier,
    TrustedIssuer,
    VerifiedTokens,
    unknown_roles,
)
from careops_platform.internal_identity import InternalSigner, InternalVerifier
from careops_platform.local_issuer import DEFAULT_AUDIENCE, LocalIssuer, load_private_key
from careops_platform.permissions import load_permissions
from careops_platform.server import ServiceBinding
from careops_platform.settings import ServiceSettings
from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from gateway import grpc_api, ical
from gateway.audit import AuditReader
from gateway.auth import Authenticator, AuthInterceptor, auth_middleware
from gateway.backends import SHARED_SERVICES, Backend, routes, shared_routes
from gateway.http_api import HttpApi, HttpServer
from gateway.ical import IcalFeed
from gateway.intake import IntakeRoutes
from gateway.intake import openapi_paths as intake_openapi_paths
from gateway.limits import Limits
from gateway.status_page import StatusPage
from gateway.status_page import openapi_paths as status_page_openapi_paths
from gateway.tls import TlsFiles
from gateway.web_rpc import WebRpc
from gateway.webconsole import Console, ConsoleUser, OidcClient
from gateway.webconsole import openapi_paths as console_openapi_paths

ENTRY = registry.service("gateway")
# host:port, or a DNS name / IPv6 literal in brackets with a port.
ADDRESS = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$"
# gRPC's own default receive limit: the gateway's server keeps it, so the limit is at most this.
GRPC_MAX_RECEIVE = 4 * 1024**2
# A browser's Origin: scheme://host[:port], nothing after it (no path, no trailing slash).
ORIGIN = r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$"


def split_origins(value: Any) -> Any:
    """Returns a comma-separated CAREOPS_CORS_ALLOWED_ORIGINS as its list of origins."""
    if isinstance(value, str):
        return [origin.strip() for origin in value.split(",") if origin.strip()]
    return value


def split_users(value: Any) -> Any:
    """Returns a comma-separated CAREOPS_CONSOLE_USERS (`subject:role+role,…`) as its list."""
    if isinstance(value, str):
        return [user.strip() for user in value.split(",") if user.strip()]
    return value


# One console user: a subject, a colon, its roles joined by '+' (agent-li:agent).
CONSOLE_USER = r"^[A-Za-z0-9._@-]{1,64}:[a-z_]+(\+[a-z_]+)*$"
ConsoleUsers = Annotated[
    tuple[Annotated[str, Field(pattern=CONSOLE_USER)], ...], NoDecode, BeforeValidator(split_users)
]

Origins = Annotated[
    tuple[Annotated[str, Field(pattern=ORIGIN)], ...], NoDecode, BeforeValidator(split_origins)
]


def backend_setting(name: str) -> Any:
    """Returns the field of one backend's address (`CAREOPS_<NAME>_ADDR`), the registry's
    default port on this host."""
    entry = registry.service(name)
    return Field(entry.default_address, pattern=ADDRESS, description=f"{entry.component} gRPC")


class GatewaySettings(ServiceSettings):
    grpc_port: int = skeleton.port_setting(ENTRY, "grpc_port")
    http_port: int = skeleton.port_setting(ENTRY, "http_port")
    metrics_port: int = skeleton.port_setting(ENTRY, "metrics_port")
    ticketing_addr: str = backend_setting("ticketing")
    customer_addr: str = backend_setting("customer")
    incident_addr: str = backend_setting("incident")
    quality_addr: str = backend_setting("quality")
    http_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="Deadline of a unary call made for an HTTP request"
    )
    http_stream_heartbeat_seconds: float = Field(
        15.0, gt=0, le=300, description="Idle time before an HTTP stream sends a heartbeat line"
    )
    status_page_cache_seconds: float = Field(
        5.0, ge=0, le=300, description="How long GET /status answers from its last read; 0: never"
    )
    status_timeout_seconds: float = Field(
        1.0, gt=0, le=30, description="Deadline of each backend health check in GetPlatformStatus"
    )
    cors_allowed_origins: Origins = Field(
        (),
        description="Origins browsers may call the HTTP edge from, comma-separated; none: no CORS",
    )
    cors_max_age_seconds: int = Field(
        7200, ge=0, le=86400, description="How long browsers may cache a granted preflight"
    )
    rate_limit_per_second: float = Field(
        100.0, ge=0, le=100_000, description="Calls a second each principal may make; 0: no limit"
    )
    rate_limit_burst: float = Field(
        300.0, ge=1, le=1_000_000, description="Calls a principal may make at once above its rate"
    )
    max_request_bytes: int = Field(
        1024**2,
        ge=1024,
        le=GRPC_MAX_RECEIVE,
        description="Largest request message (gRPC) and body (HTTP) the gateway accepts",
    )

    auth_issuer: str = Field(
        "", description="Trusted OIDC issuer (`iss`); empty: the embedded local issuer"
    )
    auth_jwks_url: str = Field(
        "", pattern=r"^(https?://.+)?$", description="The issuer's JWKS URL (with auth_issuer)"
    )
    auth_audience: str = Field(
        DEFAULT_AUDIENCE, min_length=1, description="The audience (`aud`) tokens must name"
    )
    auth_leeway_seconds: float = Field(
        30.0, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat"
    )
    auth_jwks_cache_seconds: float = Field(
        300.0, gt=0, le=86400, description="How long the issuer's key set is cached"
    )
    auth_jwks_refresh_cooldown_seconds: float = Field(
        30.0, ge=0, le=3600, description="Least time between refetches for an unknown kid"
    )

    auth_api_keys_file: str = Field(
        "", description="API keys of machine clients; empty: <data dir>/auth/api-keys.json"
    )
    auth_permissions_file: str = Field(
        "", description="YAML permission table (every RPC -> roles); empty: the built-in one"
    )

    tls_cert_file: str = Field(
        "", description="PEM certificate (chain) of the gRPC and HTTP ports; empty: plaintext"
    )
    tls_key_file: str = Field("", description="PEM private key of tls_cert_file (unencrypted)")

    internal_signing_key_file: str = Field(
        "",
        description="PEM P-256 private key signing the identity forwarded to the services; "
        "empty: the embedded key in <data dir>/auth/internal-signing-key.pem",
    )

    console_users: ConsoleUsers = Field(
        (),
        description="Users the console's sign-in offers with the embedded issuer, "
        "`subject:role+role` comma-separated; empty: no sign-in page (`careops up` sets some)",
    )
    console_session_minutes: int = Field(
        480, ge=5, le=1440, description="Lifetime of a token the console's sign-in mints"
    )
    console_oidc_authorization_url: str = Field(
        "", pattern=r"^(https?://.+)?$", description="OIDC authorization endpoint (PKCE)"
    )
    console_oidc_token_url: str = Field(
        "", pattern=r"^(https?://.+)?$", description="OIDC token endpoint the console calls"
    )
    console_oidc_client_id: str = Field("", description="The console's public OIDC client id")
    console_oidc_scope: str = Field(
        "openid", min_length=1, description="Scopes the console asks the OIDC provider for"
    )

    @model_validator(mode="after")
    def _console_sign_in(self) -> GatewaySettings:
        if self.console_users and self.auth_issuer:
            raise ValueError(
                "CAREOPS_CONSOLE_USERS is for the embedded issuer only: "
                "with CAREOPS_AUTH_ISSUER use CAREOPS_CONSOLE_OIDC_*"
            )
        for user in self.console_users:
            unknown = unknown_roles(user.split(":", 1)[1].split("+"))
            if unknown:
                raise ValueError(f"CAREOPS_CONSOLE_USERS: {user}: unknown role(s) {unknown}")
        oidc = (
            self.console_oidc_authorization_url,
            self.console_oidc_token_url,
            self.console_oidc_client_id,
        )
        if any(oidc) and not all(oidc):
            raise ValueError(
                "CAREOPS_CONSOLE_OIDC_AUTHORIZATION_URL, CAREOPS_CONSOLE_OIDC_TOKEN_URL and "
                "CAREOPS_CONSOLE_OIDC_CLIENT_ID are set together"
            )
        return self

    def console(self, issuer: LocalIssuer | None) -> Console:
        """Returns the console's routes: the sign-in page's users with the embedded issuer,
        else the OIDC client when one is configured."""
        users = [
            ConsoleUser(subject, tuple(roles.split("+")))
            for subject, roles in (user.split(":", 1) for user in self.console_users)
        ]
        oidc = None
        if self.console_oidc_client_id:
            oidc = OidcClient(
                self.console_oidc_authorization_url,
                self.console_oidc_token_url,
                self.console_oidc_client_id,
                self.console_oidc_scope,
            )
        return Console(
            issuer=issuer,
            users=users if issuer is not None else (),
            session=timedelta(minutes=self.console_session_minutes),
            oidc=oidc,
        )

    @model_validator(mode="after")
    def _issuer_with_keys(self) -> GatewaySettings:
        if bool(self.auth_issuer) != bool(self.auth_jwks_url):
            raise ValueError("CAREOPS_AUTH_ISSUER and CAREOPS_AUTH_JWKS_URL are set together")
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> GatewaySettings:
        # At start, not at the first handshake: a bad file stops the process with its name.
        self.tls()
        return self

    @field_validator("internal_signing_key_file")
    @classmethod
    def _signing_key_readable(cls, value: str) -> str:
        # At start, not at the first forwarded call: a bad file stops the gateway naming it.
        if value:
            load_private_key(Path(value))
        return value

    def internal_signer(self) -> InternalSigner:
        """Returns the signer of the identity forwarded to the services: the configured key,
        else the embedded one (created in the data dir on first use)."""
        if self.internal_signing_key_file:
            return InternalSigner(load_private_key(Path(self.internal_signing_key_file)))
        return InternalSigner.embedded(self.data_dir)

    def tls(self) -> TlsFiles | None:
        """Returns the checked certificate and key of the public ports; None: plaintext."""
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("CAREOPS_TLS_CERT_FILE and CAREOPS_TLS_KEY_FILE are set together")
        if not self.tls_cert_file:
            return None
        return TlsFiles.load(self.tls_cert_file, self.tls_key_file)

    def local_issuer(self) -> LocalIssuer | None:
        """Returns the embedded issuer when no external one is configured."""
        if self.auth_issuer:
            return None
        return LocalIssuer(self.data_dir, self.auth_audience)

    def verifier(self) -> TokenVerifier:
        """Returns the verifier of the trusted issuer: the configured one, else the local."""
        # A token verified once is answered from memory until it expires, and no longer than
        # the key set is cached: a withdrawn key stops being honoured as the set is re-read.
        memory = VerifiedTokens(max_age=self.auth_jwks_cache_seconds)
        local = self.local_issuer()
        if local is not None:
            return TokenVerifier(local.trusted(self.auth_leeway_seconds), memory)
        keys = JwksKeys(
            self.auth_jwks_url,
            lifespan=self.auth_jwks_cache_seconds,
            cooldown=self.auth_jwks_refresh_cooldown_seconds,
        )
        trusted = TrustedIssuer(
            self.auth_issuer, self.auth_audience, keys, self.auth_leeway_seconds
        )
        return TokenVerifier(trusted, memory)

    def authenticator(self) -> Authenticator:
        """Returns the check of bearer credentials (API keys, then the trusted issuer's JWTs)
        and of the permission table."""
        path = self.auth_api_keys_file
        keys = ApiKeyStore(Path(path)) if path else ApiKeyStore.of(self.data_dir)
        permissions = load_permissions(self.auth_permissions_file or None)
        return Authenticator(self.verifier(), keys, permissions)

    def limits(self) -> Limits:
        """Returns the per-principal rate and the request size limit."""
        return Limits.of(self.rate_limit_per_second, self.rate_limit_burst, self.max_request_bytes)

    def backends(self) -> list[Backend]:
        """Returns the backends in the contract's port order."""
        addresses = {
            "ticketing": self.ticketing_addr,
            "customer": self.customer_addr,
            "incident": self.incident_addr,
            "quality": self.quality_addr,
        }
        return [
            Backend(name, service, addresses[name])
            for name, service in grpc_api.BACKEND_SERVICES.items()
        ]


class GatewayService(skeleton.Service[GatewaySettings]):
    """The running gateway: channels to the backends, the gRPC edge and the HTTP edge."""

    entry = ENTRY

    def __init__(self, settings: GatewaySettings) -> None:
        super().__init__(settings)
        self.backends = settings.backends()
        self.http: HttpServer | None = None
        self.audit = AuditReader(settings.nats_url)
        self.gateway = grpc_api.GatewayServicer(
            self.backends, settings.status_timeout_seconds, audit=self.audit
        )
        self.table = routes(self.backends)
        self.shared = shared_routes(self.backends)  # ProjectionAdminService, per backend named
        # Built at start, not here: the local issuer creates its key in the data dir.
        self.authenticator: Authenticator | None = None
        self.issuer: LocalIssuer | None = None
        self.limits = settings.limits()
        self.tls = settings.tls()

    def credentials(self) -> grpc.ServerCredentials | None:
        return self.tls.grpc_credentials() if self.tls is not None else None

    def internal_identity(self) -> InternalVerifier | None:
        # The front door: it authenticates its callers itself and signs what it forwards.
        return None

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        assert self.authenticator is not None
        return (AuthInterceptor(self.authenticator, self.limits),)

    async def start_parts(self) -> None:
        self.issuer = self.settings.local_issuer()
        self.authenticator = self.settings.authenticator()
        if self.authenticator.permissions is not None:
            self.gateway.permissions = self.authenticator.permissions  # GetMyPermissions
        signer = self.settings.internal_signer()
        for backend in self.backends:
            backend.open(signer)

    def bindings(self) -> Sequence[ServiceBinding]:
        bindings = [
            ServiceBinding(
                self.gateway,
                gateway_pb2_grpc.add_GatewayServiceServicer_to_server,
                grpc_api.SERVICE_NAME,
            )
        ]
        for backend in self.backends:
            served = {path: route for path, route in self.table.items() if route.backend is backend}
            bindings.append(
                ServiceBinding(
                    grpc_api.ProxyHandler(served), grpc_api.register_proxy, backend.service
                )
            )
        for service in SHARED_SERVICES:
            shared = {p: route for p, route in self.shared.items() if p.startswith(f"/{service}/")}
            bindings.append(
                ServiceBinding(grpc_api.ProxyHandler(shared), grpc_api.register_proxy, service)
            )
        return bindings

    async def started(self) -> None:
        settings = self.settings
        assert self.authenticator is not None, "start_parts builds it"
        descriptor = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"]
        local = {
            f"/{grpc_api.SERVICE_NAME}/{method.name}": (method, getattr(self.gateway, method.name))
            for method in descriptor.methods
        }
        intake = IntakeRoutes(self.authenticator, self.limits, settings.http_timeout_seconds)
        web_rpc = WebRpc(
            timeout=settings.http_timeout_seconds,
            heartbeat=settings.http_stream_heartbeat_seconds,
        )
        status_page = StatusPage(
            timeout=settings.http_timeout_seconds,
            cache_seconds=settings.status_page_cache_seconds,
        )
        api = HttpApi(
            routes={**self.table, **self.shared},
            local=local,
            timeout=settings.http_timeout_seconds,
            heartbeat=settings.http_stream_heartbeat_seconds,
            middlewares=[auth_middleware(self.authenticator, self.limits)],
            jwks=self.issuer.jwks() if self.issuer is not None else None,
            cors_origins=settings.cors_allowed_origins,
            cors_max_age_seconds=settings.cors_max_age_seconds,
            max_body_bytes=settings.max_request_bytes,
            protocols=[
                web_rpc.register,
                intake.register,
                IcalFeed(settings.http_timeout_seconds).register,
                status_page.register,
                settings.console(self.issuer).register,
            ],
            extra_paths={
                **intake_openapi_paths(),
                **ical.openapi_paths(),
                **status_page_openapi_paths(),
                **console_openapi_paths(),
            },
            extra_schemes=ical.TOKEN_SCHEME,
        )
        self.http = HttpServer(
            api,
            host=settings.grpc_host,
            port=settings.http_port,
            grace=settings.shutdown_grace_seconds,
            ssl_context=self.tls.ssl_context() if self.tls is not None else None,
        )
        await self.http.start()

    def serving_details(self) -> dict[str, Any]:
        return {
            "http_port": self.http.port if self.http else 0,
            "backends": {backend.name: backend.address for backend in self.backends},
        }

    async def stop_parts(self) -> None:
        if self.http is not None:
            await self.http.stop()
        for backend in self.backends:
            await backend.close()
        await self.audit.close()


def main() -> None:
    skeleton.run_service(GatewayService, GatewaySettings)


if __name__ == "__main__":
    main()
