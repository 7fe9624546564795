"""Quality-scoring service process: wiring only."""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import careops_sla
import yaml
from careops.quality.v1 import quality_pb2_grpc
from careops_eventstore import EventStore
from careops_eventstore.projection import Projection
from careops_platform import registry
from careops_platform import service as skeleton
from careops_platform.settings import ServiceSettings
from prometheus_client.registry import Collector
from pydantic import AliasChoices, Field

from quality import grpc_api
from quality.application import (
    CODEC,
    INCIDENT_CODEC,
    INCIDENT_STREAM,
    INCIDENT_SUBJECTS,
    STREAM,
    TICKETING_CODEC,
    TICKETING_STREAM,
    TICKETING_SUBJECTS,
    QualityApp,
)
from quality.projections import (
    FollowUpTimerProjection,
    IncidentFactsProjection,
    SurveyProjection,
    TicketFactsProjection,
)
from quality.readmodels import KpiCollector

ENTRY = registry.service("quality")


class QualitySettings(ServiceSettings):
    grpc_port: int = skeleton.port_setting(ENTRY, "grpc_port")
    metrics_port: int = skeleton.port_setting(ENTRY, "metrics_port")
    sla_policy_file: str = Field(
        "", description="YAML SLA policy ticketing runs with (what-if's actual); empty: built-in"
    )
    teams_file: str = Field(
        "",
        description="YAML team directory",
        validation_alias=AliasChoices("teams_file", ENTRY.env("teams_file")),
    )
    follow_up_hours: float = Field(
        24.0,
        gt=0,
        le=24 * 30,
        description="Hours until a negative survey's follow-up is overdue",
        validation_alias=AliasChoices("follow_up_hours", ENTRY.env("follow_up_hours")),
    )
    timer_interval_seconds: float = Field(0.5, gt=0, le=60)


def load_teams(path: str | None) -> dict[str, list[str]]:
    """Reads the team directory (YAML `teams: {name: [agent ids]}`); None: the default."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = importlib.resources.files("quality").joinpath("teams_default.yaml").read_text()
    data = yaml.safe_load(text) or {}
    teams = data.get("teams") or {}
    if not isinstance(teams, dict):
        raise ValueError("teams: must map team names to lists of agent ids")
    result = {}
    for name, agents in teams.items():
        if not isinstance(agents, list) or not all(isinstance(a, str) for a in agents):
            raise ValueError(f"teams.{name}: must be a list of agent ids")
        if not agents:  # an empty list would filter nothing: the whole platform's KPIs
            raise ValueError(f"teams.{name}: must list at least one agent id")
        result[str(name)] = list(agents)
    return result


class QualityService(skeleton.EventSourcedService[QualitySettings, QualityApp]):
    """The running service: log, projections of three streams, timers and the gRPC server."""

    entry = ENTRY
    migrations = Path(__file__).parent / "migrations"
    api = skeleton.Api.of(grpc_api, quality_pb2_grpc.add_QualityServiceServicer_to_server)

    def setup(self) -> None:
        self.collector = KpiCollector(self.engine, self.clock)

    def collectors(self) -> Sequence[Collector]:
        return [self.collector]

    async def prepare(self) -> None:
        self.policy = careops_sla.load_policy(self.settings.sla_policy_file or None)
        self.teams = load_teams(self.settings.teams_file or None)

    def application(self, store: EventStore) -> QualityApp:
        return QualityApp(
            store=store,
            follow_up_after=timedelta(hours=self.settings.follow_up_hours),
            clock=self.clock,
        )

    def projections(self, app: QualityApp) -> Sequence[skeleton.Subscription]:
        own: list[Projection] = [SurveyProjection(), FollowUpTimerProjection()]
        return [
            skeleton.Subscription(STREAM.name, STREAM.subjects[0], CODEC, own),
            skeleton.Subscription(
                TICKETING_STREAM, TICKETING_SUBJECTS, TICKETING_CODEC, [TicketFactsProjection()]
            ),
            skeleton.Subscription(
                INCIDENT_STREAM, INCIDENT_SUBJECTS, INCIDENT_CODEC, [IncidentFactsProjection()]
            ),
        ]

    def background(self, app: QualityApp) -> Sequence[skeleton.Background]:
        return [self.timers(app.fire_timer, self.settings.timer_interval_seconds)]

    def servicer(self, app: QualityApp) -> grpc_api.QualityServicer:
        return grpc_api.QualityServicer(
            app,
            self.engine,
            self.wait_for,
            self.settings.read_wait_seconds,
            teams=self.teams,
            policy=self.policy,
        )


def main() -> None:
    skeleton.run_service(QualityService, QualitySettings)


if __name__ == "__main__":
    main()
