"""Alert intake through IncidentService/IngestAlerts on real NATS with the module's clock:
groups open one incident, PagerDuty's acknowledge and resolve act on it, a repeated trigger
appends nothing, the integrations policy is versioned data, bad input is INVALID_ARGUMENT."""

from __future__ import annotations

import json

import grpc
import pytest
import yaml
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_eventstore.aggregates import CommandExecutor
from careops_eventstore.nats_embedded import EmbeddedNats
from prometheus_client import REGISTRY

from incident import domain as d
from incident.application import CODEC, INCIDENT_SUBJECTS, STREAM
from incident.domain import intake
from incident.main import IncidentService
from tests.support import event_types, field_violations, read_log

Stub = incident_pb2_grpc.IncidentServiceStub
AM = pb.ALERT_SOURCE_KIND_ALERTMANAGER
PD = pb.ALERT_SOURCE_KIND_PAGERDUTY
TRIGGER, ACK, RESOLVE = (
    pb.ALERT_ACTION_TRIGGER,
    pb.ALERT_ACTION_ACKNOWLEDGE,
    pb.ALERT_ACTION_RESOLVE,
)

RULES = {
    "version": "intake-service-1",
    "default": {"default": {"type": "server_crash"}},
    "integrations": {
        "prom": {
            "kind": "alertmanager",
            "rules": [
                {
                    "match": {"severity": "page"},
                    "type": "complaint_surge",
                    "level": "a",
                    "factors": {"core_system": 1},
                    "team": "brand_pr",
                }
            ],
            "default": {"type": "server_crash"},
        },
        "pd": {"kind": "pagerduty", "default": {"type": "server_crash"}},
        "quiet": {
            "default": {"type": "server_crash"},
            "silences": [
                {
                    "matchers": {"env": "staging"},
                    "starts_at": "2000-01-01T00:00:00Z",
                    "ends_at": "2100-01-01T00:00:00Z",
                }
            ],
            "maintenance": [
                {
                    "matchers": {"cluster": "eu-1"},
                    "starts_at": "2000-01-01T00:00:00Z",
                    "ends_at": "2100-01-01T00:00:00Z",
                }
            ],
        },
        "hook": {
            "kind": "webhook",
            "default": {"type": "server_crash"},
            "mapping": {
                "dedup_key": "$.check.id",
                "summary": "$.check.name",
                "action": "$.state",
                "actions": {"down": "trigger", "up": "resolve"},
            },
        },
    },
}


@pytest.fixture(scope="module")
async def rules(incident_stub: Stub) -> None:
    seeded = await incident_stub.GetIntegrationPolicy(pb.GetIntegrationPolicyRequest())
    assert (seeded.policy.revision, seeded.policy.author) == (1, "config")
    assert seeded.policy.version == "integrations-2026.1"
    put = await incident_stub.PutIntegrationPolicy(
        pb.PutIntegrationPolicyRequest(document=yaml.safe_dump(RULES), reason="tests")
    )
    assert put.policy.revision == 2 and not put.unchanged


def am(
    key: str, action: pb.AlertAction.ValueType = TRIGGER, group: str = "g", **labels: str
) -> pb.IntakeAlert:
    return pb.IntakeAlert(
        dedup_key=key, group_key=group, action=action, summary=f"{key} down", labels=labels
    )


async def ingest(
    stub: Stub, integration: str, source: pb.AlertSourceKind.ValueType, *alerts: pb.IntakeAlert
) -> pb.IngestAlertsResponse:
    reply: pb.IngestAlertsResponse = await stub.IngestAlerts(
        pb.IngestAlertsRequest(integration_id=integration, source=source, alerts=alerts)
    )
    return reply


def outcomes(reply: pb.IngestAlertsResponse) -> list[str]:
    return [pb.AlertOutcome.Name(a.outcome).removeprefix("ALERT_OUTCOME_") for a in reply.alerts]


async def test_a_group_of_three_opens_one_incident_and_resolves_with_its_alerts(
    incident_stub: Stub, rules: None
) -> None:
    opened = await ingest(incident_stub, "prom", AM, am("a"), am("b"), am("c"))
    assert outcomes(opened) == ["OPENED", "GROUPED", "GROUPED"]
    incident_id = opened.alerts[0].incident_id
    assert {a.incident_id for a in opened.alerts} == {incident_id}
    assert incident_id == intake.incident_id_of("prom", "g", 1)
    incident = (
        await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    ).incident
    assert incident.type == "server_crash"
    assert incident.source == t.INCIDENT_SOURCE_MONITORING
    assert incident.title == "a down"
    partly = await ingest(incident_stub, "prom", AM, am("a", RESOLVE), am("b", RESOLVE))
    assert outcomes(partly) == ["RESOLVED", "RESOLVED"]
    still = (
        await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    ).incident
    assert still.status != t.INCIDENT_STATUS_RESOLVED
    await ingest(incident_stub, "prom", AM, am("c", RESOLVE))
    done = (
        await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    ).incident
    assert done.status == t.INCIDENT_STATUS_RESOLVED


async def test_a_rule_declares_at_its_level_with_its_team_engaged(
    incident_stub: Stub, incident_nats: EmbeddedNats, rules: None
) -> None:
    reply = await ingest(incident_stub, "prom", AM, am("p", group="paging", severity="page"))
    incident_id = reply.alerts[0].incident_id
    incident = (
        await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    ).incident
    assert incident.level == t.INCIDENT_LEVEL_A
    teams = {team.team_id: team for team in incident.teams}
    # The matrix row's teams, and the rule's team (red: paged) besides them.
    assert set(teams) == {"customer_service", "technical_support", "brand_pr"}
    assert teams["brand_pr"].paged and teams["brand_pr"].engagement == t.ENGAGEMENT_RED
    assert "brand_pr" in {page.team_id for page in incident.pages}
    # Declared at level A (the first pages already at it), not escalated after declaring.
    log = await read_log(incident_nats.url, STREAM.name, f"{INCIDENT_SUBJECTS}.{incident_id}")
    kinds = [kind.rsplit(".", 1)[-1] for kind in event_types(log)]
    assert kinds[0] == "IncidentDeclared" and "IncidentEscalated" not in kinds
    declared = CODEC.decode(log[0].batch.events[0])
    assert isinstance(declared, d.IncidentDeclared)
    assert declared.level is d.Level.A and declared.level_floor is d.Level.A
    assert declared.extra_teams == (d.MatrixCell("brand_pr", d.Engagement.RED),)


async def test_an_integrations_policy_naming_an_unknown_team_is_refused(
    incident_stub: Stub, rules: None
) -> None:
    for document in (
        "version: x\ndefault: {default: {type: server_crash, team: no_such_team}}\n",
        "version: x\ndefault: {default: {type: server_crash, team: brand_pr, engagement: x}}\n",
        "version: x\ndefault: {default: {type: server_crash, team: Not An Id}}\n",
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await incident_stub.PutIntegrationPolicy(
                pb.PutIntegrationPolicyRequest(document=document)
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(caught.value)[0].startswith("document")


async def test_pagerduty_trigger_repeat_acknowledge_resolve(
    incident_stub: Stub, incident_nats: EmbeddedNats, rules: None
) -> None:
    trigger = am("dk-7", group="dk-7")
    opened = await ingest(incident_stub, "pd", PD, trigger)
    assert outcomes(opened) == ["OPENED"]
    incident_id = opened.alerts[0].incident_id
    subject = f"{INCIDENT_SUBJECTS}.{incident_id}"
    group = f"careops.incident.alert_group.{intake.group_id('pd', 'dk-7')}"
    before = await intake_writes(incident_nats, group, subject)
    assert before[0] >= 1 and before[1] >= 1  # the trigger's: the group opened, declared
    repeated = await ingest(incident_stub, "pd", PD, trigger)
    assert outcomes(repeated) == ["DUPLICATE"] and repeated.sequence == 0
    # Nothing appended: not to the group, not to the incident (whose page deliveries the
    # notifiers go on recording meanwhile, as the system).
    assert await intake_writes(incident_nats, group, subject) == before
    acked = await ingest(incident_stub, "pd", PD, am("dk-7", ACK, group="dk-7"))
    assert outcomes(acked) == ["ACKNOWLEDGED"]
    incident = (
        await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    ).incident
    assert incident.pages and all(page.acknowledged_at.seconds for page in incident.pages)
    assert incident.status == t.INCIDENT_STATUS_ACKNOWLEDGED
    resolved = await ingest(incident_stub, "pd", PD, am("dk-7", RESOLVE, group="dk-7"))
    assert outcomes(resolved) == ["RESOLVED"]
    incident = (
        await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    ).incident
    assert incident.status == t.INCIDENT_STATUS_RESOLVED
    actors = {
        e.actor
        for b in await read_log(incident_nats.url, STREAM.name, subject)
        for e in b.batch.events
    }
    assert "tester" in actors  # the caller's principal is every intake event's actor


async def intake_writes(nats: EmbeddedNats, group: str, incident: str) -> tuple[int, int]:
    """The group's messages and the incident's messages appended as the caller ("tester")."""
    on_group = await read_log(nats.url, STREAM.name, group)
    on_incident = await read_log(nats.url, STREAM.name, incident)
    mine = [b for b in on_incident if any(e.actor == "tester" for e in b.batch.events)]
    return len(on_group), len(mine)


async def test_a_generic_webhook_body_is_mapped_by_the_integration(
    incident_stub: Stub, rules: None
) -> None:
    body = pb.IntakeAlert()
    body.labels["body"] = json.dumps({"check": {"id": "api-1", "name": "API"}, "state": "down"})
    reply = await ingest(incident_stub, "hook", pb.ALERT_SOURCE_KIND_WEBHOOK, body)
    assert outcomes(reply) == ["OPENED"] and reply.alerts[0].dedup_key == "api-1"  # mapped
    up = pb.IntakeAlert()
    up.labels["body"] = json.dumps({"check": {"id": "api-1"}, "state": "up"})
    assert outcomes(await ingest(incident_stub, "hook", pb.ALERT_SOURCE_KIND_WEBHOOK, up)) == [
        "RESOLVED"
    ]
    wrong = pb.IntakeAlert()
    wrong.labels["body"] = json.dumps({"state": "down"})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ingest(incident_stub, "hook", pb.ALERT_SOURCE_KIND_WEBHOOK, wrong)
    assert field_violations(caught.value) == ["alerts[0].dedup_key"]


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (pb.IngestAlertsRequest(integration_id="prom", alerts=[am("a")]), ["source"]),
        (
            pb.IngestAlertsRequest(
                integration_id="prom",
                source=AM,
                alerts=[pb.IntakeAlert(dedup_key="a", group_key="g")],
            ),
            ["alerts[0].action"],
        ),
        (pb.IngestAlertsRequest(integration_id="prom", source=AM), ["alerts"]),
        (
            pb.IngestAlertsRequest(integration_id="prom", source=AM, alerts=[am("", group="")]),
            ["alerts[0].dedup_key", "alerts[0].group_key"],
        ),
        (pb.IngestAlertsRequest(integration_id="prom", source=PD, alerts=[am("a")]), ["source"]),
    ],
)
async def test_bad_requests_are_invalid_argument_naming_the_field(
    incident_stub: Stub, rules: None, request_: pb.IngestAlertsRequest, fields: list[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await incident_stub.IngestAlerts(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == fields


async def test_an_integrations_policy_naming_an_unknown_type_is_refused(
    incident_stub: Stub, rules: None
) -> None:
    for document, field in (
        ("version: x\ndefault: {default: {type: no_such_type}}\n", "document"),
        ("version: x\nintegrations: {a: {flapping: {max_reopens: 0}}}\n", "document.integrations"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await incident_stub.PutIntegrationPolicy(
                pb.PutIntegrationPolicyRequest(document=document)
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(caught.value)[0].startswith(field)
    versions = await incident_stub.ListIntegrationPolicyVersions(
        pb.ListIntegrationPolicyVersionsRequest()
    )
    assert [v.revision for v in versions.versions] == [2, 1]


def test_the_alert_counter_is_preinitialised_for_every_source_and_outcome() -> None:
    for source in intake.SourceKind:
        for outcome in intake.Outcome:
            labels = {"source": source.value, "outcome": outcome.value}
            assert REGISTRY.get_sample_value("careops_alerts_received_total", labels) is not None


async def test_a_group_whose_incident_was_never_declared_gets_it_on_the_next_alert(
    incident_service: IncidentService, incident_stub: Stub, rules: None
) -> None:
    """A crash between the group's append and the incident's declaration: the group says the
    episode is open, the incident does not exist. The next alert of the group (a duplicate)
    declares it, under the id the group holds."""
    app = incident_service.app
    assert app is not None
    gid = intake.group_id("pd", "crashed")
    incident_id = intake.incident_id_of("pd", "crashed", 1)
    await app.run_on(
        CommandExecutor(app.intake.repository),
        gid,
        lambda _state: [
            intake.AlertGroupOpened("pd", "crashed", incident_id, 1, "server_crash"),
            intake.AlertFired("crashed", "half done", "critical", incident_id),
        ],
        now=app.clock(),
        command_id="test-crashed-group",
        actor="tester",
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    reply = await ingest(incident_stub, "pd", PD, am("crashed", group="crashed"))
    assert outcomes(reply) == ["DUPLICATE"] and reply.alerts[0].incident_id == incident_id
    incident = (
        await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    ).incident
    assert incident.type == "server_crash"


async def test_silenced_and_maintenance_alerts_are_counted_and_open_nothing(
    incident_stub: Stub, incident_nats: EmbeddedNats, rules: None
) -> None:
    def count(outcome: str) -> float:
        labels = {"source": "alertmanager", "outcome": outcome}
        return REGISTRY.get_sample_value("careops_alerts_received_total", labels) or 0.0

    silenced, maintenance = count("silenced"), count("maintenance")
    reply = await ingest(
        incident_stub,
        "quiet",
        AM,
        am("s1", group="q", env="staging"),
        am("m1", group="q", cluster="eu-1"),
    )
    assert outcomes(reply) == ["SILENCED", "MAINTENANCE"] and reply.sequence == 0
    assert (count("silenced"), count("maintenance")) == (silenced + 1, maintenance + 1)
    group = f"careops.incident.alert_group.{intake.group_id('quiet', 'q')}"
    assert await read_log(incident_nats.url, STREAM.name, group) == []
    opened = await ingest(incident_stub, "quiet", AM, am("p1", group="q", env="prod"))
    assert outcomes(opened) == ["OPENED"]
