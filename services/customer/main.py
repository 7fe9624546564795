"""Customer-profile service process: wiring only."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import partial
from pathlib import Path

from careops.common.v1 import admin_pb2_grpc
from careops.customer.v1 import customer_pb2_grpc
from careops_eventstore.jetstream import JetStreamEventStore
from careops_eventstore.projection import ProjectionRunner
from careops_eventstore.reactions import ReactionRunner
from careops_platform import admin
from careops_platform.collectors import SqlCounts
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
from prometheus_client import REGISTRY
from pydantic import AliasChoices, Field, SecretStr
from sqlalchemy import Engine

from customer import currencies, domain, grpc_api, readmodels
from customer.application import CODEC, STREAM, CustomerApp
from customer.keystore import KeyStore
from customer.projections import (
    INCIDENT_CODEC,
    QUALITY_CODEC,
    TICKET_CODEC,
    CustomerProjection,
    IncidentFactsProjection,
    SurveyFactsProjection,
    TicketFactsProjection,
)
from customer.reactions import Segmenter, SegmentSchedule

log = logging.getLogger("customer")
SERVICE = "customer"
GRPC_PORT_ENV = "CAREOPS_CUSTOMER_GRPC_PORT"
METRICS_PORT_ENV = "CAREOPS_CUSTOMER_METRICS_PORT"
MASTER_KEY_ENV = "CAREOPS_CUSTOMER_MASTER_KEY"
MASTER_KEY_FILE = "customer-master.key"
TICKETING_STREAM = "CAREOPS_TICKETING"
INCIDENT_STREAM = "CAREOPS_INCIDENT"
QUALITY_STREAM = "CAREOPS_QUALITY"
TICKET_SUBJECTS = "careops.ticketing.ticket.>"
INCIDENT_SUBJECTS = "careops.incident.incident.>"


class CustomerSettings(ServiceSettings):
    grpc_port: int = Field(
        50052, ge=0, le=65535, validation_alias=AliasChoices("grpc_port", GRPC_PORT_ENV)
    )
    metrics_port: int = Field(
        9102, ge=0, le=65535, validation_alias=AliasChoices("metrics_port", METRICS_PORT_ENV)
    )
    master_key: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("master_key", MASTER_KEY_ENV),
        description="base64 AES-256 key wrapping the data keys; empty: generated in data_dir",
    )
    contact_hash_key: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("contact_hash_key", CONTACT_HASH_KEY_ENV),
        description="base64 HMAC key for contact lookups, shared with ticketing",
    )
    keystore_url: str = Field(
        "",
        validation_alias=AliasChoices("keystore_url", "CAREOPS_CUSTOMER_KEYSTORE_URL"),
        description="SQL URL of the key store; empty: the database, or SQLite in data_dir",
    )
    rfm_model_version: str = "rfm-2026.1"
    rfm_frequency_window_days: int = Field(365, ge=1, le=3650)
    rfm_monetary_window_days: int = Field(365, ge=1, le=3650)
    churn_weeks: int = Field(16, ge=1, le=520)
    segment_currency: str = Field("CNY", min_length=3, max_length=3)
    segment_interval_seconds: float = Field(86_400, gt=0, le=7 * 86_400)
    segment_initial_delay_seconds: float = Field(30, ge=0, le=86_400)
    population_ttl_seconds: float = Field(300, ge=0, le=86_400)

    def rfm_model(self) -> domain.RfmModel:
        return domain.RfmModel(
            version=self.rfm_model_version,
            frequency_window=timedelta(days=self.rfm_frequency_window_days),
            monetary_window=timedelta(days=self.rfm_monetary_window_days),
            churn_after=timedelta(weeks=self.churn_weeks),
            currency=currencies.currency_code(self.segment_currency),
        )

    def keystore_database(self) -> str:
        if self.keystore_url:
            return self.keystore_url
        if self.database_url:
            return self.database_url
        return database_url("", self.data_dir, "customer-keys")


def customers_by_tier(engine: Engine) -> SqlCounts:
    """careops_customers{tier}: live (not erased) customers per tier, counted at scrape time."""
    return SqlCounts(
        engine,
        name="careops_customers",
        documentation="Live (not erased) customers by tier.",
        label="tier",
        labels={tier.value: tier.value for tier in domain.Tier},
        count=lambda session: readmodels.tier_counts(session=session),
    )


class CustomerService:
    """The running service: log, key store, projections, segmentation and the gRPC server."""

    def __init__(self, settings: CustomerSettings) -> None:
        self.settings = settings
        self.engine = make_engine(database_url(settings.database_url, settings.data_dir, SERVICE))
        self.keys_engine = make_engine(settings.keystore_database())
        self.runners: dict[str, ProjectionRunner] = {}
        self.reactions: list[ReactionRunner] = []
        self.schedule: SegmentSchedule | None = None
        self.segmenter: Segmenter | None = None
        self.server: GrpcServer | None = None
        self.store: JetStreamEventStore | None = None
        self.app: CustomerApp | None = None
        self.collector = customers_by_tier(self.engine)

    async def _log_reachable(self, reachable: bool) -> None:
        if self.server is not None:
            await self.server.set_serving(reachable)

    async def wait_for(self, name: str, sequence: int, timeout: float) -> bool:
        return await self.runners[name].wait_for(sequence, timeout)

    async def start(self) -> None:
        settings = self.settings
        master = load_secret(
            settings.master_key.get_secret_value(),
            settings.data_dir,
            MASTER_KEY_FILE,
            MASTER_KEY_ENV,
        )
        hash_key = load_secret(
            settings.contact_hash_key.get_secret_value(),
            settings.data_dir,
            CONTACT_HASH_KEY_FILE,
            CONTACT_HASH_KEY_ENV,
        )
        keys = KeyStore(self.keys_engine, master)
        await asyncio.to_thread(keys.create_schema)
        await asyncio.to_thread(migrate, self.engine, Path(__file__).parent / "migrations")
        self.store = store = await connect_with_retry(settings, SERVICE, self._log_reachable)
        self.app = app = CustomerApp(
            store=store, keys=keys, hash_key=hash_key, model=settings.rfm_model()
        )
        await app.provision(replicas=settings.stream_replicas)
        await app.reconcile_erasures()
        for codec, stream, subjects, projections in (
            (CODEC, STREAM.name, STREAM.subjects[0], [CustomerProjection()]),
            (
                TICKET_CODEC,
                TICKETING_STREAM,
                "careops.ticketing.ticket.>",
                [TicketFactsProjection()],
            ),
            (
                INCIDENT_CODEC,
                INCIDENT_STREAM,
                "careops.incident.incident.>",
                [IncidentFactsProjection()],
            ),
            (QUALITY_CODEC, QUALITY_STREAM, "careops.quality.>", [SurveyFactsProjection()]),
        ):
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
        self.segmenter = segmenter = Segmenter(
            app,
            self.engine,
            self.wait_for,
            population_ttl_seconds=settings.population_ttl_seconds,
        )
        self.reactions = [
            ReactionRunner(
                nc=store.client,
                engine=self.engine,
                name="customer-segments",
                stream=STREAM.name,
                filter_subject=STREAM.subjects[0],
                handle=segmenter.handle,
                concurrency=1,  # in order: a later purchase's segment is never overtaken
            ),
            ReactionRunner(
                nc=store.client,
                engine=self.engine,
                name="customer-contacts",
                stream=TICKETING_STREAM,
                filter_subject=TICKET_SUBJECTS,
                handle=segmenter.handle_ticket,
                concurrency=1,
            ),
        ]
        for reaction in self.reactions:
            reaction.start()
        self.schedule = SegmentSchedule(
            segmenter,
            interval_seconds=settings.segment_interval_seconds,
            initial_delay_seconds=settings.segment_initial_delay_seconds,
        )
        self.schedule.start()
        self.server = GrpcServer(
            host=settings.grpc_host,
            port=settings.grpc_port,
            bindings=[
                ServiceBinding(
                    grpc_api.CustomerServicer(
                        app,
                        self.engine,
                        partial(self.wait_for, CustomerProjection.name),
                        settings.read_wait_seconds,
                    ),
                    customer_pb2_grpc.add_CustomerProfileServiceServicer_to_server,
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
        log.info("customer serving", extra={"grpc_port": self.server.port})

    async def stop(self) -> None:
        await stop_in_order(
            server=self.server,
            grace_seconds=self.settings.shutdown_grace_seconds,
            background=[self.schedule, *self.reactions, *self.runners.values()],
            store=self.store,
            engines=[self.engine, self.keys_engine],
        )


async def serve(settings: CustomerSettings) -> None:
    service = CustomerService(settings)
    REGISTRY.register(service.collector)
    await run_until_signalled(service.start, service.stop)


def main() -> None:
    run_process(SERVICE, load_settings(CustomerSettings), serve)


if __name__ == "__main__":
    main()
