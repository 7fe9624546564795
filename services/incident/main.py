"""Incident-crisis service process: wiring only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from careops.incident.v1 import incident_pb2_grpc
from careops_eventstore import EventStore
from careops_eventstore.application import OffsetClock
from careops_eventstore.projection import Projection
from careops_platform import registry
from careops_platform import service as skeleton
from careops_platform.collectors import SqlCounts
from careops_platform.settings import ServiceSettings
from prometheus_client.registry import Collector
from pydantic import Field
from sqlalchemy import Engine

from incident import config, domain, grpc_api, readmodels
from incident.alerts import AlertWatch
from incident.application import CODEC, STREAM, IncidentApp, utc_now
from incident.notifiers import Notifiers, NotifierSettings
from incident.policies import IncidentWhatIf
from incident.projections import (
    NOTICES_CODEC,
    CustomerNoticeProjection,
    DrillProjection,
    IncidentProjection,
    IncidentTimerProjection,
    StatusPageProjection,
)
from incident.reactions import SURGE_CODEC, PageDispatcher, SurgeActions, SurgeProjection
from incident.readmodels import WaitingPagesAsOf
from incident.templates import templates_document

ENTRY = registry.service("incident")


class IncidentSettings(ServiceSettings):
    grpc_port: int = skeleton.port_setting(ENTRY, "grpc_port")
    metrics_port: int = skeleton.port_setting(ENTRY, "metrics_port")
    oncall_file: str = Field("", description="YAML on-call teams loaded at start")
    response_matrix_file: str = Field("", description="YAML response matrix; empty: default")
    notice_templates_file: str = Field(
        "", description="YAML customer message templates; empty: the packaged default"
    )
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
    clock_offset_file: str = Field(
        "",
        description="tests only: a file holding the seconds the service's clock runs ahead of "
        "the real time (OffsetClock; a test moves it past a deadline); empty: the real time",
    )
    schedule_retention_days: float = Field(
        30,
        gt=0,
        le=3660,
        description="runtime overrides and swaps that ended longer ago leave the team's state",
    )

    def risk_model(self) -> domain.RiskModel:
        """Returns the risk model of these settings; ConfigError naming a bad weight otherwise."""
        return config.risk_model(self.risk_model_version, self.risk_weights, self.risk_thresholds)

    def clock(self) -> Callable[[], datetime]:
        """The service's clock: the real time, or ahead of it by `clock_offset_file`."""
        return OffsetClock(Path(self.clock_offset_file)) if self.clock_offset_file else utc_now

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


class IncidentService(skeleton.EventSourcedService[IncidentSettings, IncidentApp]):
    """The running service: log, projections, timers, reactions and the gRPC server."""

    entry = ENTRY
    migrations = Path(__file__).parent / "migrations"
    api = skeleton.Api.of(grpc_api, incident_pb2_grpc.add_IncidentServiceServicer_to_server)

    def __init__(
        self, settings: IncidentSettings, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(settings, clock=clock or settings.clock())

    def setup(self) -> None:
        self.notifiers: Notifiers | None = None
        self.collector = open_incidents(self.engine)

    def collectors(self) -> Sequence[Collector]:
        return [self.collector]

    def application(self, store: EventStore) -> IncidentApp:
        return IncidentApp(
            store=store,
            risk=self.settings.risk_model(),
            clock=self.clock,
            notice_templates=templates_document(self.settings.notice_templates_file or None),
            schedule_retention=timedelta(days=self.settings.schedule_retention_days),
        )

    async def ready(self, app: IncidentApp) -> None:
        await app.load_defaults(
            oncall_file=self.settings.oncall_file or None,
            matrix_file=self.settings.response_matrix_file or None,
        )
        await app.seed_risk_policy()
        await app.intake.seed()
        await app.seed_notice_templates()

    def projections(self, app: IncidentApp) -> Sequence[skeleton.Subscription]:
        own: list[Projection] = [
            IncidentProjection(),
            IncidentTimerProjection(),
            DrillProjection(),
            StatusPageProjection(),
        ]
        surge = SurgeProjection(
            threshold=self.settings.surge_threshold,
            window=timedelta(minutes=self.settings.surge_window_minutes),
        )
        tickets, customers = registry.TICKETING, registry.CUSTOMER
        return [
            skeleton.Subscription(STREAM.name, STREAM.subjects[0], CODEC, own),
            skeleton.Subscription(tickets.name, tickets.filter(), SURGE_CODEC, [surge]),
            skeleton.Subscription(
                customers.name,
                customers.filter("customer"),
                NOTICES_CODEC,
                [CustomerNoticeProjection()],
            ),
        ]

    def reactions(self, app: IncidentApp) -> Sequence[skeleton.Reaction]:
        settings = self.settings
        self.notifiers = Notifiers(settings.notifier_settings())
        self.resources.append(self.notifiers)
        dispatcher = PageDispatcher(app, self.notifiers)
        return [
            skeleton.Reaction(
                "incident-pager",
                STREAM.name,
                registry.INCIDENT.filter("incident"),
                dispatcher.handle,
                # Deliveries wait on the network (retries, timeouts), not on the CPU: a burst of
                # incidents must not queue behind one another's slow channels.
                concurrency=256,
                event_types=PageDispatcher.EVENT_TYPES,
            ),
        ]

    def background(self, app: IncidentApp) -> Sequence[skeleton.Background]:
        fire = SurgeActions(app, self.engine, app.fire_timer).fire
        return [self.timers(fire, self.settings.timer_interval_seconds)]

    def servicer(self, app: IncidentApp) -> grpc_api.IncidentServicer:
        assert self.store is not None
        alerts = AlertWatch(
            app,
            nc=self.store.client,
            waiting=WaitingPagesAsOf(self.engine, IncidentProjection.name),
        )
        return grpc_api.IncidentServicer(
            app,
            self.engine,
            alerts,
            partial(self.wait_for, IncidentProjection.name),
            self.settings.read_wait_seconds,
            what_if=IncidentWhatIf(app, partial(readmodels.declared_in, self.engine)),
            status_page=partial(readmodels.read_status_page, self.engine),
        )


def main() -> None:
    skeleton.run_service(IncidentService, IncidentSettings)


if __name__ == "__main__":
    main()
