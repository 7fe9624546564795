"""The risk policy document and the what-if replay, pure: no log, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from careops_platform.config_files import ConfigError

from incident import config
from incident import domain as d
from incident.domain import whatif

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
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
    7,
)
CORE = d.RiskFactors(core_system=1.0)


def test_the_risk_document_round_trips_the_settings_model() -> None:
    model = config.risk_model("risk-x", (0.4, 0.3, 0.2, 0.1), (0.7, 0.4))
    assert config.parse_risk_policy(config.risk_document(model)) == model
    assert config.parse_risk_policy(config.risk_document(d.RiskModel())) == d.RiskModel()


@pytest.mark.parametrize(
    ("change", "starts_with"),
    [
        ("weights:\n  scope: 0.5\n", "weights.business: missing"),
        ("thresholds: {a: 0.3, b: 0.4}\n", "thresholds.a: must be above"),
        ("response_minutes: {a: 60, b: 30, c: 15}\n", "response_minutes: a higher level"),
        ("response_minutes: {a: 0}\n", "response_minutes.a:"),
        ("scope_saturation_users: 0\n", "scope_saturation_users:"),
    ],
)
def test_a_bad_risk_document_names_its_key(change: str, starts_with: str) -> None:
    base = config.risk_document(d.RiskModel()).splitlines(keepends=True)
    key = change.split(":", 1)[0]
    kept = []
    skipping = False
    for line in base:
        if not line.startswith(" "):
            skipping = line.startswith(key + ":")
        if not skipping:
            kept.append(line)
    with pytest.raises(config.RiskPolicyError) as refused:
        config.parse_risk_policy("".join(kept) + change)
    assert str(refused.value).startswith(starts_with)


def test_the_settings_weights_must_sum_to_one() -> None:
    with pytest.raises(ConfigError, match="^weights: the four weights must sum to 1"):
        config.risk_model("risk-x", (0.4, 0.3, 0.2, 0.2), (0.7, 0.4))


def assessments(
    *events: d.IncidentDeclared | d.IncidentReassessed | d.IncidentEscalated,
    risk: d.RiskModel,
    matrix: d.Matrix = MATRIX,
) -> list[tuple[whatif.Assessment, whatif.Policies]]:
    return [
        (whatif.Assessment(AT + timedelta(minutes=n), event), (risk, matrix))
        for n, event in enumerate(events)
    ]


def declared(factors: d.RiskFactors, model: d.RiskModel) -> d.IncidentDeclared:
    index = model.index(factors)
    level = model.level(index)
    return d.IncidentDeclared(
        incident_id="i-1",
        type="server_crash",
        title="Checkout down",
        description="",
        source=d.Source.MANUAL,
        factors=factors,
        risk_index=index,
        level=level,
        drill=False,
        response_due_at=model.response_due(level, AT),
        matrix_version=MATRIX.version,
    )


def test_replaying_under_the_deciding_policies_gives_what_happened() -> None:
    model = d.RiskModel()
    ctx = d.Context(now=AT, risk=model, matrix=MATRIX, teams={})
    command = d.DeclareIncident("i-1", "server_crash", "Checkout down", factors=CORE)
    state = d.initial("i-1")
    for event in d.decide(state, command, ctx):
        state = d.evolve(state, event, AT)
    replayed = whatif.replay("i-1", assessments(declared(CORE, model), risk=model))
    assert replayed is not None and not whatif.differs(whatif.Outcome.of(state), replayed)
    assert replayed.level is d.Level.C and replayed.paged == ("technical_support",)


def test_an_escalation_by_hand_is_replayed_and_stops_at_level_a() -> None:
    model = d.RiskModel()
    heavy = d.RiskModel(version="heavy", business_weight=0.7, scope_weight=0.0)
    escalate = d.IncidentEscalated(d.Level.C, d.Level.B, "customers shouting", AT)
    replayed = whatif.replay("i-1", assessments(declared(CORE, model), escalate, risk=model))
    assert replayed is not None and replayed.level is d.Level.B
    assert replayed.paged == ("customer_service", "technical_support")
    higher = whatif.replay("i-1", assessments(declared(CORE, model), escalate, risk=heavy))
    assert higher is not None and higher.level is d.Level.A  # A from the weights; no higher


def test_a_reassessment_is_rated_under_the_draft_too() -> None:
    model = d.RiskModel()
    reassessed = d.IncidentReassessed(
        d.RiskFactors(users_affected=100_000, core_system=1.0), 0.7, d.Level.C, d.Level.A, "x", AT
    )
    draft = d.RiskModel(version="strict", level_a_threshold=0.95, level_b_threshold=0.5)
    replayed = whatif.replay("i-1", assessments(declared(CORE, model), reassessed, risk=draft))
    assert replayed is not None and replayed.level is d.Level.B


def test_a_draft_matrix_without_the_type_engages_nobody() -> None:
    model = d.RiskModel()
    other = d.Matrix({"outage": MATRIX.rows["server_crash"]}, 0)
    replayed = whatif.replay("i-1", assessments(declared(CORE, model), risk=model, matrix=other))
    assert replayed is not None and not replayed.type_in_matrix and replayed.teams == {}


def test_an_extra_team_and_level_floor_are_replayed_from_the_declaration() -> None:
    model = d.RiskModel()
    extra = (d.MatrixCell("brand_pr", d.Engagement.RED),)
    ctx = d.Context(now=AT, risk=model, matrix=MATRIX, teams={})
    command = d.DeclareIncident(
        "i-1",
        "server_crash",
        "Checkout down",
        factors=CORE,
        extra_teams=extra,
        level_floor=d.Level.B,
    )
    state = d.initial("i-1")
    events = d.decide(state, command, ctx)
    for event in events:
        state = d.evolve(state, event, AT)
    recorded = events[0]
    assert isinstance(recorded, d.IncidentDeclared)
    replayed = whatif.replay("i-1", assessments(recorded, risk=model))
    assert replayed is not None and not whatif.differs(whatif.Outcome.of(state), replayed)
    assert replayed.level is d.Level.B and "brand_pr" in replayed.paged
