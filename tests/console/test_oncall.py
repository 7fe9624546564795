"""The on-call view against `careops up`: ts-alice has the crisis board open; a level-A incident
declared through the API appears on it (pushed by WatchAlerts, no polling) with its red / yellow /
grey teams; her click on Acknowledge stops the escalation: at the deadline nobody else is paged.
The incident service's clock is moved past the deadlines (an OffsetClock), not waited for."""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, Route, expect

from tests.console.platform import ConsolePlatform, sign_in
from tests.support import eventually_sync

INCIDENT = "careops.incident.v1.IncidentService"
TS, CS = "technical_support", "customer_service"
# The escalation steps of the test: the page is acknowledged through the browser long before
# the first deadline (a loaded Chromium has minutes), then the incident service's clock is moved
# past both deadlines at once. The acknowledged team's deadline is the earlier one, and the
# scheduler fires due timers earliest first, one after the other: once the other team's (not
# acknowledged) page has escalated, the acknowledged page's timer has run. The move stays short
# of the escalated page's own deadline (a second step), so the chain stops there.
ACK_WAIT_SECONDS = 300
CONTROL_WAIT_SECONDS = ACK_WAIT_SECONDS + 30
PAST_THE_DEADLINES = CONTROL_WAIT_SECONDS + 15


def two_step_escalation(
    platform: ConsolePlatform, admin: str, team_id: str, on_call: str, then: str, wait: int
) -> None:
    """Makes `on_call` the team's only rotation member, paged first; `then` after `wait`."""
    team: dict[str, Any] = platform.call(f"{INCIDENT}/GetTeam", {"teamId": team_id}, admin)["team"]
    team.pop("version", None)
    team["rotation"] = {**team.get("rotation", {}), "memberIds": [on_call]}
    team["escalation"] = {
        "steps": [
            {"target": "oncall", "waitSeconds": wait},
            {"target": f"member:{then}", "waitSeconds": wait},
        ],
        "repeat": 1,
    }
    platform.call(f"{INCIDENT}/PutTeam", {"team": team}, admin, key=uuid.uuid4().hex)


@pytest.fixture
def teams_kept(platform: ConsolePlatform) -> Iterator[None]:
    """For a test that changes the escalation of TS and CS: each team as it was is put back
    after it."""
    admin = platform.token("admin", "admin")
    before = {
        team_id: platform.call(f"{INCIDENT}/GetTeam", {"teamId": team_id}, admin)["team"]
        for team_id in (TS, CS)
    }
    yield
    for team_id, team in before.items():
        platform.call(
            f"{INCIDENT}/PutTeam",
            {"team": {k: v for k, v in team.items() if k != "version"}},
            admin,
            key=uuid.uuid4().hex,
        )
        after = platform.call(f"{INCIDENT}/GetTeam", {"teamId": team_id}, admin)["team"]
        assert after.get("escalation") == team.get("escalation"), f"{team_id} not put back"
        assert after.get("rotation") == team.get("rotation"), f"{team_id} not put back"


async def test_a_level_a_incident_appears_and_acknowledge_stops_the_escalation(
    browser: Browser, platform: ConsolePlatform, teams_kept: None
) -> None:
    admin = platform.token("admin", "admin")
    two_step_escalation(platform, admin, TS, "ts-alice", "ts-bob", ACK_WAIT_SECONDS)
    two_step_escalation(platform, admin, CS, "cs-carol", "cs-dave", CONTROL_WAIT_SECONDS)
    page = await browser.new_page(viewport={"width": 1500, "height": 1000})
    try:
        await sign_in(page, platform, "ts-alice", "oncall")
        await expect(page.get_by_role("heading", name="应急看板")).to_be_visible()
        await expect(page.locator("#oncall-team")).to_have_value(TS)  # her team, found by GetTeam
        await expect(page.locator("#oncall-stream")).to_have_attribute("data-state", "connected")

        started = time.monotonic()
        declared = platform.call(
            f"{INCIDENT}/DeclareIncident",
            {
                "type": "server_crash",
                "title": "支付网关宕机",
                "factors": {"usersAffected": 100000, "coreSystem": 1.0, "exposure": 0.5},
            },
            platform.token("supervisor-zhou", "supervisor"),
            key=uuid.uuid4().hex,
        )["incident"]
        assert declared["level"] == "INCIDENT_LEVEL_A"
        row = page.locator(f'#crisis-board tr[data-incident-id="{declared["incidentId"]}"]')
        await expect(row).to_be_visible(timeout=10_000)
        print(
            f"\nthe level-A incident on the board {time.monotonic() - started:.3f} s after Declare"
        )
        await expect(row).to_have_attribute("data-level", "A")
        for team, colour in ((TS, "red"), (CS, "yellow"), ("brand_pr", "grey")):
            chip = row.locator(f'li.engagement[data-team="{team}"]')
            await expect(chip).to_have_attribute("data-engagement", colour)
        await expect(page.locator("#oncall-alerts li.alert.page").first).to_contain_text(
            "支付网关宕机"
        )

        # Both teams paged: the incident has settled, its row is not rebuilt under the click.
        await expect(row.locator('li.page[data-member="cs-carol"]')).to_be_visible()
        mine = row.locator('li.page[data-member="ts-alice"]')
        await expect(mine).to_have_attribute("data-state", "requested")
        await row.get_by_role("button", name="确认 ts-alice").click()
        await expect(mine).to_have_attribute("data-state", "acknowledged")
        await expect(row.get_by_role("button", name="确认 ts-alice")).to_have_count(0)

        await row.get_by_role("button", name="详情: 支付网关宕机").click()
        await expect(page.locator("#incident-detail ol.timeline li").first).to_be_visible()
        await page.screenshot(path=platform.screenshot_path("oncall"), full_page=True)
    finally:
        await page.close()

    # Past the deadline: the other team's page (not acknowledged) escalated to its next person;
    # ts-alice's acknowledged page did not, and nobody else of her team was paged.
    incident_id = declared["incidentId"]
    platform.incident_clock.advance(PAST_THE_DEADLINES)

    def control_escalated() -> dict[str, Any] | None:
        incident: dict[str, Any] = platform.call(
            f"{INCIDENT}/GetIncident", {"incidentId": incident_id}, admin
        )["incident"]
        members = {page["memberId"] for page in incident.get("pages", [])}
        return incident if "cs-dave" in members else None

    incident = eventually_sync(
        control_escalated, timeout=60, what="the unacknowledged team's escalation"
    )
    ours = [page for page in incident["pages"] if page["teamId"] == TS]
    assert [page["memberId"] for page in ours] == ["ts-alice"]
    assert ours[0].get("acknowledged") and not ours[0].get("escalated")
    carol = next(page for page in incident["pages"] if page["memberId"] == "cs-carol")
    assert carol.get("escalated") and not carol.get("acknowledged")


async def test_the_incident_is_worked_from_its_detail(
    browser: Browser, platform: ConsolePlatform
) -> None:
    """An update, a public statement and an escalation (C -> B) from the page, read back."""
    declared = platform.call(
        f"{INCIDENT}/DeclareIncident",
        {
            "type": "server_crash",
            "title": "登录偶发失败",
            "factors": {"usersAffected": 10, "coreSystem": 0.2, "elapsedMinutes": 5},
        },
        platform.token("supervisor-zhou", "supervisor"),
        key=uuid.uuid4().hex,
    )["incident"]
    assert declared["level"] == "INCIDENT_LEVEL_C"
    incident_id = declared["incidentId"]
    page = await browser.new_page()
    try:
        await sign_in(page, platform, "ts-alice", "oncall")
        await page.get_by_label("语言").select_option("en")
        row = page.locator(f'#crisis-board tr[data-incident-id="{incident_id}"]')
        await row.get_by_role("button", name="Details: 登录偶发失败").click()
        detail = page.locator("#incident-detail")
        await expect(detail.get_by_role("heading", name="登录偶发失败 (Level C)")).to_be_visible()

        await detail.get_by_label("Update").fill("正在排查认证服务")
        await detail.get_by_role("button", name="Add update").click()
        await expect(detail.locator("ol.timeline")).to_contain_text("正在排查认证服务")

        await detail.get_by_label("Headline").fill("登录问题通报")
        await detail.get_by_label("Text").fill("部分用户登录失败，我们正在处理。")
        await detail.get_by_role("button", name="Publish statement").click()
        await expect(detail.get_by_role("list", name="Published statements")).to_contain_text(
            "登录问题通报"
        )

        await detail.get_by_label("Reason to escalate").fill("影响扩大")
        await detail.get_by_role("button", name="Escalate to level B").click()
        await expect(row).to_have_attribute("data-level", "B")
        await expect(detail.get_by_role("button", name="Escalate to level A")).to_be_visible()
    finally:
        await page.close()
    incident = platform.call(
        f"{INCIDENT}/GetIncident", {"incidentId": incident_id}, platform.token("admin", "admin")
    )["incident"]
    assert incident["level"] == "INCIDENT_LEVEL_B"
    assert [s["headline"] for s in incident["statements"]] == ["登录问题通报"]
    assert any("正在排查认证服务" in entry["text"] for entry in incident["timeline"])


async def test_an_incident_is_resolved_and_closed_with_its_review_from_the_page(
    browser: Browser, platform: ConsolePlatform
) -> None:
    """Resolve and close (with the post-incident review) are offered to those who may: not to a
    senior agent, who sees the board; ts-alice resolves, the service refuses a review without a
    prevention action (shown beside the form), then closes it. The timeline reads in Chinese."""
    declared = platform.call(
        f"{INCIDENT}/DeclareIncident",
        {
            "type": "server_crash",
            "title": "支付回调超时",
            "factors": {"usersAffected": 10, "coreSystem": 0.2, "elapsedMinutes": 5},
        },
        platform.token("supervisor-zhou", "supervisor"),
        key=uuid.uuid4().hex,
    )["incident"]
    incident_id = declared["incidentId"]

    senior = await browser.new_page()
    try:
        await sign_in(senior, platform, "agent-zhang", "oncall")
        row = senior.locator(f'#crisis-board tr[data-incident-id="{incident_id}"]')
        await row.get_by_role("button", name="详情: 支付回调超时").click()
        detail = senior.locator("#incident-detail")
        await expect(detail.get_by_label("进展", exact=True)).to_be_visible()  # may add updates
        await expect(detail.locator("#oncall-resolve-summary")).to_have_count(0)
    finally:
        await senior.close()

    page = await browser.new_page(viewport={"width": 1440, "height": 1200})
    try:
        await sign_in(page, platform, "ts-alice", "oncall")
        row = page.locator(f'#crisis-board tr[data-incident-id="{incident_id}"]')
        await row.get_by_role("button", name="详情: 支付回调超时").click()
        detail = page.locator("#incident-detail")
        timeline = detail.locator("ol.timeline")
        # The service's own entries in the reader's language.
        await expect(timeline.locator('li[data-kind="declared"]')).to_contain_text("宣布 级别 C")

        await detail.get_by_label("解决摘要").fill("回调队列已扩容")
        await detail.get_by_role("button", name="标记为已解决").click()
        await expect(timeline.locator('li[data-kind="resolved"]')).to_contain_text("回调队列已扩容")
        await expect(detail.locator("#oncall-resolve-summary")).to_have_count(0)

        await detail.get_by_label("根本原因").fill("回调队列容量不足")
        await detail.get_by_label("预防措施（每行一条）").fill("   ")
        await detail.get_by_role("button", name="提交复盘并关闭").click()
        await expect(detail.locator("#oncall-review-error")).to_contain_text(
            "review.prevention_actions"
        )
        await expect(detail.get_by_label("根本原因")).to_have_value("回调队列容量不足")

        await detail.get_by_label("预防措施（每行一条）").fill("队列容量告警\n大促前压测回调")
        await detail.get_by_label("知识库条目").fill("KB-支付回调超时处理")
        await detail.get_by_role("button", name="提交复盘并关闭").click()
        await expect(timeline.locator('li[data-kind="closed"]')).to_contain_text("已记录事后复盘")
        review = detail.locator("dl.facts")
        await expect(review).to_contain_text("回调队列容量不足")
        await expect(review).to_contain_text("队列容量告警; 大促前压测回调")
        await expect(detail.get_by_role("button", name="提交复盘并关闭")).to_have_count(0)
    finally:
        await page.close()
    incident = platform.call(
        f"{INCIDENT}/GetIncident", {"incidentId": incident_id}, platform.token("admin", "admin")
    )["incident"]
    assert incident["status"] == "INCIDENT_STATUS_CLOSED"
    assert incident["review"] == {
        "rootCause": "回调队列容量不足",
        "preventionActions": ["队列容量告警", "大促前压测回调"],
        "knowledgeBaseEntry": "KB-支付回调超时处理",
    }


def first_page_alert(platform: ConsolePlatform, incident_id: str, after: int) -> str:
    """The NDJSON line of the incident's first page alert, as the gateway streams it."""
    request = urllib.request.Request(
        f"{platform.url}/v1/{INCIDENT}/WatchAlerts",
        data=json.dumps({"teamId": TS, "afterSequence": str(after)}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {platform.token('ts-alice', 'oncall')}",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        for line in response:
            alert = json.loads(line).get("result", {})
            if alert.get("incidentId") == incident_id and alert["kind"] == "ALERT_KIND_PAGE":
                return line.decode().strip()
    raise AssertionError("the stream ended without the page alert")


async def test_the_alert_stream_resumes_after_a_drop(
    browser: Browser, platform: ConsolePlatform
) -> None:
    """The stream ends after one alert (a drop): the page reconnects with `afterSequence` = that
    alert's sequence - 1, skips the alert the resumed stream repeats, and gets the next ones."""
    supervisor = platform.token("supervisor-zhou", "supervisor")
    minor = {"usersAffected": 10, "coreSystem": 0.2, "elapsedMinutes": 5}

    def declare(title: str) -> dict[str, Any]:
        body = {"type": "server_crash", "title": title, "factors": minor}
        answer: dict[str, Any] = platform.call(
            f"{INCIDENT}/DeclareIncident", body, supervisor, key=uuid.uuid4().hex
        )
        return answer

    first = declare("断线前的告警")
    line = first_page_alert(
        platform, first["incident"]["incidentId"], max(0, int(first["sequence"]) - 20)
    )
    sequence = int(json.loads(line)["result"]["sequence"])
    paged = json.loads(line)["result"]["memberId"]
    bodies: list[dict[str, Any]] = []

    async def drop_the_first(route: Route) -> None:
        bodies.append(json.loads(route.request.post_data or "{}"))
        if len(bodies) == 1:  # the stream's only message, then its end
            await route.fulfill(status=200, content_type="application/x-ndjson", body=line + "\n")
        else:
            await route.continue_()

    page = await browser.new_page()
    try:
        await page.route(re.compile(r"IncidentService/WatchAlerts$"), drop_the_first)
        await sign_in(page, platform, "ts-alice", "oncall")
        alerts = page.locator("#oncall-alerts li.alert.page")
        # That page's alerts: an escalation (another test may have shortened the team's
        # steps) would page the next member for the same incident.
        first_alerts = alerts.and_(
            page.locator(f'[data-incident-id="{first["incident"]["incidentId"]}"]')
        ).filter(has_text=f" · {paged}")
        await expect(first_alerts).to_have_count(1)
        stream = page.locator("#oncall-stream")
        await expect(stream).to_have_attribute("data-state", "connected")
        second = declare("断线后的告警")["incident"]["incidentId"]
        await expect(alerts.and_(page.locator(f'[data-incident-id="{second}"]'))).to_have_count(1)
        await expect(first_alerts).to_have_count(1)  # the resumed stream repeated it: skipped
    finally:
        await page.close()
    assert [body["afterSequence"] for body in bodies[:2]] == ["0", str(sequence - 1)]


async def test_the_board_is_offered_to_responders_only(
    browser: Browser, platform: ConsolePlatform
) -> None:
    """An agent reads incidents but is not offered the board; admin (no role to be paged) is."""
    # Its own incident on the board (the test does not rely on an earlier test's).
    declared = platform.call(
        f"{INCIDENT}/DeclareIncident",
        {
            "type": "server_crash",
            "title": "管理员可见的事件",
            "factors": {"usersAffected": 10, "coreSystem": 0.2, "elapsedMinutes": 5},
        },
        platform.token("supervisor-zhou", "supervisor"),
        key=uuid.uuid4().hex,
    )["incident"]
    page = await browser.new_page()
    try:
        await sign_in(page, platform, "agent-li")
        await expect(page.get_by_role("link", name="坐席工作台")).to_be_visible()
        await expect(page.get_by_role("link", name="值班应急")).to_have_count(0)
        await page.get_by_role("button", name="退出").click()
        await sign_in(page, platform, "admin", "oncall")
        await expect(page.locator("#oncall-stream")).to_have_attribute("data-state", "connected")
        row = page.locator(f'#crisis-board tr[data-incident-id="{declared["incidentId"]}"]')
        await expect(row).to_be_visible()
    finally:
        await page.close()
