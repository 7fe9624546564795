"""Pure tests of the ticket aggregate: decide/evolve, SLA clocks, routing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from ticketing import domain as d

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class AlwaysOpen:
    def add_business_time(self, start: datetime, amount: timedelta) -> datetime:
        return start + amount

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        return max(end - start, timedelta(0))


@dataclass(frozen=True)
class Targets:
    first_response: timedelta
    resolution: timedelta


class MinutePolicy:
    """A 1-minute first-response / 5-minute resolution policy, 24x7, warning at 80 %."""

    version = "test-1"
    warn_ratio = 0.8
    pausing_hold_reasons = frozenset({"waiting_customer"})

    def targets_for(
        self, *, channel: str, priority: str, tier: str, ticket_type: str = ""
    ) -> Targets:
        factor = 0.5 if tier == "high_value" else 1.0
        return Targets(timedelta(minutes=1) * factor, timedelta(minutes=5) * factor)

    def calendar_for(self, *, channel: str) -> AlwaysOpen:
        return AlwaysOpen()


POLICY = MinutePolicy()


def run(state: d.Ticket, command: d.Command, at: datetime) -> tuple[d.Ticket, list[d.TicketEvent]]:
    events = d.decide(state, command, now=at, policy=POLICY)
    for event in events:
        state = d.evolve(state, event, at)
    return state, events


def opened(at: datetime = T0, **overrides: object) -> d.Ticket:
    fields: dict[str, object] = {
        "ticket_id": "T-1",
        "customer_id": "C-1",
        "channel": d.Channel.CHAT,
        "type": d.TicketType.FAULT,
        "priority": d.Priority.NORMAL,
        "subject": "Broken",
    }
    fields.update(overrides)
    state, _ = run(d.initial("T-1"), d.OpenTicket(**fields), at)  # type: ignore[arg-type]
    return state


def fire(
    state: d.Ticket, clock: d.SlaClock, kind: d.SlaTimerKind, at: datetime
) -> list[d.TicketEvent]:
    return d.decide(state, d.FireSlaTimer(clock, kind), now=at, policy=POLICY)


def test_open_starts_both_clocks_with_policy_targets() -> None:
    state = opened()
    first = state.clocks[d.SlaClock.FIRST_RESPONSE]
    assert state.status is d.Status.OPEN
    assert first.due_at == T0 + timedelta(minutes=1)
    assert first.warn_at == T0 + timedelta(seconds=48)
    assert state.clocks[d.SlaClock.RESOLUTION].due_at == T0 + timedelta(minutes=5)


def test_high_value_tier_gets_the_faster_targets() -> None:
    state = opened(tier=d.CustomerTier.HIGH_VALUE)
    assert state.clocks[d.SlaClock.FIRST_RESPONSE].due_at == T0 + timedelta(seconds=30)


def test_open_validates_every_field_at_once() -> None:
    with pytest.raises(d.InvalidCommand) as caught:
        d.decide(
            d.initial("T-1"),
            d.OpenTicket("T-1", "", None, None, None, ""),
            now=T0,
            policy=POLICY,
        )
    fields = {name for name, _ in caught.value.violations}
    assert fields == {"customer_id", "subject", "channel", "type", "priority"}


def test_breach_fires_only_when_due_and_only_once() -> None:
    state = opened()
    assert (
        fire(state, d.SlaClock.FIRST_RESPONSE, d.SlaTimerKind.BREACH, T0 + timedelta(seconds=59))
        == []
    )
    at = T0 + timedelta(minutes=1)
    events = fire(state, d.SlaClock.FIRST_RESPONSE, d.SlaTimerKind.BREACH, at)
    assert events == [d.SlaBreached(d.SlaClock.FIRST_RESPONSE, at, timedelta(minutes=1))]
    state = d.evolve(state, events[0], at)
    assert state.clocks[d.SlaClock.FIRST_RESPONSE].breached
    assert fire(state, d.SlaClock.FIRST_RESPONSE, d.SlaTimerKind.BREACH, at) == []


def test_warning_fires_at_the_configured_share() -> None:
    state = opened()
    assert (
        fire(state, d.SlaClock.FIRST_RESPONSE, d.SlaTimerKind.WARNING, T0 + timedelta(seconds=47))
        == []
    )
    events = fire(
        state, d.SlaClock.FIRST_RESPONSE, d.SlaTimerKind.WARNING, T0 + timedelta(seconds=48)
    )
    assert isinstance(events[0], d.SlaWarningRaised)


def test_hold_waiting_for_customer_pauses_and_resume_continues_the_clock() -> None:
    state = opened()
    state, _ = run(state, d.HoldTicket(d.HoldReason.WAITING_CUSTOMER), T0 + timedelta(seconds=20))
    clock = state.clocks[d.SlaClock.FIRST_RESPONSE]
    assert clock.paused and not clock.running and clock.consumed == timedelta(seconds=20)
    # Ten minutes on hold: nothing may fire.
    later = T0 + timedelta(minutes=10)
    assert fire(state, d.SlaClock.FIRST_RESPONSE, d.SlaTimerKind.BREACH, later) == []
    state, _ = run(state, d.ResumeTicket(), later)
    assert state.status is d.Status.OPEN
    assert state.clocks[d.SlaClock.FIRST_RESPONSE].due_at == later + timedelta(seconds=40)


def test_hold_for_a_third_party_does_not_pause() -> None:
    state = opened()
    state, events = run(state, d.HoldTicket(d.HoldReason.WAITING_THIRD_PARTY), T0)
    assert events == [d.TicketHeld(d.HoldReason.WAITING_THIRD_PARTY, "", False, None)]
    assert state.clocks[d.SlaClock.FIRST_RESPONSE].running


def test_customer_reply_resumes_a_ticket_waiting_for_them() -> None:
    state = opened()
    state, _ = run(state, d.AssignTicket("a1"), T0)
    state, _ = run(state, d.HoldTicket(d.HoldReason.WAITING_CUSTOMER), T0)
    state, events = run(
        state, d.AddReply(d.Author.CUSTOMER, "C-1", "done"), T0 + timedelta(hours=1)
    )
    assert [type(e) for e in events] == [d.ReplyAdded, d.TicketResumed]
    assert state.status is d.Status.IN_PROGRESS


def test_first_agent_reply_meets_the_first_response_clock() -> None:
    state = opened()
    state, _ = run(state, d.AddReply(d.Author.AGENT, "a1", "hello"), T0 + timedelta(seconds=30))
    clock = state.clocks[d.SlaClock.FIRST_RESPONSE]
    assert clock.met and not clock.running
    assert state.first_responded_at == T0 + timedelta(seconds=30)
    assert state.status is d.Status.IN_PROGRESS


def test_priority_change_retargets_running_clocks() -> None:
    state = opened()

    class Faster(MinutePolicy):
        def targets_for(
            self, *, channel: str, priority: str, tier: str, ticket_type: str = ""
        ) -> Targets:
            minutes = 0.5 if priority == "urgent" else 1
            return Targets(timedelta(minutes=minutes), timedelta(minutes=5 * minutes))

    at = T0 + timedelta(seconds=10)
    events = d.decide(state, d.ChangePriority(d.Priority.URGENT), now=at, policy=Faster())
    state = d.evolve(state, events[0], at)
    assert state.clocks[d.SlaClock.FIRST_RESPONSE].due_at == T0 + timedelta(seconds=30)


def test_resolve_reopen_close_lifecycle_and_first_contact() -> None:
    state = opened()
    state, _ = run(state, d.AddReply(d.Author.AGENT, "a1", "fixed"), T0)
    state, events = run(state, d.ResolveTicket("done"), T0 + timedelta(minutes=2))
    assert isinstance(events[0], d.TicketResolved) and events[0].first_contact
    assert state.clocks[d.SlaClock.RESOLUTION].met
    state, _ = run(state, d.ReopenTicket("not fixed"), T0 + timedelta(minutes=30))
    resolution = state.clocks[d.SlaClock.RESOLUTION]
    # Two minutes were used before resolving; the reopened clock continues from there.
    assert resolution.due_at == T0 + timedelta(minutes=33)
    state, events = run(state, d.ResolveTicket(), T0 + timedelta(minutes=31))
    assert isinstance(events[0], d.TicketResolved) and not events[0].first_contact
    state, _ = run(state, d.CloseTicket(), T0 + timedelta(minutes=32))
    assert state.status is d.Status.CLOSED


@pytest.mark.parametrize(
    "command",
    [
        d.ResolveTicket(),
        d.ReopenTicket(),
        d.AssignTicket("a"),
        d.HoldTicket(d.HoldReason.WAITING_CUSTOMER),
        d.ResumeTicket(),
        d.AddReply(d.Author.AGENT, "a", "x"),
        d.CloseTicket(),
    ],
)
def test_closed_tickets_refuse_changes(command: d.Command) -> None:
    state = opened()
    state, _ = run(state, d.ResolveTicket(), T0)
    state, _ = run(state, d.CloseTicket(), T0)
    with pytest.raises(d.IllegalTransition, match="closed"):
        d.decide(state, command, now=T0, policy=POLICY)


def test_commands_on_missing_tickets_are_not_found() -> None:
    with pytest.raises(d.TicketNotFound):
        d.decide(d.initial("T-x"), d.ResolveTicket(), now=T0, policy=POLICY)


def test_suggestion_prefers_matching_skills_then_lower_load() -> None:
    state = opened(type=d.TicketType.COMPLAINT, channel=d.Channel.PHONE)
    agents = [
        d.Agent("junior", frozenset({"complaint", "phone"}), 10),
        d.Agent("senior-busy", frozenset({"complaint", "phone", "senior"}), 10),
        d.Agent("senior-free", frozenset({"complaint", "phone", "senior"}), 10),
        d.Agent("full", frozenset({"complaint", "phone", "senior"}), 2),
    ]
    ranked = d.suggest_agents(state, agents, {"senior-busy": 5, "full": 2})
    assert [s.agent_id for s in ranked] == ["senior-free", "junior", "senior-busy"]


# ----------------------------------------------------------------------------- SLA outcomes


class Urgent30s(MinutePolicy):
    """Urgent: 30 s first response and 2.5 min resolution; otherwise as MinutePolicy."""

    def targets_for(
        self, *, channel: str, priority: str, tier: str, ticket_type: str = ""
    ) -> Targets:
        minutes = 0.5 if priority == "urgent" else 1
        return Targets(timedelta(minutes=minutes), timedelta(minutes=5 * minutes))


def test_an_agent_reply_while_waiting_for_the_customer_is_the_first_response() -> None:
    state = opened()
    state, _ = run(state, d.HoldTicket(d.HoldReason.WAITING_CUSTOMER), T0 + timedelta(seconds=10))
    state, events = run(
        state, d.AddReply(d.Author.AGENT, "a1", "any news?"), T0 + timedelta(seconds=20)
    )
    first = state.clocks[d.SlaClock.FIRST_RESPONSE]
    assert first.met and first.stopped_at == T0 + timedelta(seconds=20)
    assert first.consumed == timedelta(seconds=10)  # the hold does not count
    assert [type(e) for e in events] == [d.ReplyAdded]
    state, _ = run(state, d.ResumeTicket(), T0 + timedelta(hours=1))
    # Answered: the resume restarts only the resolution clock; nothing can breach later.
    assert not state.clocks[d.SlaClock.FIRST_RESPONSE].running
    assert state.clocks[d.SlaClock.RESOLUTION].running
    late = T0 + timedelta(hours=2)
    events = fire(state, d.SlaClock.FIRST_RESPONSE, d.SlaTimerKind.BREACH, late)
    assert [e.clock for e in events if isinstance(e, d.SlaBreached)] == [d.SlaClock.RESOLUTION]
    assert len(events) == 1


def test_a_reply_after_the_due_time_is_a_breach_even_before_the_timer_fires() -> None:
    state = opened()
    at = T0 + timedelta(seconds=61)  # due at 60 s; the breach timer has not fired yet
    state, events = run(state, d.AddReply(d.Author.AGENT, "a1", "sorry"), at)
    breach = d.SlaBreached(
        d.SlaClock.FIRST_RESPONSE, T0 + timedelta(minutes=1), timedelta(minutes=1)
    )
    assert events[0] == breach and isinstance(events[1], d.ReplyAdded)
    first = state.clocks[d.SlaClock.FIRST_RESPONSE]
    assert first.breached and not first.met
    # Exactly at the due time is on time.
    state, events = run(opened(), d.AddReply(d.Author.AGENT, "a1", "hi"), T0 + timedelta(minutes=1))
    assert [type(e) for e in events] == [d.ReplyAdded]
    assert state.clocks[d.SlaClock.FIRST_RESPONSE].met


def test_a_late_resolution_is_a_resolution_breach() -> None:
    state = opened()
    state, _ = run(state, d.AddReply(d.Author.AGENT, "a1", "looking"), T0)
    state, events = run(state, d.ResolveTicket("done"), T0 + timedelta(minutes=6))
    assert events[0] == d.SlaBreached(
        d.SlaClock.RESOLUTION, T0 + timedelta(minutes=5), timedelta(minutes=5)
    )
    resolution = state.clocks[d.SlaClock.RESOLUTION]
    assert resolution.breached and not resolution.met
    # A clock the timer already breached gets no second breach when it stops.
    state = opened()
    due = T0 + timedelta(minutes=1)
    (breached,) = fire(state, d.SlaClock.FIRST_RESPONSE, d.SlaTimerKind.BREACH, due)
    state = d.evolve(state, breached, due)
    state, events = run(
        state, d.AddReply(d.Author.AGENT, "a1", "sorry"), due + timedelta(minutes=1)
    )
    assert [type(e) for e in events] == [d.ReplyAdded]
    assert not state.clocks[d.SlaClock.FIRST_RESPONSE].met


def test_a_priority_change_past_the_new_target_dates_the_breach_when_it_was_reached() -> None:
    state = opened()
    at = T0 + timedelta(seconds=50)
    events = d.decide(state, d.ChangePriority(d.Priority.URGENT), now=at, policy=Urgent30s())
    state = d.evolve(state, events[0], at)
    # 50 s used against the new 30 s target: due when 30 s had passed, not at the change.
    first = state.clocks[d.SlaClock.FIRST_RESPONSE]
    assert first.due_at == T0 + timedelta(seconds=30)
    (breach,) = d.decide(
        state,
        d.FireSlaTimer(d.SlaClock.FIRST_RESPONSE, d.SlaTimerKind.BREACH),
        now=at,
        policy=Urgent30s(),
    )
    assert breach == d.SlaBreached(
        d.SlaClock.FIRST_RESPONSE, T0 + timedelta(seconds=30), timedelta(seconds=30)
    )


def test_a_due_time_in_the_past_skips_the_time_on_hold() -> None:
    policy = Urgent30s()

    def step(state: d.Ticket, command: d.Command, at: datetime) -> d.Ticket:
        for event in d.decide(state, command, now=at, policy=policy):
            state = d.evolve(state, event, at)
        return state

    state = opened()
    state = step(state, d.HoldTicket(d.HoldReason.WAITING_CUSTOMER), T0 + timedelta(seconds=20))
    resumed = T0 + timedelta(minutes=10)
    state = step(state, d.ResumeTicket(), resumed)
    state = step(state, d.ChangePriority(d.Priority.URGENT), resumed + timedelta(seconds=20))
    # 20 s before the hold + 10 s after it reach the 30 s target; the 10 min on hold do not.
    assert state.clocks[d.SlaClock.FIRST_RESPONSE].due_at == resumed + timedelta(seconds=10)


def test_a_clock_past_its_target_is_breached_before_a_command_even_if_its_timer_is_late() -> None:
    state = opened()
    at = T0 + timedelta(seconds=70)  # due at 60 s; no timer has fired
    events = d.decide(state, d.ChangePriority(d.Priority.LOW), now=at, policy=POLICY)
    assert events[0] == d.SlaBreached(
        d.SlaClock.FIRST_RESPONSE, T0 + timedelta(minutes=1), timedelta(minutes=1)
    )
    assert isinstance(events[1], d.PriorityChanged)


def test_an_agent_reply_after_an_unanswered_resolution_is_no_first_response() -> None:
    state = opened()
    state, _ = run(state, d.ResolveTicket("customer solved it"), T0 + timedelta(seconds=30))
    state, events = run(state, d.AddReply(d.Author.AGENT, "a1", "glad"), T0 + timedelta(minutes=2))
    assert events == [
        d.ReplyAdded(d.Author.AGENT, "a1", "glad", channel=d.Channel.CHAT)
    ]  # no SLA snapshot, no breach
    assert state.first_responded_at is None and state.agent_replies == 1


def test_the_event_ending_a_pause_says_how_long_each_clock_stayed_paused() -> None:
    state, _ = run(
        opened(), d.HoldTicket(d.HoldReason.WAITING_CUSTOMER), T0 + timedelta(seconds=20)
    )
    assert state.held_at == T0 + timedelta(seconds=20)
    state, events = run(state, d.ResumeTicket(), T0 + timedelta(seconds=65))
    [resumed] = events
    assert isinstance(resumed, d.TicketResumed) and resumed.sla is not None
    assert {c.clock: c.paused_for for c in resumed.sla.clocks} == {
        d.SlaClock.FIRST_RESPONSE: timedelta(seconds=45),
        d.SlaClock.RESOLUTION: timedelta(seconds=45),
    }
    assert state.held_at is None


def test_a_resolution_while_held_ends_the_pause_and_only_the_paused_clocks_count_it() -> None:
    state, _ = run(opened(), d.AddReply(d.Author.AGENT, "a-1", "hi"), T0 + timedelta(seconds=5))
    state, _ = run(state, d.HoldTicket(d.HoldReason.WAITING_CUSTOMER), T0 + timedelta(seconds=10))
    _, events = run(state, d.ResolveTicket(), T0 + timedelta(seconds=40))
    resolved = events[-1]
    assert isinstance(resolved, d.TicketResolved) and resolved.sla is not None
    assert {c.clock: c.paused_for for c in resolved.sla.clocks} == {
        d.SlaClock.FIRST_RESPONSE: None,
        d.SlaClock.RESOLUTION: timedelta(seconds=30),
    }


def test_a_hold_that_paused_nothing_reports_no_paused_time() -> None:
    state, _ = run(opened(), d.HoldTicket(d.HoldReason.WAITING_INTERNAL), T0)
    _, events = run(state, d.ResumeTicket(), T0 + timedelta(seconds=30))
    assert events == [d.TicketResumed()]
