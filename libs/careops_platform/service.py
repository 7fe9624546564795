"""The service skeleton, once: a service's `main.py` declares its settings and fills in hooks.

`Service` is a process with a gRPC server (health, reflection, interceptors), /metrics and a
graceful stop; the gateway uses it as it is. `EventSourcedService` adds the log: migrate the
read models, connect to NATS with retry (health follows the connection), build the
application (`bootstrap`, the composition root: tests pass an `InMemoryEventStore`), provision
its stream, and run the projections, reactions and background work the hooks declare, with the
projection admin service next to the context's own servicers.

Hooks of `EventSourcedService`, called in this order on start:
`prepare()` → `application(store)` → `ready(app)` → `projections(app)` → `reactions(app)` →
`background(app)` → `servicer(app)`. Stopping runs: the server, background, reactions,
`resources`, projections, the log connection, `engines`.

Roles (`settings.role`, `--role` or CAREOPS_ROLE): `all` (the default) runs everything in one
process. `api` serves the context's servicer (commands and read-model queries) and runs no
projection, reaction or timer; its `min_sequence` waits read the projections' SQL checkpoints
(`SqlPositions`) that a worker process advances. `worker` runs the projections, reactions and
background work, with gRPC health and /metrics only; workers share the projection groups
through leases in NATS KV (careops_eventstore.leases: one worker runs each group, a dead
worker's groups move within `lease_seconds`), and their own waits read the SQL checkpoints too
(the group may run in another worker). Every role migrates and provisions, and
every hook is called in every role (they wire; the skeleton starts only the role's parts).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import grpc
from careops.common.v1 import admin_pb2_grpc
from careops_eventstore import EventStore
from careops_eventstore.application import utc_now
from careops_eventstore.codec import EventCodec
from careops_eventstore.jetstream import JetStreamEventStore
from careops_eventstore.leases import LeaseBoard, LeasedGroups
from careops_eventstore.projection import Projection, ProjectionGroup, ProjectionRunner
from careops_eventstore.reactions import Handler, ReactionRunner
from careops_eventstore.timers import DueTimer, TimerScheduler
from prometheus_client import REGISTRY
from prometheus_client.registry import Collector
from pydantic import AliasChoices, Field
from sqlalchemy import Engine

from careops_platform import admin
from careops_platform.checkpoints import SqlPositions
from careops_platform.db import database_url, make_engine, migrate
from careops_platform.internal_identity import InternalVerifier
from careops_platform.registry import ServiceEntry
from careops_platform.runtime import (
    Stoppable,
    connect_with_retry,
    projection_group,
    run_process,
    settle_heap,
    stop_in_order,
)
from careops_platform.server import GrpcServer, ServiceBinding, run_until_signalled
from careops_platform.settings import ServiceSettings, load_settings

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
AppT = TypeVar("AppT", bound="Application")
ErrorMap = Mapping[type[Exception], grpc.StatusCode]


class Application(Protocol):
    """What the skeleton needs of a context's application (careops_eventstore.application)."""

    async def provision(self, *, replicas: int = 1) -> None: ...


class Background(Stoppable, Protocol):
    """Work started after the projections: timer schedulers, schedules, reaction runners."""

    def start(self) -> None: ...


@dataclass(frozen=True)
class Api:
    """A context's gRPC edge: how its servicer registers, its full name and its error map."""

    register: Callable[[Any, grpc.aio.Server], None]
    full_name: str
    error_map: Callable[[], ErrorMap]

    @classmethod
    def of(cls, module: ModuleType, register: Callable[[Any, grpc.aio.Server], None]) -> Api:
        """Returns the API of a `grpc_api` module (its SERVICE_NAME and error_map)."""
        return cls(register, module.SERVICE_NAME, module.error_map)


@dataclass(frozen=True)
class Subscription:
    """Projections of one stream's `filter_subject`, decoded with `codec`."""

    stream: str
    filter_subject: str
    codec: EventCodec
    projections: Sequence[Projection]


@dataclass(frozen=True)
class Reaction:
    """A process manager fed by one stream's `filter_subject` (one durable consumer)."""

    name: str
    stream: str
    filter_subject: str
    handle: Handler
    concurrency: int = 1
    # The event types it reacts to (empty: all); other messages are acked unread.
    event_types: frozenset[str] = frozenset()


def port_setting(entry: ServiceEntry, field: str, default: int | None = None) -> Any:
    """Returns the pydantic field of one of the service's ports (`grpc_port`, `metrics_port`,
    `http_port`): the registry's default, set by `CAREOPS_<SERVICE>_<FIELD>`."""
    value = getattr(entry, field) if default is None else default
    return Field(value, ge=0, le=65535, validation_alias=AliasChoices(field, entry.env(field)))


class Service(Generic[SettingsT]):
    """A service process: the gRPC server with `bindings()`, then whatever `start_parts` runs."""

    entry: ClassVar[ServiceEntry]

    def __init__(self, settings: SettingsT) -> None:
        self.settings = settings
        self.server: GrpcServer | None = None

    def bindings(self) -> Sequence[ServiceBinding]:
        """Returns the servicers the gRPC server serves (health and reflection come with it)."""
        return ()

    def error_map(self) -> ErrorMap | None:
        """Returns the domain errors the interceptors map to status codes."""
        return None

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        """Returns the service's own interceptors, run after the standard chain."""
        return ()

    def credentials(self) -> grpc.ServerCredentials | None:
        """Returns the TLS credentials of the gRPC port; None (the default): plaintext."""
        return None

    def internal_identity(self) -> InternalVerifier | None:
        """Returns the verifier of the gateway's signed identity that every call must present
        (the default: every service); None only for a process that authenticates its callers
        itself (the gateway)."""
        return self.settings.internal_verifier()

    def collectors(self) -> Sequence[Collector]:
        """Returns the scrape-time collectors `serve` registers with Prometheus."""
        return ()

    def serving_details(self) -> dict[str, Any]:
        """Returns what the "serving" log line adds to the gRPC port."""
        return {}

    async def start_parts(self) -> None:
        """Runs before the server is built."""

    async def started(self) -> None:
        """Runs after the server started, before health turns SERVING."""

    async def stop_parts(self) -> None:
        """Runs after the server stopped."""

    async def start(self) -> None:
        """Starts the parts, then the server; health turns SERVING last."""
        await self.start_parts()
        settings = self.settings
        self.server = GrpcServer(
            host=settings.grpc_host,
            port=settings.grpc_port,
            bindings=self.bindings(),
            error_map=self.error_map(),
            interceptors=self.interceptors(),
            credentials=self.credentials(),
            identity=self.internal_identity(),
        )
        await self.server.start()
        await self.started()
        await self.server.set_serving(True)
        details = {"grpc_port": self.server.port, **self.serving_details()}
        # The service's own logger, as before the skeleton: log queries filter on its name.
        logging.getLogger(self.entry.name).info(f"{self.entry.name} serving", extra=details)

    async def stop(self) -> None:
        """Stops the server (in-flight calls get the grace period), then the parts."""
        if self.server is not None:
            await self.server.stop(self.settings.shutdown_grace_seconds)
        await self.stop_parts()


class EventSourcedService(Service[SettingsT], Generic[SettingsT, AppT]):
    """A bounded context's process: the log, its read models and the gRPC server."""

    migrations: ClassVar[Path]
    api: ClassVar[Api]

    def __init__(self, settings: SettingsT, *, clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(settings)
        self.clock = clock  # injected so tests drive timers with a FakeClock
        url = database_url(settings.database_url, settings.data_dir, self.entry.name)
        self.engine = make_engine(url)
        self.engines: list[Engine] = [self.engine]
        self.runners: dict[str, ProjectionRunner] = {}
        self.reaction_runners: list[ReactionRunner] = []
        self.background_parts: list[Background] = []
        self.resources: list[Stoppable] = []  # stopped after the reactions that use them
        self.scheduler: TimerScheduler | None = None
        self.store: JetStreamEventStore | None = None
        self.app: AppT | None = None
        # In the api role: the positions of the worker's projections, read from SQL.
        self.positions: SqlPositions | None = None
        # In the worker role: the leases of the projection groups this worker runs.
        self.leases: LeasedGroups | None = None
        self.setup()

    # ------------------------------------------------------------------------------ hooks

    def setup(self) -> None:
        """Adds the service's own attributes (collectors, engines); runs at the end of __init__."""

    def application(self, store: EventStore) -> AppT:
        """Returns the context's application over `store` (on `self.clock`)."""
        raise NotImplementedError

    async def prepare(self) -> None:
        """Reads what the application needs (configuration files, secrets) before it is built."""

    async def ready(self, app: AppT) -> None:
        """Runs once the stream exists, before any projection or reaction starts."""

    def projections(self, app: AppT) -> Sequence[Subscription]:
        """Returns the read models to run, by the stream they read."""
        return ()

    def reactions(self, app: AppT) -> Sequence[Reaction]:
        """Returns the process managers to run."""
        return ()

    def background(self, app: AppT) -> Sequence[Background]:
        """Returns the timers and schedules to start after the reactions."""
        return ()

    def servicer(self, app: AppT) -> Any:
        """Returns the servicer of the context's `api` (the projection admin service is added)."""
        return None

    # --------------------------------------------------------------------------- skeleton

    async def bootstrap(self, store: EventStore) -> AppT:
        """The composition root: builds the application over `store` and provisions its
        stream. Tests pass an InMemoryEventStore (and the service a FakeClock)."""
        await self.prepare()
        app = self.application(store)
        await app.provision(replicas=self.settings.stream_replicas)
        await self.ready(app)
        self.app = app
        return app

    def timers(
        self, fire: Callable[[DueTimer], Awaitable[None]], interval: float
    ) -> TimerScheduler:
        """Returns the timer scheduler that fires due timers through `fire` (see `background`)."""
        self.scheduler = TimerScheduler(
            engine=self.engine, fire=fire, clock=self.clock, interval=interval
        )
        return self.scheduler

    @property
    def role(self) -> str:
        """`all`, `api` or `worker` (settings.role)."""
        return self.settings.role

    @property
    def runs_api(self) -> bool:
        return self.role in ("all", "api")

    @property
    def runs_work(self) -> bool:
        return self.role in ("all", "worker")

    async def wait_for(self, name: str, sequence: int, timeout: float) -> bool:
        """Returns whether projection `name` reached `sequence` within `timeout` seconds: from
        this process's runner, or in the api role from the SQL checkpoint."""
        if self.positions is not None:
            return await self.positions.wait_for(name, sequence, timeout)
        return await self.runners[name].wait_for(sequence, timeout)

    def position(self, name: str) -> int:
        """The last stream sequence projection `name` applied (as last read, in the api role)."""
        if self.positions is not None:
            return self.positions.position(name)
        return self.runners[name].position

    async def _log_reachable(self, reachable: bool) -> None:
        """Health follows the log: NOT_SERVING while NATS is unreachable."""
        if self.server is not None:
            await self.server.set_serving(reachable)

    async def start_parts(self) -> None:
        await asyncio.to_thread(migrate, self.engine, self.migrations)
        self.store = store = await connect_with_retry(
            self.settings, self.entry.name, self._log_reachable
        )
        app = await self.bootstrap(store)
        subscriptions = self.projections(app)
        reactions = self.reactions(app)
        background = self.background(app)
        if self.role != "all":
            self.positions = SqlPositions(self.engine)
            await self.positions.start()
        if not self.runs_work:
            return
        parts = set(self.settings.worker_parts.split(","))
        groups = [
            projection_group(
                store=store,
                engine=self.engine,
                codec=source.codec,
                stream=source.stream,
                filter_subject=source.filter_subject,
                projections=source.projections,
            )
            for source in (subscriptions if "projections" in parts else ())
        ]
        for group in groups:
            self.runners.update(group.runners())
        if self.role == "worker":
            await self._lease(store, groups)
        else:
            for group in groups:
                await group.start()
        for reaction in reactions if "reactions" in parts else ():
            runner = ReactionRunner(
                nc=store.client,
                engine=self.engine,
                name=reaction.name,
                stream=reaction.stream,
                filter_subject=reaction.filter_subject,
                handle=reaction.handle,
                concurrency=reaction.concurrency,
                ack_wait_seconds=self.settings.reaction_ack_wait_seconds,
                event_types=reaction.event_types,
            )
            runner.start()
            self.reaction_runners.append(runner)
        for part in background if "background" in parts else ():
            part.start()
            self.background_parts.append(part)

    async def _lease(self, store: JetStreamEventStore, groups: Sequence[ProjectionGroup]) -> None:
        """The worker role: each group runs while this worker holds its lease."""
        if not groups:
            return
        board = await LeaseBoard.open(
            store.client, self.entry.name, replicas=self.settings.stream_replicas
        )
        self.leases = LeasedGroups(
            board,
            {group.name: group for group in groups},
            lease_seconds=self.settings.lease_seconds,
        )
        self.leases.start()

    def bindings(self) -> Sequence[ServiceBinding]:
        if self.app is None or self.store is None:
            raise RuntimeError(f"{self.entry.name}: the application is not bootstrapped")
        if not self.runs_api:
            return []  # a worker: gRPC health only
        projection_admin = admin.ProjectionAdminServicer(
            self.runners, self.store, engine=self.engine, reactions=self.reaction_runners
        )
        bindings = [
            ServiceBinding(
                projection_admin,
                admin_pb2_grpc.add_ProjectionAdminServiceServicer_to_server,
                admin.SERVICE_NAME,
            )
        ]
        servicer = self.servicer(self.app)
        if servicer is not None:
            bindings.insert(0, ServiceBinding(servicer, self.api.register, self.api.full_name))
        return bindings

    def error_map(self) -> ErrorMap | None:
        api: Api | None = getattr(self, "api", None)  # a context without an API of its own
        return api.error_map() if api else None

    async def stop(self) -> None:
        await stop_in_order(
            server=self.server,
            grace_seconds=self.settings.shutdown_grace_seconds,
            background=[
                *self.background_parts,
                *self.reaction_runners,
                *self.resources,
                self.leases,
                *self.runners.values(),
                self.positions,
            ],
            store=self.store,
            engines=self.engines,
        )


async def serve(service: Service[Any]) -> None:
    """Runs `service` until SIGTERM / SIGINT, its collectors registered with Prometheus."""
    for collector in service.collectors():
        REGISTRY.register(collector)

    async def start() -> None:
        await service.start()
        settle_heap()

    await run_until_signalled(start, service.stop)


def run_service(service: type[Service[SettingsT]], settings: type[SettingsT]) -> None:
    """A service's entry point: validated settings, logs, tracing, /metrics, then `serve`."""

    async def run(loaded: SettingsT) -> None:
        await serve(service(loaded))

    overrides = {}
    role = parse_role(sys.argv[1:])
    if role is not None:
        overrides["role"] = role
    run_process(service.entry.name, load_settings(settings, **overrides), run)


def parse_role(argv: Sequence[str]) -> str | None:
    """Returns `--role api|worker|all` of the command line (None: CAREOPS_ROLE or `all`)."""
    parser = argparse.ArgumentParser(add_help=True)
    parser.add_argument(
        "--role",
        choices=("all", "api", "worker"),
        help="all (default): everything in one process; api: commands and queries; "
        "worker: projections, reactions and timers",
    )
    role: str | None = parser.parse_args(list(argv)).role
    return role
