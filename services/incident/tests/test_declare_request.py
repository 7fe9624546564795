"""DeclareIncident's extra teams and level floor over real gRPC and NATS: mapped to the
domain's command, validated with the fields named (issue 14, on-call leftovers)."""

from __future__ import annotations

import uuid

import grpc
import pytest
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t

from tests.support import field_violations

Stub = incident_pb2_grpc.IncidentServiceStub
QUIET = t.RiskFactors()  # index 0: level C as assessed


def key() -> tuple[tuple[str, str], ...]:
    return (("idempotency-key", uuid.uuid4().hex),)


def declaration(**fields: object) -> pb.DeclareIncidentRequest:
    return pb.DeclareIncidentRequest(
        type="complaint_surge",
        title="Checkout slow",
        source=t.INCIDENT_SOURCE_MONITORING,
        factors=QUIET,
        **fields,  # type: ignore[arg-type]
    )


async def test_extra_teams_are_engaged_and_the_level_floor_raises_the_level(
    incident_stub: Stub,
) -> None:
    plain = await incident_stub.DeclareIncident(declaration(), metadata=key())
    assert plain.incident.level == t.INCIDENT_LEVEL_C
    assert "brand_pr" not in {team.team_id for team in plain.incident.teams}

    extra = [t.MatrixCell(team_id="brand_pr", engagement=t.ENGAGEMENT_RED)]
    declared = await incident_stub.DeclareIncident(
        declaration(extra_teams=extra, level_floor=t.INCIDENT_LEVEL_B), metadata=key()
    )
    incident = declared.incident
    assert incident.level == t.INCIDENT_LEVEL_B
    teams = {team.team_id: team for team in incident.teams}
    assert teams["brand_pr"].engagement == t.ENGAGEMENT_RED and teams["brand_pr"].paged
    assert any(page.team_id == "brand_pr" for page in incident.pages)
    # A floor below the assessed level changes nothing.
    floor_c = await incident_stub.DeclareIncident(
        declaration(level_floor=t.INCIDENT_LEVEL_C), metadata=key()
    )
    assert floor_c.incident.level == t.INCIDENT_LEVEL_C


@pytest.mark.parametrize(
    ("fields", "violation"),
    [
        (
            {"extra_teams": [t.MatrixCell(team_id="nosuchteam", engagement=t.ENGAGEMENT_RED)]},
            "extra_teams[0].team_id",
        ),
        ({"extra_teams": [t.MatrixCell(team_id="brand_pr")]}, "extra_teams[0].engagement"),
        (
            {
                "extra_teams": [
                    t.MatrixCell(team_id="brand_pr", engagement=t.ENGAGEMENT_RED),
                    t.MatrixCell(team_id="brand_pr", engagement=t.ENGAGEMENT_GREY),
                ]
            },
            "extra_teams",
        ),
        (
            {"extra_teams": [t.MatrixCell(team_id="Not A Team", engagement=t.ENGAGEMENT_RED)]},
            "extra_teams[0].team_id",
        ),
        ({"level_floor": 99}, "level_floor"),
    ],
)
async def test_bad_extra_teams_and_level_floors_are_invalid_arguments(
    incident_stub: Stub, fields: dict[str, object], violation: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await incident_stub.DeclareIncident(declaration(**fields), metadata=key())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert violation in field_violations(caught.value)
