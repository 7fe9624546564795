"""Connect and gRPC-Web at `POST /<package.Service>/<Method>`, spoken byte by byte with aiohttp:
envelopes, codecs, errors and their details, refusals in each protocol's shape, deadlines."""

from __future__ import annotations

import base64
import json
import struct
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from careops.incident.v1 import incident_pb2 as ipb
from careops.incident.v1 import incident_pb2_grpc
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops_platform.identity import AGENT
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from incident.main import IncidentService
from incident.tests.test_paging import declare
from prometheus_client import REGISTRY

from gateway.main import GatewayService
from gateway.tests.conftest import authorization, running_gateway
from gateway.tests.issuer import shared_issuer
from gateway.tests.test_gateway import backend_calls, quiet_team
from tests.support import open_request
from tests.test_tracing import TRACE_ID, TRACEPARENT, install_exporter

TICKETING = "/careops.ticketing.v1.TicketingService"
OPEN_TICKET = f"{TICKETING}/OpenTicket"
GET_TICKET = f"{TICKETING}/GetTicket"
WATCH_ALERTS = "/careops.incident.v1.IncidentService/WatchAlerts"
ERASE = "/careops.customer.v1.CustomerProfileService/EraseCustomer"
CONNECT_JSON = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}
CONNECT_STREAM = {"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"}
GRPC_WEB = {"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}
ENVELOPE = struct.Struct(">BI")


def envelope(data: bytes, flags: int = 0) -> bytes:
    return ENVELOPE.pack(flags, len(data)) + data


def frames(body: bytes) -> list[tuple[int, bytes]]:
    """Returns the (flags, data) envelopes of a body, checking it holds nothing else."""
    found = []
    while body:
        flags, length = ENVELOPE.unpack_from(body)
        found.append((flags, body[ENVELOPE.size : ENVELOPE.size + length]))
        assert len(body) >= ENVELOPE.size + length, "a truncated envelope"
        body = body[ENVELOPE.size + length :]
    return found


def open_json(**overrides: Any) -> bytes:
    return json_format.MessageToJson(open_request(**overrides)).encode()


def agent_token() -> str:
    return shared_issuer().token(subject=f"agent-{uuid.uuid4().hex[:6]}", roles=[AGENT])


@dataclass
class GrpcWebReply:
    """A gRPC-Web reply: its messages and status, from the trailers frame or, trailers-only,
    from the headers."""

    http_status: int
    messages: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return int(self.trailers["grpc-status"])

    def details(self) -> status_pb2.Status:
        raw = self.trailers["grpc-status-details-bin"]
        return status_pb2.Status.FromString(base64.b64decode(raw + "=" * (-len(raw) % 4)))


def grpc_web_reply(http_status: int, headers: Any, body: bytes) -> GrpcWebReply:
    reply = GrpcWebReply(http_status)
    if "grpc-status" in headers:  # trailers-only
        assert not body
        reply.trailers = {k.lower(): v for k, v in headers.items() if k.lower().startswith("grpc-")}
        return reply
    *data, (flags, block) = frames(body)
    assert flags == 0x80 and all(f == 0 for f, _ in data)
    reply.messages = [d for _, d in data]
    for line in block.decode().split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            reply.trailers[name.strip().lower()] = value.strip()
    return reply


async def grpc_web(
    http: aiohttp.ClientSession, path: str, message: Any, headers: dict[str, str] | None = None
) -> GrpcWebReply:
    async with http.post(
        path, data=envelope(message.SerializeToString()), headers={**GRPC_WEB, **(headers or {})}
    ) as response:
        assert response.content_type == "application/grpc-web+proto"
        return grpc_web_reply(response.status, response.headers, await response.read())


def end_stream(body: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Returns a Connect JSON stream's messages and its end-stream object."""
    *data, (flags, end) = frames(body)
    assert flags == 0x02 and all(f == 0 for f, _ in data)
    return [json.loads(d) for _, d in data], json.loads(end)


@pytest.fixture
async def anonymous(gateway: GatewayService) -> AsyncIterator[aiohttp.ClientSession]:
    assert gateway.http is not None
    async with aiohttp.ClientSession(f"http://127.0.0.1:{gateway.http.port}") as session:
        yield session


async def test_connect_unary_json_opens_a_ticket(http: aiohttp.ClientSession) -> None:
    async with http.post(OPEN_TICKET, data=open_json(), headers=CONNECT_JSON) as response:
        assert response.status == 200 and response.content_type == "application/json"
        reply = json_format.Parse(await response.text(), pb.OpenTicketResponse())
    assert reply.ticket.ticket_id and reply.ticket.subject == "Printer shows E42"


async def test_connect_unary_proto_round_trips_binary_messages(
    http: aiohttp.ClientSession,
) -> None:
    headers = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1"}
    async with http.post(
        OPEN_TICKET, data=open_request().SerializeToString(), headers=headers
    ) as response:
        assert response.status == 200 and response.content_type == "application/proto"
        opened = pb.OpenTicketResponse.FromString(await response.read())
    request = pb.GetTicketRequest(ticket_id=opened.ticket.ticket_id)
    async with http.post(GET_TICKET, data=request.SerializeToString(), headers=headers) as r:
        assert pb.GetTicketResponse.FromString(await r.read()).ticket.subject == "Printer shows E42"


def http_requests(route: str, code: str) -> float:
    labels = {"route": route, "code": code}
    return REGISTRY.get_sample_value("careops_http_requests_total", labels) or 0.0


async def test_a_connect_call_is_traced_counted_and_forwards_the_idempotency_key(
    http: aiohttp.ClientSession,
) -> None:
    exporter = install_exporter()
    route = f"{OPEN_TICKET} (connect)"
    before = http_requests(route, "200")
    headers = {**CONNECT_JSON, "traceparent": TRACEPARENT, "Idempotency-Key": uuid.uuid4().hex}
    replies = []
    for _ in range(2):
        async with http.post(OPEN_TICKET, data=open_json(), headers=headers) as response:
            assert response.status == 200
            replies.append(json_format.Parse(await response.text(), pb.OpenTicketResponse()))
    assert replies[0].ticket.ticket_id == replies[1].ticket.ticket_id  # the key went through
    assert http_requests(route, "200") == before + 2
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == int(TRACE_ID, 16)]
    names = {span.name for span in spans}
    assert {"HTTP POST", "gateway→ticketing OpenTicket", OPEN_TICKET} <= names


async def test_a_connect_error_is_its_json_with_the_http_status_and_the_bad_request_detail(
    http: aiohttp.ClientSession,
) -> None:
    async with http.post(OPEN_TICKET, data=open_json(subject=""), headers=CONNECT_JSON) as r:
        assert r.status == 400 and r.content_type == "application/json"
        error = await r.json()
    assert error["code"] == "invalid_argument" and error["message"]
    (detail,) = error["details"]
    assert detail["type"] == "google.rpc.BadRequest"
    raw = base64.b64decode(detail["value"] + "=" * (-len(detail["value"]) % 4))
    fields = {v.field for v in error_details_pb2.BadRequest.FromString(raw).field_violations}
    assert "subject" in fields
    assert {v["field"] for v in detail["debug"]["fieldViolations"]} == fields


async def test_connect_maps_a_backend_code_to_its_http_status(http: aiohttp.ClientSession) -> None:
    body = json.dumps({"ticketId": "T-nope"})
    async with http.post(GET_TICKET, data=body, headers=CONNECT_JSON) as response:
        assert response.status == 404
        assert (await response.json())["code"] == "not_found"
    # customer-profile is not running: its port is closed.
    async with http.post(ERASE, data=b"{}", headers=CONNECT_JSON) as response:
        assert response.status == 503
        error = await response.json()
    assert error["code"] == "unavailable" and "customer" in error["message"]


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({**CONNECT_JSON, "Connect-Protocol-Version": "2"}, b"{}", 400, "invalid_argument"),
        (CONNECT_JSON, b"{not json", 400, "invalid_argument"),
        ({**CONNECT_JSON, "Connect-Timeout-Ms": "soon"}, b"{}", 400, "invalid_argument"),
        ({**CONNECT_JSON, "Connect-Timeout-Ms": "0"}, b"{}", 504, "deadline_exceeded"),
    ],
)
async def test_connect_refuses_bad_requests_in_its_own_shape(
    http: aiohttp.ClientSession, headers: dict[str, str], body: bytes, status: int, code: str
) -> None:
    async with http.post(GET_TICKET, data=body, headers=headers) as response:
        assert response.status == status and response.content_type == "application/json"
        assert (await response.json())["code"] == code


async def test_an_unknown_method_is_unimplemented_in_each_protocol(
    http: aiohttp.ClientSession,
) -> None:
    path = f"{TICKETING}/NoSuchMethod"
    async with http.post(path, data=b"{}", headers=CONNECT_JSON) as response:
        assert response.status == 501
        error = await response.json()
    assert error == {"code": "unimplemented", "message": f"no method {path[1:]}"}
    async with http.post(path, data=envelope(b"{}"), headers=CONNECT_STREAM) as response:
        assert response.status == 200
        assert end_stream(await response.read())[1]["error"]["code"] == "unimplemented"
    reply = await grpc_web(http, "/careops.nothing.v1.Nothing/Call", pb.GetTicketRequest())
    assert (reply.http_status, reply.status) == (200, 12)


async def test_an_unknown_content_type_is_415(http: aiohttp.ClientSession) -> None:
    async with http.post(OPEN_TICKET, data=b"x", headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 415 and "application/connect+json" in r.headers["Accept-Post"]


async def test_a_unary_content_type_on_a_stream_and_back_is_refused(
    http: aiohttp.ClientSession,
) -> None:
    async with http.post(WATCH_ALERTS, data=b"{}", headers=CONNECT_JSON) as response:
        assert response.status == 400
        assert "server-streaming" in (await response.json())["message"]
    async with http.post(OPEN_TICKET, data=envelope(open_json()), headers=CONNECT_STREAM) as r:
        assert end_stream(await r.read())[1]["error"]["code"] == "invalid_argument"


async def test_refusals_before_forwarding_are_in_each_protocol_and_forward_nothing(
    http: aiohttp.ClientSession, anonymous: aiohttp.ClientSession
) -> None:
    before = backend_calls(OPEN_TICKET)
    # No credentials: Connect's unauthenticated with the challenge.
    async with anonymous.post(OPEN_TICKET, data=open_json(), headers=CONNECT_JSON) as response:
        assert response.status == 401 and "Bearer" in response.headers["WWW-Authenticate"]
        assert (await response.json())["code"] == "unauthenticated"
    # A stream: the end-stream message carries it.
    body = envelope(b'{"teamId":"technical_support"}')
    async with anonymous.post(WATCH_ALERTS, data=body, headers=CONNECT_STREAM) as response:
        assert response.status == 200
        assert end_stream(await response.read())[1]["error"]["code"] == "unauthenticated"
    # gRPC-Web: a trailers-only reply.
    reply = await grpc_web(anonymous, OPEN_TICKET, open_request())
    assert (reply.http_status, reply.status, reply.messages) == (200, 16, [])
    # An agent may not erase a customer: permission_denied naming the permission.
    agent = authorization(agent_token())
    async with anonymous.post(ERASE, data=b"{}", headers={**CONNECT_JSON, **agent}) as r:
        assert r.status == 403
        error = await r.json()
    assert error["code"] == "permission_denied" and "customer.erase" in error["message"]
    reply = await grpc_web(anonymous, ERASE, pb.GetTicketRequest(), agent)
    assert reply.status == 7 and "customer.erase" in reply.trailers["grpc-message"]
    async with anonymous.post(
        OPEN_TICKET, data=open_json(), headers={**CONNECT_JSON, "Authorization": "Bearer x"}
    ) as response:
        assert response.status == 401
    assert backend_calls(OPEN_TICKET) == before


async def test_over_the_rate_connect_and_grpc_web_say_when_to_come_back(
    gateway: GatewayService,
) -> None:
    async with (
        running_gateway({"rate_limit_per_second": 0.001, "rate_limit_burst": 1}) as limited,
        aiohttp.ClientSession(
            f"http://127.0.0.1:{limited.http.port}",  # type: ignore[union-attr]
            headers=authorization(shared_issuer().token(subject=f"rate-{uuid.uuid4().hex}")),
        ) as http,
    ):
        async with http.post(GET_TICKET, data=b"{}", headers=CONNECT_JSON) as response:
            assert response.status != 429  # the one token of the burst
        async with http.post(GET_TICKET, data=b"{}", headers=CONNECT_JSON) as response:
            assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
            error = await response.json()
        assert error["code"] == "resource_exhausted"
        assert [d["type"] for d in error["details"]] == ["google.rpc.RetryInfo"]
        reply = await grpc_web(http, GET_TICKET, pb.GetTicketRequest())
        assert reply.status == 8
        (detail,) = reply.details().details
        assert detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR)


async def test_a_body_over_the_size_limit_is_resource_exhausted() -> None:
    async with (
        running_gateway({"max_request_bytes": 1024}) as small,
        aiohttp.ClientSession(
            f"http://127.0.0.1:{small.http.port}",  # type: ignore[union-attr]
            headers=authorization(),
        ) as http,
    ):
        large = open_json(description="x" * 2048)
        async with http.post(OPEN_TICKET, data=large, headers=CONNECT_JSON) as response:
            assert response.status == 429
            error = await response.json()
        assert error["code"] == "resource_exhausted" and "1024 bytes" in error["message"]
        reply = await grpc_web(http, OPEN_TICKET, open_request(description="x" * 2048))
        assert reply.status == 8


@pytest.mark.parametrize(
    "body",
    [
        b"",  # no envelope
        b"\x00\x00\x00\x00\x09{}",  # a length longer than the body
        envelope(b"{}") + envelope(b"{}"),  # two messages for a unary request
        envelope(b"{}", flags=0x01),  # compressed: not supported
    ],
)
async def test_a_malformed_envelope_is_refused(http: aiohttp.ClientSession, body: bytes) -> None:
    async with http.post(WATCH_ALERTS, data=body, headers=CONNECT_STREAM) as response:
        code = end_stream(await response.read())[1]["error"]["code"]
    assert code in ("invalid_argument", "unimplemented")
    async with http.post(GET_TICKET, data=body, headers=GRPC_WEB) as response:
        reply = grpc_web_reply(response.status, response.headers, await response.read())
    assert reply.status in (3, 12)


async def test_grpc_web_unary_in_binary_and_in_text(http: aiohttp.ClientSession) -> None:
    reply = await grpc_web(http, OPEN_TICKET, open_request())
    assert reply.status == 0 and reply.trailers["grpc-message"] == ""
    (message,) = reply.messages
    ticket_id = pb.OpenTicketResponse.FromString(message).ticket.ticket_id
    request = pb.GetTicketRequest(ticket_id=ticket_id).SerializeToString()
    text = {"Content-Type": "application/grpc-web-text", "X-Grpc-Web": "1"}
    async with http.post(GET_TICKET, data=base64.b64encode(envelope(request)), headers=text) as r:
        assert r.content_type == "application/grpc-web-text+proto"
        body = base64.b64decode(await r.read())
    reply = grpc_web_reply(r.status, r.headers, body)
    assert reply.status == 0
    assert pb.GetTicketResponse.FromString(reply.messages[0]).ticket.ticket_id == ticket_id


async def test_grpc_web_carries_a_backend_error_with_its_details(
    http: aiohttp.ClientSession,
) -> None:
    reply = await grpc_web(http, OPEN_TICKET, open_request(customer_id=""))
    assert reply.status == 3 and reply.messages == [] and reply.trailers["grpc-message"]
    (detail,) = reply.details().details
    bad_request = error_details_pb2.BadRequest()
    assert detail.Unpack(bad_request)
    assert "customer_id" in {v.field for v in bad_request.field_violations}


async def test_connect_server_streaming_delivers_watch_alerts_in_json_and_proto(
    http: aiohttp.ClientSession, gateway_channel: Any
) -> None:
    declared = await declare(incident_pb2_grpc.IncidentServiceStub(gateway_channel))
    incident_id = declared.incident.incident_id
    request = b'{"teamId":"technical_support"}'
    async with http.post(
        WATCH_ALERTS,
        data=envelope(request),
        headers=CONNECT_STREAM,
        timeout=aiohttp.ClientTimeout(total=30),
    ) as response:
        assert response.status == 200 and response.content_type == "application/connect+json"
        alert = await first_frame(response, lambda d: json.loads(d)["incidentId"] == incident_id)
    assert json.loads(alert)["kind"] == "ALERT_KIND_PAGE"
    proto = {"Content-Type": "application/connect+proto"}
    binary = ipb.WatchAlertsRequest(team_id="technical_support").SerializeToString()
    async with http.post(
        WATCH_ALERTS,
        data=envelope(binary),
        headers=proto,
        timeout=aiohttp.ClientTimeout(total=30),
    ) as response:
        raw = await first_frame(
            response, lambda d: ipb.WatchAlertsResponse.FromString(d).incident_id == incident_id
        )
    assert ipb.WatchAlertsResponse.FromString(raw).page_id


async def first_frame(response: aiohttp.ClientResponse, wanted: Any) -> bytes:
    """Reads data envelopes off a live stream until one is `wanted`; returns it."""
    while True:
        flags, length = ENVELOPE.unpack(await response.content.readexactly(ENVELOPE.size))
        data = await response.content.readexactly(length)
        assert flags == 0, data
        if wanted(data):
            return data


async def test_grpc_web_server_streaming_delivers_watch_alerts(
    http: aiohttp.ClientSession, gateway_channel: Any
) -> None:
    declared = await declare(incident_pb2_grpc.IncidentServiceStub(gateway_channel))
    request = ipb.WatchAlertsRequest(team_id="technical_support").SerializeToString()
    async with http.post(
        WATCH_ALERTS,
        data=envelope(request),
        headers=GRPC_WEB,
        timeout=aiohttp.ClientTimeout(total=30),
    ) as response:
        assert response.status == 200
        raw = await first_frame(
            response,
            lambda d: (
                ipb.WatchAlertsResponse.FromString(d).incident_id == declared.incident.incident_id
            ),
        )
    assert ipb.WatchAlertsResponse.FromString(raw).team_id == "technical_support"


async def test_a_stream_ends_at_the_callers_deadline_in_each_protocol(
    http: aiohttp.ClientSession, incident: IncidentService
) -> None:
    team = await quiet_team(incident)  # no alert comes: only the deadline ends the stream
    body = json.dumps({"teamId": team}).encode()
    headers = {**CONNECT_STREAM, "Connect-Timeout-Ms": "300"}
    async with http.post(WATCH_ALERTS, data=envelope(body), headers=headers) as response:
        assert response.status == 200
        messages, end = end_stream(await response.read())
    assert messages == [] and end["error"]["code"] == "deadline_exceeded"
    request = ipb.WatchAlertsRequest(team_id=team)
    reply = await grpc_web(http, WATCH_ALERTS, request, {"grpc-timeout": "300m"})
    assert reply.status == 4


async def test_a_stream_refused_by_the_backend_ends_with_its_code(
    http: aiohttp.ClientSession,
) -> None:
    body = envelope(b'{"teamId":"no_such_team"}')
    async with http.post(WATCH_ALERTS, data=body, headers=CONNECT_STREAM) as response:
        assert response.status == 200
        messages, end = end_stream(await response.read())
    assert messages == [] and end["error"]["code"] == "not_found"
    reply = await grpc_web(http, WATCH_ALERTS, ipb.WatchAlertsRequest(team_id="no_such_team"))
    assert (reply.status, reply.messages) == (5, [])


async def test_the_gateways_own_methods_answer_over_connect(http: aiohttp.ClientSession) -> None:
    path = "/careops.gateway.v1.GatewayService/GetPlatformStatus"
    async with http.post(path, data=b"{}", headers=CONNECT_JSON) as response:
        assert response.status == 200
        body = await response.json()
    assert body["allServing"] is False  # customer-profile and quality are not running here
    assert {b["name"] for b in body["backends"]} >= {"ticketing", "incident"}
    # Their errors too, with the field violation as a detail.
    audit = "/careops.gateway.v1.GatewayService/ListAuditEvents"
    async with http.post(audit, data=b"{}", headers=CONNECT_JSON) as response:
        error = await response.json()
    assert response.status == 400 and error["code"] == "invalid_argument", error
    assert error["details"][0]["debug"]["fieldViolations"][0]["field"] == "since"


async def test_a_connect_preflight_grants_the_protocol_headers_and_responses_expose_them() -> None:
    app = "http://app.example:5173"
    asked = "content-type, connect-protocol-version, connect-timeout-ms, authorization"
    async with (
        running_gateway({"cors_allowed_origins": (app,)}) as gateway,
        aiohttp.ClientSession(f"http://127.0.0.1:{gateway.http.port}") as http,  # type: ignore[union-attr]
    ):
        preflight = {
            "Origin": app,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        }
        async with http.options(OPEN_TICKET, headers=preflight) as response:
            assert response.status == 204
            granted = response.headers["Access-Control-Allow-Headers"]
            assert set(asked.split(", ")) <= set(granted.split(", "))
        async with http.post(
            OPEN_TICKET, data=b"{}", headers={**CONNECT_JSON, "Origin": app}
        ) as response:
            assert response.status == 401
            assert response.headers["Access-Control-Allow-Origin"] == app
            exposed = response.headers["Access-Control-Expose-Headers"]
            assert {"grpc-status", "grpc-message", "www-authenticate"} <= set(exposed.split(", "))


LIST_PROJECTIONS = "/careops.common.v1.ProjectionAdminService/ListProjections"


async def test_connect_routes_projection_admin_by_the_backend_it_names(
    http: aiohttp.ClientSession,
) -> None:
    async with http.post(LIST_PROJECTIONS, data=b"{}", headers=CONNECT_JSON) as response:
        assert response.status == 400
        error = await response.json()
    assert error["code"] == "invalid_argument" and "ticketing" in error["message"]
    named = {**CONNECT_JSON, "CareOps-Backend": "ticketing"}
    async with http.post(LIST_PROJECTIONS, data=b"{}", headers=named) as response:
        assert response.status == 200, await response.text()
        listed = await response.json()
    assert listed["projections"], listed
