"""The gRPC edge every server shares: health List, reflection v1 and v1alpha, the one error
mapping path, clipped error details, undecodable bodies, page tokens and aggregate ids."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_status import rpc_status

from careops_platform.errors import FieldViolation, InvalidArgument, service_error
from careops_platform.interceptors import (
    ChainedInterceptors,
    RequestContextInterceptor,
    _Around,
    rich_status,
    status_of,
)
from careops_platform.paging import page_cursor, page_size, page_token
from careops_platform.requests import aggregate_id
from careops_platform.server import GenericRegistrations, GrpcServer, ServiceBinding

ECHO = "careops.test.Echo"
SOFT_METADATA_LIMIT = 8 * 1024  # gRPC fails calls at random above it


class DomainInvalid(Exception):
    """A domain error as the services define them: violations are (field, why) pairs."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in violations))
        self.violations = tuple(violations)


class DomainSpecific(DomainInvalid):
    pass


async def _raise(request: health_pb2.HealthCheckRequest, context: Any) -> Any:
    """Echo/Raise: raises the error its `service` field names."""
    errors: dict[str, Exception] = {
        "domain": DomainInvalid([("team.team_id", "bad"), ("team.members", "empty")]),
        "huge": InvalidArgument("x" * 8000, [FieldViolation("x" * 8000, "y" * 8000)] * 100),
        "unimplemented": NotImplementedError(),
    }
    raise errors[request.service]


def _register(_servicer: Any, server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(
        _raise,
        request_deserializer=health_pb2.HealthCheckRequest.FromString,
        response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(ECHO, {"Raise": handler}),)
    )


@pytest.fixture(scope="module")
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = GrpcServer(
        host="127.0.0.1",
        port=0,
        bindings=[ServiceBinding(None, _register, ECHO)],
        error_map={DomainInvalid: grpc.StatusCode.INVALID_ARGUMENT},
    )
    await server.start()
    await server.set_serving(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel
    await server.stop(0)


def _raise_call(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        f"/{ECHO}/Raise",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )


def _violations(error: grpc.aio.AioRpcError) -> list[error_details_pb2.BadRequest.FieldViolation]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return list(bad_request.field_violations)


async def test_health_list_reports_every_service(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.List(health_pb2.HealthListRequest())
    assert dict(response.statuses) == {
        "": health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING),
        ECHO: health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING),
    }


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_reflection_is_served_as_v1_and_v1alpha(
    channel: grpc.aio.Channel, version: str
) -> None:
    # v1 and v1alpha messages are the same on the wire: one client serves both.
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="grpc.reflection.v1.ServerReflection"
        ),
    ]
    listed, described = [response async for response in call(iter(requests))]
    names = {service.name for service in listed.list_services_response.service}
    assert {
        ECHO,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    assert described.file_descriptor_response.file_descriptor_proto, described.error_response


async def test_an_undecodable_body_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    raw = channel.unary_unary("/grpc.health.v1.Health/Check")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(b"\xff\xff\xff")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in _violations(caught.value)] == ["request"]


async def test_a_domain_error_with_violation_pairs_maps_through_error_map(
    channel: grpc.aio.Channel,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _raise_call(channel)(health_pb2.HealthCheckRequest(service="domain"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.description) for v in _violations(caught.value)] == [
        ("team.team_id", "bad"),
        ("team.members", "empty"),
    ]


async def test_a_huge_echoed_value_is_clipped_and_keeps_the_violation(
    channel: grpc.aio.Channel,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _raise_call(channel)(health_pb2.HealthCheckRequest(service="huge"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = _violations(caught.value)
    assert violations and violations[0].field.startswith("xxx")
    assert len(caught.value.details() or "") < 1000


async def test_not_implemented_is_unimplemented(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _raise_call(channel)(health_pb2.HealthCheckRequest(service="unimplemented"))
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_status_of_maps_the_most_specific_class_and_keeps_pairs() -> None:
    error_map: dict[type[Exception], grpc.StatusCode] = {
        DomainInvalid: grpc.StatusCode.INVALID_ARGUMENT,
        DomainSpecific: grpc.StatusCode.ALREADY_EXISTS,
    }
    mapped = status_of(DomainSpecific([("a", "b")]), error_map)
    assert mapped is not None and mapped.code == grpc.StatusCode.ALREADY_EXISTS
    assert mapped.violations == (FieldViolation("a", "b"),)
    assert status_of(KeyError("bug"), error_map) is None
    assert service_error(InvalidArgument("x"), {}) is not None


@pytest.mark.parametrize("character", ["x", "é", "水", "😀"])
def test_rich_status_stays_under_the_trailer_limit(character: str) -> None:
    value = character * 8000
    error = InvalidArgument(f"bad {value}", [FieldViolation(value, value)] * 1000)
    status = rich_status(error)
    # grpc-message is percent-encoded UTF-8; the details repeat the message, base64-encoded.
    message_size = 3 * len(status.details.encode())  # type: ignore[attr-defined]
    details = dict(status.trailing_metadata)  # type: ignore[attr-defined]
    details_size = len(base64.b64encode(details["grpc-status-details-bin"]))
    assert message_size + details_size < SOFT_METADATA_LIMIT / 2


@pytest.mark.parametrize(
    "token",
    [
        page_token(2**63),
        page_token(-1),
        base64.urlsafe_b64encode(b"not a number").decode(),
        "%%%",
    ],
)
def test_a_page_token_out_of_range_is_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        page_cursor(token, "ListThings")
    assert caught.value.violations == (FieldViolation("page_token", "malformed"),)


def test_page_cursor_round_trips_the_largest_sequence() -> None:
    assert page_cursor(page_token(2**63 - 1), "ListThings") == 2**63 - 1


@pytest.mark.parametrize("size", [-1, 501])
def test_a_page_size_out_of_range_is_invalid_argument(size: int) -> None:
    with pytest.raises(InvalidArgument):
        page_size(size)


@pytest.mark.parametrize("value", [">", "*", "a.b", "a b", "abc\n", "x" * 65, "x" * (1 << 20), ""])
def test_an_id_that_is_not_one_subject_token_is_invalid_argument(value: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        aggregate_id(value, "team_id")
    assert len(caught.value.message) < 100  # the value is never echoed
    assert caught.value.violations[0].field == "team_id"


def test_a_subject_token_id_is_accepted() -> None:
    assert aggregate_id("T-abc_123", "ticket_id") == "T-abc_123"


class _Details(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


async def test_an_interceptor_wraps_a_methods_handler_once_not_per_call() -> None:
    async def behavior(request: Any, context: Any) -> Any:
        return request

    servicer = grpc.unary_unary_rpc_method_handler(behavior)
    other = grpc.unary_unary_rpc_method_handler(behavior)
    interceptor = RequestContextInterceptor()

    async def intercept(handler: Any, method: str = "/x.S/M") -> Any:
        async def continuation(_details: Any) -> Any:
            return handler

        return await interceptor.intercept_service(continuation, _Details(method, ()))

    first = await intercept(servicer)
    assert await intercept(servicer) is first
    assert first.unary_unary is not behavior  # wrapped
    assert await intercept(servicer, "/x.S/N") is not first  # per method
    assert await intercept(other) is not first  # a new inner handler is wrapped anew


class _Tagging(_Around):
    """A part that wraps the handler's behaviour in its name and records when it ran."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def around(self, handler: Any, handler_call_details: Any) -> Any:
        self.log.append(self.name)
        inner = handler.unary_unary

        async def tagged(request: Any, context: Any) -> Any:
            return f"{self.name}({await inner(request, context)})"

        return grpc.unary_unary_rpc_method_handler(tagged)


async def test_chained_interceptors_build_the_handler_grpc_would_build_one_by_one() -> None:
    """The chain runs its parts innermost first on the handler the continuation returns, as
    grpc.aio's own continuations do with the same parts listed one by one."""

    async def behavior(request: Any, context: Any) -> Any:
        return request

    async def continuation(_details: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(behavior)

    async def one_by_one(parts: list[_Around], details: Any) -> Any:
        # grpc.aio's _run_interceptor: each part's continuation is the rest of the list.
        if not parts:
            return await continuation(details)

        async def rest(inner_details: Any) -> Any:
            return await one_by_one(parts[1:], inner_details)

        return await parts[0].intercept_service(rest, details)

    details = _Details("/x.S/M", ())
    chained_log: list[str] = []
    chained = ChainedInterceptors([_Tagging(n, chained_log) for n in ("outer", "mid", "inner")])
    handler = await chained.intercept_service(continuation, details)
    separate_log: list[str] = []
    separate = await one_by_one(
        [_Tagging(n, separate_log) for n in ("outer", "mid", "inner")], details
    )
    assert chained_log == separate_log == ["inner", "mid", "outer"]
    assert await handler.unary_unary("x", None) == await separate.unary_unary("x", None)
    assert await handler.unary_unary("x", None) == "outer(mid(inner(x)))"


class _RecordingServer:
    """What a generated `add_*_to_server` hands a server, recorded."""

    def __init__(self) -> None:
        self.generic: list[grpc.GenericRpcHandler] = []
        self.registered: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, _handlers: Any) -> None:
        self.registered.append(service)


def test_generated_registrations_reach_the_server_as_generic_handlers_only() -> None:
    server = _RecordingServer()
    registrations = GenericRegistrations(server)  # type: ignore[arg-type]
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), registrations)
    assert server.registered == []  # no pending request per method in grpc.aio's accept loop
    (handler,) = server.generic
    assert handler.service(_Details("/grpc.health.v1.Health/Check", ())) is not None
    assert handler.service(_Details("/grpc.health.v1.Health/Nope", ())) is None
