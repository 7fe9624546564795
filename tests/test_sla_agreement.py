"""Ticketing's recorded SLA outcomes and quality's what-if replay under the same policy agree on
random ticket histories: both run careops_sla's clock model, so they cannot drift apart. Pure
(no I/O): the ticket's events are turned into timeline steps as quality's projection does."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from careops_sla import default_policy
from quality import domain as q
from ticketing import domain as tk

POLICY = default_policy()
T0 = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)  # a Monday, before Shanghai office hours end


def random_command(rng: random.Random) -> tk.Command:
    choices: list[tk.Command] = [
        tk.AddReply(tk.Author.AGENT, "agent-li", "hello"),
        tk.AddReply(tk.Author.CUSTOMER, "C-1", "more"),
        tk.AddReply(tk.Author.AGENT, "agent-li", "an internal note", internal=True),
        tk.HoldTicket(tk.HoldReason.WAITING_CUSTOMER),
        tk.HoldTicket(tk.HoldReason.WAITING_THIRD_PARTY),
        tk.ResumeTicket(),
        tk.ChangePriority(rng.choice(list(tk.Priority))),
        tk.ResolveTicket("done"),
        tk.ReopenTicket("again"),
        tk.FireSlaTimer(rng.choice(list(tk.SlaClock)), tk.SlaTimerKind.BREACH),
    ]
    return rng.choice(choices)


def history(rng: random.Random, channel: tk.Channel) -> tuple[tk.Ticket, list[q.TimelineStep]]:
    """Runs random commands through ticketing; returns its state and quality's timeline."""
    at = T0
    priority = rng.choice(list(tk.Priority))
    opening = tk.OpenTicket("T-1", "C-1", channel, tk.TicketType.FAULT, priority, "broken")
    state = tk.initial("T-1")
    steps: list[q.TimelineStep] = []
    resolved_once = answered = False
    for command in [opening, *(random_command(rng) for _ in range(rng.randint(0, 12)))]:
        at += timedelta(minutes=rng.choice((0, 1, 2, 3, 5, 8, 13, 40, 600)))
        try:
            events = tk.decide(state, command, now=at, policy=POLICY)
        except tk.TicketError:
            continue
        for event in events:
            state = tk.evolve(state, event, at)
            match event:  # what quality's TicketFactsProjection records
                case tk.TicketOpened():
                    steps.append(q.TimelineStep(at, q.Step.OPENED, event.priority.value))
                case tk.ReplyAdded(author=tk.Author.AGENT, internal=False) if not (
                    answered or resolved_once
                ):
                    answered = True
                    steps.append(q.TimelineStep(at, q.Step.AGENT_REPLY))
                case tk.PriorityChanged():
                    steps.append(q.TimelineStep(at, q.Step.PRIORITY, event.to_priority.value))
                case tk.TicketHeld(clocks_paused=True):
                    steps.append(q.TimelineStep(at, q.Step.PAUSED))
                case tk.TicketResumed():
                    steps.append(q.TimelineStep(at, q.Step.RESUMED))
                case tk.TicketResolved():
                    resolved_once = True
                    steps.append(q.TimelineStep(at, q.Step.RESOLVED))
                case tk.TicketReopened():
                    steps.append(q.TimelineStep(at, q.Step.REOPENED))
    return state, steps


@pytest.mark.parametrize("channel", [tk.Channel.CHAT, tk.Channel.EMAIL])
def test_the_replay_under_the_policy_in_force_gives_ticketing_s_outcomes(
    channel: tk.Channel,
) -> None:
    rng = random.Random(f"sla-agreement-{channel.value}")
    calendar = POLICY.calendar_for(channel=channel.value)
    for case in range(300):
        state, steps = history(rng, channel)
        as_of = (state.updated_at or T0) + timedelta(minutes=rng.choice((0, 30, 600)))
        replayed = q.replay_sla(
            channel=channel.value,
            priority=steps[0].value,
            tier="regular",
            steps=steps,
            policy=POLICY,
            as_of=as_of,
        )
        first = state.clocks[tk.SlaClock.FIRST_RESPONSE]
        resolution = state.clocks[tk.SlaClock.RESOLUTION]
        answered = any(step.step is q.Step.AGENT_REPLY for step in steps)
        recorded = q.TicketSla(
            responded=answered,
            first_response_breached=first.is_breached(as_of, calendar),
            resolved=resolution.stopped_at is not None,
            resolution_breached=resolution.is_breached(as_of, calendar),
        )
        assert replayed == recorded, (case, steps)
        # The agent reply quality counts is the one ticketing stopped the clock with.
        assert answered == (state.first_responded_at is not None)
