"""Issue 13, incident side: the risk policy as live, versioned data, the response matrix's
history, and the what-if over past incidents; on real NATS with the module's injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import yaml
from careops.common.v1 import policy_pb2
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_eventstore.codec import to_timestamp
from careops_eventstore.nats_embedded import EmbeddedNats

from incident.application import INCIDENT_SUBJECTS, STREAM
from tests.support import FakeClock, field_violations, read_log

Stub = incident_pb2_grpc.IncidentServiceStub

CORE_ONLY = t.RiskFactors(core_system=1.0)  # index 0.3 under the default weights: level C
QUIET = t.RiskFactors()  # index 0: level C under any policy
LEVEL = {t.INCIDENT_LEVEL_A: "A", t.INCIDENT_LEVEL_B: "B", t.INCIDENT_LEVEL_C: "C"}


def risk_document(version: str, **weights: float) -> str:
    base = {"scope": 0.4, "business": 0.3, "timeliness": 0.2, "exposure": 0.1}
    return yaml.safe_dump(
        {
            "version": version,
            "weights": {**base, **weights},
            "thresholds": {"a": 0.7, "b": 0.4},
            "response_minutes": {"a": 15, "b": 30, "c": 60},
        }
    )


# Core systems weigh twice as much: a core-system outage alone is level B (0.6).
CORE_WEIGHS_MORE = risk_document(
    "risk-core-2", scope=0.2, business=0.6, timeliness=0.1, exposure=0.1
)
# The settings' weights under a new label.
DEFAULT_WEIGHTS = risk_document("risk-back")

CUSTOMER_SERVICE_LEADS = yaml.safe_dump(
    {
        "types": {
            "server_crash": {
                "title": "Server crash",
                "teams": {
                    "customer_service": "red",
                    "technical_support": "yellow",
                    "brand_pr": "grey",
                },
            }
        }
    }
)


async def declare(
    stub: Stub, title: str, factors: t.RiskFactors, *, drill: bool = False
) -> pb.DeclareIncidentResponse:
    request = pb.DeclareIncidentRequest(
        type="server_crash", title=title, factors=factors, drill=drill
    )
    response: pb.DeclareIncidentResponse = await stub.DeclareIncident(request)
    return response


async def what_if(
    stub: Stub, since: datetime, until: datetime, sequence: int, **fields: Any
) -> pb.WhatIfIncidentsResponse:
    request = pb.WhatIfIncidentsRequest(
        since=to_timestamp(since), until=to_timestamp(until), min_sequence=sequence, **fields
    )
    response: pb.WhatIfIncidentsResponse = await stub.WhatIfIncidents(request)
    return response


async def revisions(stub: Stub) -> list[policy_pb2.PolicyVersion]:
    """Every revision of the risk policy, newest first."""
    listed = await stub.ListRiskPolicyVersions(pb.ListRiskPolicyVersionsRequest())
    return list(listed.versions)


def totals(rows: Any) -> dict[str, tuple[int, int]]:
    return {row.key: (row.actual, row.draft) for row in rows}


async def test_new_weights_apply_to_the_next_incident_and_the_what_if_shows_what_differs(
    incident_stub: Stub, incident_clock: FakeClock, incident_nats: EmbeddedNats
) -> None:
    stub = incident_stub
    seeded = (await revisions(stub))[-1]
    assert (seeded.revision, seeded.author, seeded.version) == (1, "config", "risk-2026.1")
    assert yaml.safe_load(seeded.document)["weights"]["scope"] == 0.4
    in_force = (await stub.GetRiskPolicy(pb.GetRiskPolicyRequest())).policy
    start = incident_clock.advance(timedelta(hours=1))
    before = await declare(stub, "Checkout API errors", CORE_ONLY)
    assert before.incident.level == t.INCIDENT_LEVEL_C

    incident_clock.advance(60)
    put = await stub.PutRiskPolicy(
        pb.PutRiskPolicyRequest(
            document=CORE_WEIGHS_MORE,
            reason="core systems weigh more",
            expected_revision=in_force.revision,
        )
    )
    assert (put.policy.revision, put.policy.version) == (in_force.revision + 1, "risk-core-2")
    assert put.policy.author == "tester" and put.policy.current and not put.unchanged

    # No restart: the very next declaration is rated by the new weights, and records them.
    incident_clock.advance(60)
    changed_at = incident_clock()
    after = await declare(stub, "Checkout API errors again", CORE_ONLY)
    assert after.incident.level == t.INCIDENT_LEVEL_B
    assert after.incident.risk_index == pytest.approx(0.6)
    subject = f"{INCIDENT_SUBJECTS}.{after.incident.incident_id}"
    logged = await read_log(incident_nats.url, STREAM.name, subject)
    assert logged[0].batch.events[0].policy_versions["risk_model"] == "risk-core-2"
    history = await revisions(stub)
    assert [v.revision for v in history][:2] == [put.policy.revision, in_force.revision]
    assert history[0].reason == "core systems weigh more" and history[0].current

    # What if the old weights were back? The later incident would have been C, paging one team.
    end = incident_clock() + timedelta(seconds=1)
    report = await what_if(stub, start, end, after.sequence, risk_document=DEFAULT_WEIGHTS)
    compared = {item.incident_id: item for item in report.incidents}
    assert set(compared) == {before.incident.incident_id, after.incident.incident_id}
    unchanged, rated = compared[before.incident.incident_id], compared[after.incident.incident_id]
    assert not unchanged.changed and unchanged.actual_level == unchanged.draft_level
    assert rated.changed
    assert (LEVEL[rated.actual_level], LEVEL[rated.draft_level]) == ("B", "C")
    assert list(rated.actual_paged_teams) == ["customer_service", "technical_support"]
    assert list(rated.draft_paged_teams) == ["technical_support"]
    assert rated.risk_version == "risk-core-2"
    assert not report.changes_nothing and report.incidents_changed == 1
    assert report.draft_risk_version == "risk-back"
    assert totals(report.levels) == {"A": (0, 0), "B": (1, 0), "C": (1, 2)}
    assert totals(report.teams_paged)["customer_service"] == (1, 0)

    # The draft identical to the policy in force changes nothing it decided.
    same = await what_if(stub, changed_at, end, after.sequence, risk_document=CORE_WEIGHS_MORE)
    assert [item.incident_id for item in same.incidents] == [after.incident.incident_id]
    assert same.changes_nothing and same.incidents_changed == 0
    only = same.incidents[0]
    assert only.actual_level == only.draft_level and only.actual_teams == only.draft_teams
    assert all(row.actual == row.draft for row in (*same.levels, *same.teams_paged))


async def test_bad_documents_are_located_and_append_nothing(incident_stub: Stub) -> None:
    stub = incident_stub
    count = len(await revisions(stub))
    cases = {
        risk_document("bad-1", exposure=0.0): "document.weights",
        risk_document("bad-2", scope=2.0): "document.weights.scope",
        yaml.safe_dump(
            {**yaml.safe_load(risk_document("bad-3")), "thresholds": {"a": 0.4, "b": 0.4}}
        ): "document.thresholds.a",
        yaml.safe_dump({**yaml.safe_load(risk_document("bad-4")), "surprise": 1}): (
            "document.surprise"
        ),
        "weights: [1, 2\n": "document",
    }
    for document, located in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.PutRiskPolicy(pb.PutRiskPolicyRequest(document=document))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, document
        assert field_violations(refused.value) == [located], document
    assert len(await revisions(stub)) == count

    drafts = {
        "risk_document": (risk_document("draft", business=0.5), "risk_document.weights"),
        "matrix_document": (
            CUSTOMER_SERVICE_LEADS.replace("brand_pr", "nobody"),
            "matrix_document.types.server_crash.teams.nobody",
        ),
    }
    for name, (document, located) in drafts.items():
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            request = pb.WhatIfIncidentsRequest()
            setattr(request, name, document)
            await stub.WhatIfIncidents(request)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value) == [located]
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await stub.WhatIfIncidents(pb.WhatIfIncidentsRequest())
    assert field_violations(empty.value) == ["risk_document"]
    not_a_token = CUSTOMER_SERVICE_LEADS.replace("brand_pr", "brand.pr")
    with pytest.raises(grpc.aio.AioRpcError) as token:
        await stub.WhatIfIncidents(pb.WhatIfIncidentsRequest(matrix_document=not_a_token))
    assert field_violations(token.value) == ["matrix_document.types.server_crash.teams"]
    early = pb.WhatIfIncidentsRequest(
        risk_document=DEFAULT_WEIGHTS, until=to_timestamp(datetime(1, 1, 2, tzinfo=UTC))
    )
    with pytest.raises(grpc.aio.AioRpcError) as overflow:
        await stub.WhatIfIncidents(early)
    assert field_violations(overflow.value) == ["until"]


async def test_a_matrix_draft_that_makes_another_team_red_pages_other_teams(
    incident_stub: Stub, incident_clock: FakeClock
) -> None:
    stub = incident_stub
    start = incident_clock.advance(timedelta(hours=1))
    real = await declare(stub, "Login servers down", QUIET)
    drill = await declare(stub, "Drill: login servers down", QUIET, drill=True)
    end = incident_clock() + timedelta(seconds=1)

    report = await what_if(stub, start, end, drill.sequence, matrix_document=CUSTOMER_SERVICE_LEADS)
    assert [item.incident_id for item in report.incidents] == [real.incident.incident_id]
    assert report.drills_excluded == 1
    item = report.incidents[0]
    assert item.changed and item.actual_level == item.draft_level == t.INCIDENT_LEVEL_C
    assert list(item.actual_paged_teams) == ["technical_support"]
    assert list(item.draft_paged_teams) == ["customer_service"]
    assert totals(report.teams_paged) == {
        "customer_service": (0, 1),
        "technical_support": (1, 0),
    }
    assert totals(report.teams_engaged)["brand_pr"] == (1, 1)
    assert not report.changes_nothing

    with_drills = await what_if(
        stub,
        start,
        end,
        drill.sequence,
        matrix_document=CUSTOMER_SERVICE_LEADS,
        include_drills=True,
    )
    assert [i.drill for i in with_drills.incidents] == [False, True]
    assert with_drills.drills_excluded == 0


async def test_the_matrix_history_lists_every_version_newest_first(incident_stub: Stub) -> None:
    stub = incident_stub
    before = (
        await stub.ListResponseMatrixVersions(pb.ListResponseMatrixVersionsRequest())
    ).versions
    assert before and before[0].current and before[-1].revision == 1
    assert before[-1].author == "config"
    matrix = (await stub.GetResponseMatrix(pb.GetResponseMatrixRequest())).matrix
    rows = [row for row in matrix.rows if row.incident_type != "complaint_surge"]
    put = await stub.PutResponseMatrix(pb.PutResponseMatrixRequest(rows=rows))
    after = (await stub.ListResponseMatrixVersions(pb.ListResponseMatrixVersionsRequest())).versions
    assert len(after) == len(before) + 1
    newest = after[0]
    assert newest.current and not after[1].current
    assert newest.author == "tester" and newest.matrix.version == put.sequence
    assert [r.incident_type for r in newest.matrix.rows] == ["server_crash"]
    page = await stub.ListResponseMatrixVersions(pb.ListResponseMatrixVersionsRequest(page_size=1))
    assert [v.revision for v in page.versions] == [newest.revision]
    assert page.next_before_revision == newest.revision
