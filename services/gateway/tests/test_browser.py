"""Issue 11's must-hold from a real browser: headless Debian Chromium (driven by Playwright, no
browser download) loads a page from another origin whose plain JavaScript opens a ticket with
Connect, watches alerts over a Connect server stream and reads a ticket with gRPC-Web; the
browser itself enforces CORS, so the calls get through only because the preflights pass."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from careops.incident.v1 import incident_pb2_grpc
from careops_platform.identity import SUPERVISOR
from google.protobuf import json_format
from incident.main import IncidentService
from incident.tests.test_paging import declare
from playwright.async_api import Browser, Page, async_playwright
from prometheus_client import REGISTRY
from ticketing.main import TicketingService

from gateway.main import GatewayService
from gateway.tests.conftest import address, running_gateway
from gateway.tests.issuer import authorized_channel, shared_issuer
from tests.support import eventually, open_request

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package: scripts/system-deps.sh installs it
PAGE = Path(__file__).parent / "browser" / "page.html"


@pytest.fixture(scope="module")
async def page_port() -> AsyncIterator[int]:
    """Serves the page on a port of its own: another origin than the gateway's."""

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE)

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
async def cross_origin_gateway(
    page_port: int, ticketing: TicketingService, incident: IncidentService
) -> AsyncIterator[GatewayService]:
    """The gateway granting the page's origin only."""
    origins = (f"http://127.0.0.1:{page_port}",)
    async with running_gateway(
        {"cors_allowed_origins": origins},
        ticketing=address(ticketing),
        incident=address(incident),
    ) as gateway:
        yield gateway


def chromium() -> str:
    """Returns Debian's Chromium (Playwright downloads no browser here)."""
    assert CHROMIUM.exists(), "Chromium missing: run scripts/system-deps.sh"
    return str(CHROMIUM)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium())
        try:
            yield launched
        finally:
            await launched.close()


def granted_preflights() -> float:
    value = REGISTRY.get_sample_value(
        "careops_http_requests_total", {"route": "preflight", "code": "204"}
    )
    return value or 0.0


async def call(page: Page, function: str, *args: Any) -> Any:
    """Calls one of the page's functions with `args`; returns what it resolved to."""
    return await page.evaluate(f"(args) => {function}(...args)", list(args))


async def test_a_page_from_another_origin_opens_a_ticket_and_receives_an_alert(
    browser: Browser, page_port: int, cross_origin_gateway: GatewayService
) -> None:
    assert cross_origin_gateway.http is not None
    base = f"http://127.0.0.1:{cross_origin_gateway.http.port}"
    token = shared_issuer().token(subject="frontend-supervisor", roles=[SUPERVISOR])
    page = await browser.new_page()
    try:
        await page.goto(f"http://127.0.0.1:{page_port}/")
        preflights = granted_preflights()

        # (a) Connect unary, JSON: a ticket opened from the browser.
        request = json_format.MessageToDict(open_request(subject="Opened from a browser"))
        opened = await call(page, "openTicket", base, token, request)
        assert opened["status"] == 200, opened
        ticket = opened["body"]["ticket"]
        assert ticket["ticketId"] and ticket["subject"] == "Opened from a browser"
        assert granted_preflights() > preflights  # the browser asked, and was granted

        # gRPC-Web unary (JSON codec): the same ticket read back, status in the trailers.
        read = await call(page, "grpcWebGetTicket", base, token, ticket["ticketId"])
        assert read["status"] == 200 and read["trailers"]["grpc-status"] == "0", read
        assert read["messages"][0]["ticket"]["ticketId"] == ticket["ticketId"]

        # (b) Connect server streaming: open the stream, then page the team.
        opened_stream = await call(page, "watchAlerts", base, token, "technical_support")
        assert opened_stream == {"status": 200, "contentType": "application/connect+json"}
        async with authorized_channel(address(cross_origin_gateway)) as channel:
            declared = await declare(incident_pb2_grpc.IncidentServiceStub(channel))
        incident_id = declared.incident.incident_id

        async def alert() -> dict[str, Any] | None:
            alerts: list[dict[str, Any]] = await page.evaluate("window.alerts")
            return next((a for a in alerts if a["incidentId"] == incident_id), None)

        received = await eventually(alert, timeout=30, what="the page receives the alert")
        assert received["kind"] == "ALERT_KIND_PAGE" and received["teamId"] == "technical_support"
        assert await page.evaluate("window.streamEnd") is None  # the stream is still open
    finally:
        await page.close()  # ends the stream: the gateway's handler goes with its client


async def test_a_page_from_an_origin_not_allowed_is_refused_by_the_browser(
    browser: Browser, page_port: int, cross_origin_gateway: GatewayService
) -> None:
    """The control: the same page from another origin (localhost is not 127.0.0.1) gets
    nothing, because the preflight is refused."""
    assert cross_origin_gateway.http is not None
    base = f"http://127.0.0.1:{cross_origin_gateway.http.port}"
    page = await browser.new_page()
    try:
        await page.goto(f"http://localhost:{page_port}/")
        assert await call(page, "refused", base, shared_issuer().token()) == "TypeError"
    finally:
        await page.close()
