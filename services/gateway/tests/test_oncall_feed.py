"""Through the gateway's HTTP: an override and a swap accepted by both members, then the
member's iCal feed (authenticated by its `token` query parameter) shows both shifts; a removed
override leaves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from icalendar import Calendar

from gateway.main import GatewayService
from gateway.tests.conftest import authorization
from gateway.tests.issuer import shared_issuer

INCIDENT = "/v1/careops.incident.v1.IncidentService"
TS = "technical_support"
FEED = f"/v1/oncall/teams/{TS}/members/ts-bob/shifts.ics"


def token(subject: str, *roles: str) -> str:
    return shared_issuer().token(subject, roles or ("oncall",))


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
async def bare(gateway: GatewayService) -> AsyncIterator[aiohttp.ClientSession]:
    """A client that sends no credentials unless told (a calendar client)."""
    assert gateway.http is not None
    async with aiohttp.ClientSession(f"http://127.0.0.1:{gateway.http.port}") as session:
        yield session


async def post_as(
    session: aiohttp.ClientSession, subject: str, method: str, body: dict[str, Any]
) -> dict[str, Any]:
    async with session.post(
        f"{INCIDENT}/{method}", json=body, headers=authorization(token(subject))
    ) as response:
        reply: dict[str, Any] = await response.json()
        assert response.status == 200, reply
        return reply


async def test_the_feed_shows_the_override_and_the_swapped_shift(
    bare: aiohttp.ClientSession,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    tonight = (now + timedelta(hours=1), now + timedelta(hours=5))
    swapped = (now + timedelta(days=2), now + timedelta(days=3))
    await post_as(
        bare,
        "ts-bob",
        "AddOnCallOverride",
        {
            "teamId": TS,
            "memberId": "ts-bob",
            "startsAt": rfc3339(tonight[0]),
            "endsAt": rfc3339(tonight[1]),
        },
    )
    requested = await post_as(
        bare,
        "ts-alice",
        "RequestShiftSwap",
        {
            "teamId": TS,
            "counterpartId": "ts-bob",
            "startsAt": rfc3339(swapped[0]),
            "endsAt": rfc3339(swapped[1]),
        },
    )
    swap_id = requested["swap"]["swapId"]
    accepted = await post_as(bare, "ts-bob", "AcceptShiftSwap", {"teamId": TS, "swapId": swap_id})
    assert accepted["swap"]["status"] == "SHIFT_SWAP_STATUS_ACCEPTED"

    query = {"token": token("ts-bob"), "end": rfc3339(now + timedelta(days=7))}
    async with bare.get(FEED, params=query) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/calendar"
        feed = Calendar.from_ical(await response.read())
    events = [
        (event.decoded("dtstart"), event.decoded("dtend"), str(event.get("categories").cats[0]))
        for event in feed.walk("VEVENT")
    ]
    assert events == [(*tonight, "override"), (*swapped, "swap")]
    # ts-alice's own feed no longer holds the swapped day.
    alice = f"/v1/oncall/teams/{TS}/members/ts-alice/shifts.ics"
    async with bare.get(alice, params={**query, "start": rfc3339(swapped[0])}) as response:
        assert response.status == 200
        mine = Calendar.from_ical(await response.read())
    starts = [event.decoded("dtstart") for event in mine.walk("VEVENT")]
    assert starts and swapped[0] not in starts and starts[0] == swapped[1]


async def test_a_removed_override_leaves_the_feed(bare: aiohttp.ClientSession) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    later = (now + timedelta(days=4), now + timedelta(days=4, hours=3))
    added = await post_as(
        bare,
        "ts-bob",
        "AddOnCallOverride",
        {
            "teamId": TS,
            "memberId": "ts-bob",
            "startsAt": rfc3339(later[0]),
            "endsAt": rfc3339(later[1]),
        },
    )
    override_id = added["override"]["overrideId"]
    query = {"token": token("ts-bob"), "start": rfc3339(later[0]), "end": rfc3339(later[1])}

    async def feed_events() -> list[tuple[datetime, str]]:
        async with bare.get(FEED, params=query) as response:
            assert response.status == 200, await response.text()
            feed = Calendar.from_ical(await response.read())
        return [
            (event.decoded("dtstart"), str(event.get("categories").cats[0]))
            for event in feed.walk("VEVENT")
        ]

    assert (later[0], "override") in await feed_events()
    removed = await post_as(
        bare, "ts-bob", "RemoveOnCallOverride", {"teamId": TS, "overrideId": override_id}
    )
    assert removed["override"]["overrideId"] == override_id
    assert all(category != "override" for _start, category in await feed_events())
    async with bare.post(
        f"{INCIDENT}/RemoveOnCallOverride",
        json={"teamId": TS, "overrideId": override_id},
        headers=authorization(token("ts-bob")),
    ) as response:
        assert response.status == 404, await response.text()


async def test_the_feed_needs_a_valid_token_holding_the_permission(
    bare: aiohttp.ClientSession,
) -> None:
    async with bare.get(FEED) as response:
        assert response.status == 401
    async with bare.get(FEED, params={"token": "not-a-token"}) as response:
        assert response.status == 401
    async with bare.get(FEED, params={"token": token("an-agent", "agent")}) as response:
        assert response.status == 403
        assert "incident.oncall.shifts" in (await response.json())["message"]
    unknown = f"/v1/oncall/teams/{TS}/members/nobody/shifts.ics"
    async with bare.get(unknown, params={"token": token("ts-bob")}) as response:
        assert response.status == 404
    async with bare.get(FEED, params={"token": token("ts-bob"), "start": "soon"}) as response:
        assert response.status == 400
