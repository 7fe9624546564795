"""TLS on the gateway's public ports: a self-signed certificate made here, served on gRPC and
HTTP; clients that trust it get through (health, then authenticated calls), plaintext clients
do not; a bad certificate/key configuration stops the settings with the variable's name."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from careops.gateway.v1 import gateway_pb2 as gw
from careops.gateway.v1 import gateway_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from gateway.main import GatewayService, GatewaySettings
from gateway.tests.certificates import Pair, make_pair
from gateway.tests.conftest import authorization, running_gateway
from gateway.tests.issuer import bearer, shared_issuer

PLATFORM_STATUS = "/v1/careops.gateway.v1.GatewayService/GetPlatformStatus"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    return make_pair(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
async def gateway(pair: Pair) -> AsyncIterator[GatewayService]:
    """The gateway with TLS on both ports, no backend running (GetPlatformStatus says so)."""
    async with running_gateway(pair.settings()) as gateway:
        yield gateway


def ports(gateway: GatewayService) -> tuple[int, int]:
    """Returns the gateway's gRPC and HTTP ports."""
    assert gateway.server is not None and gateway.http is not None
    return gateway.server.port, gateway.http.port


def client_context(pair: Pair) -> ssl.SSLContext:
    """Returns a client context that trusts only the test certificate."""
    return ssl.create_default_context(cafile=str(pair.cert))


async def test_a_tls_grpc_client_gets_health_and_an_authenticated_call(
    gateway: GatewayService, pair: Pair
) -> None:
    grpc_port, _ = ports(gateway)
    credentials = grpc.ssl_channel_credentials(root_certificates=pair.cert.read_bytes())
    async with grpc.aio.secure_channel(f"localhost:{grpc_port}", credentials) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetPlatformStatus(gw.GetPlatformStatusRequest(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        status = await stub.GetPlatformStatus(
            gw.GetPlatformStatusRequest(), metadata=bearer(shared_issuer().token()), timeout=10
        )
        assert len(status.backends) == 4, "the status lists the backends"


async def test_an_https_client_gets_healthz_and_an_authenticated_post(
    gateway: GatewayService, pair: Pair
) -> None:
    _, http_port = ports(gateway)
    connector = aiohttp.TCPConnector(ssl=client_context(pair))
    async with aiohttp.ClientSession(f"https://localhost:{http_port}", connector=connector) as s:
        async with s.get("/healthz") as response:
            assert response.status == 200
            assert await response.json() == {"status": "SERVING"}
        async with s.post(PLATFORM_STATUS, json={}) as response:
            assert response.status == 401
        async with s.post(PLATFORM_STATUS, json={}, headers=authorization()) as response:
            assert response.status == 200, await response.text()
            assert len((await response.json())["backends"]) == 4


async def test_plaintext_clients_are_refused(gateway: GatewayService) -> None:
    grpc_port, http_port = ports(gateway)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"http://127.0.0.1:{http_port}/healthz") as response:
                await response.read()


async def test_a_client_that_does_not_trust_the_certificate_is_refused(
    gateway: GatewayService, tmp_path: Path
) -> None:
    _, http_port = ports(gateway)
    stranger = make_pair(tmp_path, "stranger")
    connector = aiohttp.TCPConnector(ssl=client_context(stranger))
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(f"https://localhost:{http_port}/healthz")


def test_plaintext_is_the_default() -> None:
    settings = GatewaySettings()
    assert settings.tls() is None


@pytest.mark.parametrize("present", ["tls_cert_file", "tls_key_file"])
def test_cert_and_key_are_set_together(pair: Pair, present: str) -> None:
    with pytest.raises(ValidationError, match="CAREOPS_TLS_CERT_FILE and CAREOPS_TLS_KEY_FILE"):
        GatewaySettings(**{present: pair.settings()[present]})


def test_an_unreadable_file_names_its_variable(pair: Pair, tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.pem")
    with pytest.raises(ValidationError, match=f"CAREOPS_TLS_CERT_FILE: cannot read {missing}"):
        GatewaySettings(tls_cert_file=missing, tls_key_file=str(pair.key))
    with pytest.raises(ValidationError, match=f"CAREOPS_TLS_KEY_FILE: cannot read {missing}"):
        GatewaySettings(tls_cert_file=str(pair.cert), tls_key_file=missing)


def test_files_that_are_not_pem_name_their_variable(pair: Pair, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValidationError, match="CAREOPS_TLS_CERT_FILE: .* is not a PEM cert"):
        GatewaySettings(tls_cert_file=str(junk), tls_key_file=str(pair.key))
    with pytest.raises(ValidationError, match="CAREOPS_TLS_KEY_FILE: .* is not an unencrypted"):
        GatewaySettings(tls_cert_file=str(pair.cert), tls_key_file=str(junk))


def test_a_key_of_another_certificate_is_refused(pair: Pair, tmp_path: Path) -> None:
    other = make_pair(tmp_path, "other")
    with pytest.raises(ValidationError, match="CAREOPS_TLS_KEY_FILE: .* is not the key of"):
        GatewaySettings(tls_cert_file=str(pair.cert), tls_key_file=str(other.key))
