"""A command's reply takes its SLA clocks from the command's last event when that carries all
of them (the OpenTicket path); they must equal the clocks computed afresh as of the event."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from careops_eventstore.memory import InMemoryEventStore
from careops_sla import default_policy

from ticketing import domain as d
from ticketing.application import TicketingApp, sla_snapshots
from ticketing.grpc_api import _event_clocks

# A Monday morning, in business hours; each command a quarter of an hour after the last.
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPEN = d.OpenTicket(
    ticket_id="",
    customer_id="C-1",
    channel=d.Channel.EMAIL,
    type=d.TicketType.FAULT,
    priority=d.Priority.NORMAL,
    subject="Printer shows E42",
    description="Since this morning the office printer shows error E42.",
)
ANGRY = replace(
    OPEN,
    customer_id="C-2",
    channel=d.Channel.PHONE,
    type=d.TicketType.COMPLAINT,
    priority=d.Priority.LOW,
    subject="This is outrageous, I am furious",
    description="Terrible service, I am angry and want a refund now!",
)
AFTER: tuple[d.Command, ...] = (
    d.AssignTicket("agent-1"),
    d.AddReply(d.Author.AGENT, "agent-1", "Looking into it."),
    d.ChangePriority(d.Priority.HIGH, "a hospital"),
    d.HoldTicket(d.HoldReason.WAITING_CUSTOMER, "asked for the model"),
    d.ResumeTicket(),
    d.AddReply(d.Author.CUSTOMER, "C-1", "It is the X200."),
    d.ResolveTicket("firmware updated"),
)


@pytest.mark.parametrize(
    ("opening", "expected"),
    # An angry opening ends with the raised priority's event: its clocks are computed afresh.
    [(OPEN, ["OpenTicket"]), (ANGRY, [])],
    ids=["calm", "angry"],
)
async def test_reused_clocks_equal_the_clocks_computed_afresh(
    opening: d.OpenTicket, expected: list[str]
) -> None:
    now = [START]
    app = TicketingApp(store=InMemoryEventStore(), policy=default_policy(), clock=lambda: now[0])
    await app.provision()
    ticket_id = f"T-{uuid.uuid4().hex[:20]}"
    reused = []
    for index, command in enumerate((opening, *AFTER)):
        if isinstance(command, d.OpenTicket):
            command = replace(command, ticket_id=ticket_id)
        now[0] = START + timedelta(minutes=15 * index)
        result = await app.execute(ticket_id, command, command_id=uuid.uuid4().hex)
        clocks = _event_clocks(result)
        if clocks is not None:
            state = result.state
            assert list(clocks) == sla_snapshots(app, state, state.updated_at), command
            reused.append(type(command).__name__)
    assert reused == expected
