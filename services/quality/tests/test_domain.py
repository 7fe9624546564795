"""Survey decisions, the balanced score and the SLA replay, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from careops_emotion import Emotion
from careops_sla import default_policy

from quality import domain as d

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TICKET = d.TicketFacts("T-1", "C-1", "agent-li", "chat", "complaint", "high", resolved=True)


def submit(
    csat: int, nps: int | None = None, ticket: d.TicketFacts | None = TICKET
) -> d.SubmitSurvey:
    return d.SubmitSurvey(ticket, csat, nps, "", Emotion.NEUTRAL, 0.0)


def surveyed(csat: int, nps: int | None = None) -> d.Survey:
    state = d.initial("T-1")
    for event in d.decide(state, submit(csat, nps), now=NOW):
        state = d.evolve(state, event, NOW)
    return state


@pytest.mark.parametrize(
    ("csat", "nps", "negative"),
    [(5, None, False), (3, 7, False), (2, None, True), (4, 6, True), (1, 10, True), (3, 9, False)],
)
def test_negative_feedback_needs_a_follow_up_in_24_hours(
    csat: int, nps: int | None, negative: bool
) -> None:
    [event] = d.decide(d.initial("T-1"), submit(csat, nps), now=NOW)
    assert isinstance(event, d.SurveySubmitted)
    assert event.follow_up_required is negative
    assert event.follow_up_due_at == (NOW + timedelta(hours=24) if negative else None)
    assert (event.has_nps, event.nps) == (nps is not None, nps or 0)


def test_bad_answers_name_their_fields_before_anything_else() -> None:
    with pytest.raises(d.InvalidCommand) as error:
        d.decide(surveyed(5), submit(6, 11, ticket=None), now=NOW)
    assert [name for name, _ in error.value.violations] == ["csat", "nps"]


def test_unknown_ticket_then_second_survey_then_unresolved() -> None:
    with pytest.raises(d.TicketUnknown):
        d.decide(d.initial("T-1"), submit(4, ticket=None), now=NOW)
    with pytest.raises(d.SurveyAlreadySubmitted):
        d.decide(surveyed(4), submit(4), now=NOW)
    open_ticket = d.TicketFacts("T-1", "C-1", "", "chat", "fault", "low", resolved=False)
    with pytest.raises(d.IllegalTransition):
        d.decide(d.initial("T-1"), submit(4, ticket=open_ticket), now=NOW)


def test_follow_up_goes_overdue_once_and_is_recorded_late() -> None:
    state = surveyed(1)
    assert d.decide(state, d.MarkFollowUpOverdue(), now=NOW + timedelta(hours=23)) == []
    later = NOW + timedelta(hours=25)
    [overdue] = d.decide(state, d.MarkFollowUpOverdue(), now=later)
    state = d.evolve(state, overdue, later)
    assert d.decide(state, d.MarkFollowUpOverdue(), now=later) == []
    [recorded] = d.decide(state, d.RecordFollowUp("agent-li", "called", True), now=later)
    assert isinstance(recorded, d.FollowUpRecorded) and recorded.late
    state = d.evolve(state, recorded, later)
    with pytest.raises(d.IllegalTransition):
        d.decide(state, d.RecordFollowUp("agent-li", "again", True), now=later)
    with pytest.raises(d.IllegalTransition):
        d.decide(surveyed(5), d.RecordFollowUp("agent-li", "why", True), now=NOW)
    with pytest.raises(d.SurveyNotFound):
        d.decide(d.initial("T-9"), d.MarkFollowUpOverdue(), now=NOW)


def test_score_leaves_out_components_without_data() -> None:
    only_csat = d.Kpis(surveys=4, csat_satisfied_ratio=0.75)
    components = d.score_components(only_csat)
    assert [c.name for c in components if c.present] == ["csat"]
    assert d.quality_score(components) == 75.0
    assert d.quality_score(d.score_components(d.Kpis())) == 0.0


def steps(*items: tuple[float, d.Step, str]) -> list[d.TimelineStep]:
    return [d.TimelineStep(NOW + timedelta(minutes=m), step, value) for m, step, value in items]


def test_replay_pauses_while_waiting_for_the_customer_and_retargets_on_priority() -> None:
    policy = default_policy()  # chat: 24x7, first response 30 min (high: 15), resolution 24 h / 8 h
    # Paused from 10 to 100 min; the reply while paused is the first response (as in
    # ticketing): 10 min of the 30 min target, and nothing runs on after the resume.
    timeline = steps(
        (0, d.Step.OPENED, "normal"),
        (10, d.Step.PAUSED, ""),
        (25, d.Step.AGENT_REPLY, ""),
        (100, d.Step.RESUMED, ""),
        (105, d.Step.AGENT_REPLY, ""),
    )
    result = d.replay_sla(
        channel="chat",
        priority="normal",
        tier="regular",
        steps=timeline,
        policy=policy,
        as_of=NOW + timedelta(hours=2),
    )
    assert result.responded and not result.first_response_breached
    unpaused = steps((0, d.Step.OPENED, "normal"), (35, d.Step.AGENT_REPLY, ""))
    result = d.replay_sla(
        channel="chat",
        priority="normal",
        tier="regular",
        steps=unpaused,
        policy=policy,
        as_of=NOW + timedelta(hours=2),
    )
    assert result.responded and result.first_response_breached
    raised = steps((0, d.Step.OPENED, "normal"), (20, d.Step.PRIORITY, "high"))
    result = d.replay_sla(
        channel="chat",
        priority="normal",
        tier="regular",
        steps=raised,
        policy=policy,
        as_of=NOW + timedelta(minutes=21),
    )
    assert not result.responded and result.first_response_breached  # 20 min > 15 min (high)


def test_a_priority_change_after_the_first_reply_does_not_breach_it_afterwards() -> None:
    answered_then_raised = steps(
        (0, d.Step.OPENED, "normal"),
        (20, d.Step.AGENT_REPLY, ""),  # on time: 20 min < 30 min (normal)
        (40, d.Step.PRIORITY, "high"),  # 15 min for high: already answered, stays on time
    )
    result = d.replay_sla(
        channel="chat",
        priority="normal",
        tier="regular",
        steps=answered_then_raised,
        policy=default_policy(),
        as_of=NOW + timedelta(hours=1),
    )
    assert result.responded and not result.first_response_breached


def test_a_ticket_resolved_without_an_agent_reply_is_not_a_first_response() -> None:
    resolved_unanswered = steps((0, d.Step.OPENED, "normal"), (10, d.Step.RESOLVED, ""))
    result = d.replay_sla(
        channel="chat",
        priority="normal",
        tier="regular",
        steps=resolved_unanswered,
        policy=default_policy(),
        as_of=NOW + timedelta(hours=1),
    )
    assert result.resolved and not result.responded


def replay(*items: tuple[float, d.Step, str], hours: float = 2) -> d.TicketSla:
    return d.replay_sla(
        channel="chat",
        priority="normal",
        tier="regular",
        steps=steps(*items),
        policy=default_policy(),  # chat 24x7: first response 30 min, resolution 24 h
        as_of=NOW + timedelta(hours=hours),
    )


def test_a_reply_while_waiting_for_the_customer_answers_for_good() -> None:
    # Answered while paused at 20 min; resumed at 100 min, 30 min more would breach.
    result = replay(
        (0, d.Step.OPENED, "normal"),
        (10, d.Step.PAUSED, ""),
        (20, d.Step.AGENT_REPLY, ""),
        (100, d.Step.RESUMED, ""),
        hours=5,
    )
    assert result.responded and not result.first_response_breached


def test_an_agent_reply_after_the_resolution_is_not_a_first_response() -> None:
    result = replay(
        (0, d.Step.OPENED, "normal"),
        (10, d.Step.RESOLVED, ""),
        (50, d.Step.AGENT_REPLY, ""),
    )
    assert result.resolved and not result.responded and not result.first_response_breached


def test_a_priority_drop_after_the_due_time_does_not_undo_the_breach() -> None:
    # Due at 30 min; at 40 min the priority drops to low (first response 30 min x 2): the
    # breach timer had fired at 30 min in ticketing, so the replay counts the breach too.
    result = replay(
        (0, d.Step.OPENED, "normal"),
        (40, d.Step.PRIORITY, "low"),
        (45, d.Step.AGENT_REPLY, ""),
    )
    assert result.responded and result.first_response_breached


def test_sla_compliance_counts_a_breached_unanswered_ticket_as_due() -> None:
    unanswered = replay((0, d.Step.OPENED, "normal"), hours=1)
    assert unanswered.unanswered_breach and not unanswered.responded
    assert d.sla_compliance(on_time=1, first_responses=1, unanswered_breaches=1) == 0.5
    assert d.sla_compliance(on_time=0, first_responses=0, unanswered_breaches=0) == 0.0
    # A ticket not yet due is not counted.
    assert not replay((0, d.Step.OPENED, "normal"), hours=0.25).unanswered_breach
