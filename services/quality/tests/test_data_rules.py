"""Rule 4 of docs/permissions.md where it is enforced: GetScorecard's use of the application's
`authorize_scorecard`, in-process on the composition root (in-memory log, SQLite read models)."""

from __future__ import annotations

from pathlib import Path

import pytest
from careops.quality.v1 import quality_pb2 as pb
from careops_eventstore.memory import InMemoryEventStore
from careops_platform.db import migrate
from careops_platform.errors import InvalidArgument, NotFound, PermissionDenied
from careops_platform.identity import Principal, run_as
from careops_platform.permissions import default_table
from careops_platform.requests import ACTOR

from quality.application import SCORECARD, authorize_scorecard
from quality.grpc_api import QualityServicer
from quality.main import QualityService, QualitySettings
from tests.support import FakeClock

LI = Principal("agent-li", frozenset({"agent"}))
SENIOR = Principal("agent-chen", frozenset({"senior_agent"}))


async def servicer(tmp_path: Path) -> QualityServicer:
    """Returns the servicer the service would run, its read models migrated and empty."""
    service = QualityService(QualitySettings(data_dir=str(tmp_path)), clock=FakeClock())
    app = await service.bootstrap(InMemoryEventStore())
    migrate(service.engine, service.migrations)
    return service.servicer(app)


async def scorecard(
    servicer: QualityServicer, caller: Principal, request: pb.GetScorecardRequest
) -> pb.GetScorecardResponse:
    """Calls GetScorecard as the server would for a call carrying `caller`."""
    restore = run_as(caller)
    try:
        return await servicer.GetScorecard(request, None)
    finally:
        restore()


async def test_an_agent_reads_their_own_scorecard(tmp_path: Path) -> None:
    response = await scorecard(
        await servicer(tmp_path), LI, pb.GetScorecardRequest(agent_id="agent-li")
    )
    assert response.agent_id == "agent-li" and response.kpis.tickets_opened == 0


@pytest.mark.parametrize(
    ("request_", "whose"),
    [
        (pb.GetScorecardRequest(agent_id="agent-wang"), "agent agent-wang"),
        (pb.GetScorecardRequest(team="frontline"), "team frontline"),  # their own team too
    ],
)
async def test_an_agent_is_refused_anothers_or_a_teams_scorecard(
    tmp_path: Path, request_: pb.GetScorecardRequest, whose: str
) -> None:
    with pytest.raises(PermissionDenied) as denied:
        await scorecard(await servicer(tmp_path), LI, request_)
    assert denied.value.permission == SCORECARD
    assert f"permission {SCORECARD} is refused for the scorecard of {whose}" in denied.value.message
    assert "an agent reads their own scorecard" in denied.value.message


@pytest.mark.parametrize(
    "request_",
    [pb.GetScorecardRequest(agent_id="agent-wang"), pb.GetScorecardRequest(team="senior")],
)
async def test_a_senior_reads_any_scorecard(
    tmp_path: Path, request_: pb.GetScorecardRequest
) -> None:
    response = await scorecard(await servicer(tmp_path), SENIOR, request_)
    assert response.kpis.tickets_opened == 0


def test_without_a_caller_no_data_rule_applies() -> None:
    authorize_scorecard(None, agent_id="agent-wang")
    authorize_scorecard(None, team="frontline")


def test_the_permission_named_is_the_tables() -> None:
    permission = default_table().permission("/careops.quality.v1.QualityService/GetScorecard")
    assert permission is not None and permission.name == SCORECARD


async def test_the_quality_teams_change_at_runtime_with_their_author_and_history(
    tmp_path: Path,
) -> None:
    front = await servicer(tmp_path)
    lead = Principal("lead-zhou", frozenset({"supervisor"}))
    with pytest.raises(NotFound, match="no team named 'night'"):
        await scorecard(front, lead, pb.GetScorecardRequest(team="night"))
    restore, as_actor = run_as(lead), ACTOR.set(lead.subject)  # as the interceptor sets them
    try:
        seeded = await front.GetQualityTeams(pb.GetQualityTeamsRequest(), None)
        assert (seeded.policy.revision, seeded.policy.author) == (1, "config")
        document = "version: teams-night\nteams:\n  night: [agent-li]\n"
        put = await front.PutQualityTeams(
            pb.PutQualityTeamsRequest(document=document, reason="night shift", expected_revision=1),
            None,
        )
        assert (put.policy.revision, put.policy.author, put.unchanged) == (2, "lead-zhou", False)
        with pytest.raises(InvalidArgument) as refused:
            await front.PutQualityTeams(
                pb.PutQualityTeamsRequest(document="teams:\n  night: []\n"), None
            )
        assert [v.field for v in refused.value.violations] == ["document.teams.night"]
        history = await front.ListQualityTeamsVersions(pb.ListQualityTeamsVersionsRequest(), None)
    finally:
        ACTOR.reset(as_actor)
        restore()
    assert [(v.revision, v.reason, v.current) for v in history.versions] == [
        (2, "night shift", True),
        (1, "", False),
    ]
    card = await scorecard(front, lead, pb.GetScorecardRequest(team="night"))
    assert card.team == "night"
    with pytest.raises(NotFound, match="known: night"):
        await scorecard(front, lead, pb.GetScorecardRequest(team="frontline"))
