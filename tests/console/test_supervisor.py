"""The supervisor view against `careops up`: the KPI board changes after a survey submitted
through the API; a stricter SLA draft is compared with the last day side by side (the draft's
figures differ) before it is applied; a compensation above an agent's limit is approved from
the approvals list; the view is not offered to an agent."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.async_api import Browser, expect

from tests.console.platform import ConsolePlatform, sign_in

TICKETING = "careops.ticketing.v1.TicketingService"
QUALITY = "careops.quality.v1.QualityService"
CUSTOMER = "careops.customer.v1.CustomerProfileService"
REFRESHED = 20_000  # ms: the board is pushed (WatchKpis) ~1 s after a change; expect() waits


def _chat_ticket(
    platform: ConsolePlatform, token: str, subject: str, *, reply: bool = True
) -> dict[str, Any]:
    """A chat ticket of a new customer, answered by an agent unless `reply` is False."""
    tag = uuid.uuid4().hex[:8]
    customer = platform.call(
        f"{CUSTOMER}/RegisterCustomer",
        {"profile": {"name": f"Supervisor {tag}", "email": f"sup.{tag}@example.com"}},
        token,
    )["customer"]
    opened = platform.call(
        f"{TICKETING}/OpenTicket",
        {
            "customerId": customer["customerId"],
            "channel": "CHANNEL_CHAT",
            "type": "TICKET_TYPE_CONSULTATION",
            "priority": "PRIORITY_NORMAL",
            "subject": subject,
        },
        token,
    )["ticket"]
    if not reply:
        return opened
    platform.call(
        f"{TICKETING}/AddReply",
        {"ticketId": opened["ticketId"], "author": "AUTHOR_AGENT", "body": "Looking into it."},
        token,
    )
    return opened


def _pending_refund(
    platform: ConsolePlatform, token: str, subject: str, *, answered: bool
) -> dict[str, Any]:
    """A chat ticket (answered or not) with a 3000 CNY refund above agent-li's limit (2000)."""
    ticket = _chat_ticket(platform, token, subject, reply=answered)
    pending = platform.call(
        f"{TICKETING}/GrantCompensation",
        {
            "ticketId": ticket["ticketId"],
            "kind": "COMPENSATION_KIND_REFUND",
            "amount": "3000",
            "currency": "CNY",
            "reason": f"refund: {subject}",
        },
        platform.token("agent-li", "agent"),
    )["compensation"]
    assert pending["status"] == "COMPENSATION_STATUS_PENDING"
    return {**ticket, "compensation": pending}


async def test_a_supervisor_sees_the_board_change_and_compares_a_stricter_sla_draft(
    browser: Browser, platform: ConsolePlatform, sla_policy_kept: str
) -> None:
    admin = platform.token("admin", "admin")
    ticket = _chat_ticket(platform, admin, "Order arrived late")
    resolved = platform.call(
        f"{TICKETING}/ResolveTicket", {"ticketId": ticket["ticketId"], "resolution": "ok"}, admin
    )
    # More of a supervisor's morning: an unhappy customer (a follow-up is due) and a refund
    # above the agent's limit on a ticket not yet answered (its first-response clock runs).
    unhappy = _chat_ticket(platform, admin, "Refund still missing")
    unhappy_resolved = platform.call(
        f"{TICKETING}/ResolveTicket", {"ticketId": unhappy["ticketId"], "resolution": "-"}, admin
    )
    answered = platform.call(
        f"{QUALITY}/SubmitSurvey",
        {
            "ticketId": unhappy["ticketId"],
            "csat": 1,
            "ticketingMinSequence": unhappy_resolved["sequence"],
        },
        admin,
    )
    # The KPI read models have it before the page reads its first figures.
    platform.call(f"{QUALITY}/GetKpis", {"minSequence": answered["sequence"]}, admin)
    waiting = _pending_refund(platform, admin, "Parcel lost", answered=False)
    page = await browser.new_page(viewport={"width": 1440, "height": 1600})
    try:
        await sign_in(page, platform, "supervisor-zhou", "supervisor")
        await expect(page.get_by_role("heading", name="实时指标")).to_be_visible()
        await expect(page.locator("#follow-ups")).to_contain_text(unhappy["ticketId"])
        risky = page.locator(
            f'#sla-risk tr[data-ticket="{waiting["ticketId"]}"][data-clock="FIRST_RESPONSE"]'
        )
        await expect(risky).to_contain_text("首次响应")
        await expect(page.locator("#approvals")).to_contain_text("Parcel lost")
        # The board is pushed (WatchKpis), not polled: the stream is open.
        await expect(page.locator("#board-status")).to_have_attribute("data-state", "connected")
        surveys = page.locator('[data-kpi="surveys"] dd')
        await expect(surveys).to_have_text(re.compile(r"^\d+$"))
        before = int(await surveys.inner_text())

        # The scene, through the API: the customer answers the survey of the resolved ticket.
        platform.call(
            f"{QUALITY}/SubmitSurvey",
            {
                "ticketId": ticket["ticketId"],
                "csat": 5,
                "nps": 10,
                "ticketingMinSequence": resolved["sequence"],
            },
            admin,
        )
        # The board is pushed the change: the survey is counted, CSAT and NPS have a value.
        await expect(surveys).to_have_text(str(before + 1), timeout=REFRESHED)
        await expect(page.locator('[data-kpi="csat"] dd')).to_contain_text("·")
        await expect(page.locator('[data-kpi="nps"] dd')).not_to_have_text("–")
        await expect(page.locator("#kpi-trends figure")).to_have_count(4)
        # By channel: no phone ticket had a survey; chat had them all.
        await page.get_by_label("范围").select_option("channel:CHANNEL_PHONE")
        await expect(surveys).to_have_text("0")
        await page.get_by_label("范围").select_option("channel:CHANNEL_CHAT")
        await expect(surveys).to_have_text(str(before + 1))
        await page.get_by_label("范围").select_option("")

        # A stricter draft: chat's first response within 1 ms (the ticket was answered later).
        in_force = platform.call(f"{TICKETING}/GetSlaPolicy", {}, admin)["policy"]
        await expect(page.locator("#policy-in-force")).to_contain_text(in_force["version"])
        await page.get_by_role("combobox", name="渠道", exact=True).select_option("chat")
        await page.get_by_label("首次响应目标（如 15m、20s）").fill("0.001s")
        await page.get_by_role("button", name="写入草稿").click()
        draft = page.get_by_label("策略草稿（YAML）")
        await expect(draft).to_have_value(re.compile(r"chat: \{[^}]*first_response: 0\.001s"))
        version = f"strict-chat-{uuid.uuid4().hex[:6]}"
        await page.get_by_label("新版本号").fill(version)

        # Applying before comparing is refused on the page.
        await page.get_by_label("变更原因").fill("chat customers wait too long")
        await page.get_by_role("button", name="应用", exact=True).click()
        await expect(page.locator("#policy-message")).to_have_text("请先对比当前草稿，再应用。")

        await page.get_by_role("button", name="与最近一天对比").click()
        chat = page.locator('#what-if-table tbody tr[data-key="chat"]')
        await expect(chat).to_be_visible()
        cells = chat.locator("td")
        # Columns: channel, tickets, SLA in force | draft, FR breaches in force | draft, ...
        await expect(cells.nth(3)).to_have_class(re.compile(r"\bchanged\b"))
        actual_sla, draft_sla = await cells.nth(2).inner_text(), await cells.nth(3).inner_text()
        actual_fr, draft_fr = await cells.nth(4).inner_text(), await cells.nth(5).inner_text()
        assert actual_sla != draft_sla and int(draft_fr) > int(actual_fr)
        await expect(page.locator("#what-if-table tfoot td.changed").first).to_be_visible()
        await page.screenshot(path=platform.screenshot_path("supervisor"), full_page=True)

        await page.get_by_role("button", name="应用", exact=True).click()
        await expect(page.locator("#policy-in-force")).to_contain_text(version)
        applied = platform.call(f"{TICKETING}/GetSlaPolicy", {}, admin)["policy"]
        assert applied["version"] == version and applied["author"] == "supervisor-zhou"
        assert applied["reason"] == "chat customers wait too long"
        assert "first_response: 0.001s" in applied["document"]
    finally:
        await page.close()


async def test_a_supervisor_approves_a_compensation_above_the_agents_limit(
    browser: Browser, platform: ConsolePlatform
) -> None:
    admin = platform.token("admin", "admin")
    ticket = _pending_refund(platform, admin, "Broken kettle", answered=True)
    pending = ticket["compensation"]
    page = await browser.new_page(viewport={"width": 1440, "height": 1400})
    try:
        await sign_in(page, platform, "supervisor-zhou", "supervisor")
        # The SLA risk list: the open ticket's running resolution clock.
        risky = page.locator(
            f'#sla-risk tr[data-ticket="{ticket["ticketId"]}"][data-clock="RESOLUTION"]'
        )
        await expect(risky).to_contain_text("解决")
        await expect(risky).to_contain_text("Broken kettle")
        row = page.locator(f'#approvals tr[data-compensation="{pending["compensationId"]}"]')
        await expect(row).to_contain_text("3000 CNY")
        await expect(row).to_contain_text("agent-li")
        await row.get_by_label("审批意见").fill("confirmed with the warehouse")
        await row.get_by_role("button", name="批准").click()
        await expect(row).to_have_count(0, timeout=REFRESHED)
        listed = platform.call(
            f"{TICKETING}/ListCompensations", {"ticketId": ticket["ticketId"]}, admin
        )["compensations"]
        assert [(c["status"], c["decidedBy"]) for c in listed] == [
            ("COMPENSATION_STATUS_GRANTED", "supervisor-zhou")
        ]
        # The agents' load and availability lists the directory's agents.
        await expect(page.locator('#agent-load tr[data-agent="agent-li"]')).to_be_visible()
        # English: the view re-renders in the other language.
        await page.get_by_label("语言").select_option("en")
        await expect(page.get_by_role("heading", name="Live KPIs")).to_be_visible()
        await expect(page.get_by_role("heading", name="Compensation approvals")).to_be_visible()
        await expect(page.locator('[data-kpi="sla"] dt')).to_have_text("SLA compliance")
        await page.get_by_label("Language").select_option("zh")
    finally:
        await page.close()


async def test_the_supervisor_view_is_not_offered_to_an_agent(
    browser: Browser, platform: ConsolePlatform
) -> None:
    page = await browser.new_page()
    try:
        await sign_in(page, platform, "agent-li")
        await expect(page.get_by_role("link", name="坐席工作台")).to_be_visible()
        await expect(page.get_by_role("link", name="主管看板")).to_have_count(0)
    finally:
        await page.close()
