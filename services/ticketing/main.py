"""Ticketing service process: wiring only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import careops_sla as sla
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops_eventstore import EventStore
from careops_platform import keystore, policies, registry
from careops_platform import service as skeleton
from careops_platform.contacts import CONTACT_HASH_KEY_ENV, CONTACT_HASH_KEY_FILE, load_secret
from careops_platform.db import make_engine
from careops_platform.settings import ServiceSettings
from pydantic import AliasChoices, Field, SecretStr

from ticketing import grpc_api
from ticketing.application import (
    CODEC,
    STREAM,
    CustomerLookup,
    TicketingApp,
    load_agents,
    load_compensation_limits,
    workloads_of,
)
from ticketing.keystore import text_sealer
from ticketing.projections import (
    CUSTOMER_CODEC,
    AgentDirectoryProjection,
    ConversationProjection,
    CustomerDirectoryProjection,
    MacroListProjection,
    SlaTimerProjection,
    TicketListProjection,
    text_shredder,
)
from ticketing.reactions import TRIGGER_CODEC, Router, RouterReads, SlaPolicyApplier
from ticketing.readmodels import Directory, KnownCustomers

ENTRY = registry.service("ticketing")


class TicketingSettings(ServiceSettings):
    grpc_port: int = skeleton.port_setting(ENTRY, "grpc_port")
    metrics_port: int = skeleton.port_setting(ENTRY, "metrics_port")
    sla_policy_file: str = Field("", description="YAML SLA policy; empty: built-in default")
    agents_file: str = Field(
        "", description="YAML seed of the agent directory (put once, while empty); empty: sample"
    )
    compensation_limits_file: str = Field(
        "", description="YAML compensation limits per role and currency; empty: built-in defaults"
    )
    auto_route: bool = Field(
        True, description="run the router: waiting tickets are assigned as capacity frees up"
    )
    timer_interval_seconds: float = Field(0.5, gt=0, le=60)
    master_key: SecretStr = keystore.master_key_setting(ENTRY)
    keystore_url: str = keystore.keystore_url_setting(ENTRY)
    contact_hash_key: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("contact_hash_key", CONTACT_HASH_KEY_ENV),
        description="base64 HMAC key for contact lookups, shared with customer-profile",
    )

    def keystore_database(self) -> str:
        return keystore.keystore_database(
            self.keystore_url, self.database_url, self.data_dir, "ticketing-keys"
        )


class TicketingService(skeleton.EventSourcedService[TicketingSettings, TicketingApp]):
    """The running service: event store, projections, timers and the gRPC server."""

    entry = ENTRY
    migrations = Path(__file__).parent / "migrations"
    api = skeleton.Api.of(grpc_api, ticketing_pb2_grpc.add_TicketingServiceServicer_to_server)

    async def prepare(self) -> None:
        settings = self.settings
        # Revision 1 of the `sla` policy when the log has none (docs/policies.md); the file is
        # validated here either way, so a bad one fails the start.
        self.policy_document = sla.policy_text(settings.sla_policy_file or None)
        self.policy = sla.load_policy(settings.sla_policy_file or None)
        self.agents = load_agents(settings.agents_file or None)
        self.limits = load_compensation_limits(settings.compensation_limits_file or None)
        self.hash_key = load_secret(
            settings.contact_hash_key.get_secret_value(),
            settings.data_dir,
            CONTACT_HASH_KEY_FILE,
            CONTACT_HASH_KEY_ENV,
        )
        master = keystore.master_key(ENTRY, settings.master_key, settings.data_dir)
        self.texts = text_sealer(self.keys_engine, master)
        await asyncio.to_thread(self.texts.keys.create_schema)

    def setup(self) -> None:
        self.directory = Directory(self.engine)
        self.router: Router | None = None
        self.keys_engine = make_engine(self.settings.keystore_database())
        self.engines.append(self.keys_engine)

    def application(self, store: EventStore) -> TicketingApp:
        return TicketingApp(
            store=store,
            policy=self.policy,
            agents=self.agents,
            limits=self.limits,
            clock=self.clock,
            texts=self.texts,
        )

    async def start_parts(self) -> None:
        await super().start_parts()
        # After the migrations and projections: the seed is put once, while the directory is empty.
        assert self.app is not None
        await self.app.seed_agents(directory_empty=await self.directory.is_empty())

    async def ready(self, app: TicketingApp) -> None:
        # Before any projection, reaction or command: decisions read the book from the first.
        await app.seed_sla_policy(self.policy_document)

    def projections(self, app: TicketingApp) -> Sequence[skeleton.Subscription]:
        customers = registry.CUSTOMER
        return [
            skeleton.Subscription(
                customers.name,
                customers.filter("customer"),
                CUSTOMER_CODEC,
                [CustomerDirectoryProjection(), text_shredder(self.texts)],
            ),
            skeleton.Subscription(
                STREAM.name,
                STREAM.subjects[0],
                CODEC,
                # The whole stream (tickets, agents and macros), so every read model reaches any
                # sequence of it: a min_sequence from any command can be waited for.
                [
                    TicketListProjection(self.texts),
                    SlaTimerProjection(),
                    AgentDirectoryProjection(),
                    ConversationProjection(self.texts),
                    MacroListProjection(),
                ],
            ),
        ]

    def reactions(self, app: TicketingApp) -> Sequence[skeleton.Reaction]:
        self.applier = SlaPolicyApplier(
            app,
            synced=partial(
                self.wait_for, TicketListProjection.name, timeout=self.settings.read_wait_seconds
            ),
            active=self.directory.active,
        )
        applier = skeleton.Reaction(
            "sla-policy-applier",
            STREAM.name,
            app.sla_book.subject,
            self.applier.handle,
            event_types=policies.CODEC.type_names,
        )
        if not self.settings.auto_route:
            return [applier]
        reads = RouterReads(
            synced=partial(self._read_models_at, timeout=self.settings.read_wait_seconds),
            workload=workloads_of(self.directory),
            waiting=self.directory.waiting,
            waiting_count=self.directory.waiting_count,
            unstarted=self.directory.unstarted,
            position=self._router_reads_position,
        )
        self.router = Router(app, reads)
        return [
            applier,
            skeleton.Reaction(
                "ticket-router",
                STREAM.name,
                STREAM.subjects[0],
                self.router.handle,
                event_types=TRIGGER_CODEC.type_names,
            ),
        ]

    async def _read_models_at(self, sequence: int, timeout: float) -> bool:
        """Whether the ticket list and the directory both reached `sequence` in `timeout`."""
        tickets = await self.wait_for(TicketListProjection.name, sequence, timeout)
        return tickets and await self.wait_for(AgentDirectoryProjection.name, sequence, timeout)

    def _router_reads_position(self) -> int:
        return min(
            self.position(TicketListProjection.name),
            self.position(AgentDirectoryProjection.name),
        )

    def background(self, app: TicketingApp) -> Sequence[skeleton.Background]:
        return [self.timers(app.fire_timer, self.settings.timer_interval_seconds)]

    def _directory_position(self) -> int:
        return self.position(CustomerDirectoryProjection.name)

    def servicer(self, app: TicketingApp) -> grpc_api.TicketingServicer:
        return grpc_api.TicketingServicer(
            app,
            self.engine,
            self.wait_for,
            self.settings.read_wait_seconds,
            customers=CustomerLookup(
                KnownCustomers(self.engine, self._directory_position), hash_key=self.hash_key
            ),
            directory=self.directory,
        )


def main() -> None:
    skeleton.run_service(TicketingService, TicketingSettings)


if __name__ == "__main__":
    main()
