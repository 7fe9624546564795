"""The console's shell against `careops up`: served at `/` under a strict CSP, signed in
through the embedded issuer's sign-in page, the views offered by the caller's permissions
(GetMyPermissions), Chinese by default with an English switch, keyboard reachable."""

from __future__ import annotations

import json
import urllib.request

from playwright.async_api import Browser, expect

from tests.console.platform import ApiFailure, ConsolePlatform

GATEWAY = "careops.gateway.v1.GatewayService"


def test_the_console_is_served_with_a_strict_policy(platform: ConsolePlatform) -> None:
    with urllib.request.urlopen(f"{platform.url}/", timeout=10) as response:
        assert response.url == f"{platform.url}/console/"  # `/` sends the browser there
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["Cache-Control"] == "no-cache" and response.headers["ETag"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert b'<html lang="zh">' in response.read()
    with urllib.request.urlopen(f"{platform.url}/console/config.json", timeout=10) as response:
        config = json.loads(response.read())
    assert config["signIn"] == "local"  # `careops up`: the embedded issuer's users
    assert {"subject": "agent-li", "roles": ["agent"]} in config["users"]


def test_get_my_permissions_answers_for_the_caller(platform: ConsolePlatform) -> None:
    agent = platform.call(f"{GATEWAY}/GetMyPermissions", {}, platform.token("agent-li", "agent"))
    assert agent["subject"] == "agent-li" and agent["roles"] == ["agent"]
    assert "careops.ticketing.v1.TicketingService/AddReply" in agent["methods"]
    assert "careops.customer.v1.CustomerProfileService/EraseCustomer" not in agent["methods"]
    assert "ticket.reply" in agent["permissions"]
    try:
        platform.call(f"{GATEWAY}/GetMyPermissions", {}, "not-a-token")
    except ApiFailure as refused:
        assert refused.status == 401
    else:
        raise AssertionError("an invalid token was answered")


async def test_sign_in_offers_only_the_views_a_role_may_use(
    browser: Browser, platform: ConsolePlatform
) -> None:
    page = await browser.new_page()
    try:
        await page.goto(f"{platform.url}/")
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        await expect(page.get_by_role("heading", name="登录")).to_be_visible()
        await page.screenshot(path=platform.screenshot_path("sign-in"))
        # Keyboard only: the user picker has focus, Tab reaches the button, Enter signs in.
        await expect(page.get_by_label("用户")).to_be_focused()
        await page.get_by_label("用户").select_option("ts-alice")
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="登录")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.locator("#who-am-i")).to_contain_text("ts-alice")
        # On-call has no ticket-working view: the agent desk is not offered.
        await expect(page.get_by_role("link", name="坐席工作台")).to_have_count(0)
        await page.get_by_role("button", name="退出").click()

        await page.get_by_label("用户").select_option("agent-li")
        await page.get_by_role("button", name="登录").click()
        await expect(page.get_by_role("link", name="坐席工作台")).to_be_visible()
        await expect(page.locator("body")).to_have_attribute("data-view", "agent")

        await page.get_by_label("语言").select_option("en")
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await expect(page.get_by_role("link", name="Agent desk")).to_be_visible()
        await expect(page.locator("#who-am-i")).to_contain_text("agent-li (Agent)")
        await page.get_by_label("Language").select_option("zh")
        await expect(page.get_by_role("link", name="坐席工作台")).to_be_visible()
    finally:
        await page.close()


def test_the_sign_in_refuses_a_user_not_configured(platform: ConsolePlatform) -> None:
    request = urllib.request.Request(
        f"{platform.url}/console/sign-in",
        data=json.dumps({"subject": "mallory"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as refused:
        body = json.loads(refused.read())
        assert refused.code == 400 and body["code"] == 3
        assert body["details"][0]["fieldViolations"][0]["field"] == "subject"
    else:
        raise AssertionError("a user not configured was signed in")
