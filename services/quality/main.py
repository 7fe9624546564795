"""Quality-scoring service process: wiring only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import careops_sla
from careops.common.v1 import admin_pb2_grpc
from careops.quality.v1 import quality_pb2_grpc
from careops_eventstore.codec import EventCodec
from careops_eventstore.jetstream import JetStreamEventStore
from careops_eventstore.projection import Projection, ProjectionRunner
from careops_eventstore.timers import TimerScheduler
from careops_platform import admin
from careops_platform.db import database_url, make_engine, migrate
from careops_platform.runtime import (
    connect_with_retry,
    run_process,
    start_projections,
    stop_in_order,
)
from careops_platform.server import GrpcServer, ServiceBinding, run_until_signalled
from careops_platform.settings import ServiceSettings, load_settings
from prometheus_client import REGISTRY
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
    Teams,
    WhatIf,
    utc_now,
)
from quality.config import load_teams as load_teams
from quality.metrics import KpiCollector
from quality.projections import (
    FollowUpTimerProjection,
    IncidentFactsProjection,
    SurveyProjection,
    TicketFactsProjection,
)

log = logging.getLogger("quality")
SERVICE = "quality"
GRPC_PORT_ENV = "CAREOPS_QUALITY_GRPC_PORT"
METRICS_PORT_ENV = "CAREOPS_QUALITY_METRICS_PORT"


class QualitySettings(ServiceSettings):
    grpc_port: int = Field(
        50054, ge=0, le=65535, validation_alias=AliasChoices("grpc_port", GRPC_PORT_ENV)
    )
    metrics_port: int = Field(
        9104, ge=0, le=65535, validation_alias=AliasChoices("metrics_port", METRICS_PORT_ENV)
    )
    sla_policy_file: str = Field(
        "", description="YAML SLA policy ticketing runs with (what-if's actual); empty: built-in"
    )
    teams_file: str = Field(
        "",
        description="YAML team directory",
        validation_alias=AliasChoices("teams_file", "CAREOPS_QUALITY_TEAMS_FILE"),
    )
    follow_up_hours: float = Field(
        24.0,
        gt=0,
        le=24 * 30,
        description="Hours until a negative survey's follow-up is overdue",
        validation_alias=AliasChoices("follow_up_hours", "CAREOPS_QUALITY_FOLLOW_UP_HOURS"),
    )
    timer_interval_seconds: float = Field(0.5, gt=0, le=60)


class QualityService:
    """The running service: log, projections of three streams, timers and the gRPC server."""

    def __init__(
        self, settings: QualitySettings, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.engine = make_engine(database_url(settings.database_url, settings.data_dir, SERVICE))
        self.runners: dict[str, ProjectionRunner] = {}
        self.server: GrpcServer | None = None
        self.scheduler: TimerScheduler | None = None
        self.store: JetStreamEventStore | None = None
        self.app: QualityApp | None = None
        self.collector = KpiCollector(self.engine, clock)

    async def _log_reachable(self, reachable: bool) -> None:
        if self.server is not None:
            await self.server.set_serving(reachable)

    async def wait_for(self, name: str, sequence: int, timeout: float) -> bool:
        return await self.runners[name].wait_for(sequence, timeout)

    async def start(self) -> None:
        settings = self.settings
        await asyncio.to_thread(migrate, self.engine, Path(__file__).parent / "migrations")
        policy = careops_sla.load_policy(settings.sla_policy_file or None)
        teams = load_teams(settings.teams_file or None)
        self.store = store = await connect_with_retry(settings, SERVICE, self._log_reachable)
        self.app = app = QualityApp(
            store=store,
            follow_up_after=timedelta(hours=settings.follow_up_hours),
            clock=self.clock,
        )
        await app.provision(replicas=settings.stream_replicas)
        own: list[Projection] = [SurveyProjection(), FollowUpTimerProjection()]
        sources: tuple[tuple[EventCodec, str, str, list[Projection]], ...] = (
            (CODEC, STREAM.name, STREAM.subjects[0], own),
            (TICKETING_CODEC, TICKETING_STREAM, TICKETING_SUBJECTS, [TicketFactsProjection()]),
            (INCIDENT_CODEC, INCIDENT_STREAM, INCIDENT_SUBJECTS, [IncidentFactsProjection()]),
        )
        for codec, stream, subjects, projections in sources:
            self.runners.update(
                await start_projections(
                    store=store,
                    engine=self.engine,
                    codec=codec,
                    stream=stream,
                    filter_subject=subjects,
                    projections=projections,
                )
            )
        self.scheduler = TimerScheduler(
            engine=self.engine,
            fire=app.fire_timer,
            clock=self.clock,
            interval=settings.timer_interval_seconds,
        )
        self.scheduler.start()
        self.server = GrpcServer(
            host=settings.grpc_host,
            port=settings.grpc_port,
            bindings=[
                ServiceBinding(
                    grpc_api.QualityServicer(
                        app,
                        self.engine,
                        grpc_api.ReadWaits(
                            tickets=partial(self.wait_for, TicketFactsProjection.name),
                            surveys=partial(self.wait_for, SurveyProjection.name),
                            incidents=partial(self.wait_for, IncidentFactsProjection.name),
                        ),
                        settings.read_wait_seconds,
                        teams=Teams(teams),
                        what_if=WhatIf(policy),
                    ),
                    quality_pb2_grpc.add_QualityServiceServicer_to_server,
                    grpc_api.SERVICE_NAME,
                ),
                ServiceBinding(
                    admin.ProjectionAdminServicer(self.runners, store, engine=self.engine),
                    admin_pb2_grpc.add_ProjectionAdminServiceServicer_to_server,
                    admin.SERVICE_NAME,
                ),
            ],
            error_map=grpc_api.error_map(),
        )
        await self.server.start()
        await self.server.set_serving(True)
        log.info("quality serving", extra={"grpc_port": self.server.port})

    async def stop(self) -> None:
        await stop_in_order(
            server=self.server,
            grace_seconds=self.settings.shutdown_grace_seconds,
            background=[self.scheduler, *self.runners.values()],
            store=self.store,
            engines=[self.engine],
        )


async def serve(settings: QualitySettings) -> None:
    """Runs the service until SIGTERM / SIGINT."""
    service = QualityService(settings)
    REGISTRY.register(service.collector)
    await run_until_signalled(service.start, service.stop)


def main() -> None:
    run_process(SERVICE, load_settings(QualitySettings), serve)


if __name__ == "__main__":
    main()
