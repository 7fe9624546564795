"""Ticketing service process: wiring only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

import careops_sla as sla
from careops.common.v1 import admin_pb2_grpc
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops_eventstore.jetstream import JetStreamEventStore
from careops_eventstore.projection import ProjectionRunner
from careops_eventstore.timers import TimerScheduler
from careops_platform import admin
from careops_platform.contacts import CONTACT_HASH_KEY_ENV, CONTACT_HASH_KEY_FILE, load_secret
from careops_platform.db import database_url, make_engine, migrate
from careops_platform.runtime import (
    connect_with_retry,
    run_process,
    start_projections,
    stop_in_order,
)
from careops_platform.server import GrpcServer, ServiceBinding, run_until_signalled
from careops_platform.settings import ServiceSettings, load_settings
from pydantic import AliasChoices, Field, SecretStr

from ticketing import grpc_api
from ticketing.application import STREAM, CustomerLookup, TicketingApp, load_agents, utc_now
from ticketing.projections import (
    CUSTOMER_CODEC,
    CustomerDirectoryProjection,
    SlaTimerProjection,
    TicketListProjection,
)
from ticketing.readmodels import KnownCustomers

log = logging.getLogger("ticketing")
SERVICE = "ticketing"
GRPC_PORT_ENV = "CAREOPS_TICKETING_GRPC_PORT"
METRICS_PORT_ENV = "CAREOPS_TICKETING_METRICS_PORT"
CUSTOMER_STREAM = "CAREOPS_CUSTOMER"


class TicketingSettings(ServiceSettings):
    grpc_port: int = Field(
        50051, ge=0, le=65535, validation_alias=AliasChoices("grpc_port", GRPC_PORT_ENV)
    )
    metrics_port: int = Field(
        9101, ge=0, le=65535, validation_alias=AliasChoices("metrics_port", METRICS_PORT_ENV)
    )
    sla_policy_file: str = Field("", description="YAML SLA policy; empty: built-in default")
    agents_file: str = Field("", description="YAML agent directory; empty: built-in sample")
    timer_interval_seconds: float = Field(0.5, gt=0, le=60)
    contact_hash_key: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("contact_hash_key", CONTACT_HASH_KEY_ENV),
        description="base64 HMAC key for contact lookups, shared with customer-profile",
    )


class TicketingService:
    """The running service: event store, projections, timers and the gRPC server."""

    def __init__(
        self, settings: TicketingSettings, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.settings = settings
        self.clock = clock  # injected so tests drive timers with a FakeClock
        self.engine = make_engine(database_url(settings.database_url, settings.data_dir, SERVICE))
        self.runners: dict[str, ProjectionRunner] = {}
        self.server: GrpcServer | None = None
        self.scheduler: TimerScheduler | None = None
        self.store: JetStreamEventStore | None = None
        self.app: TicketingApp | None = None

    async def _log_reachable(self, reachable: bool) -> None:
        """Health follows the log: NOT_SERVING while NATS is unreachable."""
        if self.server is not None:
            await self.server.set_serving(reachable)

    async def wait_for(self, name: str, sequence: int, timeout: float) -> bool:
        return await self.runners[name].wait_for(sequence, timeout)

    def _directory_position(self) -> int:
        return self.runners[CustomerDirectoryProjection.name].position

    async def start(self) -> None:
        settings = self.settings
        await asyncio.to_thread(migrate, self.engine, Path(__file__).parent / "migrations")
        policy = sla.load_policy(settings.sla_policy_file or None)
        agents = load_agents(settings.agents_file or None)
        self.store = store = await connect_with_retry(settings, SERVICE, self._log_reachable)
        self.app = app = TicketingApp(store=store, policy=policy, agents=agents, clock=self.clock)
        await app.provision(replicas=settings.stream_replicas)
        hash_key = load_secret(
            settings.contact_hash_key.get_secret_value(),
            settings.data_dir,
            CONTACT_HASH_KEY_FILE,
            CONTACT_HASH_KEY_ENV,
        )
        self.runners.update(
            await start_projections(
                store=store,
                engine=self.engine,
                codec=CUSTOMER_CODEC,
                stream=CUSTOMER_STREAM,
                filter_subject="careops.customer.customer.>",
                projections=[CustomerDirectoryProjection()],
            )
        )
        self.runners.update(
            await start_projections(
                store=store,
                engine=self.engine,
                codec=app.repository.kind.codec,
                stream=STREAM.name,
                filter_subject=STREAM.subjects[0],
                projections=[TicketListProjection(), SlaTimerProjection()],
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
                    grpc_api.TicketingServicer(
                        app,
                        self.engine,
                        partial(self.wait_for, TicketListProjection.name),
                        settings.read_wait_seconds,
                        customers=CustomerLookup(
                            KnownCustomers(self.engine, self._directory_position),
                            hash_key=hash_key,
                        ),
                    ),
                    ticketing_pb2_grpc.add_TicketingServiceServicer_to_server,
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
        log.info("ticketing serving", extra={"grpc_port": self.server.port})

    async def stop(self) -> None:
        await stop_in_order(
            server=self.server,
            grace_seconds=self.settings.shutdown_grace_seconds,
            background=[self.scheduler, *self.runners.values()],
            store=self.store,
            engines=[self.engine],
        )


async def serve(settings: TicketingSettings) -> None:
    """Runs the service until SIGTERM / SIGINT."""
    service = TicketingService(settings)
    await run_until_signalled(service.start, service.stop)


def main() -> None:
    run_process(SERVICE, load_settings(TicketingSettings), serve)


if __name__ == "__main__":
    main()
