"""The agent desk from a real headless Chromium against `careops up` (issue 15's must-hold):
an agent signs in, opens the oldest ticket in their queue, reads the conversation, replies with
a macro, and the first-response clock on the page stops. The scene is set through the same
gateway's HTTP API (an admin's and the customer channel's tokens)."""

from __future__ import annotations

import uuid
from typing import Any

import yaml
from playwright.async_api import Browser, expect

from tests.console.platform import ConsolePlatform, sign_in
from tests.support import eventually_sync

TICKETING = "careops.ticketing.v1.TicketingService"
CUSTOMER = "careops.customer.v1.CustomerProfileService"
AGENT = "agent-li"  # a `careops up` console user; consultation is in their skills, fault is not


def scene(platform: ConsolePlatform, subjects: list[str]) -> list[dict[str, Any]]:
    """A registered customer with one ticket per subject (in that order, the first the
    oldest), each assigned to the agent, the customer's own words on each; returns the tickets
    once the agent's queue shows them all."""
    admin = platform.token("admin", "admin")
    customer = platform.call(
        f"{CUSTOMER}/RegisterCustomer",
        {"profile": {"name": "王芳", "email": f"wang.{uuid.uuid4().hex[:8]}@example.com"}},
        admin,
    )["customer"]
    tickets = []
    for subject in subjects:
        opened = platform.call(
            f"{TICKETING}/OpenTicket",
            {
                "customerId": customer["customerId"],
                "channel": "CHANNEL_CHAT",
                "type": "TICKET_TYPE_CONSULTATION",
                "priority": "PRIORITY_HIGH",
                "subject": subject,
                "description": "订单 A-1001 显示已发货，但一周了还没收到。",
                "product": "智能音箱",
            },
            admin,
            key=uuid.uuid4().hex,
        )["ticket"]
        ticket_id = opened["ticketId"]
        platform.call(f"{TICKETING}/AssignTicket", {"ticketId": ticket_id, "agentId": AGENT}, admin)
        replied = platform.call(
            f"{TICKETING}/AddReply",
            {
                "ticketId": ticket_id,
                "author": "AUTHOR_CUSTOMER",
                "authorId": customer["customerId"],
                "body": f"请尽快帮我查一下物流（{subject}）",
            },
            admin,
        )
        tickets.append(replied["ticket"])
    last = int(replied["sequence"])

    def queued() -> list[dict[str, Any]] | None:
        listed = platform.call(
            f"{TICKETING}/ListTickets", {"assigneeId": AGENT, "minSequence": last}, admin
        )["tickets"]
        ids = {ticket["ticketId"] for ticket in listed}
        return tickets if all(ticket["ticketId"] in ids for ticket in tickets) else None

    queue = eventually_sync(queued, timeout=30, what="the agent's queue")

    # The customer 360 projects ticketing's events in the customer service, on its own pace:
    # the page shows the customer's open tickets once it has them.
    def in_360() -> bool:
        view = platform.call(
            f"{CUSTOMER}/GetCustomer360", {"customerId": customer["customerId"]}, admin
        )["view"]
        listed = {ticket["ticketId"] for ticket in view.get("openTickets", [])}
        return all(ticket["ticketId"] in listed for ticket in tickets)

    eventually_sync(in_360, timeout=30, what="the customer 360's open tickets")
    return queue


def oldest_open(platform: ConsolePlatform) -> str:
    """The id of the agent's oldest open ticket, as the service lists them."""
    listed = platform.call(
        f"{TICKETING}/ListTickets", {"assigneeId": AGENT, "pageSize": 100}, platform.token("admin")
    )["tickets"]
    open_ = [t for t in listed if t["status"] in OPEN_STATUSES]
    return str(min(open_, key=lambda ticket: ticket["createdAt"])["ticketId"])


OPEN_STATUSES = {
    "TICKET_STATUS_OPEN",
    "TICKET_STATUS_ASSIGNED",
    "TICKET_STATUS_IN_PROGRESS",
    "TICKET_STATUS_ON_HOLD",
}

UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((e) => !(e.labels?.length || e.getAttribute("aria-label") || e.textContent.trim()))
  .map((e) => e.outerHTML)"""


def put_macro(platform: ConsolePlatform) -> str:
    macro_id = f"shipping-{uuid.uuid4().hex[:6]}"
    platform.call(
        f"{TICKETING}/PutMacro",
        {
            "macroId": macro_id,
            "title": "物流查询",
            "body": "{customer_name} 您好，我们已收到工单 {ticket_id}，正在为您查询物流。",
        },
        platform.token("admin", "admin"),
    )
    return macro_id


async def test_an_agent_replies_with_a_macro_and_the_first_response_clock_stops(
    browser: Browser, platform: ConsolePlatform
) -> None:
    macro_id = put_macro(platform)
    oldest, newer = scene(platform, ["包裹一周未到", "发票抬头修改"])
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        await sign_in(page, platform, AGENT, "agent")
        queue = page.locator("#queue tbody tr")
        # The oldest of the agent's open tickets is the first row (another console test may
        # have left an older one of this agent open: the service says which is the oldest).
        await expect(queue.first).to_have_attribute("data-ticket-id", oldest_open(platform))
        ours = page.locator(f'#queue tr[data-ticket-id="{oldest["ticketId"]}"]')
        newer_row = page.locator(f'#queue tr[data-ticket-id="{newer["ticketId"]}"]')
        await expect(newer_row).to_be_visible()
        ids = await queue.evaluate_all("(rows) => rows.map((row) => row.dataset.ticketId)")
        assert ids.index(oldest["ticketId"]) < ids.index(newer["ticketId"])  # oldest first
        first_row_clock = ours.locator(".clock")
        await expect(first_row_clock).to_have_attribute("data-state", "running")

        await ours.get_by_role("button").click()
        await expect(page.locator("#ticket-title")).to_have_text("包裹一周未到")
        conversation = page.locator("#conversation")
        await expect(conversation).to_contain_text("请尽快帮我查一下物流（包裹一周未到）")
        clock = page.locator("#ticket-first-response")
        await expect(clock).to_have_attribute("data-state", "running")
        await expect(clock).to_contain_text("剩余")
        # The customer 360 beside it: who this is, without asking them again.
        await expect(page.locator("#c360-name")).to_contain_text("王芳")
        await expect(page.locator("#c360-open")).to_contain_text(oldest["ticketId"])

        await page.get_by_label("快捷回复（宏）").select_option(macro_id)
        await expect(page.get_by_label("回复内容")).to_have_value(
            f"王芳 您好，我们已收到工单 {oldest['ticketId']}，正在为您查询物流。"
        )
        await page.get_by_role("button", name="发送回复").click()

        # The reply is in the conversation, rendered by the service; the clock has stopped.
        await expect(conversation).to_contain_text(
            f"王芳 您好，我们已收到工单 {oldest['ticketId']}，正在为您查询物流。"
        )
        await expect(clock).to_have_attribute("data-state", "met")
        await expect(clock).to_have_text("已达成")
        await expect(first_row_clock).to_have_attribute("data-state", "met")
        await page.screenshot(path=platform.screenshot_path("agent"), full_page=True)
    finally:
        await page.close()
    read = platform.call(
        f"{TICKETING}/GetTicket", {"ticketId": oldest["ticketId"]}, platform.token("admin")
    )["ticket"]
    first_response = next(c for c in read["sla"] if c["clock"] == "SLA_CLOCK_FIRST_RESPONSE")
    assert first_response["met"] and read["firstRespondedAt"]


async def test_an_agent_holds_with_a_reason_and_resumes(
    browser: Browser, platform: ConsolePlatform
) -> None:
    (ticket,) = scene(platform, ["等待客户补充照片"])
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        await sign_in(page, platform, AGENT, "agent")
        await page.get_by_label("语言").select_option("en")
        await page.get_by_role("button", name="Open ticket 等待客户补充照片").click()
        await expect(page.locator("#ticket-title")).to_have_text("等待客户补充照片")
        await page.get_by_label("Hold reason").select_option("HOLD_REASON_WAITING_CUSTOMER")
        await page.get_by_label("Hold note").fill("asked for a photo of the damage")
        await page.get_by_role("button", name="Put on hold").click()
        await expect(page.locator("#ticket-status")).to_have_text("On hold")
        # Waiting for the customer pauses the clocks.
        await expect(page.locator("#ticket-resolution")).to_have_attribute("data-state", "paused")
        await page.get_by_role("button", name="Resume").click()
        await expect(page.locator("#ticket-status")).not_to_have_text("On hold")
        await expect(page.locator("#ticket-resolution")).to_have_attribute("data-state", "running")
        # The filters: the ticket is among my high-priority chat tickets, not among phone ones.
        await page.get_by_label("Channel").select_option("CHANNEL_PHONE")
        await expect(page.locator("#queue")).to_contain_text("The queue is empty.")
        await page.get_by_label("Channel").select_option("CHANNEL_CHAT")
        await expect(
            page.locator(f'#queue tr[data-ticket-id="{ticket["ticketId"]}"]')
        ).to_be_visible()
        # Compensation within the agent's limit (2000) is granted; above it, it waits.
        await page.get_by_label("Amount").fill("50")
        await page.get_by_label("Why").fill("late delivery")
        await page.get_by_role("button", name="Grant compensation").click()
        await expect(page.locator("#compensations")).to_contain_text("Refund 50 CNY · Granted")
        await page.get_by_label("Amount").fill("2500")
        await page.get_by_label("Why").fill("damaged twice")
        await page.get_by_role("button", name="Grant compensation").click()
        await expect(page.locator("#compensations")).to_contain_text(
            "Refund 2500 CNY · Pending approval"
        )
        # Every control of the desk has a label (its accessible name).
        assert await page.evaluate(UNLABELLED) == []
        await page.get_by_label("Language").select_option("zh")
    finally:
        await page.close()


async def test_a_senior_agent_records_the_complaint_steps(
    browser: Browser, platform: ConsolePlatform
) -> None:
    admin = platform.token("admin", "admin")
    opened = platform.call(
        f"{TICKETING}/OpenTicket",
        {
            "customerId": "C-complaint",
            "channel": "CHANNEL_PHONE",
            "type": "TICKET_TYPE_COMPLAINT",
            "priority": "PRIORITY_HIGH",
            "subject": "维修三次仍未修好",
        },
        admin,
        key=uuid.uuid4().hex,
    )["ticket"]
    senior = "agent-zhang"
    platform.call(
        f"{TICKETING}/AssignTicket", {"ticketId": opened["ticketId"], "agentId": senior}, admin
    )
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        await sign_in(page, platform, senior, "agent")
        await page.get_by_label("语言").select_option("en")
        await page.get_by_role("button", name="Open ticket 维修三次仍未修好").click()
        await expect(page.locator("#steps-left")).to_contain_text("Listen")
        await page.locator("#step-kind").select_option("COMPLAINT_STEP_LISTEN")
        await expect(
            page.get_by_label("Plan", exact=True)
        ).to_be_hidden()  # only the step's own fields
        await page.get_by_label("Notes", exact=True).fill(
            "the customer explained the three repairs"
        )
        await page.get_by_role("button", name="Record step").click()
        await expect(page.locator("#steps-taken")).to_contain_text("Listen")
        await expect(page.locator("#steps-left")).not_to_contain_text("Listen")
        await page.get_by_label("Language").select_option("zh")
    finally:
        await page.close()


async def test_the_customer_360_follows_the_customer_without_a_reload(
    browser: Browser, platform: ConsolePlatform
) -> None:
    """WatchCustomer360 pushes the view beside the open ticket when the customer changes."""
    [ticket] = scene(platform, ["发票还没开"])
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        await sign_in(page, platform, AGENT, "agent")
        row = page.locator(f'#queue tr[data-ticket-id="{ticket["ticketId"]}"]')
        await row.get_by_role("button").click()
        await expect(page.locator("#c360-name")).to_contain_text("王芳")
        platform.call(
            f"{CUSTOMER}/TagCustomer",
            {"customerId": ticket["customerId"], "add": ["invoice-urgent"]},
            platform.token("admin", "admin"),
        )
        await expect(page.locator("#customer-360 ul.tags")).to_contain_text("invoice-urgent")
        tagged = page.locator('#c360-timeline li[data-kind="tagged"]')
        await expect(tagged).to_contain_text("标签 · 标签 +invoice-urgent")
    finally:
        await page.close()


CLOCK_VIEWS = """async () => {
  const { clockView } = await import("/console/js/views/agent.js");
  const t = (key, values = {}) => key + (values.time ? ` ${values.time}` : "");
  const now = Date.parse("2026-12-01T10:00:00Z");
  const running = { running: true, dueAt: "2026-12-01T10:30:00Z", warnAt: "2026-12-01T10:20:00Z" };
  return {
    ok: clockView(running, now, t),
    warn: clockView({ ...running, warnAt: "2026-12-01T09:50:00Z" }, now, t),
    overdue: clockView({ ...running, dueAt: "2026-12-01T09:59:00Z" }, now, t),
    breached: clockView({ breached: true, dueAt: "2026-12-01T08:00:00Z" }, now, t),
    met: clockView({ met: true }, now, t),
    paused: clockView({ paused: true }, now, t),
    days: clockView({ running: true, dueAt: "2026-12-03T11:02:03Z" }, now, t),
  };
}"""


async def test_clocks_are_coloured_by_the_risk_of_breach(
    browser: Browser, platform: ConsolePlatform
) -> None:
    """The desk's clock rendering at a fixed `now` (no wall clock in the assertion)."""
    page = await browser.new_page()
    try:
        await page.goto(f"{platform.url}/console/")
        views = await page.evaluate(CLOCK_VIEWS)
    finally:
        await page.close()
    assert views["ok"] == {"state": "running", "text": "agent.clock.left 00:30:00", "tone": "ok"}
    assert views["warn"]["tone"] == "warn"  # past its warning: at risk
    assert views["overdue"] == {
        "state": "running",
        "text": "agent.clock.overdue 00:01:00",
        "tone": "risk",
    }
    assert views["breached"] == {
        "state": "breached",
        "text": "agent.clock.breached 02:00:00",
        "tone": "risk",
    }
    assert views["met"]["tone"] == views["paused"]["tone"] == "stopped"
    assert views["days"]["text"] == "agent.clock.left 2d 01:02:03"


# ------------------------------------------------------------------------ the team queue

SEEDED_AGENTS = ("agent-li", "agent-wang", "agent-zhang", "agent-chen")


def set_availability(platform: ConsolePlatform, admin: str, availability: str) -> None:
    """Every seeded agent's availability: all away, fair routing places nothing and the tickets
    wait in the team queue."""
    for agent in SEEDED_AGENTS:
        platform.call(
            f"{TICKETING}/SetAvailability",
            {"agentId": agent, "availability": availability},
            admin,
        )


def social_overdue_at_once(platform: ConsolePlatform, admin: str) -> None:
    """An SLA policy under which a new social ticket's first response is due 1 ms after opening
    (the other channels, those the other tests use, keep theirs; the test's `sla_policy_kept`
    puts the policy back after it): an overdue clock without waiting for one."""
    in_force = platform.call(f"{TICKETING}/GetSlaPolicy", {}, admin)["policy"]
    document = yaml.safe_load(in_force["document"])
    document["version"] = f"team-queue-{uuid.uuid4().hex[:6]}"
    document["channels"]["social"]["first_response"] = "0.001s"
    platform.call(
        f"{TICKETING}/PutSlaPolicy",
        {"document": yaml.safe_dump(document), "reason": "a test's overdue social clock"},
        admin,
    )


def open_unassigned(
    platform: ConsolePlatform, admin: str, channel: str, type_: str, subject: str
) -> Any:
    """Opens a normal-priority ticket of a new customer; returns OpenTicket's answer."""
    return platform.call(
        f"{TICKETING}/OpenTicket",
        {
            "customerId": f"C-{uuid.uuid4().hex[:8]}",
            "channel": channel,
            "type": type_,
            "priority": "PRIORITY_NORMAL",
            "subject": subject,
        },
        admin,
        key=uuid.uuid4().hex,
    )


async def test_an_agent_sees_the_team_queue_filters_it_and_the_clocks_count_down(
    browser: Browser, platform: ConsolePlatform, sla_policy_kept: str
) -> None:
    admin = platform.token("admin", "admin")
    social_overdue_at_once(platform, admin)
    set_availability(platform, admin, "AVAILABILITY_AWAY")
    overdue = open_unassigned(
        platform, admin, "CHANNEL_SOCIAL", "TICKET_TYPE_CONSULTATION", "微博私信无人应答"
    )
    on_time = open_unassigned(
        platform, admin, "CHANNEL_APP", "TICKET_TYPE_CONSULTATION", "积分怎么用"
    )
    other_skill = open_unassigned(
        platform, admin, "CHANNEL_APP", "TICKET_TYPE_FAULT", "音箱无法开机"
    )
    last = max(int(x["sequence"]) for x in (overdue, on_time, other_skill))
    ours = {x["ticket"]["ticketId"] for x in (overdue, on_time, other_skill)}

    def unassigned() -> bool:
        listed = platform.call(
            f"{TICKETING}/ListTickets",
            {"status": "TICKET_STATUS_OPEN", "minSequence": last, "pageSize": 500},
            admin,
        )["tickets"]
        return ours <= {x["ticketId"] for x in listed if not x["assigneeId"]}

    eventually_sync(unassigned, timeout=30, what="the unassigned tickets in the ticket list")

    page = await browser.new_page(viewport={"width": 1440, "height": 900})

    def row(opened: Any) -> Any:
        """The queue's row of a ticket."""
        return page.locator(f'#queue tr[data-ticket-id="{opened["ticket"]["ticketId"]}"]')

    try:
        await sign_in(page, platform, AGENT, "agent")
        await page.get_by_role("button", name="团队队列").click()
        await expect(page.locator("#queue-title")).to_have_text("团队队列")
        # The agent's skills: both consultations, not the fault.
        await expect(row(overdue)).to_be_visible()
        await expect(row(on_time)).to_be_visible()
        await expect(row(other_skill)).to_have_count(0)

        # Colour by the risk of breach: the social clock is overdue (red), the app one on time.
        red = row(overdue).locator(".clock")
        await expect(red).to_have_class("clock risk")
        await expect(red).to_contain_text("超时")
        green = row(on_time).locator(".clock")
        await expect(green).to_have_class("clock ok")
        await expect(green).to_have_attribute("data-state", "running")
        await expect(green).to_contain_text("剩余")
        # Counting down in the page: the text changes by itself.
        shown = await green.inner_text()
        await expect(green).not_to_have_text(shown)

        # The channel filter narrows the queue on the server.
        await page.locator("#filter-channel").select_option("CHANNEL_SOCIAL")
        await expect(row(on_time)).to_have_count(0)
        await expect(row(overdue)).to_be_visible()
        await page.locator("#filter-priority").select_option("PRIORITY_URGENT")
        await expect(row(overdue)).to_have_count(0)
        await page.locator("#filter-priority").select_option("")
        await page.locator("#filter-channel").select_option("")
        await expect(row(on_time)).to_be_visible()
    finally:
        await page.close()
        set_availability(platform, admin, "AVAILABILITY_ONLINE")


TIMELINES = """async () => {
  const { setLanguage } = await import("/console/js/i18n.js");
  const { c360Entry } = await import("/console/js/views/agent.js");
  const { timelineEntry } = await import("/console/js/views/oncall.js");
  const shown = {};
  for (const language of ["zh", "en"]) {
    setLanguage(language);
    shown[language] = [
      c360Entry({
        kind: "ticket_opened",
        summary: "consultation ticket opened via chat (high priority)",
      }),
      c360Entry({ kind: "ticket_resolved", summary: "resolved at first contact" }),
      c360Entry({ kind: "ticket_event", summary: "SomethingNew" }),
      timelineEntry({ kind: "page", text: "paged ts-alice (technical_support)" }),
      timelineEntry({ kind: "update", text: "正在排查" }),
    ];
  }
  setLanguage("zh");
  return shown;
}"""


async def test_timeline_texts_are_in_the_readers_language(
    browser: Browser, platform: ConsolePlatform
) -> None:
    """The services' fixed English timeline sentences, worded by the page (people's own words
    and unknown sentences as they came)."""
    page = await browser.new_page()
    try:
        await page.goto(f"{platform.url}/console/")
        await expect(page.locator("#signin-user")).to_be_visible()  # the shell has started
        shown = await page.evaluate(TIMELINES)
    finally:
        await page.close()
    assert shown["zh"] == [
        "新工单 · 经 chat 创建 consultation 工单（优先级 high）",
        "解决 · 已解决（首次接触即解决）",
        "ticket_event · SomethingNew",
        {"kind": "呼叫", "text": "已呼叫 ts-alice（technical_support）"},
        {"kind": "进展", "text": "正在排查"},
    ]
    assert shown["en"] == [
        "ticket opened · consultation ticket opened via chat (high priority)",
        "resolved · resolved at first contact",
        "ticket_event · SomethingNew",
        {"kind": "page", "text": "paged ts-alice (technical_support)"},
        {"kind": "update", "text": "正在排查"},
    ]
