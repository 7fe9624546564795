"""Authentication at the gateway: real keys, real tokens, over real gRPC and HTTP. Every kind
of bad credential is UNAUTHENTICATED (401 with WWW-Authenticate) with its reason, and nothing
reaches the backend; health, reflection and the public documents need no token."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import jwt
import pytest
from aiohttp import web
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops_platform.api_keys import ApiKeyStore
from careops_platform.identity import (
    AGENT,
    ONCALL,
    AuthError,
    Principal,
    TokenVerifier,
    current_principal,
)
from careops_platform.local_issuer import KEY_FILE, LocalIssuer
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health_pb2, health_pb2_grpc
from ticketing.main import TicketingService

from gateway.auth import Authenticator, AuthInterceptor, auth_middleware
from gateway.main import GatewayService, GatewaySettings
from gateway.tests.conftest import address, authorization, running_gateway
from gateway.tests.issuer import TestIssuer, authorized_channel, bearer, shared_issuer
from gateway.tests.test_gateway import OPEN_TICKET, backend_calls, open_json

GET_TICKET = "/careops.ticketing.v1.TicketingService/GetTicket"


def _payload(issuer: TestIssuer, **claims: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": "mallory",
        "roles": ["admin"],
        "iat": now,
        "exp": now + timedelta(hours=1),
        **claims,
    }


def _forged(issuer: TestIssuer, kind: str) -> str:
    """Returns a token the gateway must refuse, of the given kind."""
    stranger = ec.generate_private_key(ec.SECP256R1())
    headers = {"kid": issuer.kid}
    if kind == "bad signature":
        return jwt.encode(_payload(issuer), stranger, algorithm="ES256", headers=headers)
    if kind == "unknown kid":
        return jwt.encode(_payload(issuer), stranger, algorithm="ES256", headers={"kid": "nope"})
    if kind == "alg none":
        return jwt.encode(_payload(issuer), "", algorithm="none", headers=headers)
    if kind == "HS256":
        return jwt.encode(
            _payload(issuer),
            "a-shared-secret-of-thirty-two-bytes!",
            algorithm="HS256",
            headers=headers,
        )
    raise AssertionError(kind)


def bad_credentials(issuer: TestIssuer) -> dict[str, tuple[str | None, str]]:
    """Returns each kind of bad credential: the authorization value and the reason's words."""
    past = datetime.now(UTC) - timedelta(hours=2)
    return {
        "none": (None, "no credentials"),
        "not bearer": ("Basic YWxpY2U6c2VjcmV0", "not 'Bearer <token>'"),
        "not a jwt": ("Bearer not-a-token", "not a JWT"),
        "expired": (f"Bearer {issuer.token(now=past)}", "expired"),
        "wrong issuer": (f"Bearer {issuer.token(iss='https://elsewhere.test/')}", "issuer"),
        "wrong audience": (f"Bearer {issuer.token(aud='someone-else')}", "audience"),
        "no subject": (f"Bearer {issuer.token(sub=None)}", "'sub'"),
        "not yet valid": (
            f"Bearer {issuer.token(nbf=datetime.now(UTC) + timedelta(hours=1))}",
            "not valid yet",
        ),
        **{
            kind: (f"Bearer {_forged(issuer, kind)}", reason)
            for kind, reason in (
                ("bad signature", "signature does not verify"),
                ("unknown kid", "unknown signing key"),
                ("alg none", "'none' is not allowed"),
                ("HS256", "'HS256' is not allowed"),
            )
        },
    }


KINDS = [
    "none",
    "not bearer",
    "not a jwt",
    "expired",
    "wrong issuer",
    "wrong audience",
    "no subject",
    "not yet valid",
    "bad signature",
    "unknown kid",
    "alg none",
    "HS256",
]


def test_every_kind_of_bad_credential_is_tried() -> None:
    assert sorted(bad_credentials(shared_issuer())) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_bad_credential_is_unauthenticated_over_grpc_and_nothing_is_forwarded(
    gateway: GatewayService, kind: str
) -> None:
    value, reason = bad_credentials(shared_issuer())[kind]
    metadata = (("authorization", value),) if value is not None else ()
    before = backend_calls("GetTicket")
    async with grpc.aio.insecure_channel(address(gateway)) as channel:
        stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetTicket(pb.GetTicketRequest(ticket_id="T-1"), metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason in (caught.value.details() or "")
    assert backend_calls("GetTicket") == before


@pytest.mark.parametrize("kind", KINDS)
async def test_a_bad_credential_is_401_over_http_and_nothing_is_forwarded(
    gateway: GatewayService, kind: str
) -> None:
    value, reason = bad_credentials(shared_issuer())[kind]
    headers = {"Authorization": value} if value is not None else {}
    assert gateway.http is not None
    before = backend_calls("OpenTicket")
    async with (
        aiohttp.ClientSession(f"http://127.0.0.1:{gateway.http.port}") as http,
        http.post(OPEN_TICKET, json=open_json(), headers=headers) as response,
    ):
        body = await response.json()
    assert response.status == 401
    assert body["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert reason in body["message"]
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="careops"')
    assert ('error="invalid_token"' in challenge) == (value is not None)
    assert backend_calls("OpenTicket") == before


async def test_a_stream_without_credentials_is_unauthenticated(gateway: GatewayService) -> None:
    from careops.incident.v1 import incident_pb2 as ipb
    from careops.incident.v1 import incident_pb2_grpc

    async with grpc.aio.insecure_channel(address(gateway)) as channel:
        call = incident_pb2_grpc.IncidentServiceStub(channel).WatchAlerts(
            ipb.WatchAlertsRequest(team_id="technical_support")
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_reflection_and_healthz_need_no_token(gateway: GatewayService) -> None:
    async with grpc.aio.insecure_channel(address(gateway)) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert gateway.http is not None
    async with (
        aiohttp.ClientSession(f"http://127.0.0.1:{gateway.http.port}") as http,
        http.get("/healthz") as response,
    ):
        assert response.status == 200


async def test_rs256_and_a_token_within_the_leeway_are_accepted(
    gateway: GatewayService, ticketing: TicketingService
) -> None:
    issuer = shared_issuer()
    rsa_kid = next(kid for kid, (alg, _) in issuer.keys.items() if alg == "RS256")
    just_expired = datetime.now(UTC) - timedelta(hours=1, seconds=5)
    for token in (issuer.token(kid=rsa_kid), issuer.token(now=just_expired)):
        async with authorized_channel(address(gateway), token) as channel:
            stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetTicket(pb.GetTicketRequest(ticket_id="T-missing"))
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.fixture
async def own_issuer() -> AsyncIterator[TestIssuer]:
    issuer = TestIssuer()
    yield issuer
    issuer.close()


async def test_a_new_key_in_the_jwks_is_accepted_without_restart(
    ticketing: TicketingService, own_issuer: TestIssuer
) -> None:
    async with running_gateway(own_issuer.settings(), ticketing=address(ticketing)) as gateway:
        for rotation in (None, "ES256", "RS256", None):
            # A new key appears in the JWKS while the gateway runs; tokens signed with it pass.
            kid = own_issuer.add_key(rotation) if rotation else own_issuer.kid
            token = own_issuer.token(kid=kid)
            async with authorized_channel(address(gateway), token) as channel:
                stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.GetTicket(pb.GetTicketRequest(ticket_id="T-missing"))
                assert caught.value.code() == grpc.StatusCode.NOT_FOUND, kid
        # A known kid comes from the cache: one fetch at the first token, one per rotation.
        assert own_issuer.fetches == 3


async def test_an_unreachable_jwks_is_unavailable_not_unauthenticated(
    ticketing: TicketingService, own_issuer: TestIssuer
) -> None:
    token = own_issuer.token()
    own_issuer.close()
    async with (
        running_gateway(own_issuer.settings(), ticketing=address(ticketing)) as gateway,
        authorized_channel(address(gateway), token) as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(GET_TICKET)(b"")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "cannot read the issuer's keys" in (caught.value.details() or "")


async def test_the_embedded_issuer_serves_its_jwks_and_its_tokens_are_accepted(
    ticketing: TicketingService, tmp_path: Path
) -> None:
    local = {"auth_issuer": "", "auth_jwks_url": "", "auth_audience": "careops"}
    async with running_gateway(
        {**local, "data_dir": str(tmp_path)}, ticketing=address(ticketing)
    ) as gateway:
        assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
        assert gateway.http is not None
        async with (
            aiohttp.ClientSession(f"http://127.0.0.1:{gateway.http.port}") as http,
            http.get("/.well-known/jwks.json") as response,
        ):
            jwks = await response.json()
        issuer = LocalIssuer(tmp_path)
        assert jwks == issuer.jwks() and jwks["keys"][0]["alg"] == "ES256"
        token = issuer.issue(subject="alice", roles=[AGENT])
        async with authorized_channel(address(gateway), token) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await channel.unary_unary(GET_TICKET)(b"")
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # The test issuer is another issuer here.
        async with authorized_channel(address(gateway)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await channel.unary_unary(GET_TICKET)(b"")
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


# The principal reaches the code behind the interceptor and the middleware.


def _verifier() -> TokenVerifier:
    return GatewaySettings(**shared_issuer().settings()).verifier()


def _authenticator() -> Authenticator:
    return Authenticator(_verifier())


async def test_the_grpc_interceptor_makes_the_principal_current() -> None:
    seen: list[Principal | None] = []

    async def unary(request: bytes, context: Any) -> bytes:
        seen.append(current_principal())
        return b""

    async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
        seen.append(current_principal())
        yield b""

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }
    server = grpc.aio.server(interceptors=[AuthInterceptor(_authenticator())])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.S", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        token = shared_issuer().token("bob", [AGENT, ONCALL, "idp-only-role"])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await channel.unary_unary("/t.S/Unary")(b"", metadata=bearer(token))
            async for _ in channel.unary_stream("/t.S/Stream")(b"", metadata=bearer(token)):
                pass
    finally:
        await server.stop(0)
    expected = Principal("bob", frozenset({AGENT, ONCALL}), "test-client")
    assert seen == [expected, expected]
    assert current_principal() is None


async def test_the_http_middleware_makes_the_principal_current() -> None:
    async def who(request: web.Request) -> web.Response:
        principal = current_principal()
        assert principal is not None
        return web.json_response({"subject": principal.subject, "roles": sorted(principal.roles)})

    app = web.Application(middlewares=[auth_middleware(_authenticator())])
    app.router.add_get("/who", who)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        token = shared_issuer().token("carol", [AGENT])
        async with (
            aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
            http.get("/who", headers=authorization(token)) as response,
        ):
            assert await response.json() == {"subject": "carol", "roles": [AGENT]}
    finally:
        await runner.cleanup()


def test_a_roles_claim_that_is_not_a_list_of_names_is_refused() -> None:
    verify: Callable[[str], Principal] = _verifier().verify_now
    issuer = shared_issuer()
    assert verify(issuer.token("dave", [AGENT])).roles == {AGENT}
    payload = _payload(issuer, roles=7)
    _, key = issuer.keys[issuer.kid]
    token = jwt.encode(payload, key, algorithm="ES256", headers={"kid": issuer.kid})
    with pytest.raises(AuthError, match="'roles' claim is not a list"):
        verify(token)


async def test_an_api_key_is_accepted_until_revoked(
    ticketing: TicketingService, tmp_path: Path
) -> None:
    keys = ApiKeyStore(tmp_path / "keys.json")
    value, key = keys.create(subject="crm-sync", roles=["integration"])
    settings = {"auth_api_keys_file": str(tmp_path / "keys.json")}
    async with (
        running_gateway(settings, ticketing=address(ticketing)) as gateway,
        authorized_channel(address(gateway), value) as channel,
    ):
        stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetTicket(pb.GetTicketRequest(ticket_id="T-missing"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        keys.revoke(key.prefix)
        before = backend_calls("GetTicket")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetTicket(pb.GetTicketRequest(ticket_id="T-missing"))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert f"API key {key.prefix} is revoked" in (caught.value.details() or "")
        assert gateway.http is not None
        async with (
            aiohttp.ClientSession(f"http://127.0.0.1:{gateway.http.port}") as http,
            http.post(OPEN_TICKET, json=open_json(), headers=authorization(value)) as response,
        ):
            assert response.status == 401
            assert "revoked" in (await response.json())["message"]
        assert backend_calls("GetTicket") == before


ERASE_CUSTOMER = "/careops.customer.v1.CustomerProfileService/EraseCustomer"


async def test_a_role_without_the_permission_is_denied_naming_it_and_nothing_is_forwarded(
    gateway: GatewayService,
) -> None:
    """The permission table at the door: an agent may read a ticket, not erase a customer."""
    from careops.customer.v1 import customer_pb2, customer_pb2_grpc

    agent = shared_issuer().token("agent-li", (AGENT,))
    metadata = (("authorization", f"Bearer {agent}"),)
    async with grpc.aio.insecure_channel(address(gateway)) as channel:
        customers = customer_pb2_grpc.CustomerProfileServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await customers.EraseCustomer(
                customer_pb2.EraseCustomerRequest(customer_id="C-1"), metadata=metadata
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "customer.erase" in (caught.value.details() or "")
        tickets = ticketing_pb2_grpc.TicketingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await tickets.GetTicket(pb.GetTicketRequest(ticket_id="T-none"), metadata=metadata)
        # Allowed, so forwarded: only ticketing knows that the ticket does not exist.
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert gateway.http is not None
    async with (
        aiohttp.ClientSession(f"http://127.0.0.1:{gateway.http.port}") as http,
        http.post(
            f"/v1{ERASE_CUSTOMER}",
            json={"customerId": "C-1"},
            headers={"Authorization": f"Bearer {agent}"},
        ) as response,
    ):
        body = await response.json()
    assert response.status == 403
    assert body["code"] == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert "customer.erase" in body["message"]
