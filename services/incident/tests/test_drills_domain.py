"""Pure tests of drills: scenarios and their bars, schedules and recurrence, runs, reports."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from incident import domain as d
from incident.tests.test_domain import MATRIX, RISK, TEAMS

T0 = datetime(2026, 3, 31, 2, 0, tzinfo=UTC)
SCENARIOS = {s.scenario_id: s for s in d.DEFAULT_SCENARIOS}
TYPES = frozenset({"server_crash", "service_outage", "major_product_accident"})


def scheduled(
    scenario_id: str = "multi_channel_outage",
    recurrence: d.Recurrence = d.Recurrence.ONCE,
    at: datetime = T0,
) -> d.Drill:
    state = d.initial_drill("D-1")
    for event in d.decide_schedule(
        state,
        SCENARIOS[scenario_id],
        scenario_id,
        at,
        recurrence,
        TYPES,
        scenarios_version=3,
        now=at - timedelta(days=1),
    ):
        state = d.evolve_drill(state, event, at)
    return state


def apply(state: d.Drill, events: list[d.DrillEvent], at: datetime = T0) -> d.Drill:
    for event in events:
        state = d.evolve_drill(state, event, at)
    return state


def incident(drill: d.Drill, run: int = 0, *, type_: str = "server_crash") -> d.Incident:
    """The drill incident a run declares (through the incident domain itself)."""
    scenario = replace(SCENARIOS["multi_channel_outage"], incident_type=type_)
    context = d.Context(now=T0, risk=RISK, matrix=MATRIX, teams=TEAMS)
    state = d.initial(drill.run_id(run))
    command = d.DeclareIncident(
        drill.run_id(run), scenario.incident_type, "Drill", factors=scenario.factors, drill=True
    )
    for event in d.decide(state, command, context):
        state = d.evolve(state, event, T0)
    return state


def acknowledge(state: d.Incident, team_id: str, at: datetime) -> d.Incident:
    page = next(p for p in state.pages.values() if p.team_id == team_id)
    return d.evolve(state, d.PageAcknowledged(page.page_id, page.member_id), at)


def test_the_default_scenarios_carry_the_documents_targets() -> None:
    assert d.validate_scenarios(d.DEFAULT_SCENARIOS) == []
    single = SCENARIOS["single_point_failure"].targets[0]
    assert (single.kind, single.target, single.fraction, single.bar) == (
        d.TargetKind.RECOVERY,
        60,
        0.9,
        54.0,
    )
    assert SCENARIOS["campaign_crisis"].targets[0].bar == 0.85
    assert SCENARIOS["multi_channel_outage"].targets[0].bar == 120


def test_invalid_scenarios_name_their_fields() -> None:
    bad = d.DrillScenario(
        "Bad Id",
        "",
        "server_crash",
        d.RiskFactors(core_system=2),
        (
            d.DrillTarget(d.TargetKind.REPUTATION_RECOVERY, 1.5),
            d.DrillTarget(None, 10, 0),
        ),
    )
    fields = {name for name, _ in d.validate_scenarios([bad])}
    assert fields == {
        "scenarios[0].scenario_id",
        "scenarios[0].title",
        "scenarios[0].factors.core_system",
        "scenarios[0].targets[0].target",
        "scenarios[0].targets[1].kind",
        "scenarios[0].targets[1].fraction",
    }


def test_schedule_validates_scenario_time_and_matrix_type() -> None:
    state = d.initial_drill("D-1")
    with pytest.raises(d.InvalidCommand) as refused:
        d.decide_schedule(
            state, None, "nope", T0 - timedelta(seconds=1), None, TYPES, scenarios_version=1, now=T0
        )
    assert {name for name, _ in refused.value.violations} == {"scenario_id", "at"}
    with pytest.raises(d.InvalidCommand):
        d.decide_schedule(
            state,
            SCENARIOS["campaign_crisis"],
            "campaign_crisis",
            T0,
            None,
            frozenset({"server_crash"}),
            scenarios_version=1,
            now=T0,
        )
    with pytest.raises(d.IllegalTransition):
        d.decide_schedule(
            scheduled(), SCENARIOS["campaign_crisis"], "x", T0, None, TYPES,
            scenarios_version=1, now=T0,
        )  # fmt: skip


def test_nothing_is_due_before_the_time_and_a_run_is_recorded_once() -> None:
    state = scheduled()
    assert d.due_run(state, T0 - timedelta(seconds=1)) is None
    assert d.due_run(state, T0) == 0
    events = d.decide_run(state, 0, T0, declared=True)
    assert events == [d.DrillRunStarted(0, "D-1-r0", T0, None)]
    state = apply(state, events)
    assert state.status is d.DrillStatus.DONE and d.due_run(state, T0 + timedelta(days=9)) is None
    assert d.decide_run(state, 0, T0, declared=True) == []  # a second replica's retry


def test_recurrence_moves_by_calendar_months_and_skips_missed_occurrences() -> None:
    assert d.next_due(T0, d.Recurrence.MONTHLY, T0) == datetime(2026, 4, 30, 2, 0, tzinfo=UTC)
    assert d.next_due(T0, d.Recurrence.QUARTERLY, T0) == datetime(2026, 6, 30, 2, 0, tzinfo=UTC)
    assert d.next_due(T0, d.Recurrence.YEARLY, T0) == datetime(2027, 3, 31, 2, 0, tzinfo=UTC)
    assert d.next_due(T0, d.Recurrence.ONCE, T0) is None
    late = T0 + timedelta(days=75)  # down through the runs of 30 April and 31 May
    assert d.next_due(T0, d.Recurrence.MONTHLY, late) == datetime(2026, 6, 30, 2, 0, tzinfo=UTC)
    state = scheduled(recurrence=d.Recurrence.MONTHLY)
    state = apply(state, d.decide_run(state, 0, T0, declared=True))
    assert state.status is d.DrillStatus.SCHEDULED
    assert state.next_due_at == datetime(2026, 4, 30, 2, 0, tzinfo=UTC)
    assert d.due_run(state, datetime(2026, 4, 30, 2, 0, tzinfo=UTC)) == 1
    state = apply(
        state, d.decide_run(state, 1, datetime(2026, 4, 30, 2, 0, tzinfo=UTC), declared=True)
    )
    assert state.next_due_at == datetime(2026, 5, 31, 2, 0, tzinfo=UTC)  # no drift to the 30th


def test_a_failed_run_is_recorded_and_the_next_one_stays_scheduled() -> None:
    state = scheduled(recurrence=d.Recurrence.YEARLY)
    events = d.decide_run(state, 0, T0, declared=False, error="type: unknown incident type")
    assert isinstance(events[0], d.DrillRunFailed)
    state = apply(state, events)
    assert state.runs[0].error and state.next_due_at is not None
    with pytest.raises(d.NotFound):
        d.run_of(state)


def test_cancel() -> None:
    state = apply(scheduled(), [d.DrillCancelled("moved")])
    assert state.status is d.DrillStatus.CANCELLED and state.next_due_at is None
    assert d.due_run(state, T0) is None
    assert d.decide_cancel(state, "again") == []
    with pytest.raises(d.NotFound):
        d.decide_cancel(d.initial_drill("D-2"), "")
    done = scheduled()
    done = apply(done, d.decide_run(done, 0, T0, declared=True))
    with pytest.raises(d.IllegalTransition):
        d.decide_cancel(done, "")


def test_joint_response_report_is_the_slowest_paged_teams_first_acknowledgement() -> None:
    drill = scheduled()
    drill = apply(drill, d.decide_run(drill, 0, T0, declared=True))
    state = incident(drill)
    run = d.run_of(drill)
    # Technical support (red) and customer service (yellow) are paged; brand PR only informed.
    pending = d.report(drill, state, run, T0 + timedelta(minutes=30))
    assert [t.team_id for t in pending.teams] == ["technical_support", "customer_service"]
    assert pending.targets[0].outcome is d.Outcome.PENDING
    assert pending.targets[0].note == "waiting for technical_support, customer_service"
    state = acknowledge(state, "technical_support", T0 + timedelta(minutes=12))
    state = acknowledge(state, "customer_service", T0 + timedelta(minutes=95))
    met = d.report(drill, state, run, T0 + timedelta(hours=5))
    assert [t.minutes for t in met.teams] == [12.0, 95.0]
    result = met.targets[0]
    assert (result.kind, result.bar, result.achieved, result.outcome) == (
        d.TargetKind.JOINT_RESPONSE,
        120,
        95.0,
        d.Outcome.MET,
    )
    assert met.met


def test_joint_response_is_missed_once_the_bar_passed_without_every_team() -> None:
    drill = scheduled()
    drill = apply(drill, d.decide_run(drill, 0, T0, declared=True))
    state = acknowledge(incident(drill), "technical_support", T0 + timedelta(minutes=1))
    result = d.report(drill, state, d.run_of(drill), T0 + timedelta(minutes=121)).targets[0]
    assert (result.achieved, result.outcome) == (None, d.Outcome.MISSED)
    state = acknowledge(state, "customer_service", T0 + timedelta(minutes=121))
    result = d.report(drill, state, d.run_of(drill), T0 + timedelta(minutes=122)).targets[0]
    assert (result.achieved, result.outcome) == (121.0, d.Outcome.MISSED)


@pytest.mark.parametrize(("minutes", "outcome"), [(54, d.Outcome.MET), (55, d.Outcome.MISSED)])
def test_recovery_within_90_percent_of_target(minutes: int, outcome: d.Outcome) -> None:
    drill = scheduled("single_point_failure")
    drill = apply(drill, d.decide_run(drill, 0, T0, declared=True))
    state = incident(drill)
    state = d.evolve(state, d.IncidentResolved("back"), T0 + timedelta(minutes=minutes))
    result = d.report(drill, state, d.run_of(drill), T0 + timedelta(hours=2)).targets[0]
    assert (result.bar, result.achieved, result.outcome) == (54.0, float(minutes), outcome)


def test_reputation_recovery_is_the_recorded_figure() -> None:
    drill = scheduled("campaign_crisis")
    drill = apply(drill, d.decide_run(drill, 0, T0, declared=True))
    state = incident(drill)
    report = d.report(drill, state, d.run_of(drill), T0 + timedelta(days=3))
    assert report.targets[0].outcome is d.Outcome.PENDING  # never "missed" for lack of a figure
    with pytest.raises(d.InvalidCommand):
        d.decide_figure(drill, "", d.TargetKind.RECOVERY, 0.5)
    with pytest.raises(d.InvalidCommand):
        d.decide_figure(drill, "", d.TargetKind.REPUTATION_RECOVERY, 1.2)
    with pytest.raises(d.NotFound):
        d.decide_figure(drill, "D-1-r9", d.TargetKind.REPUTATION_RECOVERY, 0.9)
    for value, outcome in ((0.84, d.Outcome.MISSED), (0.85, d.Outcome.MET)):
        drill = apply(drill, d.decide_figure(drill, "", d.TargetKind.REPUTATION_RECOVERY, value))
        result = d.report(drill, state, d.run_of(drill), T0).targets[0]
        assert (result.achieved, result.outcome) == (value, outcome)
    assert d.decide_figure(drill, "D-1-r0", d.TargetKind.REPUTATION_RECOVERY, 0.85) == []
