"""The browser-ready HTTP edge: CORS, the OpenAPI document and its page, Status error bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import jsonschema
import pytest
from careops.customer.v1 import customer_pb2
from careops.incident.v1 import incident_pb2
from careops.quality.v1 import quality_pb2
from careops.ticketing.v1 import ticketing_pb2
from incident.main import IncidentService
from openapi_spec_validator import validate

from gateway.errors import CODE_NUMBERS
from gateway.main import GatewayService
from gateway.tests.conftest import address, authorization, running_gateway

APP = "http://app.example:5173"
OPEN_TICKET = "/v1/careops.ticketing.v1.TicketingService/OpenTicket"
WATCH_ALERTS = "/v1/careops.incident.v1.IncidentService/WatchAlerts"
# The one Connect / gRPC-Web route (gateway.web_rpc), as aiohttp names it.
PROCEDURES = "/{service}/{method}"
PLATFORM_STATUS = "/v1/careops.gateway.v1.GatewayService/GetPlatformStatus"
# What a Connect / gRPC-Web client's preflight asks for, plus this API's own headers.
ASKED = (
    "content-type, authorization, connect-protocol-version, connect-timeout-ms, x-grpc-web, "
    "x-user-agent, grpc-timeout, idempotency-key"
)


@pytest.fixture(scope="module")
async def browser_gateway() -> AsyncIterator[GatewayService]:
    """A gateway granting APP only, in front of closed backend ports."""
    async with running_gateway({"cors_allowed_origins": (APP,)}) as gateway:
        yield gateway


@pytest.fixture(scope="module")
async def browser(browser_gateway: GatewayService) -> AsyncIterator[aiohttp.ClientSession]:
    assert browser_gateway.http is not None
    url = f"http://127.0.0.1:{browser_gateway.http.port}"
    async with aiohttp.ClientSession(url, headers=authorization()) as session:
        yield session


@pytest.fixture(scope="module")
async def document(browser: aiohttp.ClientSession) -> dict[str, Any]:
    """Returns the served OpenAPI document."""
    async with browser.get("/openapi.json") as response:
        assert response.status == 200 and response.content_type == "application/json"
        body: dict[str, Any] = await response.json()
    return body


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": ASKED,
    }


def listed(value: str | None) -> set[str]:
    """Returns a comma-separated header value as a lower-case set."""
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


def conforms(document: dict[str, Any], name: str, instance: Any) -> None:
    """Fails unless `instance` is valid under the document's component schema `name`."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    jsonschema.Draft202012Validator(schema).validate(instance)


async def test_a_preflight_from_an_allowed_origin_grants_the_connect_and_grpc_web_headers(
    browser: aiohttp.ClientSession,
) -> None:
    async with browser.options(OPEN_TICKET, headers=preflight(APP)) as response:
        assert response.status == 204
        headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == APP
    assert listed(ASKED) <= listed(headers["Access-Control-Allow-Headers"])
    assert {"post", "get"} <= listed(headers["Access-Control-Allow-Methods"])
    assert int(headers["Access-Control-Max-Age"]) > 0
    assert "origin" in listed(headers.get("Vary"))


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://app.example", "https://app.example:5173", "null"]
)
async def test_a_preflight_from_another_origin_gets_no_grant(
    browser: aiohttp.ClientSession, origin: str
) -> None:
    async with browser.options(OPEN_TICKET, headers=preflight(origin)) as response:
        assert response.status == 403
        body = await response.json()
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Headers" not in response.headers
    assert CODE_NUMBERS[body["code"]] == grpc.StatusCode.PERMISSION_DENIED
    assert origin in body["message"]


async def test_a_preflight_for_a_verb_the_api_does_not_serve_gets_no_grant(
    browser: aiohttp.ClientSession,
) -> None:
    async with browser.options(OPEN_TICKET, headers=preflight(APP, "DELETE")) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Methods" not in response.headers


async def test_without_configured_origins_no_origin_is_granted() -> None:
    async with (
        running_gateway() as gateway,
        aiohttp.ClientSession(
            f"http://127.0.0.1:{gateway.http.port}",  # type: ignore[union-attr]
            headers=authorization(),
        ) as http,
    ):
        async with http.options(OPEN_TICKET, headers=preflight(APP)) as response:
            assert response.status == 403
            assert "Access-Control-Allow-Origin" not in response.headers
        async with http.get("/healthz", headers={"Origin": APP}) as response:
            assert response.status == 200
            assert "Access-Control-Allow-Origin" not in response.headers
            assert "Vary" not in response.headers


async def test_responses_and_errors_grant_the_allowed_origin_and_expose_the_status_headers(
    browser: aiohttp.ClientSession,
) -> None:
    # The ticketing port is closed: a 503 error body a browser script must be able to read.
    async with browser.post(OPEN_TICKET, json={}, headers={"Origin": APP}) as response:
        assert response.status == 503
        assert response.headers["Access-Control-Allow-Origin"] == APP
        exposed = listed(response.headers["Access-Control-Expose-Headers"])
    assert {"grpc-status", "grpc-message", "grpc-status-details-bin", "retry-after"} <= exposed
    async with browser.get("/healthz", headers={"Origin": "http://evil.example"}) as response:
        assert response.status == 200
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "origin" in listed(response.headers.get("Vary"))


async def test_a_stream_grants_the_allowed_origin_in_its_headers(
    incident: IncidentService,
) -> None:
    """A stream's headers leave from its handler: the grant must already be in them."""
    async with (
        running_gateway({"cors_allowed_origins": (APP,)}, incident=address(incident)) as gateway,
        aiohttp.ClientSession(
            f"http://127.0.0.1:{gateway.http.port}",  # type: ignore[union-attr]
            headers=authorization(),
        ) as session,
        session.post(
            WATCH_ALERTS,
            json={"teamId": "technical_support"},
            headers={"Origin": APP},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response,
    ):
        assert response.status == 200
        assert response.content_type == "application/x-ndjson"
        assert response.headers["Access-Control-Allow-Origin"] == APP


async def test_the_openapi_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert document["security"] == [{"bearer": []}]


async def test_the_document_lists_exactly_the_routes_the_gateway_serves(
    browser_gateway: GatewayService, document: dict[str, Any]
) -> None:
    assert browser_gateway.http is not None
    served: dict[str, set[str]] = {}
    for route in browser_gateway.http.app.router.routes():
        # HEAD: aiohttp's automatic twin of every GET; the Connect / gRPC-Web procedure route
        # speaks no JSON document of its own (docs/api.md describes it).
        if route.method != "HEAD" and route.resource.canonical != PROCEDURES:  # type: ignore[union-attr]
            served.setdefault(route.resource.canonical, set()).add(route.method.lower())  # type: ignore[union-attr]
    assert {path: set(item) for path, item in document["paths"].items()} == served


def test_every_forwarded_rpc_is_in_the_document(document: dict[str, Any]) -> None:
    for module, name in [
        (ticketing_pb2, "TicketingService"),
        (customer_pb2, "CustomerProfileService"),
        (incident_pb2, "IncidentService"),
        (quality_pb2, "QualityService"),
    ]:
        service = module.DESCRIPTOR.services_by_name[name]
        for method in service.methods:
            operation = document["paths"][f"/v1/{service.full_name}/{method.name}"]["post"]
            assert operation["tags"] == [service.full_name]


def test_schemas_use_the_json_mapping_names_and_forms(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    opened = schemas["careops.ticketing.v1.OpenTicketRequest"]["properties"]
    assert {"customerId", "contactEmail", "subject", "channel"} <= set(opened)
    assert "customer_id" not in opened
    channel = schemas[opened["channel"]["$ref"].rsplit("/", 1)[1]]
    assert "CHANNEL_EMAIL" in channel["enum"]
    ticket = schemas["careops.ticketing.v1.Ticket"]["properties"]
    assert ticket["createdAt"] == {"type": "string", "format": "date-time"}
    # 64-bit integers are strings in the JSON mapping.
    sequence = schemas["careops.ticketing.v1.OpenTicketResponse"]["properties"]["sequence"]
    assert sequence["type"] == "string"


async def test_served_replies_and_errors_conform_to_the_document(
    browser: aiohttp.ClientSession, document: dict[str, Any]
) -> None:
    async with browser.post(PLATFORM_STATUS) as response:
        assert response.status == 200
        conforms(document, "careops.gateway.v1.GetPlatformStatusResponse", await response.json())
    for path, body in [(OPEN_TICKET, {}), (OPEN_TICKET, {"noSuchField": 1}), ("/v1/x/y", {})]:
        async with browser.post(path, json=body) as response:
            error = await response.json()
        assert set(error) == {"code", "message", "details"}, error
        conforms(document, "google.rpc.Status", error)


async def test_the_reference_page_renders_the_document_without_any_outside_resource(
    browser: aiohttp.ClientSession,
) -> None:
    async with browser.get("/docs") as response:
        assert response.status == 200 and response.content_type == "text/html"
        page = await response.text()
    assert 'fetch("openapi.json")' in page
    assert "<script src" not in page and "<link" not in page and "//cdn" not in page


@pytest.mark.parametrize("header", ["Idempotency-Key", "CareOps-Actor"])
@pytest.mark.parametrize("value", ["ü", "a\tb", "日本"])
async def test_a_header_grpc_metadata_cannot_carry_is_400_and_not_forwarded(
    browser: aiohttp.ClientSession, header: str, value: str
) -> None:
    """Found by schemathesis: gRPC refused such a value as INTERNAL and the edge answered 500.
    The backends' ports are closed here: a 400, not a 503, shows nothing was forwarded."""
    raw = {header: value.encode().decode("latin-1")}  # as a client's bytes arrive
    async with browser.post(OPEN_TICKET, json={}, headers=raw) as response:
        assert response.status == 400
        body = await response.json()
    assert CODE_NUMBERS[body["code"]] == grpc.StatusCode.INVALID_ARGUMENT
    assert header in body["message"]
