"""The alert intake's pure decisions (incident.domain.intake): grouping, deduplication,
resolution, silences, maintenance windows, flapping, "N alerts within T", the webhook mapping."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from incident import config
from incident.domain import intake
from incident.domain.intake import (
    Action,
    Alert,
    AlertGroup,
    AlertGroupOpened,
    AlertGroupResolved,
    Integration,
    Outcome,
    SourceKind,
)
from incident.domain.matrix import MatrixCell
from incident.domain.values import Engagement

T0 = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
AM = SourceKind.ALERTMANAGER
PD = SourceKind.PAGERDUTY
PROM = Integration("prom", default=intake.Rule(type="server_crash"))


def alert(key: str, action: Action = Action.TRIGGER, group: str = "g1", **labels: str) -> Alert:
    return Alert(key, group, action, summary=f"{key} is down", labels=labels)


class Group:
    """One alert group driven through decide_alerts and evolve, as the application does."""

    def __init__(self, integration: Integration = PROM, key: str = "g1") -> None:
        self.integration = integration
        self.state = intake.initial_group(intake.group_id(integration.integration_id, key))
        self.events: list[intake.AlertGroupEvent] = []

    def send(
        self, alerts: Sequence[Alert], at: datetime = T0, source: SourceKind = AM
    ) -> list[Outcome]:
        decision = intake.decide_alerts(self.state, self.integration, source, alerts, at)
        for event in decision.events:
            self.state = intake.evolve_group(self.state, event, at)
        assert self.state == decision.state
        self.events += decision.events
        return [outcome for outcome, _ in decision.outcomes]


def test_three_alerts_of_one_group_open_one_incident() -> None:
    group = Group()
    outcomes = group.send([alert("a"), alert("b"), alert("c")])
    assert outcomes == [Outcome.OPENED, Outcome.GROUPED, Outcome.GROUPED]
    opened = [e for e in group.events if isinstance(e, AlertGroupOpened)]
    assert len(opened) == 1
    assert opened[0].incident_id == intake.incident_id_of("prom", "g1", 1)
    assert opened[0].incident_type == "server_crash"
    assert group.state.firing == {"a", "b", "c"}


def test_a_fingerprint_already_firing_is_a_duplicate_and_appends_nothing() -> None:
    group = Group()
    group.send([alert("a"), alert("b")])
    before = list(group.events)
    assert group.send([alert("a"), alert("b")]) == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert group.events == before


def test_the_incident_resolves_when_every_alert_it_opened_resolved() -> None:
    group = Group()
    group.send([alert("a"), alert("b"), alert("c")])
    incident_id = group.state.incident_id
    assert group.send([alert("a", Action.RESOLVE), alert("b", Action.RESOLVE)]) == [
        Outcome.RESOLVED,
        Outcome.RESOLVED,
    ]
    assert group.state.open
    group.send([alert("c", Action.RESOLVE)])
    assert not group.state.open
    assert group.state.last_resolved == incident_id
    assert isinstance(group.events[-1], AlertGroupResolved)
    # Alertmanager sends the resolved alerts again: nothing more.
    assert group.send([alert("c", Action.RESOLVE)]) == [Outcome.DUPLICATE]


def test_an_alert_after_the_episode_ended_opens_the_next_incident() -> None:
    group = Group()
    group.send([alert("a")])
    group.send([alert("a", Action.RESOLVE)])
    assert group.send([alert("a")], T0 + timedelta(minutes=5)) == [Outcome.OPENED]
    assert group.state.episode == 2
    assert group.state.incident_id == intake.incident_id_of("prom", "g1", 2)


def test_pagerduty_repeated_trigger_adds_nothing_acknowledge_and_resolve() -> None:
    group = Group(key="dk-1")
    assert group.send([alert("dk-1", group="dk-1")], source=PD) == [Outcome.OPENED]
    count = len(group.events)
    assert group.send([alert("dk-1", group="dk-1")], source=PD) == [Outcome.DUPLICATE]
    assert len(group.events) == count
    ack = alert("dk-1", Action.ACKNOWLEDGE, group="dk-1")
    assert group.send([ack], source=PD) == [Outcome.ACKNOWLEDGED]
    assert group.state.acknowledged
    assert group.send([ack], source=PD) == [Outcome.DUPLICATE]
    assert group.send([alert("dk-1", Action.RESOLVE, group="dk-1")], source=PD) == [
        Outcome.RESOLVED
    ]
    assert not group.state.open


def test_a_resolve_or_acknowledge_of_nothing_open_is_a_duplicate() -> None:
    group = Group()
    assert group.send([alert("x", Action.RESOLVE)]) == [Outcome.DUPLICATE]
    assert group.send([alert("x", Action.ACKNOWLEDGE)], source=PD) == [Outcome.DUPLICATE]
    assert group.events == []


def test_silences_and_maintenance_count_but_open_nothing_inside_their_window() -> None:
    window = intake.Window({"instance": "web-1"}, T0, T0 + timedelta(hours=1))
    integration = Integration(
        "prom",
        default=intake.Rule(type="server_crash"),
        silences=(window,),
        maintenance=(intake.Window({"env": "staging"}, T0, T0 + timedelta(hours=2)),),
    )
    group = Group(integration)
    assert group.send([alert("a", instance="web-1")]) == [Outcome.SILENCED]
    assert group.send([alert("b", env="staging")]) == [Outcome.MAINTENANCE]
    assert group.events == []
    # After the silence ends the same alert opens the incident.
    later = T0 + timedelta(hours=1)
    assert group.send([alert("a", instance="web-1")], later) == [Outcome.OPENED]


def test_a_group_flapping_beyond_the_limit_does_not_reopen() -> None:
    integration = Integration(
        "prom",
        default=intake.Rule(type="server_crash"),
        flap_limit=2,
        flap_window=timedelta(minutes=30),
    )
    group = Group(integration)
    at = T0
    outcomes = []
    for _ in range(4):
        outcomes.append(group.send([alert("a")], at)[0])
        group.send([alert("a", Action.RESOLVE)], at + timedelta(seconds=30))
        at += timedelta(minutes=1)
    # Opened, re-opened twice (the limit), then suppressed.
    assert outcomes == [Outcome.OPENED, Outcome.OPENED, Outcome.OPENED, Outcome.FLAPPING]
    assert group.state.episode == 3
    # Once the re-openings leave the window it opens again.
    assert group.send([alert("a")], T0 + timedelta(hours=1)) == [Outcome.OPENED]


def test_n_alerts_within_t_before_the_incident_opens() -> None:
    rule = intake.Rule(type="server_crash", page_after=3, page_window=timedelta(minutes=5))
    group = Group(Integration("prom", default=rule))
    assert group.send([alert("a"), alert("b")]) == [Outcome.GROUPED, Outcome.GROUPED]
    assert not group.state.open
    # Too late for "a" and "b": still below three within five minutes.
    later = T0 + timedelta(minutes=10)
    assert group.send([alert("c")], later) == [Outcome.GROUPED]
    assert group.send([alert("d"), alert("e")], later) == [Outcome.GROUPED, Outcome.OPENED]
    assert group.state.firing == {"a", "b", "c", "d", "e"}


def test_the_first_matching_rule_wins_then_the_default() -> None:
    integration = Integration(
        "prom",
        rules=(
            intake.Rule(type="payment_failure", match={"service": "payments"}),
            intake.Rule(type="server_crash", match={"severity": "critical"}),
        ),
        default=intake.Rule(type="service_outage"),
    )
    assert integration.rule_for({"service": "payments", "severity": "critical"}).type == (
        "payment_failure"
    )
    assert integration.rule_for({"severity": "critical"}).type == "server_crash"
    assert integration.rule_for({"severity": "warning"}).type == "service_outage"
    assert intake.matches({"team": "*"}, {"team": "x"})
    assert not intake.matches({"team": "*"}, {})


def test_ids_are_derived_from_the_integration_and_the_key() -> None:
    assert intake.group_id("prom", "g") == intake.group_id("prom", "g")
    assert intake.group_id("prom", "g") != intake.group_id("other", "g")
    assert intake.incident_id_of("prom", "g", 1) != intake.incident_id_of("prom", "g", 2)
    assert len(intake.incident_id_of("x" * 200, "y" * 200, 99)) <= 64


def test_validation_names_each_bad_field() -> None:
    bad = [Alert("", "g", Action.TRIGGER), Alert("k", "x" * 300, Action.TRIGGER)]
    fields = [name for name, _ in intake.validate_alerts("", bad)]
    assert fields == ["integration_id", "alerts[0].dedup_key", "alerts[1].group_key"]
    assert [name for name, _ in intake.validate_alerts("p", [])] == ["alerts"]


def test_the_webhook_mapping_reads_json_paths() -> None:
    mapping = intake.FieldMapping(
        dedup_key="$.check.id",
        summary="$.check['display name']",
        action="$.state",
        severity="$.events[0].level",
        labels="$.tags",
        actions={"down": Action.TRIGGER, "up": Action.RESOLVE},
    )
    body = {
        "check": {"id": 42, "display name": "API health"},
        "state": "UP",
        "events": [{"level": "critical"}],
        "tags": {"team": "sre", "port": 443},
    }
    found, violations = intake.map_webhook(mapping, body)
    assert violations == []
    assert found == Alert(
        dedup_key="42",
        group_key="42",
        action=Action.RESOLVE,
        summary="API health",
        severity="critical",
        labels={"team": "sre", "port": "443", "severity": "critical"},
    )
    missing, violations = intake.map_webhook(mapping, {"state": "down"})
    assert missing is None and violations[0][0] == "alerts[0].dedup_key"
    odd, violations = intake.map_webhook(mapping, {"check": {"id": 1}, "state": "sideways"})
    assert odd is None and violations[0][0] == "alerts[0].action"
    assert intake.json_path({"a": [1, {"b": 2}]}, "$.a[1].b") == 2
    assert intake.json_path({"a": []}, "$.a[3]") is None
    assert intake.json_path({"a": 1}, "a") is None


def test_the_integrations_document_parses_and_locates_errors() -> None:
    rules = config.parse_integration_policy(
        "version: v1\n"
        "integrations:\n"
        "  prom:\n"
        "    kind: alertmanager\n"
        "    rules:\n"
        "      - {match: {severity: critical}, type: server_crash, level: A, page_after: 3,"
        " page_window_minutes: 10}\n"
        "    silences:\n"
        "      - {matchers: {instance: web-1}, starts_at: '2026-12-01T22:00:00Z',"
        " ends_at: '2026-12-01T23:00:00Z'}\n"
        "    flapping: {max_reopens: 3, window_minutes: 30}\n"
    )
    prom = rules.of("prom")
    assert prom.kind is SourceKind.ALERTMANAGER
    assert prom.rules[0].level is not None and prom.rules[0].level.value == "a"
    assert prom.rules[0].page_after == 3 and prom.rules[0].page_window == timedelta(minutes=10)
    assert prom.silences[0].covers({"instance": "web-1"}, T0)
    assert (prom.flap_limit, prom.flap_window) == (3, timedelta(minutes=30))
    assert rules.of("someone-else").default.type == "service_outage"  # the document's default
    assert config.check_rule_types(rules, frozenset({"server_crash"})) == ["service_outage"]
    with pytest.raises(config.IntegrationPolicyError, match=r"integrations\.prom\.silences"):
        config.parse_integration_policy(
            "version: v1\nintegrations:\n  prom:\n    silences:\n"
            "      - {starts_at: '2026-12-01T23:00:00Z', ends_at: '2026-12-01T22:00:00Z'}\n"
        )
    with pytest.raises(config.IntegrationPolicyError, match="level"):
        config.parse_integration_policy(
            "version: v1\ndefault: {default: {type: server_crash, level: z}}\n"
        )


def test_a_rule_names_a_team_engaged_red_unless_it_says_otherwise() -> None:
    rules = config.parse_integration_policy(
        "version: v1\n"
        "integrations:\n"
        "  prom:\n"
        "    rules:\n"
        "      - {match: {team: pay}, type: payment_failure, team: payments}\n"
        "      - {match: {team: sec}, type: server_crash, team: security, engagement: yellow}\n"
    )
    first, second = rules.of("prom").rules
    assert first.extra_teams == (MatrixCell("payments", Engagement.RED),)
    assert second.extra_teams == (MatrixCell("security", Engagement.YELLOW),)
    assert rules.of("prom").default.extra_teams == ()
    assert config.rule_teams(rules) == ["payments", "security"]
    for bad in ("team: Not An Id", "team: security, engagement: purple"):
        with pytest.raises(config.IntegrationPolicyError, match=r"default\.default"):
            config.parse_integration_policy(
                f"version: v1\ndefault: {{default: {{type: server_crash, {bad}}}}}\n"
            )


def test_the_built_in_document_parses() -> None:
    rules = config.parse_integration_policy(config.INTEGRATIONS_DEFAULT)
    assert rules.of("anything").rule_for({"severity": "critical"}).type == "service_outage"


def test_an_unknown_group_state_is_empty() -> None:
    assert intake.initial_group("G-1") == AlertGroup("G-1")


def test_the_documented_integrations_example_parses() -> None:
    """docs/incidents.md "Alert intake": its integrations document is a valid one."""
    page = (Path(__file__).resolve().parents[3] / "docs" / "incidents.md").read_text()
    section = page.split("## Alert intake", 1)[1].split("\n## ", 1)[0]
    blocks = [textwrap.dedent(b.split("```", 1)[0]) for b in section.split("```yaml\n")[1:]]
    documents = [block for block in blocks if block.lstrip().startswith("version:")]
    first_steps = config.parse_integration_policy(documents[0])  # "step by step"
    assert first_steps.of("prometheus").rules[0].team == "technical_support"
    rules = config.parse_integration_policy(documents[1])
    assert sorted(rules.integrations) == ["prometheus", "uptime-checker"]
    assert rules.of("uptime-checker").mapping.actions == {
        "down": Action.TRIGGER,
        "up": Action.RESOLVE,
    }
