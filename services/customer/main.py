"""Customer-profile service process: wiring only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path

from careops.customer.v1 import customer_pb2_grpc
from careops_eventstore import EventStore
from careops_platform import keystore, registry
from careops_platform import service as skeleton
from careops_platform.changes import ReadModelChanges
from careops_platform.collectors import SqlCounts
from careops_platform.contacts import CONTACT_HASH_KEY_ENV, CONTACT_HASH_KEY_FILE, load_secret
from careops_platform.db import make_engine
from careops_platform.mail import Mailer, MailSettings
from careops_platform.settings import ServiceSettings
from prometheus_client.registry import Collector
from pydantic import AliasChoices, Field, SecretStr
from sqlalchemy import Engine

from customer import currencies, domain, grpc_api, readmodels
from customer.application import CODEC, STREAM, CustomerApp
from customer.keystore import KeyStore
from customer.notices import DECIDED_CODEC, IncidentNotices
from customer.projections import (
    INCIDENT_CODEC,
    QUALITY_CODEC,
    TICKET_CODEC,
    CustomerProjection,
    IncidentFactsProjection,
    SurveyFactsProjection,
    TicketFactsProjection,
)
from customer.reactions import OPENED_CODEC, TRIGGER_TYPES, Segmenter, SegmentSchedule

ENTRY = registry.service("customer")


class CustomerSettings(ServiceSettings):
    grpc_port: int = skeleton.port_setting(ENTRY, "grpc_port")
    metrics_port: int = skeleton.port_setting(ENTRY, "metrics_port")
    master_key: SecretStr = keystore.master_key_setting(ENTRY)
    contact_hash_key: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("contact_hash_key", CONTACT_HASH_KEY_ENV),
        description="base64 HMAC key for contact lookups, shared with ticketing",
    )
    keystore_url: str = keystore.keystore_url_setting(ENTRY)
    rfm_model_version: str = "rfm-2026.1"
    rfm_frequency_window_days: int = Field(365, ge=1, le=3650)
    rfm_monetary_window_days: int = Field(365, ge=1, le=3650)
    churn_weeks: int = Field(16, ge=1, le=520)
    segment_currency: str = Field("CNY", min_length=3, max_length=3)
    segment_interval_seconds: float = Field(86_400, gt=0, le=7 * 86_400)
    segment_initial_delay_seconds: float = Field(30, ge=0, le=86_400)
    population_ttl_seconds: float = Field(300, ge=0, le=86_400)
    # Telling customers about incidents (customer.notices): the SMTP relay and its retries,
    # the same settings (and defaults) as incident-crisis's pager.
    smtp_host: str = Field("127.0.0.1", min_length=1)
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_sender: str = Field("careops@localhost", min_length=3)
    notify_attempts: int = Field(4, ge=1, le=20)
    notify_backoff_seconds: float = Field(0.2, ge=0, le=60)
    notify_timeout_seconds: float = Field(5.0, gt=0, le=60)

    def mail_settings(self) -> MailSettings:
        return MailSettings(
            host=self.smtp_host,
            port=self.smtp_port,
            sender=self.smtp_sender,
            timeout_seconds=self.notify_timeout_seconds,
            attempts=self.notify_attempts,
            backoff_seconds=self.notify_backoff_seconds,
        )

    def rfm_model(self) -> domain.RfmModel:
        return domain.RfmModel(
            version=self.rfm_model_version,
            frequency_window=timedelta(days=self.rfm_frequency_window_days),
            monetary_window=timedelta(days=self.rfm_monetary_window_days),
            churn_after=timedelta(weeks=self.churn_weeks),
            currency=currencies.currency_code(self.segment_currency),
        )

    def keystore_database(self) -> str:
        return keystore.keystore_database(
            self.keystore_url, self.database_url, self.data_dir, "customer-keys"
        )


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


class CustomerService(skeleton.EventSourcedService[CustomerSettings, CustomerApp]):
    """The running service: log, key store, projections, segmentation and the gRPC server."""

    entry = ENTRY
    migrations = Path(__file__).parent / "migrations"
    api = skeleton.Api.of(grpc_api, customer_pb2_grpc.add_CustomerProfileServiceServicer_to_server)

    def setup(self) -> None:
        self.keys_engine = make_engine(self.settings.keystore_database())
        self.engines.append(self.keys_engine)
        self.schedule: SegmentSchedule | None = None
        self.segmenter: Segmenter | None = None
        self.collector = customers_by_tier(self.engine)

    def collectors(self) -> Sequence[Collector]:
        return [self.collector]

    async def prepare(self) -> None:
        settings = self.settings
        master = keystore.master_key(ENTRY, settings.master_key, settings.data_dir)
        self.hash_key = load_secret(
            settings.contact_hash_key.get_secret_value(),
            settings.data_dir,
            CONTACT_HASH_KEY_FILE,
            CONTACT_HASH_KEY_ENV,
        )
        self.keys = KeyStore(self.keys_engine, master)
        await asyncio.to_thread(self.keys.create_schema)

    def application(self, store: EventStore) -> CustomerApp:
        return CustomerApp(
            store=store,
            keys=self.keys,
            hash_key=self.hash_key,
            model=self.settings.rfm_model(),
            clock=self.clock,
        )

    async def ready(self, app: CustomerApp) -> None:
        await app.reconcile_erasures()

    def projections(self, app: CustomerApp) -> Sequence[skeleton.Subscription]:
        tickets, incidents, quality = registry.TICKETING, registry.INCIDENT, registry.QUALITY
        return [
            skeleton.Subscription(STREAM.name, STREAM.subjects[0], CODEC, [CustomerProjection()]),
            skeleton.Subscription(
                tickets.name, tickets.filter("ticket"), TICKET_CODEC, [TicketFactsProjection()]
            ),
            skeleton.Subscription(
                incidents.name,
                incidents.filter("incident"),
                INCIDENT_CODEC,
                [IncidentFactsProjection()],
            ),
            skeleton.Subscription(
                quality.name, quality.filter(), QUALITY_CODEC, [SurveyFactsProjection()]
            ),
        ]

    def reactions(self, app: CustomerApp) -> Sequence[skeleton.Reaction]:
        self.segmenter = segmenter = Segmenter(
            app,
            self.engine,
            self.wait_for,
            population_ttl_seconds=self.settings.population_ttl_seconds,
        )
        tickets = registry.TICKETING
        notices = IncidentNotices(
            app,
            self.engine,
            Mailer(self.settings.mail_settings()),
            self.wait_for,
            wait=self.settings.read_wait_seconds,
        )
        return [
            # One at a time, in order: a later purchase's segment is never overtaken.
            skeleton.Reaction(
                "customer-segments",
                STREAM.name,
                STREAM.subjects[0],
                segmenter.handle,
                event_types=TRIGGER_TYPES,
            ),
            skeleton.Reaction(
                "customer-contacts",
                tickets.name,
                tickets.filter("ticket"),
                segmenter.handle_ticket,
                event_types=OPENED_CODEC.type_names,
            ),
            # Incident's decisions to tell customers: delivered here, where the contacts open.
            skeleton.Reaction(
                "customer-incident-notices",
                registry.INCIDENT.name,
                registry.INCIDENT.filter("incident"),
                notices.handle,
                event_types=DECIDED_CODEC.type_names,
            ),
        ]

    def background(self, app: CustomerApp) -> Sequence[skeleton.Background]:
        assert self.segmenter is not None  # built by reactions()
        self.schedule = SegmentSchedule(
            self.segmenter,
            interval_seconds=self.settings.segment_interval_seconds,
            initial_delay_seconds=self.settings.segment_initial_delay_seconds,
        )
        return [self.schedule]

    def servicer(self, app: CustomerApp) -> grpc_api.CustomerServicer:
        return grpc_api.CustomerServicer(
            app,
            self.engine,
            partial(self.wait_for, CustomerProjection.name),
            self.settings.read_wait_seconds,
            changes=ReadModelChanges(
                (
                    CustomerProjection.name,
                    TicketFactsProjection.name,
                    IncidentFactsProjection.name,
                    SurveyFactsProjection.name,
                ),
                self.position,
                self.wait_for,
            ),
        )


def main() -> None:
    skeleton.run_service(CustomerService, CustomerSettings)


if __name__ == "__main__":
    main()
