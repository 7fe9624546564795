"""Pure tests of incidents: risk index, levels, matrix engagement, on-call and escalation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from incident import domain as d

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, a Monday
RISK = d.RiskModel()


def team(team_id: str, *members: str, wait: int = 60, repeat: int = 1) -> d.Team:
    return d.Team(
        team_id=team_id,
        members=tuple(
            d.Member(m, contacts=(d.ContactPoint(d.ContactKind.WEBHOOK, f"http://x/{m}"),))
            for m in members
        ),
        rotation=d.Rotation(members, "09:00", "Asia/Shanghai", 7, "2026-03-02"),
        escalation=d.EscalationPolicy(
            (d.EscalationStep("oncall", wait), d.EscalationStep("next", wait)), repeat
        ),
        manager_id=members[-1],
    )


TEAMS = {
    "technical_support": team("technical_support", "ts-a", "ts-b"),
    "customer_service": team("customer_service", "cs-a", "cs-b"),
    "brand_pr": team("brand_pr", "pr-a"),
}
MATRIX = d.Matrix(
    {
        "server_crash": d.MatrixRow(
            "server_crash",
            "Server crash",
            (
                d.MatrixCell("technical_support", d.Engagement.RED),
                d.MatrixCell("customer_service", d.Engagement.YELLOW),
                d.MatrixCell("brand_pr", d.Engagement.GREY),
            ),
        )
    },
    version=7,
)
SEVERE = d.RiskFactors(
    users_affected=100_000,
    core_system=1.0,
    elapsed_minutes=60,
    average_handling_minutes=60,
    exposure=0.5,
)
MINOR = d.RiskFactors(users_affected=10, core_system=0.2, elapsed_minutes=5, exposure=0.0)


def ctx(at: datetime = T0) -> d.Context:
    return d.Context(now=at, risk=RISK, matrix=MATRIX, teams=TEAMS)


def run(
    state: d.Incident, command: d.Command, at: datetime
) -> tuple[d.Incident, list[d.IncidentEvent]]:
    events = d.decide(state, command, ctx(at))
    for event in events:
        state = d.evolve(state, event, at)
    return state, events


def declare(
    factors: d.RiskFactors = SEVERE, **extra: object
) -> tuple[d.Incident, list[d.IncidentEvent]]:
    command = d.DeclareIncident("I-1", "server_crash", "Core DB down", factors=factors, **extra)  # type: ignore[arg-type]
    return run(d.initial("I-1"), command, T0)


def test_risk_index_uses_the_documents_weights() -> None:
    x = RISK.normalised(SEVERE)
    assert x == {"scope": 1.0, "business": 1.0, "timeliness": 1.0, "exposure": 0.5}
    assert RISK.index(SEVERE) == pytest.approx(0.4 + 0.3 + 0.2 + 0.05)
    assert RISK.level(RISK.index(SEVERE)) is d.Level.A
    assert RISK.level(0.5) is d.Level.B
    assert RISK.level(RISK.index(MINOR)) is d.Level.C


def test_level_sets_the_response_deadline() -> None:
    state, _ = declare()
    assert state.level is d.Level.A
    assert state.response_due_at == T0 + timedelta(minutes=15)
    minor, _ = declare(MINOR)
    assert minor.response_due_at == T0 + timedelta(minutes=60)


def test_level_a_server_crash_engages_teams_as_the_matrix_says() -> None:
    state, events = declare()
    pages = [e for e in events if isinstance(e, d.PageRequested)]
    informed = [e for e in events if isinstance(e, d.TeamInformed)]
    assert [(p.team_id, p.member_id, p.engagement) for p in pages] == [
        ("technical_support", "ts-a", d.Engagement.RED),
        ("customer_service", "cs-a", d.Engagement.YELLOW),
    ]
    assert [i.team_id for i in informed] == ["brand_pr"]
    assert pages[0].contacts == (d.ContactPoint(d.ContactKind.WEBHOOK, "http://x/ts-a"),)
    assert state.matrix_version == 7


def test_level_c_pages_only_the_red_team() -> None:
    _, events = declare(MINOR)
    paged = [e.team_id for e in events if isinstance(e, d.PageRequested)]
    informed = sorted(e.team_id for e in events if isinstance(e, d.TeamInformed))
    assert paged == ["technical_support"]
    assert informed == ["brand_pr", "customer_service"]


def test_raising_the_level_pages_teams_that_were_only_informed() -> None:
    state, _ = declare(MINOR)
    state, events = run(state, d.EscalateIncident("spreading"), T0 + timedelta(minutes=5))
    assert state.level is d.Level.B
    assert [e.team_id for e in events if isinstance(e, d.PageRequested)] == ["customer_service"]
    assert state.response_due_at == T0 + timedelta(minutes=30)


def test_unacknowledged_page_escalates_through_the_chain_then_stops() -> None:
    state, _ = declare()
    first = "I-1-p0"
    assert d.decide(state, d.FirePageTimer(first), ctx(T0 + timedelta(seconds=59))) == []
    state, events = run(state, d.FirePageTimer(first), T0 + timedelta(seconds=60))
    assert isinstance(events[0], d.PageEscalated)
    nxt = events[1]
    assert isinstance(nxt, d.PageRequested) and nxt.member_id == "ts-b" and nxt.step == 1
    # The same timer again (a second replica, a restart): nothing more.
    assert d.decide(state, d.FirePageTimer(first), ctx(T0 + timedelta(seconds=61))) == []
    state, events = run(state, d.FirePageTimer(nxt.page_id), T0 + timedelta(seconds=120))
    assert [type(e) for e in events] == [d.PageEscalated, d.EscalationExhausted]


def test_acknowledgement_stops_the_chain() -> None:
    state, _ = declare()
    state, _ = run(state, d.AcknowledgePage("I-1-p0", "ts-a"), T0 + timedelta(seconds=10))
    assert state.status is d.Status.ACKNOWLEDGED
    assert d.decide(state, d.FirePageTimer("I-1-p0"), ctx(T0 + timedelta(minutes=5))) == []
    assert d.decide(state, d.FireResponseTimer(), ctx(T0 + timedelta(minutes=20))) == []


def test_missed_response_deadline_is_an_event_once() -> None:
    state, _ = declare()
    state, events = run(state, d.FireResponseTimer(), T0 + timedelta(minutes=15))
    assert events == [d.ResponseDeadlineMissed(d.Level.A, T0 + timedelta(minutes=15))]
    assert d.decide(state, d.FireResponseTimer(), ctx(T0 + timedelta(minutes=16))) == []


def test_rotation_hands_off_weekly_in_the_team_time_zone_and_overrides_win() -> None:
    ts = TEAMS["technical_support"]
    assert ts.on_call(T0) == "ts-a"
    assert ts.on_call(T0 + timedelta(days=7) - timedelta(minutes=1)) == "ts-a"
    assert ts.on_call(T0 + timedelta(days=7)) == "ts-b"
    assert ts.on_call(T0 + timedelta(days=14)) == "ts-a"
    covered = d.Team(
        **{**ts.__dict__, "overrides": (d.Override("ts-b", T0, T0 + timedelta(hours=1)),)}
    )
    assert covered.on_call(T0 + timedelta(minutes=30)) == "ts-b"
    assert covered.on_call(T0 + timedelta(hours=2)) == "ts-a"


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (d.DeclareIncident("I-2", "alien_invasion", "x"), "type"),
        (d.DeclareIncident("I-2", "server_crash", ""), "title"),
        (
            d.DeclareIncident("I-2", "server_crash", "x", factors=d.RiskFactors(users_affected=-5)),
            "factors.users_affected",
        ),
        (
            d.DeclareIncident("I-2", "server_crash", "x", factors=d.RiskFactors(exposure=1.5)),
            "factors.exposure",
        ),
    ],
)
def test_bad_declarations_name_the_field(command: d.DeclareIncident, field: str) -> None:
    with pytest.raises(d.InvalidCommand) as caught:
        d.decide(d.initial("I-2"), command, ctx())
    assert field in {name for name, _ in caught.value.violations}


def test_unknown_page_is_not_found_and_close_needs_a_review() -> None:
    state, _ = declare()
    with pytest.raises(d.NotFound):
        d.decide(state, d.AcknowledgePage("I-1-p99", "ts-a"), ctx())
    state, _ = run(state, d.ResolveIncident("restarted"), T0)
    with pytest.raises(d.InvalidCommand):
        d.decide(state, d.CloseIncident(d.PostIncidentReview("")), ctx())
    review = d.PostIncidentReview("disk full", ("alert on disk",), "KB-1")
    state, _ = run(state, d.CloseIncident(review), T0)
    assert state.status is d.Status.CLOSED and state.review == review


def test_matrix_naming_an_unknown_team_is_rejected() -> None:
    rows = [d.MatrixRow("server_crash", "", (d.MatrixCell("ghosts", d.Engagement.RED),))]
    with pytest.raises(d.InvalidCommand, match="ghosts"):
        d.decide_matrix(d.Matrix(), rows, set(TEAMS))


@pytest.mark.parametrize(
    ("team", "field"),
    [
        (d.Team("ops\n", members=(d.Member("m1"),)), "team.team_id"),
        (d.Team("ops", members=(d.Member("m1"),), rotation=d.Rotation(("m1",), "09:00\n")), ""),
    ],
)
def test_a_trailing_newline_is_not_a_valid_team_id_or_handoff(team: d.Team, field: str) -> None:
    violations = d.validate_team(team)
    assert violations and (not field or violations[0][0] == field)


def test_record_deliveries_records_each_kind_once_as_record_delivery_would() -> None:
    state, _ = declare()
    page = "I-1-p0"
    state, events = run(
        state, d.RecordDelivery(page, d.ContactKind.WEBHOOK, 1), T0 + timedelta(seconds=1)
    )
    outcomes = (
        d.DeliveryOutcome(d.ContactKind.WEBHOOK, 2),  # already recorded: skipped
        d.DeliveryOutcome(d.ContactKind.EMAIL, 4, "SMTP: 451"),
        d.DeliveryOutcome(d.ContactKind.EMAIL, 1),  # a second outcome of a kind: the first wins
        d.DeliveryOutcome(d.ContactKind.PAGERDUTY, 1),
    )
    state, events = run(state, d.RecordDeliveries(page, outcomes), T0 + timedelta(seconds=2))
    assert events == [
        d.NotificationFailed(page, d.ContactKind.EMAIL, 4, "SMTP: 451"),
        d.NotificationDelivered(page, d.ContactKind.PAGERDUTY, 1),
    ]
    assert state.deliveries_of(page) == {
        d.ContactKind.WEBHOOK: d.Delivery(True, 1, ""),
        d.ContactKind.EMAIL: d.Delivery(False, 4, "SMTP: 451"),
        d.ContactKind.PAGERDUTY: d.Delivery(True, 1, ""),
    }
    assert d.decide(state, d.RecordDeliveries(page, outcomes), ctx()) == []
    with pytest.raises(d.NotFound):
        d.decide(state, d.RecordDeliveries("I-1-p9", outcomes), ctx())


def test_a_batch_of_outcomes_records_each_notice_as_its_own_record_deliveries_would() -> None:
    state, events = declare()
    pages = [e.page_id for e in events if isinstance(e, d.PageRequested)]
    first, second = pages[0], pages[1]
    webhook = d.DeliveryOutcome(d.ContactKind.WEBHOOK, 1)
    failed = d.DeliveryOutcome(d.ContactKind.EMAIL, 4, "SMTP: 451")
    batch = d.RecordDeliveryBatch(
        (d.RecordDeliveries(first, (webhook,)), d.RecordDeliveries(second, (failed, webhook)))
    )
    at = T0 + timedelta(seconds=2)
    alone = d.initial("I-1")
    for event in events:
        alone = d.evolve(alone, event, T0)
    one_by_one = []
    for notice in batch.notices:
        alone, recorded = run(alone, notice, at)
        one_by_one += recorded
    state, recorded = run(state, batch, at)
    assert recorded == one_by_one
    assert state == alone
    assert d.decide(state, batch, ctx(at)) == []


# ----------------------------------------------------------------- extra teams and level floor

RED, YELLOW = d.Engagement.RED, d.Engagement.YELLOW


def test_a_level_floor_declares_at_least_at_it_and_the_first_pages_follow_it() -> None:
    state, events = declare(MINOR, level_floor=d.Level.A)
    declared = events[0]
    assert isinstance(declared, d.IncidentDeclared)
    assert declared.level is d.Level.A and declared.level_floor is d.Level.A
    assert declared.risk_index == RISK.index(MINOR)  # the assessment is recorded as it was
    assert declared.response_due_at == RISK.response_due(d.Level.A, T0)
    # Level A pages the yellow team at once (level C would only have informed it).
    assert state.teams["customer_service"].paged
    assert not any(isinstance(e, d.IncidentEscalated) for e in events)


def test_a_level_floor_below_the_assessed_level_changes_nothing() -> None:
    assessed, _ = declare(SEVERE)
    floored, _ = declare(SEVERE, level_floor=d.Level.C)
    assert floored.level is assessed.level is d.Level.A


def test_an_extra_team_is_engaged_besides_the_matrix_row() -> None:
    # brand_pr is grey in the row (informed): the extra red engagement pages it.
    state, events = declare(MINOR, extra_teams=(d.MatrixCell("brand_pr", RED),))
    engaged = [e for e in events if isinstance(e, d.TeamEngaged)]
    assert [e.team_id for e in engaged].count("brand_pr") == 1
    assert state.teams["brand_pr"] == d.TeamEngagement(RED, True)
    assert any(isinstance(e, d.PageRequested) and e.team_id == "brand_pr" for e in events)
    assert state.extra_teams == (d.MatrixCell("brand_pr", RED),)


def test_an_extra_yellow_team_is_paged_once_the_level_rises() -> None:
    teams = {**TEAMS, "security": team("security", "sec-a")}
    extra = (d.MatrixCell("security", YELLOW),)
    command = d.DeclareIncident("I-1", "server_crash", "x", factors=MINOR, extra_teams=extra)
    state = d.initial("I-1")
    for event in d.decide(state, command, d.Context(T0, RISK, MATRIX, teams)):
        state = d.evolve(state, event, T0)
    assert state.teams["security"] == d.TeamEngagement(YELLOW, False)  # level C: informed
    escalated = d.decide(state, d.EscalateIncident("worse"), d.Context(T0, RISK, MATRIX, teams))
    assert d.TeamEngaged("security", YELLOW, True) in escalated
    assert any(isinstance(e, d.PageRequested) and e.team_id == "security" for e in escalated)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ((d.MatrixCell("brand_pr", RED), d.MatrixCell("brand_pr", YELLOW)), "extra_teams"),
        ((d.MatrixCell("brand_pr", None),), "extra_teams[0].engagement"),
        ((d.MatrixCell("Not An Id", RED),), "extra_teams[0].team_id"),
    ],
)
def test_bad_extra_teams_are_refused(extra: tuple[d.MatrixCell, ...], field: str) -> None:
    with pytest.raises(d.InvalidCommand) as refused:
        declare(MINOR, extra_teams=extra)
    assert field in [name for name, _ in refused.value.violations]
