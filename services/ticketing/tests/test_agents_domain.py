"""Pure tests of the agent directory and the routing rules built on it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ticketing import domain as d
from ticketing.tests.test_domain import T0, opened, run

EMAIL = d.ChannelCapacity(d.Channel.EMAIL, 2)


def put(**overrides: object) -> d.PutAgent:
    fields: dict[str, object] = {
        "name": "Wu",
        "channels": (EMAIL,),
        "ticket_types": ("fault",),
        "languages": ("ZH", "en"),
        "availability": d.Availability.ONLINE,
    }
    return d.PutAgent(**{**fields, **overrides})  # type: ignore[arg-type]


def agent(command: d.PutAgent, agent_id: str = "a1") -> d.AgentProfile:
    state = d.initial_agent(agent_id)
    for event in d.decide_agent(state, command):
        state = d.evolve_agent(state, event, datetime(2026, 3, 2, tzinfo=UTC))
    return state


def test_put_defines_the_agent_and_an_unchanged_put_appends_nothing() -> None:
    profile = agent(put())
    assert profile.skills == frozenset({"fault", "email"})
    assert profile.languages == ("en", "zh")
    assert profile.availability is d.Availability.ONLINE
    assert d.decide_agent(profile, put()) == []
    assert d.decide_agent(profile, put(senior=True)) == [
        d.AgentPut("a1", "Wu", "", (EMAIL,), ("fault",), ("en", "zh"), True)
    ]


def test_put_validates_every_field() -> None:
    bad = put(
        channels=(d.ChannelCapacity(d.Channel.EMAIL, 0), d.ChannelCapacity(d.Channel.EMAIL, 1)),
        ticket_types=("cooking",),
    )
    with pytest.raises(d.InvalidCommand) as caught:
        d.decide_agent(d.initial_agent("a1"), bad)
    assert {name for name, _ in caught.value.violations} == {
        "channels[0].capacity",
        "channels[1].channel",
        "ticket_types[0]",
    }


def test_availability_of_an_unknown_agent_is_not_found() -> None:
    with pytest.raises(d.AgentNotFound):
        d.decide_agent(d.initial_agent("a9"), d.SetAvailability(d.Availability.ONLINE))


def test_routing_needs_online_skills_and_spare_capacity_on_the_channel() -> None:
    ticket = opened(channel=d.Channel.EMAIL)
    free = agent(put()).routed()
    assert free.can_take(ticket, free.spare("email", 0, 0))
    assert free.spare("email", 2, 2) == 0  # both email slots taken
    away = agent(put(availability=d.Availability.AWAY)).routed()
    assert d.suggest_agents(ticket, [away, free], {}, {})[0].agent_id == "a1"
    assert len(d.suggest_agents(ticket, [away], {}, {})) == 0
    full = d.suggest_agents(ticket, [free], {"a1": 2}, {"a1": {"email": 2}})
    assert full == []
    busy = d.suggest_agents(ticket, [free], {"a1": 1}, {"a1": {"email": 1}})
    assert busy[0].reason == "skills email, fault; spare 1 on email; 1/2 open"


def test_the_router_never_overwrites_an_assignment() -> None:
    state, _ = run(opened(), d.AssignTicket("a1"), T0)
    _, events = run(state, d.AssignTicket("a2", suggested=True, from_queue=True), T0)
    assert events == []


def test_only_an_unstarted_ticket_goes_back_to_the_queue() -> None:
    state, _ = run(opened(), d.AssignTicket("a1"), T0)
    back, events = run(state, d.ReturnToQueue("a1", "agent went offline"), T0)
    assert events == [d.TicketReturnedToQueue("a1", "agent went offline")]
    assert (back.assignee_id, back.status) == ("", d.Status.OPEN)
    started, _ = run(state, d.AddReply(d.Author.AGENT, "a1", "On it"), T0)
    assert run(started, d.ReturnToQueue("a1"), T0)[1] == []
    assert run(state, d.ReturnToQueue("a2"), T0)[1] == []  # not theirs
