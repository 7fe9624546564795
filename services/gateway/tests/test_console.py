"""The console's routes on the gateway (gateway.webconsole): static files under a strict CSP
and revalidation, no way out of the console's folder, the embedded sign-in off without the
embedded issuer, and the OIDC sign-in (authorization code + PKCE) driven in headless Chromium
against a local provider, the access token then verified by the gateway like any bearer JWT."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from careops_platform.identity import AGENT
from multidict import CIMultiDict
from playwright.async_api import Browser, async_playwright, expect
from yarl import URL

from gateway.main import GatewayService
from gateway.tests.conftest import running_gateway
from gateway.tests.issuer import shared_issuer

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package: scripts/system-deps.sh installs it
CLIENT_ID = "careops-console"


class Provider:
    """A minimal OIDC provider: /authorize answers at once with a code bound to the PKCE
    challenge; /token gives the shared test issuer's token for the verifier that matches."""

    def __init__(self) -> None:
        self.codes: dict[str, dict[str, str]] = {}
        self.exchanged: list[dict[str, str]] = []
        self.url = ""

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        assert query["response_type"] == "code" and query["client_id"] == CLIENT_ID
        assert query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = dict(query)
        target = f"{query['redirect_uri']}?code={code}&state={query['state']}"
        return web.Response(status=302, headers={"Location": target})

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        headers = {"Access-Control-Allow-Origin": request.headers.get("Origin", "*")}
        asked = self.codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", "")).encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if (
            asked is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != asked["redirect_uri"]
            or digest.decode() != asked["code_challenge"]
        ):
            return web.json_response({"error": "invalid_grant"}, status=400, headers=headers)
        self.exchanged.append({k: str(v) for k, v in form.items()})
        token = shared_issuer().token(subject="oidc-agent", roles=[AGENT])
        body = {"access_token": token, "token_type": "Bearer", "expires_in": 900}
        return web.json_response(body, headers=headers)


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[Provider]:
    served = Provider()
    app = web.Application()
    app.router.add_get("/authorize", served.authorize)
    app.router.add_post("/token", served.token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    served.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield served
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
async def oidc_gateway(provider: Provider) -> AsyncIterator[GatewayService]:
    overrides = {
        "console_oidc_authorization_url": f"{provider.url}/authorize",
        "console_oidc_token_url": f"{provider.url}/token",
        "console_oidc_client_id": CLIENT_ID,
    }
    async with running_gateway(overrides) as gateway:
        yield gateway


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), "Chromium missing: run scripts/system-deps.sh"  # noqa: ASYNC240
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield launched
        finally:
            await launched.close()


def base(gateway: GatewayService) -> str:
    assert gateway.http is not None
    return f"http://127.0.0.1:{gateway.http.port}"


async def get(url: str, **headers: str) -> tuple[int, Mapping[str, str], bytes]:
    """GETs `url` without following redirects; the headers stay case-insensitive."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(URL(url, encoded=True), headers=headers, allow_redirects=False) as response,
    ):
        return response.status, CIMultiDict(response.headers), await response.read()


async def test_files_are_served_under_a_strict_policy_and_revalidated(
    oidc_gateway: GatewayService, provider: Provider
) -> None:
    url = base(oidc_gateway)
    status, headers, _ = await get(f"{url}/")
    assert status == 302 and headers["Location"] == "/console/"
    status, headers, body = await get(f"{url}/console/js/main.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    policy = headers["Content-Security-Policy"]
    assert f"connect-src 'self' {provider.url}" in policy  # and the token endpoint only
    assert "frame-ancestors 'none'" in policy and "unsafe" not in policy
    status, _, _ = await get(f"{url}/console/js/main.js", **{"If-None-Match": headers["ETag"]})
    assert status == 304


@pytest.mark.parametrize(
    "path", ["/console/../main.py", "/console/%2e%2e/main.py", "/console/nothing.js", "/console/js"]
)
async def test_nothing_outside_the_console_files_is_served(
    oidc_gateway: GatewayService, path: str
) -> None:
    status, headers, body = await get(f"{base(oidc_gateway)}{path}")
    # A path resolving outside the folder is no console path: it needs a token (401) there.
    assert status in (401, 404), body
    assert b"def main" not in body


async def test_the_embedded_sign_in_is_off_with_an_external_issuer(
    oidc_gateway: GatewayService, provider: Provider
) -> None:
    status, _, body = await get(f"{base(oidc_gateway)}/console/config.json")
    assert status == 200
    config: dict[str, Any] = json.loads(body)
    assert config["signIn"] == "oidc" and config["users"] == []
    assert config["oidc"]["clientId"] == CLIENT_ID
    async with aiohttp.ClientSession() as session:
        url = f"{base(oidc_gateway)}/console/sign-in"
        async with session.post(url, json={"subject": "agent-li"}) as response:
            assert response.status == 400
            assert (await response.json())["code"] == 9  # FAILED_PRECONDITION


async def test_an_agent_signs_in_with_oidc_and_pkce(
    browser: Browser, oidc_gateway: GatewayService, provider: Provider
) -> None:
    page = await browser.new_page()
    try:
        await page.goto(f"{base(oidc_gateway)}/console/")
        await page.get_by_role("button", name="通过单点登录（OIDC）登录").click()
        await expect(page.locator("#who-am-i")).to_contain_text("oidc-agent")
        await expect(page.get_by_role("link", name="坐席工作台")).to_be_visible()
        assert page.url.startswith(f"{base(oidc_gateway)}/console/")
        assert "code=" not in page.url  # the code is gone from the address bar
    finally:
        await page.close()
    (exchange,) = provider.exchanged
    assert exchange["client_id"] == CLIENT_ID
    assert exchange["redirect_uri"] == f"{base(oidc_gateway)}/console/"
