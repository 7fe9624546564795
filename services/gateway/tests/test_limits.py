"""Limits at the gateway, over real gRPC and HTTP in front of a recording backend: a principal
over its rate is refused RESOURCE_EXHAUSTED / 429 with when to retry, a request over the size
limit RESOURCE_EXHAUSTED / 413, and nothing reaches the backend; the caller's deadline bounds
the backend call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc
import pytest
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from google.rpc import error_details_pb2, status_pb2
from prometheus_client import REGISTRY

from gateway.backends import STATUS_DETAILS_KEY
from gateway.limits import RateLimiter, bounded, header_timeout
from gateway.main import GatewayService
from gateway.tests.conftest import address, authorization, running_gateway
from gateway.tests.issuer import authorized_channel, shared_issuer

GET_TICKET = "/careops.ticketing.v1.TicketingService/GetTicket"
HTTP_GET_TICKET = f"/v1{GET_TICKET}"
WATCH_ALERTS = "/careops.incident.v1.IncidentService/WatchAlerts"


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder(grpc.GenericRpcHandler):
    """A ticketing and incident backend that answers every call with one empty message and
    records each call's path and remaining time."""

    calls: list[tuple[str, float | None]] = field(default_factory=list)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method: str = details.method  # type: ignore[attr-defined]

        async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            self.calls.append((method, context.time_remaining()))
            return b""

        async def stream(request: bytes, context: grpc.aio.ServicerContext) -> Any:
            yield await answer(request, context)

        if method == WATCH_ALERTS:
            return grpc.unary_stream_rpc_method_handler(stream)
        return grpc.unary_unary_rpc_method_handler(answer)


@asynccontextmanager
async def gateway_before_recorder(
    **overrides: Any,
) -> AsyncIterator[tuple[GatewayService, Recorder]]:
    """Runs the gateway with `overrides` in front of a recording ticketing backend."""
    recorder = Recorder()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((recorder,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        backend = f"127.0.0.1:{port}"
        async with running_gateway(overrides, ticketing=backend, incident=backend) as gateway:
            yield gateway, recorder
    finally:
        await server.stop(0)


def http_base(gateway: GatewayService) -> str:
    assert gateway.http is not None
    return f"http://127.0.0.1:{gateway.http.port}"


def rate_limited(edge: str) -> float:
    return REGISTRY.get_sample_value("careops_gateway_rate_limited_total", {"edge": edge}) or 0.0


def retry_info(trailers: Any) -> error_details_pb2.RetryInfo:
    """Returns the RetryInfo detail of the google.rpc.Status in a call's trailers."""
    raw = dict(trailers)[STATUS_DETAILS_KEY]
    status = status_pb2.Status.FromString(raw)
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    return info


def test_bucket_grants_its_burst_then_its_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.acquire("ann") for _ in range(3)] == [None, None, None]
    assert limiter.acquire("ann") == pytest.approx(0.5)
    assert limiter.acquire("bob") is None  # a bucket of its own
    clock.now += 0.5
    assert limiter.acquire("ann") is None
    assert limiter.acquire("ann") == pytest.approx(0.5)


def test_rate_zero_grants_everything() -> None:
    limiter = RateLimiter(rate=0, burst=1, clock=FakeClock())
    assert all(limiter.acquire("ann") is None for _ in range(100))
    assert len(limiter) == 0


def test_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1, burst=2, clock=clock, max_buckets=3)
    for subject in ("a", "b", "c", "d", "e"):
        limiter.acquire(subject)
    assert len(limiter) == 3  # the least recently used went
    clock.now += 2  # every bucket full again: the same as none
    limiter.acquire("f")
    assert len(limiter) == 1


def test_header_timeouts() -> None:
    assert header_timeout({}) is None
    assert header_timeout({"grpc-timeout": "1500m"}) == pytest.approx(1.5)
    assert header_timeout({"grpc-timeout": "2S"}) == 2
    assert header_timeout({"connect-timeout-ms": "250"}) == pytest.approx(0.25)
    for bad in ({"grpc-timeout": "2s"}, {"grpc-timeout": "-1S"}, {"connect-timeout-ms": "x"}):
        response = header_timeout(bad)
        assert not isinstance(response, float | type(None))
        assert response.status == 400
    assert bounded(None, 3) == 3
    assert bounded(2, 3) == 2
    assert bounded(5, None) == 5


async def test_grpc_over_the_rate_is_resource_exhausted_and_not_forwarded() -> None:
    async with gateway_before_recorder(rate_limit_per_second=1, rate_limit_burst=2) as (gw, rec):
        clock = FakeClock()
        gw.limits.rate.clock = clock
        before = rate_limited("grpc")
        async with authorized_channel(address(gw), shared_issuer().token("ann")) as channel:
            stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
            for _ in range(2):
                await stub.GetTicket(pb.GetTicketRequest(ticket_id="t"))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetTicket(pb.GetTicketRequest(ticket_id="t"))
            assert len(rec.calls) == 2
            error = refused.value
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "rate limit exceeded for ann" in (error.details() or "")
            trailers = error.trailing_metadata() or ()
            assert dict(trailers)["retry-after"] == "1"
            assert retry_info(trailers).retry_delay.ToNanoseconds() == 1_000_000_000
            assert rate_limited("grpc") == before + 1
            # Another principal has its own bucket; ann's refills with time.
            async with authorized_channel(address(gw), shared_issuer().token("bob")) as other:
                other_stub = ticketing_pb2_grpc.TicketingServiceStub(other)
                await other_stub.GetTicket(pb.GetTicketRequest(ticket_id="t"))
            clock.now += 1
            await stub.GetTicket(pb.GetTicketRequest(ticket_id="t"))
            assert len(rec.calls) == 4


async def test_http_over_the_rate_is_429_with_retry_after() -> None:
    async with gateway_before_recorder(rate_limit_per_second=0.5, rate_limit_burst=1) as (gw, rec):
        gw.limits.rate.clock = FakeClock()
        before = rate_limited("http")
        headers = authorization(shared_issuer().token("carol"))
        async with aiohttp.ClientSession(http_base(gw), headers=headers) as http:
            async with http.post(HTTP_GET_TICKET, json={"ticketId": "t"}) as response:
                assert response.status == 200
            async with http.post(HTTP_GET_TICKET, json={"ticketId": "t"}) as response:
                assert response.status == 429
                assert response.headers["Retry-After"] == "2"
                body = await response.json()
        assert body["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert "rate limit exceeded for carol" in body["message"]
        assert body["details"] == [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}
        ]
        assert len(rec.calls) == 1
        assert rate_limited("http") == before + 1


async def test_defaults_do_not_limit_a_busy_principal() -> None:
    async with gateway_before_recorder() as (gw, rec):
        async with authorized_channel(address(gw)) as channel:
            stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
            for _ in range(50):
                await stub.GetTicket(pb.GetTicketRequest(ticket_id="t"))
        assert len(rec.calls) == 50


async def test_requests_over_the_size_limit_are_refused() -> None:
    async with gateway_before_recorder(max_request_bytes=1024) as (gw, rec):
        async with authorized_channel(address(gw)) as channel:
            stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
            await stub.GetTicket(pb.GetTicketRequest(ticket_id="t" * 900))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetTicket(pb.GetTicketRequest(ticket_id="t" * 2000))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "over the gateway's limit of 1024 bytes" in (refused.value.details() or "")
        async with aiohttp.ClientSession(http_base(gw), headers=authorization()) as http:
            body = {"ticketId": "t" * 2000}
            async with http.post(HTTP_GET_TICKET, json=body) as response:
                assert response.status == 413
                error = await response.json()
        assert error["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert "over the gateway's limit of 1024 bytes" in error["message"]
        assert len(rec.calls) == 1


async def test_the_callers_deadline_bounds_the_backend_call() -> None:
    async with gateway_before_recorder(http_timeout_seconds=5) as (gw, rec):
        async with authorized_channel(address(gw)) as channel:
            stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
            await stub.GetTicket(pb.GetTicketRequest(ticket_id="t"), timeout=2)
        async with aiohttp.ClientSession(http_base(gw), headers=authorization()) as http:
            for headers in (
                {"grpc-timeout": "1500m"},
                {"connect-timeout-ms": "1000"},
                {},
                {"grpc-timeout": "100S"},  # never longer than the gateway's own
            ):
                async with http.post(HTTP_GET_TICKET, json={}, headers=headers) as response:
                    assert response.status == 200, headers
            async with http.post(
                HTTP_GET_TICKET, json={}, headers={"grpc-timeout": "soon"}
            ) as response:
                assert response.status == 400
                assert "grpc-timeout" in (await response.json())["message"]
    remaining = [left for _, left in rec.calls]
    assert all(left is not None for left in remaining)
    bounds = [2, 1.5, 1, 5, 5]
    for left, bound in zip(remaining, bounds, strict=True):
        # gRPC rounds a deadline up a little on the wire (its timeout header's precision).
        assert left is not None and bound - 1 < left <= bound + 0.1


async def test_an_http_stream_gets_the_callers_deadline_only() -> None:
    async with gateway_before_recorder(http_timeout_seconds=5) as (gw, rec):
        base = http_base(gw)
        async with aiohttp.ClientSession(base, headers=authorization()) as http:
            for headers in ({"grpc-timeout": "3S"}, {}):
                body = {"teamId": "technical_support"}
                async with http.post(f"/v1{WATCH_ALERTS}", json=body, headers=headers) as reply:
                    assert reply.status == 200, headers
                    assert (await reply.text()).startswith('{"result"')
    (_, with_header), (_, without) = rec.calls
    assert with_header is not None and 2 < with_header <= 3.1
    assert without is None  # a stream runs until it ends
