"""Rule 2 of docs/permissions.md where it is enforced: the incident application, on the
in-memory store with the default teams (technical_support: ts-alice and ts-bob rotate, the
chain pages on-call, then the next in rotation, then the manager ts-lead)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from careops_eventstore.memory import InMemoryEventStore
from careops_eventstore.timers import DueTimer
from careops_platform.errors import PermissionDenied
from careops_platform.identity import Principal
from careops_platform.permissions import default_table

from incident import domain as d
from incident.application import ACKNOWLEDGE, STREAM, IncidentApp
from incident.tests.test_application import CRASH, bootstrapped, incident_events
from tests.support import FakeClock


def oncall(subject: str) -> Principal:
    return Principal(subject, frozenset({"oncall"}))


async def paged(
    tmp_path: Path,
) -> tuple[IncidentApp, InMemoryEventStore, FakeClock, d.PageRequested]:
    """Declares an incident; returns the app, its store, clock and technical support's page."""
    clock = FakeClock()
    app, store = await bootstrapped(tmp_path, clock)
    declared = await app.execute("i-1", CRASH, command_id="declare-1", actor="noc")
    [page] = [
        event
        for event in declared.events
        if isinstance(event, d.PageRequested) and event.team_id == "technical_support"
    ]
    return app, store, clock, page


def other_of(member_id: str) -> str:
    """Returns the other member of technical support's rotation."""
    return "ts-bob" if member_id == "ts-alice" else "ts-alice"


async def acknowledged_by(app: IncidentApp, page: d.PageRequested, caller: Principal) -> str:
    """Acknowledges `page` as `caller` (member_id left empty); returns the event's member."""
    result = await app.execute(
        "i-1", d.AcknowledgePage(page.page_id, ""), command_id="ack", caller=caller
    )
    [event] = result.events
    assert isinstance(event, d.PageAcknowledged)
    return event.member_id


async def test_the_paged_member_acknowledges_as_themselves(tmp_path: Path) -> None:
    app, _, _, page = await paged(tmp_path)
    assert await acknowledged_by(app, page, oncall(page.member_id)) == page.member_id


async def test_the_escalation_target_acknowledges(tmp_path: Path) -> None:
    app, _, _, page = await paged(tmp_path)
    target = other_of(page.member_id)  # the chain's next step pages the next in rotation
    assert await acknowledged_by(app, page, oncall(target)) == target


async def test_the_teams_lead_acknowledges(tmp_path: Path) -> None:
    app, _, _, page = await paged(tmp_path)
    lead = Principal("ts-lead", frozenset({"supervisor"}))
    assert await acknowledged_by(app, page, lead) == "ts-lead"


async def refused(
    app: IncidentApp, store: InMemoryEventStore, command: d.AcknowledgePage, caller: Principal
) -> PermissionDenied:
    """Sends `command` as `caller`, expecting PERMISSION_DENIED and nothing appended."""
    before = await store.last_sequence(STREAM.name)
    with pytest.raises(PermissionDenied) as denied:
        await app.execute("i-1", command, command_id="refused", caller=caller)
    assert await store.last_sequence(STREAM.name) == before
    assert denied.value.permission == ACKNOWLEDGE
    assert ACKNOWLEDGE in denied.value.message
    return denied.value


@pytest.mark.parametrize(
    "caller",
    [
        oncall("cs-carol"),  # on call, but for customer service
        oncall("nobody-at-all"),
        Principal("ts-lead", frozenset({"agent"})),  # the lead, without an acknowledging role
    ],
)
async def test_someone_not_entitled_is_refused_and_the_escalation_goes_on(
    tmp_path: Path, caller: Principal
) -> None:
    app, store, clock, page = await paged(tmp_path)
    denied = await refused(app, store, d.AcknowledgePage(page.page_id, ""), caller)
    assert "paged member, that member's escalation target" in denied.message
    clock.set(page.ack_due_at + timedelta(seconds=1))
    await app.fire_timer(DueTimer("ack-1", "i-1", "page_ack", clock.now, {"page_id": page.page_id}))
    events = [item.event for item in await incident_events(store, "i-1")]
    assert any(isinstance(event, d.PageEscalated) for event in events)
    assert not any(isinstance(event, d.PageAcknowledged) for event in events)


async def test_nobody_acknowledges_as_someone_else(tmp_path: Path) -> None:
    app, store, _, page = await paged(tmp_path)
    # ts-lead may acknowledge, but not in the paged member's name.
    lead = Principal("ts-lead", frozenset({"supervisor"}))
    denied = await refused(app, store, d.AcknowledgePage(page.page_id, page.member_id), lead)
    assert "member_id must be empty or the caller's own id" in denied.message


async def test_an_unknown_page_is_not_found_before_any_rule(tmp_path: Path) -> None:
    app, _, _, _ = await paged(tmp_path)
    with pytest.raises(d.NotFound):
        await app.execute(
            "i-1", d.AcknowledgePage("i-1-p99", ""), command_id="x", caller=oncall("ts-bob")
        )


async def test_without_a_caller_no_data_rule_applies(tmp_path: Path) -> None:
    app, _, _, page = await paged(tmp_path)
    result = await app.execute(
        "i-1", d.AcknowledgePage(page.page_id, "nobody-at-all"), command_id="ack"
    )
    assert result.events


def test_the_permission_named_is_the_tables() -> None:
    permission = default_table().permission("/careops.incident.v1.IncidentService/AcknowledgePage")
    assert permission is not None and permission.name == ACKNOWLEDGE
