"""Emotion steers service (DOMAIN §4): what decide does with a customer message's emotion."""

from __future__ import annotations

from datetime import timedelta

from careops_emotion import Emotion

from ticketing import domain as d
from ticketing.domain.decide import ANGRY_REASON
from ticketing.domain.routing import Agent
from ticketing.tests.test_domain import POLICY, T0, opened, run


def customer(body: str) -> d.AddReply:
    return d.AddReply(d.Author.CUSTOMER, "C-1", body)


def test_an_angry_reply_raises_the_priority_one_step_each_time() -> None:
    state = opened()
    state, events = run(state, customer("This is unacceptable, I am furious"), T0)
    assert isinstance(events[0], d.ReplyAdded) and events[0].emotion is Emotion.ANGRY
    changed = [e for e in events if isinstance(e, d.PriorityChanged)]
    assert [(e.from_priority, e.to_priority, e.reason) for e in changed] == [
        (d.Priority.NORMAL, d.Priority.HIGH, ANGRY_REASON)
    ]
    state, _ = run(state, customer("太差了，我要投诉！"), T0 + timedelta(seconds=1))
    assert state.priority is d.Priority.URGENT and state.angry_customer
    state, events = run(state, customer("Still furious"), T0 + timedelta(seconds=2))
    assert not [e for e in events if isinstance(e, d.PriorityChanged)]  # urgent is the top


def test_an_angry_subject_raises_the_priority_at_open() -> None:
    events = d.decide(
        d.initial("T-9"),
        d.OpenTicket(
            "T-9",
            "C-1",
            d.Channel.CHAT,
            d.TicketType.FAULT,
            d.Priority.NORMAL,
            "你们太过分了，我要投诉！",
        ),
        now=T0,
        policy=POLICY,
    )
    assert [type(e) for e in events] == [d.TicketOpened, d.PriorityChanged]
    assert isinstance(events[0], d.TicketOpened) and events[0].emotion is Emotion.ANGRY


def test_anxious_asks_for_a_detailed_explanation_and_satisfied_invites_a_survey() -> None:
    state, _ = run(opened(), customer("订单还没到，我很着急，怎么办"), T0)
    assert state.detailed_explanation_requested and not state.survey_invited
    assert state.priority is d.Priority.NORMAL
    state, _ = run(state, customer("Thank you, excellent and quick support"), T0)
    assert state.survey_invited and state.emotion is Emotion.SATISFIED


def test_not_happy_at_all_is_no_survey_invitation() -> None:
    state, _ = run(opened(), customer("I am not happy at all"), T0)
    assert not state.survey_invited and state.emotion is not Emotion.SATISFIED


def test_agent_replies_and_notes_carry_no_emotion() -> None:
    _, events = run(opened(), d.AddReply(d.Author.AGENT, "A-1", "I am furious too"), T0)
    assert all(getattr(e, "emotion", None) is None for e in events)
    assert not [e for e in events if isinstance(e, d.PriorityChanged)]


def test_an_angry_customers_ticket_goes_to_a_senior_agent_only() -> None:
    state, _ = run(opened(), customer("This is unacceptable"), T0)
    junior = Agent("junior", frozenset({"fault", "chat"}))
    senior = Agent("senior", frozenset({"fault", "chat", "senior"}))
    assert not junior.can_take(state, 1) and senior.can_take(state, 1)
    assert junior.can_take(opened(), 1)
