"""The second wall: a service port accepts only the gateway's signed identity (issue 11 item 4).

The signer and verifier with injected clocks (caches reuse, renew, never outlive `exp`), and a
real GrpcServer with the wall: refusals are UNAUTHENTICATED with the reason and run nothing,
health stays public, an accepted call runs as the signed principal whatever `careops-actor`
claims, unary and server-streaming alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from careops_platform.identity import ADMIN, AGENT, Principal, current_principal
from careops_platform.internal_identity import (
    INTERNAL_AUDIENCE,
    INTERNAL_ISSUER,
    InternalRefusal,
    InternalSigner,
    InternalVerifier,
    embedded_key_path,
    identity_interceptors,
)
from careops_platform.local_issuer import public_jwk
from careops_platform.requests import actor
from careops_platform.server import GrpcServer, ServiceBinding
from careops_platform.settings import ServiceSettings, load_settings

ECHO = "careops.test.Who"
ANN = Principal("ann", frozenset({AGENT}), "web-app")


class Clock:
    """Seconds since the epoch, from now on moved only by the test (PyJWT checks `exp` by
    the real time too: the tokens must be current)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now


def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_the_signer_reuses_a_token_until_half_its_life_then_renews_it() -> None:
    clock = Clock()
    signer = InternalSigner(key(), lifetime=120, clock=clock)
    first = signer.token(ANN)
    clock.now += 59
    assert signer.token(ANN) == first, "reused while more than half its life is left"
    other = signer.token(Principal("bob", frozenset({ADMIN})))
    assert other != first, "one token per principal"
    clock.now += 1
    renewed = signer.token(ANN)
    assert renewed != first
    claims = jwt.decode(renewed, options={"verify_signature": False})
    assert claims["iat"] == int(clock.now) and claims["exp"] == int(clock.now) + 120


def test_a_signed_token_names_the_principal_for_the_services() -> None:
    signing = key()
    token = InternalSigner(signing).token(ANN)
    claims = jwt.decode(
        token, signing.public_key(), algorithms=["ES256"], audience=INTERNAL_AUDIENCE
    )
    assert claims["iss"] == INTERNAL_ISSUER
    assert (claims["sub"], claims["roles"], claims["azp"]) == ("ann", [AGENT], "web-app")
    assert InternalVerifier(signing.public_key()).verify(token) == ANN


def test_the_verifier_does_not_accept_a_cached_token_past_its_exp() -> None:
    signing, clock = key(), Clock()
    verifier = InternalVerifier(signing.public_key(), clock=clock)
    token = InternalSigner(signing, clock=clock).token(ANN)
    assert verifier.verify(token) == ANN
    clock.now += 119
    assert verifier.verify(token) == ANN
    clock.now += 1
    with pytest.raises(InternalRefusal) as refused:
        verifier.verify(token)
    assert refused.value.kind == "expired"
    with pytest.raises(InternalRefusal):
        verifier.verify(token)  # and not from memory either, once dropped


def test_the_verifier_checks_exp_by_its_own_clock_on_first_sight() -> None:
    signing, clock = key(), Clock()
    token = InternalSigner(signing, clock=clock).token(ANN)
    late = Clock(clock.now + 121)
    with pytest.raises(InternalRefusal) as refused:
        InternalVerifier(signing.public_key(), clock=late).verify(token)
    assert refused.value.kind == "expired"


def _claims(**override: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims = {
        "iss": INTERNAL_ISSUER,
        "aud": INTERNAL_AUDIENCE,
        "sub": "mallory",
        "roles": [ADMIN],
        "iat": now,
        "exp": now + timedelta(seconds=120),
    }
    return {**claims, **override}


def _signed(signing: ec.EllipticCurvePrivateKey, **override: Any) -> str:
    kid = public_jwk(signing)["kid"]
    return jwt.encode(_claims(**override), signing, algorithm="ES256", headers={"kid": kid})


@pytest.mark.parametrize(
    ("kind", "token"),
    [
        ("missing", lambda _k: ""),
        ("malformed", lambda _k: "not-a-jwt"),
        ("unknown_key", lambda _k: _signed(key())),
        ("expired", lambda k: _signed(k, exp=datetime.now(UTC) - timedelta(minutes=5))),
        ("claims", lambda k: _signed(k, aud="careops")),
        ("claims", lambda k: _signed(k, iss="urn:careops:local")),
    ],
)
def test_the_verifier_refuses_with_a_reason_class(kind: str, token: Any) -> None:
    signing = key()
    with pytest.raises(InternalRefusal) as refused:
        InternalVerifier(signing.public_key()).verify(token(signing))
    assert refused.value.kind == kind and refused.value.reason


def test_a_token_whose_kid_is_right_but_signature_another_keys_is_refused() -> None:
    signing, forger = key(), key()
    kid = public_jwk(signing)["kid"]
    forged = jwt.encode(_claims(), forger, algorithm="ES256", headers={"kid": kid})
    with pytest.raises(InternalRefusal) as refused:
        InternalVerifier(signing.public_key()).verify(forged)
    assert refused.value.kind == "signature"


# ------------------------------------------------------------------ the wall on a server

CALLS: list[tuple[Principal | None, str]] = []


async def _who(request: health_pb2.HealthCheckRequest, context: Any) -> Any:
    """Who/Ask: records who the service believes is calling."""
    CALLS.append((current_principal(), actor()))
    return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def _watch(request: health_pb2.HealthCheckRequest, context: Any) -> AsyncIterator[Any]:
    CALLS.append((current_principal(), actor()))
    yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def _register(_servicer: Any, server: grpc.aio.Server) -> None:
    codecs = {
        "request_deserializer": health_pb2.HealthCheckRequest.FromString,
        "response_serializer": health_pb2.HealthCheckResponse.SerializeToString,
    }
    handlers = {
        "Ask": grpc.unary_unary_rpc_method_handler(_who, **codecs),
        "Watch": grpc.unary_stream_rpc_method_handler(_watch, **codecs),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ECHO, handlers),))


@pytest.fixture
async def walled(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """A server with the wall, trusting the embedded key of `tmp_path`."""
    server = GrpcServer(
        host="127.0.0.1",
        port=0,
        bindings=[ServiceBinding(None, _register, ECHO)],
        identity=InternalVerifier.embedded(tmp_path),
    )
    await server.start()
    await server.set_serving(True)
    CALLS.clear()
    yield f"127.0.0.1:{server.port}", tmp_path
    await server.stop(0)


def _ask(channel: grpc.aio.Channel, method: str = "Ask") -> Any:
    codecs = {
        "request_serializer": health_pb2.HealthCheckRequest.SerializeToString,
        "response_deserializer": health_pb2.HealthCheckResponse.FromString,
    }
    if method == "Watch":
        return channel.unary_stream(f"/{ECHO}/Watch", **codecs)
    return channel.unary_unary(f"/{ECHO}/Ask", **codecs)


def _refusals(kind: str) -> float:
    value = REGISTRY.get_sample_value("careops_internal_identity_refusals_total", {"reason": kind})
    return value or 0.0


async def test_a_direct_call_without_identity_is_unauthenticated_and_runs_nothing(
    walled: tuple[str, Path],
) -> None:
    address, _ = walled
    before = _refusals("missing")
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _ask(channel)(health_pb2.HealthCheckRequest(), metadata=(("careops-actor", "x"),))
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            async for _ in _ask(channel, "Watch")(health_pb2.HealthCheckRequest()):
                pass
    for error in (refused.value, streamed.value):
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (error.details() or "").startswith("calls to this service come through the gateway")
    assert CALLS == []
    assert _refusals("missing") == before + 2


async def test_another_keys_identity_is_refused(walled: tuple[str, Path], tmp_path: Path) -> None:
    address, _ = walled
    stranger = InternalSigner(key())
    async with grpc.aio.insecure_channel(
        address, interceptors=identity_interceptors(stranger, ANN)
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _ask(channel)(health_pb2.HealthCheckRequest())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert CALLS == []


async def test_health_needs_no_identity(walled: tuple[str, Path]) -> None:
    address, _ = walled
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_signed_principal_is_the_caller_whatever_careops_actor_claims(
    walled: tuple[str, Path],
) -> None:
    address, data_dir = walled
    signer = InternalSigner.embedded(data_dir)
    claim = (("careops-actor", "someone-else"),)
    async with grpc.aio.insecure_channel(
        address, interceptors=identity_interceptors(signer, ANN)
    ) as channel:
        await _ask(channel)(health_pb2.HealthCheckRequest(), metadata=claim)
        async for _ in _ask(channel, "Watch")(health_pb2.HealthCheckRequest(), metadata=claim):
            pass
    assert CALLS == [(ANN, "ann"), (ANN, "ann")]


async def test_concurrent_calls_each_run_as_their_own_caller(walled: tuple[str, Path]) -> None:
    """The wall makes the principal current for the call's own task: calls of two principals
    in flight at once, unary and streaming, each see theirs, and a call after them without
    an identity is refused (nothing of an earlier call's principal is left)."""
    address, data_dir = walled
    signer = InternalSigner.embedded(data_dir)
    bob = Principal("bob", frozenset({ADMIN}), "cli")

    async def calls(principal: Principal) -> None:
        async with grpc.aio.insecure_channel(
            address, interceptors=identity_interceptors(signer, principal)
        ) as channel:
            ask, watch = _ask(channel), _ask(channel, "Watch")
            await asyncio.gather(*(ask(health_pb2.HealthCheckRequest()) for _ in range(10)))
            async for _ in watch(health_pb2.HealthCheckRequest()):
                pass

    await asyncio.gather(calls(ANN), calls(bob))
    assert sorted(CALLS, key=lambda call: call[1]) == [(ANN, "ann")] * 11 + [(bob, "bob")] * 11
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _ask(channel)(health_pb2.HealthCheckRequest())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert len(CALLS) == 22


def test_a_bad_verify_key_file_stops_the_process_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "verify.pem"
    bad.write_text("not a key")
    monkeypatch.setenv("CAREOPS_INTERNAL_VERIFY_KEY_FILE", str(bad))
    with pytest.raises(SystemExit):
        load_settings(ServiceSettings)
    assert "CAREOPS_INTERNAL_VERIFY_KEY_FILE" in capsys.readouterr().err


def test_a_deployed_verify_key_file_is_the_one_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signing = key()
    path = tmp_path / "verify.pem"
    path.write_bytes(
        signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    monkeypatch.setenv("CAREOPS_INTERNAL_VERIFY_KEY_FILE", str(path))
    settings = load_settings(ServiceSettings, data_dir=str(tmp_path))
    verifier = settings.internal_verifier()
    assert verifier.verify(InternalSigner(signing).token(ANN)) == ANN
    assert not embedded_key_path(tmp_path).exists(), "no embedded key when one is configured"
    with pytest.raises(InternalRefusal):
        verifier.verify(InternalSigner.embedded(tmp_path).token(ANN))
