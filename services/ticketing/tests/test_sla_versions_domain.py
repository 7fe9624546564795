"""decide under an SLA policy version: the hold reasons that pause, per-type resolution, and
ApplySlaPolicy re-deriving the clocks of an open ticket (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import careops_sla
import yaml

from ticketing import domain as d

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
DEFAULT = careops_sla.policy_text(None)


def policy(version: str, **changes: object) -> careops_sla.SlaPolicy:
    data = yaml.safe_load(DEFAULT)
    data["version"] = version
    for key, value in changes.items():
        if key == "email":
            data["channels"]["email"]["first_response"] = value
        else:
            data[key] = value
    return careops_sla.parse_policy_text(yaml.safe_dump(data))


V1 = policy("v1")


def run(
    state: d.Ticket, command: d.Command, at: datetime, under: careops_sla.SlaPolicy = V1
) -> tuple[d.Ticket, list[d.TicketEvent]]:
    events = d.decide(state, command, now=at, policy=under)
    for event in events:
        state = d.evolve(state, event, at)
    return state, events


def opened(
    channel: d.Channel = d.Channel.EMAIL, ticket_type: d.TicketType = d.TicketType.FAULT
) -> d.Ticket:
    command = d.OpenTicket("T-1", "C-1", channel, ticket_type, d.Priority.NORMAL, "help")
    state, events = run(d.initial("T-1"), command, T0)
    assert isinstance(events[0], d.TicketOpened) and events[0].sla_policy_version == "v1"
    return state


def clock(state: d.Ticket, name: d.SlaClock = d.SlaClock.FIRST_RESPONSE) -> d.SlaClockSnapshot:
    calendar = V1.calendar_for(channel=state.channel.value)
    return d.snapshot(state.clocks[name], state.updated_at or T0, calendar)


def test_the_ticket_remembers_the_version_it_was_opened_under() -> None:
    assert opened().sla_policy_version == "v1"


def test_which_hold_reasons_pause_is_the_policys() -> None:
    third_party = policy("v2", pausing_hold_reasons=["waiting_customer", "waiting_third_party"])
    hold = d.HoldTicket(d.HoldReason.WAITING_THIRD_PARTY)
    _, default_events = run(opened(), hold, T0 + timedelta(minutes=5))
    assert isinstance(default_events[0], d.TicketHeld) and not default_events[0].clocks_paused
    _, events = run(opened(), hold, T0 + timedelta(minutes=5), third_party)
    assert isinstance(events[0], d.TicketHeld) and events[0].clocks_paused


def test_a_type_resolution_sets_the_resolution_target_at_the_opening() -> None:
    typed = policy("typed", type_resolution={"complaint": "48h"})
    command = d.OpenTicket(
        "T-2", "C-1", d.Channel.EMAIL, d.TicketType.COMPLAINT, d.Priority.NORMAL, "bad"
    )
    state, _ = run(d.initial("T-2"), command, T0, typed)
    assert state.clocks[d.SlaClock.RESOLUTION].target == timedelta(hours=48)


def test_apply_rederives_consumed_time_and_due_times_under_the_new_targets() -> None:
    state = opened()
    later = T0 + timedelta(minutes=30)
    state, _ = run(state, d.HoldTicket(d.HoldReason.WAITING_CUSTOMER), later)
    state, _ = run(state, d.ResumeTicket(), later + timedelta(hours=1))
    now = later + timedelta(hours=1, minutes=15)
    faster = policy("v2", email="2h")
    state, events = run(state, d.ApplySlaPolicy(2, faster), now)
    assert [type(e) for e in events] == [d.SlaPolicyApplied]
    assert state.sla_policy_version == "v2"
    first = state.clocks[d.SlaClock.FIRST_RESPONSE]
    # 30 min before the hold + 15 min since it resumed; 75 min left of 2 h.
    assert first.target == timedelta(hours=2)
    assert first.consumed_at(now, faster.calendar_for(channel="email")) == timedelta(minutes=45)
    assert first.due_at == now + timedelta(minutes=75)
    # Applying the same version again does nothing.
    assert run(state, d.ApplySlaPolicy(2, faster), now)[1] == []


def test_apply_breaches_a_clock_the_new_target_puts_over_and_keeps_stopped_outcomes() -> None:
    state = opened()
    state, _ = run(state, d.AddReply(d.Author.AGENT, "a-1", "on it"), T0 + timedelta(minutes=20))
    answered = state.clocks[d.SlaClock.FIRST_RESPONSE]
    now = T0 + timedelta(hours=2)
    strict = policy(
        "strict", email="10m", resolution={**yaml.safe_load(DEFAULT)["resolution"], "normal": "1h"}
    )
    state, events = run(state, d.ApplySlaPolicy(2, strict), now)
    assert [type(e) for e in events] == [d.SlaBreached, d.SlaPolicyApplied]
    assert isinstance(events[0], d.SlaBreached) and events[0].clock is d.SlaClock.RESOLUTION
    assert events[0].due_at == T0 + timedelta(hours=1)
    # The answered first response keeps its target and outcome (met within 4 h).
    first = state.clocks[d.SlaClock.FIRST_RESPONSE]
    assert (first.target, first.met, first.breached) == (answered.target, True, False)
    assert state.clocks[d.SlaClock.RESOLUTION].breached


def test_a_breached_clock_stays_breached_under_a_looser_target() -> None:
    state = opened(channel=d.Channel.CHAT)  # 24x7: 30 min first response
    late = T0 + timedelta(hours=1)
    state, events = run(
        state, d.FireSlaTimer(d.SlaClock.FIRST_RESPONSE, d.SlaTimerKind.BREACH), late
    )
    assert state.clocks[d.SlaClock.FIRST_RESPONSE].breached
    loose = policy(
        "loose",
        channels={
            **yaml.safe_load(DEFAULT)["channels"],
            "chat": {"calendar": "24x7", "first_response": "8h"},
        },
    )
    state, _ = run(state, d.ApplySlaPolicy(2, loose), late)
    first = state.clocks[d.SlaClock.FIRST_RESPONSE]
    assert first.breached and first.target == timedelta(hours=8)


def test_closed_and_resolved_tickets_are_left_alone() -> None:
    state, _ = run(opened(), d.ResolveTicket("done"), T0 + timedelta(minutes=5))
    assert (
        run(state, d.ApplySlaPolicy(2, policy("v2", email="1h")), T0 + timedelta(hours=1))[1] == []
    )
