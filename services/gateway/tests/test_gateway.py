"""The gateway over real gRPC and HTTP, in front of real ticketing and incident services."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp
import grpc
import pytest
from careops.common.v1 import admin_pb2, admin_pb2_grpc
from careops.gateway.v1 import gateway_pb2 as gw
from careops.gateway.v1 import gateway_pb2_grpc
from careops.incident.v1 import incident_pb2 as ipb
from careops.incident.v1 import incident_pb2_grpc
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform.identity import Principal, current_principal
from careops_platform.registry import BACKEND_METADATA
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from incident.main import IncidentService
from incident.tests.test_paging import declare
from prometheus_client import REGISTRY
from ticketing.application import STREAM, SUBJECT_PREFIX
from ticketing.main import TicketingService
from ticketing.tests.conftest import running_service
from ticketing.tests.test_grpc_api import key, violations

from gateway import grpc_api, http_api
from gateway.backends import call_unary
from gateway.errors import CODE_NUMBERS, HTTP_STATUS
from gateway.main import GatewayService
from gateway.tests.conftest import address, authorization, running_gateway
from gateway.tests.issuer import authorized_channel, shared_issuer
from tests.support import appended_by, channel_to, command_ids, open_request, read_log
from tests.test_tracing import TRACE_ID, TRACEPARENT, install_exporter

OPEN_TICKET = "/v1/careops.ticketing.v1.TicketingService/OpenTicket"
ADMIN_SERVICE = "careops.common.v1.ProjectionAdminService"
LIST_PROJECTIONS = f"/{ADMIN_SERVICE}/ListProjections"
ALLOWED_BACKENDS = "ticketing, customer, incident, quality"
BACKEND_NAMES = [
    "careops.ticketing.v1.TicketingService",
    "careops.customer.v1.CustomerProfileService",
    "careops.incident.v1.IncidentService",
    "careops.quality.v1.QualityService",
]


def open_json(**overrides: Any) -> dict[str, Any]:
    body = json_format.MessageToDict(open_request())
    body.update(overrides)
    return body


def code_of(body: dict[str, Any]) -> grpc.StatusCode:
    """Returns the gRPC code of a google.rpc.Status JSON error body."""
    return CODE_NUMBERS[body["code"]]


def backend_calls(method: str) -> float:
    """Returns how many calls of `method` the (in-process) backends have answered."""
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name != "careops_grpc_requests":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels["method"] == method:
                total += sample.value
    return total


async def test_health_and_reflection_list_the_proxied_services(
    gateway_channel: grpc.aio.Channel,
) -> None:
    health = health_pb2_grpc.HealthStub(gateway_channel)
    for name in ["", "careops.gateway.v1.GatewayService", *BACKEND_NAMES]:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
    reflection = reflection_pb2_grpc.ServerReflectionStub(gateway_channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="careops.incident.v1.IncidentService"
        ),
    ]
    responses = [r async for r in reflection.ServerReflectionInfo(iter(requests))]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {"careops.gateway.v1.GatewayService", *BACKEND_NAMES, ADMIN_SERVICE} <= names
    assert responses[1].file_descriptor_response.file_descriptor_proto


async def test_a_unary_call_through_the_gateway_equals_the_direct_call(
    gateway_channel: grpc.aio.Channel, ticketing_channel: grpc.aio.Channel
) -> None:
    through = ticketing_pb2_grpc.TicketingServiceStub(gateway_channel)
    direct = ticketing_pb2_grpc.TicketingServiceStub(ticketing_channel)
    metadata = key()
    opened = await through.OpenTicket(open_request(), metadata=metadata, timeout=10)
    again = await through.OpenTicket(open_request(), metadata=metadata, timeout=10)
    assert again.ticket.ticket_id == opened.ticket.ticket_id  # idempotency-key passed through
    request = pb.GetTicketRequest(ticket_id=opened.ticket.ticket_id)
    via_gateway = (await through.GetTicket(request)).ticket
    direct_reply = (await direct.GetTicket(request)).ticket
    # SLA clocks are computed as of the moment of each call; their due times are not.
    assert [c.due_at for c in via_gateway.sla] == [c.due_at for c in direct_reply.sla]
    via_gateway.ClearField("sla")
    direct_reply.ClearField("sla")
    assert via_gateway == direct_reply
    assert via_gateway.subject == "Printer shows E42"


@pytest.mark.parametrize("field", ["subject", "channel", "customer_id"])
async def test_statuses_and_field_violations_pass_through_unchanged(
    gateway_channel: grpc.aio.Channel, ticketing_channel: grpc.aio.Channel, field: str
) -> None:
    bad = {"subject": "  ", "channel": t.CHANNEL_UNSPECIFIED, "customer_id": ""}[field]
    request = open_request(**{field: bad})
    errors = []
    for channel in (gateway_channel, ticketing_channel):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await ticketing_pb2_grpc.TicketingServiceStub(channel).OpenTicket(
                request, metadata=key()
            )
        errors.append(caught.value)
    through, direct = errors
    assert through.code() == direct.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert through.details() == direct.details()
    assert violations(through) == violations(direct) and field in violations(through)


async def test_not_found_passes_through_over_grpc_and_http(
    gateway_channel: grpc.aio.Channel, http: aiohttp.ClientSession
) -> None:
    stub = ticketing_pb2_grpc.TicketingServiceStub(gateway_channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetTicket(pb.GetTicketRequest(ticket_id="T-missing"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    async with http.post(
        "/v1/careops.ticketing.v1.TicketingService/GetTicket", json={"ticketId": "T-missing"}
    ) as response:
        body = await response.json()
    assert response.status == 404
    assert code_of(body) == grpc.StatusCode.NOT_FOUND
    assert body["message"] == caught.value.details()
    assert body["details"] == []


async def test_http_invalid_open_ticket_is_400_with_the_same_field_violations(
    http: aiohttp.ClientSession, ticketing_channel: grpc.aio.Channel
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ticketing_pb2_grpc.TicketingServiceStub(ticketing_channel).OpenTicket(
            open_request(subject=" "), metadata=key()
        )
    async with http.post(OPEN_TICKET, json=open_json(subject=" ")) as response:
        body = await response.json()
    assert response.status == 400
    assert code_of(body) == grpc.StatusCode.INVALID_ARGUMENT and body["code"] == 3
    assert body["message"] == caught.value.details()
    [detail] = body["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert {v["field"]: v["description"] for v in detail["fieldViolations"]} == violations(
        caught.value
    )


async def test_http_idempotency_key_yields_one_event(
    http: aiohttp.ClientSession, ticketing: TicketingService
) -> None:
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    replies = []
    for _ in range(2):
        async with http.post(OPEN_TICKET, json=open_json(), headers=headers) as response:
            assert response.status == 200, await response.text()
            replies.append(await response.json())
    first, second = replies
    ticket_id = first["ticket"]["ticketId"]
    assert second["ticket"]["ticketId"] == ticket_id and ticket_id.startswith("T-")
    assert first["ticket"]["status"] == "TICKET_STATUS_OPEN"
    assert ticketing.store is not None
    messages = await ticketing.store.read_subject(
        stream="CAREOPS_TICKETING", subject=f"{SUBJECT_PREFIX}.{ticket_id}"
    )
    assert len(messages) == 1


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (OPEN_TICKET, b"{not json", 400),
        (OPEN_TICKET, b"[1, 2]", 400),
        (OPEN_TICKET, b'{"subject": 5}', 400),
        (OPEN_TICKET, b'{"noSuchField": 1}', 400),
        (OPEN_TICKET, b'{"channel": "CHANNEL_CARRIER_PIGEON"}', 400),
        (OPEN_TICKET, b"\xff\xfe", 400),
        ("/v1/careops.ticketing.v1.TicketingService/NoSuchMethod", b"{}", 404),
        ("/v1/careops.nothing.v1.Nothing/OpenTicket", b"{}", 404),
        ("/v2/whatever", b"{}", 404),
    ],
)
async def test_bad_http_requests_are_rejected_and_nothing_is_forwarded(
    http: aiohttp.ClientSession, path: str, body: bytes, status: int
) -> None:
    method = "/careops.ticketing.v1.TicketingService/OpenTicket"
    before = backend_calls(method)
    async with http.post(path, data=body) as response:
        reply = await response.json()
    assert response.status == status
    assert HTTP_STATUS[code_of(reply)] == status and reply["message"]
    assert backend_calls(method) == before


async def test_other_verbs_and_oversized_bodies_are_rejected_with_json(
    http: aiohttp.ClientSession,
) -> None:
    before = backend_calls("/careops.ticketing.v1.TicketingService/OpenTicket")
    async with http.get(OPEN_TICKET) as response:
        assert response.status == 405
        assert code_of(await response.json()) == grpc.StatusCode.UNIMPLEMENTED
    big = json.dumps(open_json(description="x" * (2 << 20)))
    async with http.post(OPEN_TICKET, data=big) as response:
        assert response.status == 413
        assert code_of(await response.json()) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert backend_calls("/careops.ticketing.v1.TicketingService/OpenTicket") == before


async def test_healthz(http: aiohttp.ClientSession) -> None:
    async with http.get("/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "SERVING"}


async def test_watch_alerts_through_the_gateway_delivers_a_page(
    gateway_channel: grpc.aio.Channel, http: aiohttp.ClientSession, incident: IncidentService
) -> None:
    stub = incident_pb2_grpc.IncidentServiceStub(gateway_channel)
    declared = await declare(stub)
    incident_id = declared.incident.incident_id
    call = stub.WatchAlerts(ipb.WatchAlertsRequest(team_id="technical_support"), timeout=10)
    async for alert in call:
        if alert.incident_id == incident_id:
            break
    call.cancel()
    assert alert.page_id and alert.team_id == "technical_support"

    # The same stream over HTTP, as newline-delimited JSON.
    async with http.post(
        "/v1/careops.incident.v1.IncidentService/WatchAlerts",
        json={"teamId": "technical_support"},
        timeout=aiohttp.ClientTimeout(total=10),
    ) as response:
        assert response.status == 200
        assert response.content_type == "application/x-ndjson"
        async for line in response.content:
            result = json.loads(line)["result"]
            if result["incidentId"] == incident_id:
                break
    assert result["pageId"] and result["kind"] == "ALERT_KIND_PAGE"


async def test_a_stream_rejected_before_its_first_message_keeps_its_http_status(
    http: aiohttp.ClientSession, gateway_channel: grpc.aio.Channel
) -> None:
    stub = incident_pb2_grpc.IncidentServiceStub(gateway_channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.WatchAlerts(ipb.WatchAlertsRequest(team_id="no_such_team")):
            pass
    async with http.post(
        "/v1/careops.incident.v1.IncidentService/WatchAlerts", json={"teamId": "no_such_team"}
    ) as response:
        body = await response.json()
    assert code_of(body) == caught.value.code()
    assert response.status == HTTP_STATUS[caught.value.code()] != 200


async def test_platform_status_reports_every_backend(
    gateway: GatewayService,
    gateway_channel: grpc.aio.Channel,
    http: aiohttp.ClientSession,
    ticketing: TicketingService,
) -> None:
    stub = gateway_pb2_grpc.GatewayServiceStub(gateway_channel)
    status = await stub.GetPlatformStatus(gw.GetPlatformStatusRequest())
    by_name = {backend.name: backend for backend in status.backends}
    assert list(by_name) == ["ticketing", "customer", "incident", "quality"]
    assert by_name["ticketing"].address == address(ticketing)
    assert by_name["ticketing"].service == "careops.ticketing.v1.TicketingService"
    for name in ("ticketing", "incident"):
        assert by_name[name].health == gw.BACKEND_HEALTH_SERVING, by_name[name]
        assert by_name[name].latency.ToNanoseconds() > 0 and not by_name[name].error
    for name in ("customer", "quality"):
        assert by_name[name].health == gw.BACKEND_HEALTH_UNREACHABLE
        assert "UNAVAILABLE" in by_name[name].error
    assert not status.all_serving

    async with http.post("/v1/careops.gateway.v1.GatewayService/GetPlatformStatus") as response:
        body = await response.json()
    assert response.status == 200
    health = {b["name"]: b["health"] for b in body["backends"]}
    assert health["ticketing"] == "BACKEND_HEALTH_SERVING"
    assert health["quality"] == "BACKEND_HEALTH_UNREACHABLE"


async def test_a_backend_that_is_not_running_is_unavailable_and_named(
    gateway_channel: grpc.aio.Channel, http: aiohttp.ClientSession
) -> None:
    from careops.customer.v1 import customer_pb2, customer_pb2_grpc

    stub = customer_pb2_grpc.CustomerProfileServiceStub(gateway_channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetCustomer360(customer_pb2.GetCustomer360Request(customer_id="C-1"))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "customer" in (caught.value.details() or "")
    async with http.post(
        "/v1/careops.customer.v1.CustomerProfileService/GetCustomer360",
        json={"customerId": "C-1"},
    ) as response:
        body = await response.json()
    assert response.status == 503 and code_of(body) == grpc.StatusCode.UNAVAILABLE
    assert body["message"].startswith("customer (careops.customer.v1.")


async def test_a_backend_stopped_while_the_gateway_runs_is_unavailable_and_named(
    tmp_path: Any, nats_server: EmbeddedNats
) -> None:
    async with (
        running_service(tmp_path, nats_server.url) as ticketing,
        running_gateway(ticketing=address(ticketing)) as gateway,
        authorized_channel(address(gateway)) as channel,
    ):
        stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
        await stub.OpenTicket(open_request(), metadata=key())
        await ticketing.stop()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.OpenTicket(open_request(), metadata=key())
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (caught.value.details() or "").startswith(
        f"ticketing (careops.ticketing.v1.TicketingService) is unavailable at {address(ticketing)}"
    )


async def test_one_trace_runs_from_the_http_caller_through_the_gateway_into_ticketing(
    http: aiohttp.ClientSession,
) -> None:
    exporter = install_exporter()
    headers = {"traceparent": TRACEPARENT, "Idempotency-Key": uuid.uuid4().hex}
    async with http.post(OPEN_TICKET, json=open_json(), headers=headers) as response:
        assert response.status == 200
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == int(TRACE_ID, 16)]
    names = {span.name for span in spans}
    assert "HTTP POST" in names
    assert "gateway→ticketing OpenTicket" in names
    assert "/careops.ticketing.v1.TicketingService/OpenTicket" in names  # the backend's span


async def quiet_team(incident: IncidentService) -> str:
    """Returns a new team (a copy of one that exists): no page waits for it, no alert is due."""
    async with channel_to(incident) as channel:
        stub = incident_pb2_grpc.IncidentServiceStub(channel)
        team = (await stub.GetTeam(ipb.GetTeamRequest(team_id="brand_pr"))).team
        team.team_id, team.version = f"quiet-{uuid.uuid4().hex[:8]}", 0
        await stub.PutTeam(ipb.PutTeamRequest(team=team), metadata=key())
    return team.team_id


@pytest.mark.parametrize(
    "heartbeat",
    [
        300.0,  # the headers cannot wait for a heartbeat: they follow the backend's at once
        0.2,  # and an idle stream soon sends a heartbeat line
    ],
)
async def test_an_http_stream_sends_its_headers_at_once_and_heartbeats_while_idle(
    incident: IncidentService, heartbeat: float
) -> None:
    team_id = await quiet_team(incident)
    async with (
        running_gateway(
            {"http_stream_heartbeat_seconds": heartbeat}, incident=address(incident)
        ) as gateway,
        aiohttp.ClientSession(
            f"http://127.0.0.1:{gateway.http.port}",  # type: ignore[union-attr]
            headers=authorization(),
        ) as http,
        http.post(
            "/v1/careops.incident.v1.IncidentService/WatchAlerts",
            json={"teamId": team_id},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response,
    ):
        assert response.status == 200
        assert response.content_type == "application/x-ndjson"
        if heartbeat < 1:
            first = json.loads(await response.content.readline())
            assert set(first) == {"heartbeat"} and first["heartbeat"]["at"].endswith("Z")


async def test_the_verified_principal_is_the_actor_of_the_events_whatever_the_caller_claims(
    gateway: GatewayService, module_nats: EmbeddedNats, http: aiohttp.ClientSession
) -> None:
    """Issue 11 item 3 at the door: `careops-actor` is the token's subject, not a claim."""
    token = shared_issuer().token("agent-li", ("agent",))
    claimed = (("careops-actor", "someone-else"),)
    async with authorized_channel(address(gateway), token) as channel:
        opened = await ticketing_pb2_grpc.TicketingServiceStub(channel).OpenTicket(
            open_request(), metadata=(*key(), *claimed), timeout=10
        )
    async with http.post(
        "/v1/careops.ticketing.v1.TicketingService/OpenTicket",
        json=json_format.MessageToDict(open_request()),
        headers={"Authorization": f"Bearer {token}", "CareOps-Actor": "someone-else"},
    ) as response:
        assert response.status == 200, await response.text()
        over_http = (await response.json())["ticket"]["ticketId"]
    for ticket_id in (opened.ticket.ticket_id, over_http):
        log = await read_log(module_nats.url, "CAREOPS_TICKETING", f"{SUBJECT_PREFIX}.{ticket_id}")
        actors = {event.actor for message in log for event in message.batch.events}
        assert actors == {"agent-li"}, ticket_id


async def test_the_service_sees_the_callers_principal_through_the_gateway(
    gateway: GatewayService,
    ticketing: TicketingService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 11 item 4: the gateway forwards the verified principal, signed; the service's
    `current_principal()` is the caller (subject, roles, client), not a claim."""
    seen: list[Principal | None] = []
    app = ticketing.app
    assert app is not None
    execute = app.execute

    async def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(current_principal())
        return await execute(*args, **kwargs)

    monkeypatch.setattr(app, "execute", spy)
    token = shared_issuer().token("agent-li", ("agent", "senior_agent"))
    claimed = (("careops-actor", "someone-else"), ("careops-identity", "forged"))
    async with authorized_channel(address(gateway), token) as channel:
        await ticketing_pb2_grpc.TicketingServiceStub(channel).OpenTicket(
            open_request(), metadata=(*key(), *claimed), timeout=10
        )
    assert seen == [Principal("agent-li", frozenset({"agent", "senior_agent"}), "test-client")]


async def test_a_direct_call_to_a_service_port_is_unauthenticated_and_appends_nothing(
    ticketing: TicketingService,
) -> None:
    """Issue 11 must-hold: without the gateway's identity a service refuses, nothing runs."""
    store = ticketing.store
    assert store is not None
    idempotency_key = uuid.uuid4().hex
    before = {STREAM.name: await store.last_sequence(STREAM.name)}
    async with grpc.aio.insecure_channel(address(ticketing)) as channel:
        stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.OpenTicket(
                open_request(),
                metadata=(("idempotency-key", idempotency_key), ("careops-actor", "admin")),
                timeout=10,
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "come through the gateway" in (refused.value.details() or "")
    descriptor = pb.DESCRIPTOR.services_by_name["TicketingService"]
    assert await appended_by(store, before, command_ids(descriptor, idempotency_key)) == []


def forwarded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Returns the paths of the unary calls the gateway forwards from now on (to a backend)."""
    calls: list[str] = []

    async def recording(route: Any, *args: Any) -> bytes:
        calls.append(route.path)
        return await call_unary(route, *args)

    monkeypatch.setattr(grpc_api, "call_unary", recording)
    monkeypatch.setattr(http_api, "call_unary", recording)
    return calls


async def test_projection_admin_calls_go_to_the_backend_they_name(
    gateway_channel: grpc.aio.Channel, ticketing: TicketingService, incident: IncidentService
) -> None:
    """Every service serves ProjectionAdminService for itself: the gateway forwards a call to
    the one named in `careops-backend`."""
    through = admin_pb2_grpc.ProjectionAdminServiceStub(gateway_channel)
    listed: dict[str, set[str]] = {}
    for name, backend in (("ticketing", ticketing), ("incident", incident)):
        async with channel_to(backend) as direct:
            expected = await admin_pb2_grpc.ProjectionAdminServiceStub(direct).ListProjections(
                admin_pb2.ListProjectionsRequest(), timeout=10
            )
        reply = await through.ListProjections(
            admin_pb2.ListProjectionsRequest(), metadata=((BACKEND_METADATA, name),), timeout=10
        )
        listed[name] = {p.name for p in reply.projections}
        assert listed[name] == {p.name for p in expected.projections} != set(), name
    assert listed["ticketing"] != listed["incident"]


@pytest.mark.parametrize("named", [None, "", "nope", "gateway"])
async def test_a_projection_admin_call_naming_no_known_backend_is_invalid_argument(
    gateway_channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch, named: str | None
) -> None:
    stub = admin_pb2_grpc.ProjectionAdminServiceStub(gateway_channel)
    metadata = () if named is None else ((BACKEND_METADATA, named),)
    calls = forwarded(monkeypatch)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListProjections(
            admin_pb2.ListProjectionsRequest(), metadata=metadata, timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ALLOWED_BACKENDS in (refused.value.details() or "")
    assert ALLOWED_BACKENDS in violations(refused.value)[BACKEND_METADATA]
    assert calls == []  # nothing was forwarded


async def test_projection_admin_calls_over_http_name_the_backend_in_a_header(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"/v1{LIST_PROJECTIONS}"
    calls = forwarded(monkeypatch)
    async with http.post(path, json={}, headers={"CareOps-Backend": "ticketing"}) as response:
        assert response.status == 200, await response.text()
        assert {p["name"] for p in (await response.json())["projections"]} >= {"tickets"}
    assert calls == [LIST_PROJECTIONS]
    for headers in ({}, {"CareOps-Backend": "nope"}):
        async with http.post(path, json={}, headers=headers) as response:
            reply = await response.json()
        assert response.status == 400, reply
        assert code_of(reply) == grpc.StatusCode.INVALID_ARGUMENT
        assert ALLOWED_BACKENDS in reply["message"]
    assert calls == [LIST_PROJECTIONS]
