"""Quality-scoring service process: wiring only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path

import careops_sla
from careops.quality.v1 import quality_pb2_grpc
from careops_eventstore import EventStore
from careops_eventstore.projection import Projection
from careops_platform import keystore, registry
from careops_platform import service as skeleton
from careops_platform.changes import ReadModelChanges
from careops_platform.db import make_engine
from careops_platform.policies import PolicyBook
from careops_platform.settings import ServiceSettings
from careops_sla.versions import SLA_KIND
from prometheus_client.registry import Collector
from pydantic import AliasChoices, Field, SecretStr

from quality import grpc_api
from quality.application import (
    CODEC,
    CUSTOMER_CODEC,
    INCIDENT_CODEC,
    INCIDENT_STREAM,
    INCIDENT_SUBJECTS,
    STREAM,
    TICKETING_CODEC,
    TICKETING_STREAM,
    TICKETING_SUBJECTS,
    QualityApp,
    Teams,
    WhatIf,
)
from quality.config import teams_document
from quality.keystore import text_sealer
from quality.metrics import KpiCollector
from quality.projections import (
    FollowUpTimerProjection,
    IncidentFactsProjection,
    SurveyProjection,
    TicketFactsProjection,
    text_shredder,
)

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
    master_key: SecretStr = keystore.master_key_setting(ENTRY)
    keystore_url: str = keystore.keystore_url_setting(ENTRY)

    def keystore_database(self) -> str:
        return keystore.keystore_database(
            self.keystore_url, self.database_url, self.data_dir, "quality-keys"
        )


class QualityService(skeleton.EventSourcedService[QualitySettings, QualityApp]):
    """The running service: log, projections of three streams, timers and the gRPC server."""

    entry = ENTRY
    migrations = Path(__file__).parent / "migrations"
    api = skeleton.Api.of(grpc_api, quality_pb2_grpc.add_QualityServiceServicer_to_server)

    def setup(self) -> None:
        self.collector = KpiCollector(self.engine, self.clock)
        self.keys_engine = make_engine(self.settings.keystore_database())
        self.engines.append(self.keys_engine)

    def collectors(self) -> Sequence[Collector]:
        return [self.collector]

    async def prepare(self) -> None:
        self.policy = careops_sla.load_policy(self.settings.sla_policy_file or None)
        self.teams_document = teams_document(self.settings.teams_file or None)
        settings = self.settings
        master = keystore.master_key(ENTRY, settings.master_key, settings.data_dir)
        self.texts = text_sealer(self.keys_engine, master)
        await asyncio.to_thread(self.texts.keys.create_schema)

    def application(self, store: EventStore) -> QualityApp:
        return QualityApp(
            store=store,
            follow_up_after=timedelta(hours=self.settings.follow_up_hours),
            clock=self.clock,
            texts=self.texts,
        )

    async def ready(self, app: QualityApp) -> None:
        await app.teams.seed(self.teams_document)

    def projections(self, app: QualityApp) -> Sequence[skeleton.Subscription]:
        own: list[Projection] = [SurveyProjection(self.texts), FollowUpTimerProjection()]
        customers = registry.CUSTOMER
        return [
            skeleton.Subscription(STREAM.name, STREAM.subjects[0], CODEC, own),
            skeleton.Subscription(
                customers.name,
                customers.filter("customer"),
                CUSTOMER_CODEC,
                [text_shredder(self.texts)],
            ),
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
            grpc_api.ReadWaits(
                tickets=partial(self.wait_for, TicketFactsProjection.name),
                surveys=partial(self.wait_for, SurveyProjection.name),
                incidents=partial(self.wait_for, IncidentFactsProjection.name),
                changes=ReadModelChanges(
                    (
                        TicketFactsProjection.name,
                        SurveyProjection.name,
                        IncidentFactsProjection.name,
                    ),
                    self.position,
                    self.wait_for,
                ),
            ),
            self.settings.read_wait_seconds,
            teams=Teams(app.teams),
            what_if=WhatIf(self.policy, self.sla_versions(app), app.teams),
        )

    def sla_versions(self, app: QualityApp) -> PolicyBook[careops_sla.SlaPolicy]:
        """Ticketing's SLA policy revisions, read from its stream (quality never puts one)."""
        ticketing = registry.TICKETING
        return PolicyBook(app.store, ticketing.spec(), ticketing.prefix("policy"), SLA_KIND)


def main() -> None:
    skeleton.run_service(QualityService, QualitySettings)


if __name__ == "__main__":
    main()
