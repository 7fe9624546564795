"""The public status page over real HTTP at the gateway, in front of a real incident service:
no token needed, the published statement shown (escaped), zh/en, and nothing internal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from careops.incident.v1 import incident_pb2 as pb
from careops_cli.main import app
from incident.main import IncidentService
from incident.projections import StatusPageProjection
from ticketing.main import TicketingService
from typer.testing import CliRunner, Result

from gateway.main import GatewayService
from gateway.status_page import FreshFor, language
from gateway.tests.conftest import address, running_gateway
from gateway.tests.issuer import shared_issuer
from tests.support import projected

INCIDENT = "/v1/careops.incident.v1.IncidentService"
TITLE = "db-primary-7 lost quorum"
INTERNAL_UPDATE = "ts-alice is failing over db-primary-7"
HEADLINE = "部分用户无法登录 <script>alert(1)</script>"
TEXT = '我们正在处理 & 将尽快恢复 "登录"。'
HEADLINE_EN = "Some customers cannot sign in"
TEXT_EN = "We are working on it & will restore sign-in soon."
# Members, teams, pages, the internal title and update, the statement's author, risk.
INTERNAL = (
    "ts-alice",
    "ts-bob",
    "cs-carol",
    "pr-erin",
    "technical_support",
    "customer_service",
    "brand_pr",
    "db-primary-7",
    "tester",
    "risk",
    "-p0",
)


@pytest.fixture(scope="module")
async def gateway(
    ticketing: TicketingService, incident: IncidentService
) -> AsyncIterator[GatewayService]:
    """The gateway reading the status page afresh on every request (the tests publish between
    reads); FreshFor's own test covers the cache."""
    async with running_gateway(
        {"status_page_cache_seconds": 0}, ticketing=address(ticketing), incident=address(incident)
    ) as gw:
        yield gw


@pytest.fixture(scope="module")
async def anonymous(gateway: GatewayService) -> AsyncIterator[aiohttp.ClientSession]:
    """A reader with no token at all."""
    assert gateway.http is not None
    async with aiohttp.ClientSession(f"http://127.0.0.1:{gateway.http.port}") as session:
        yield session


async def call(http: aiohttp.ClientSession, method: str, body: dict[str, Any]) -> Any:
    headers = {"idempotency-key": uuid.uuid4().hex}
    async with http.post(f"{INCIDENT}/{method}", json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def declare(http: aiohttp.ClientSession, *, drill: bool = False) -> str:
    body = {
        "type": "server_crash",
        "title": TITLE,
        "drill": drill,
        "factors": {"usersAffected": 100000, "coreSystem": 1.0, "exposure": 0.5},
    }
    reply = await call(http, "DeclareIncident", body)
    return str(reply["incident"]["incidentId"])


@pytest.fixture(scope="module")
async def published(http: aiohttp.ClientSession, incident: IncidentService) -> tuple[str, str]:
    """An incident with an internal update and two statement versions, and a drill with one."""
    incident_id = await declare(http)
    await call(http, "AddUpdate", {"incidentId": incident_id, "message": INTERNAL_UPDATE})
    await call(
        http,
        "PublishStatement",
        {"incidentId": incident_id, "headline": "初步通报", "text": "我们发现了登录问题。"},
    )
    await call(
        http,
        "PublishStatement",
        {
            "incidentId": incident_id,
            "headline": HEADLINE,
            "text": TEXT,
            "headlineEn": HEADLINE_EN,
            "textEn": TEXT_EN,
        },
    )
    drill = await declare(http, drill=True)
    await call(
        http, "PublishStatement", {"incidentId": drill, "headline": "演练", "text": "演练公告"}
    )
    await projected(incident, StatusPageProjection.name)
    return incident_id, drill


def assert_nothing_internal(text: str) -> None:
    for word in INTERNAL:
        assert word not in text, word


async def test_the_html_page_needs_no_token_and_shows_the_statement_escaped(
    anonymous: aiohttp.ClientSession, published: tuple[str, str]
) -> None:
    incident_id, drill = published
    async with anonymous.get("/status") as response:
        text = await response.text()
    assert response.status == 200, text
    assert response.content_type == "text/html"
    assert response.headers["Content-Language"] == "zh"
    assert '<html lang="zh">' in text
    assert "部分用户无法登录 &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "我们正在处理 &amp; 将尽快恢复 &quot;登录&quot;。" in text
    assert "初步通报" in text  # the earlier version is in the history
    assert "<script" not in text
    assert f'id="{incident_id}"' in text and drill not in text
    assert_nothing_internal(text)


async def test_english_by_query_or_accept_language(
    anonymous: aiohttp.ClientSession, published: tuple[str, str]
) -> None:
    for params, headers in (({"lang": "en"}, {}), ({}, {"Accept-Language": "en-GB,zh;q=0.5"})):
        async with anonymous.get("/status", params=params, headers=headers) as response:
            text = await response.text()
        assert response.status == 200
        assert response.headers["Content-Language"] == "en"
        assert '<html lang="en">' in text and "Current incidents" in text
        assert "We are working on it &amp; will restore sign-in soon." in text
        # No English given: the source wording, marked as Chinese for screen readers.
        assert '<span lang="zh">初步通报</span>' in text
        assert_nothing_internal(text)


async def test_the_json_document_holds_public_facts_only(
    anonymous: aiohttp.ClientSession, published: tuple[str, str]
) -> None:
    incident_id, drill = published
    async with anonymous.get("/status.json", params={"lang": "en"}) as response:
        raw = await response.text()
        body = await response.json()
    assert response.status == 200
    assert body["language"] == "en"
    shown = {item["id"]: item for item in body["open"]}
    assert drill not in shown
    item = shown[incident_id]
    assert item["state"] == "open"
    assert item["headline"] == HEADLINE_EN and item["statement"] == TEXT_EN
    assert [u["version"] for u in item["updates"]] == [2, 1]
    assert set(item) == {
        "id",
        "state",
        "declared_at",
        "resolved_at",
        "headline",
        "statement",
        "updates",
    }
    assert_nothing_internal(raw)


async def test_a_bad_query_is_400_naming_the_parameter(anonymous: aiohttp.ClientSession) -> None:
    async with anonymous.get("/status.json", params={"lang": "fr"}) as response:
        body = await response.json()
    assert response.status == 400
    assert body["details"][0]["fieldViolations"][0]["field"] == "lang"
    async with anonymous.get("/status", params={"days": "91"}) as response:
        body = await response.json()
    assert response.status == 400  # the incident service's own limit, passed through
    async with anonymous.get("/status", params={"days": "x"}) as response:
        assert response.status == 400


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", "zh"),
        ("en", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("fr, en;q=0.4, zh;q=0.3", "en"),
        ("en;q=0, zh-TW", "zh"),
        ("de", "zh"),
    ],
)
def test_accept_language_picks_the_preferred_of_zh_and_en(header: str, expected: str) -> None:
    assert language({}, header) == expected


async def test_the_cli_publishes_a_statement_the_page_then_shows(
    http: aiohttp.ClientSession,
    anonymous: aiohttp.ClientSession,
    gateway: GatewayService,
    incident: IncidentService,
) -> None:
    incident_id = await declare(http)
    env = {
        "CAREOPS_GATEWAY_ADDR": address(gateway),
        "CAREOPS_TOKEN": shared_issuer().token(),
        "CAREOPS_GATEWAY_TLS_CA_FILE": None,
    }
    args = ("incident", "publish", incident_id, "--headline", "短信验证码延迟")
    result = await cli(*args, "--text", "验证码短信发送延迟，正在处理。", **env)
    assert result.exit_code == 0, result.output
    assert "statement v1 published" in result.output
    refused = await cli("incident", "notify-customers", incident_id, "--template", "x", **env)
    assert refused.exit_code == 1 and "INVALID_ARGUMENT" in refused.output
    await projected(incident, StatusPageProjection.name)
    async with anonymous.get("/status.json") as response:
        body = await response.json()
    shown = {item["id"]: item for item in body["open"]}
    assert shown[incident_id]["headline"] == "短信验证码延迟"


async def cli(*args: str, **env: str | None) -> Result:
    """Runs the CLI in a thread (the gateway answers on this loop)."""
    runner = CliRunner()
    return await asyncio.to_thread(lambda: runner.invoke(app, list(args), env=env))


async def test_fresh_for_reads_once_per_key_and_period_and_keeps_no_failure() -> None:
    now = [100.0]
    cache = FreshFor(5.0, clock=lambda: now[0])
    reads: list[int] = []

    def loader(days: int) -> Any:
        async def load() -> pb.GetStatusPageResponse:
            reads.append(days)
            return pb.GetStatusPageResponse(history_days=days)

        return load

    first = await asyncio.gather(*(cache.get(7, loader(7)) for _ in range(5)))
    assert reads == [7] and {reply.history_days for reply in first} == {7}
    await cache.get(30, loader(30))
    now[0] += 4.9
    await cache.get(7, loader(7))
    assert reads == [7, 30]
    now[0] += 0.2
    await cache.get(7, loader(7))
    assert reads == [7, 30, 7]

    async def failing() -> pb.GetStatusPageResponse:
        raise RuntimeError("backend down")

    with pytest.raises(RuntimeError):
        await cache.get(90, failing)
    await cache.get(90, loader(90))
    assert reads[-1] == 90
    uncached = FreshFor(0)
    await uncached.get(7, loader(7))
    await uncached.get(7, loader(7))
    assert reads[-2:] == [7, 7]
