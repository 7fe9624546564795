"""Incident-crisis service process: wiring only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from careops.common.v1 import admin_pb2_grpc
from careops.incident.v1 import incident_pb2_grpc
from careops_eventstore.jetstream import JetStreamEventStore
from careops_eventstore.projection import ProjectionRunner
from careops_eventstore.reactions import ReactionRunner
from careops_eventstore.timers import TimerScheduler
from careops_platform import admin
from careops_platform.collectors import SqlCounts
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
from sqlalchemy import Engine

from incident import domain, grpc_api, readmodels
from incident.alerts import AlertWatch
from incident.application import CODEC, STREAM, IncidentApp, utc_now
from incident.notifiers import Notifiers, NotifierSettings
from incident.projections import IncidentProjection, IncidentTimerProjection
from incident.reactions import SURGE_CODEC, PageDispatcher, SurgeActions, SurgeProjection
from incident.readmodels import WaitingPagesAsOf

log = logging.getLogger("incident")
SERVICE = "incident"
GRPC_PORT_ENV = "CAREOPS_INCIDENT_GRPC_PORT"
METRICS_PORT_ENV = "CAREOPS_INCIDENT_METRICS_PORT"
TICKETING_STREAM = "CAREOPS_TICKETING"


class IncidentSettings(ServiceSettings):
    grpc_port: int = Field(
        50053, ge=0, le=65535, validation_alias=AliasChoices("grpc_port", GRPC_PORT_ENV)
    )
    metrics_port: int = Field(
        9103, ge=0, le=65535, validation_alias=AliasChoices("metrics_port", METRICS_PORT_ENV)
    )
    oncall_file: str = Field("", description="YAML on-call teams loaded at start")
    response_matrix_file: str = Field("", description="YAML response matrix; empty: default")
    webhook_signing_key: str = Field("", description="HMAC-SHA256 key for webhook signatures")
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    pagerduty_change_url: str = Field(
        "https://events.pagerduty.com/v2/change/enqueue",
        description="PagerDuty change events: grey (informed) notices, which page nobody",
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_sender: str = "careops@localhost"
    notify_attempts: int = Field(4, ge=1, le=20)
    notify_backoff_seconds: float = Field(0.2, gt=0, le=60)
    notify_timeout_seconds: float = Field(5.0, gt=0, le=60)
    surge_threshold: int = Field(10, ge=2, le=100_000)
    surge_window_minutes: float = Field(30, gt=0, le=7 * 24 * 60)
    risk_model_version: str = "risk-2026.1"
    risk_weights: tuple[float, float, float, float] = Field(
        (0.4, 0.3, 0.2, 0.1), description="scope, business, timeliness, exposure"
    )
    risk_thresholds: tuple[float, float] = Field((0.7, 0.4), description="level A, level B")
    timer_interval_seconds: float = Field(0.5, gt=0, le=60)

    def risk_model(self) -> domain.RiskModel:
        scope, business, timeliness, exposure = self.risk_weights
        return domain.RiskModel(
            version=self.risk_model_version,
            scope_weight=scope,
            business_weight=business,
            timeliness_weight=timeliness,
            exposure_weight=exposure,
            level_a_threshold=self.risk_thresholds[0],
            level_b_threshold=self.risk_thresholds[1],
        )

    def notifier_settings(self) -> NotifierSettings:
        return NotifierSettings(
            webhook_signing_key=self.webhook_signing_key,
            pagerduty_events_url=self.pagerduty_events_url,
            pagerduty_change_url=self.pagerduty_change_url,
            smtp_host=self.smtp_host,
            smtp_port=self.smtp_port,
            smtp_sender=self.smtp_sender,
            timeout_seconds=self.notify_timeout_seconds,
            attempts=self.notify_attempts,
            backoff_seconds=self.notify_backoff_seconds,
        )


def open_incidents(engine: Engine) -> SqlCounts:
    """careops_incidents_open{level}: open non-drill incidents, counted at scrape time."""
    return SqlCounts(
        engine,
        name="careops_incidents_open",
        documentation="Open non-drill incidents by level.",
        label="level",
        labels={level.value: level.value.upper() for level in domain.Level},
        count=lambda session: readmodels.open_counts(session=session),
    )


class IncidentService:
    """The running service: log, projections, timers, reactions and the gRPC server."""

    def __init__(
        self, settings: IncidentSettings, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.settings = settings
        self.clock = clock  # injected so tests drive timers with a FakeClock
        self.engine = make_engine(database_url(settings.database_url, settings.data_dir, SERVICE))
        self.runners: dict[str, ProjectionRunner] = {}
        self.reactions: list[ReactionRunner] = []
        self.server: GrpcServer | None = None
        self.scheduler: TimerScheduler | None = None
        self.store: JetStreamEventStore | None = None
        self.app: IncidentApp | None = None
        self.notifiers: Notifiers | None = None
        self.collector = open_incidents(self.engine)

    async def _log_reachable(self, reachable: bool) -> None:
        if self.server is not None:
            await self.server.set_serving(reachable)

    async def wait_for(self, name: str, sequence: int, timeout: float) -> bool:
        return await self.runners[name].wait_for(sequence, timeout)

    async def start(self) -> None:
        settings = self.settings
        await asyncio.to_thread(migrate, self.engine, Path(__file__).parent / "migrations")
        self.store = store = await connect_with_retry(settings, SERVICE, self._log_reachable)
        self.app = app = IncidentApp(store=store, risk=settings.risk_model(), clock=self.clock)
        await app.provision(replicas=settings.stream_replicas)
        await app.load_defaults(
            oncall_file=settings.oncall_file or None,
            matrix_file=settings.response_matrix_file or None,
        )
        self.runners.update(
            await start_projections(
                store=store,
                engine=self.engine,
                codec=CODEC,
                stream=STREAM.name,
                filter_subject=STREAM.subjects[0],
                projections=[IncidentProjection(), IncidentTimerProjection()],
            )
        )
        self.notifiers = Notifiers(settings.notifier_settings())
        dispatcher = PageDispatcher(app, self.notifiers)
        self.runners.update(
            await start_projections(
                store=store,
                engine=self.engine,
                codec=SURGE_CODEC,
                stream=TICKETING_STREAM,
                filter_subject="careops.ticketing.>",
                projections=[
                    SurgeProjection(
                        threshold=settings.surge_threshold,
                        window=timedelta(minutes=settings.surge_window_minutes),
                    )
                ],
            )
        )
        self.reactions = [
            ReactionRunner(
                nc=store.client,
                engine=self.engine,
                name="incident-pager",
                stream=STREAM.name,
                filter_subject="careops.incident.incident.>",
                handle=dispatcher.handle,
                # Deliveries wait on the network (retries, timeouts), not on the CPU: a burst of
                # incidents must not queue behind one another's slow channels.
                concurrency=256,
            ),
        ]
        for reaction in self.reactions:
            reaction.start()
        self.scheduler = TimerScheduler(
            engine=self.engine,
            fire=SurgeActions(app, self.engine, app.fire_timer).fire,
            clock=self.clock,
            interval=settings.timer_interval_seconds,
        )
        self.scheduler.start()
        self.server = GrpcServer(
            host=settings.grpc_host,
            port=settings.grpc_port,
            bindings=[
                ServiceBinding(
                    grpc_api.IncidentServicer(
                        app,
                        self.engine,
                        AlertWatch(
                            app,
                            nc=store.client,
                            waiting=WaitingPagesAsOf(self.engine, IncidentProjection.name),
                        ),
                        partial(self.wait_for, IncidentProjection.name),
                        settings.read_wait_seconds,
                    ),
                    incident_pb2_grpc.add_IncidentServiceServicer_to_server,
                    grpc_api.SERVICE_NAME,
                ),
                ServiceBinding(
                    admin.ProjectionAdminServicer(
                        self.runners, store, engine=self.engine, reactions=self.reactions
                    ),
                    admin_pb2_grpc.add_ProjectionAdminServiceServicer_to_server,
                    admin.SERVICE_NAME,
                ),
            ],
            error_map=grpc_api.error_map(),
        )
        await self.server.start()
        await self.server.set_serving(True)
        log.info("incident serving", extra={"grpc_port": self.server.port})

    async def stop(self) -> None:
        await stop_in_order(
            server=self.server,
            grace_seconds=self.settings.shutdown_grace_seconds,
            background=[self.scheduler, *self.reactions, self.notifiers, *self.runners.values()],
            store=self.store,
            engines=[self.engine],
        )


async def serve(settings: IncidentSettings) -> None:
    service = IncidentService(settings)
    REGISTRY.register(service.collector)
    await run_until_signalled(service.start, service.stop)


def main() -> None:
    run_process(SERVICE, load_settings(IncidentSettings), serve)


if __name__ == "__main__":
    main()
