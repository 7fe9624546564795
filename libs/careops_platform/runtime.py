"""Process runtime shared by every service: the entry point, connecting to the log, running
projections, and stopping in order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

import uvloop
from careops_eventstore import LogUnavailable
from careops_eventstore.codec import EventCodec
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.projection import Projection, ProjectionGroup
from sqlalchemy import Engine

from careops_platform.logs import configure_logging
from careops_platform.parent import die_with_supervisor
from careops_platform.server import GrpcServer, start_metrics
from careops_platform.settings import ServiceSettings
from careops_platform.telemetry import configure_tracing

log = logging.getLogger(__name__)
S = TypeVar("S", bound=ServiceSettings)

# The cyclic collector's thresholds once a service serves (CPython's default: 700, 10, 10).
# A command allocates ~100 container objects that outlive it briefly (its task, futures, the
# aggregate's state), so at 700 a young collection ran every ~6 commands and a full one every
# ~600, each walking the whole heap: 5-8% of an OpenTicket's CPU in the --role api process
# (docs/benchmarks.md §16, session 25).
SERVING_GC_THRESHOLDS = (10_000, 10, 10)


class Stoppable(Protocol):
    """Background work a service runs: timers, schedules, reactions, projection runners."""

    async def stop(self) -> None: ...


def run_process(service: str, settings: S, serve: Callable[[S], Coroutine[Any, Any, None]]) -> None:
    """A service process's entry point: JSON logs, tracing and /metrics, then `serve` until it
    returns (on SIGTERM / SIGINT)."""
    die_with_supervisor()
    configure_logging(service, settings.log_level)
    configure_tracing(service, settings.otel_endpoint)
    start_metrics(settings.grpc_host, settings.metrics_port)
    with asyncio.Runner(loop_factory=event_loop_factory(settings.event_loop)) as runner:
        runner.run(serve(settings))


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The new-loop function of event loop `name` (settings.event_loop): uvloop's or asyncio's."""
    if name == "uvloop":
        return uvloop.new_event_loop
    return asyncio.new_event_loop


def settle_heap() -> None:
    """Called once a service serves: what start-up built (modules, protobuf descriptors, the
    engines, the application and its policies) is collected once and then frozen out of the
    cyclic collector's reach (`gc.freeze`: it is never freed anyway), and the young generation
    is collected less often. Garbage is still collected, only in larger, rarer batches."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


async def stop_in_order(
    *,
    server: GrpcServer | None,
    grace_seconds: float,
    background: Sequence[Stoppable | None] = (),
    store: JetStreamEventStore | None = None,
    engines: Sequence[Engine] = (),
) -> None:
    """Stops a service: the API first (in-flight calls get `grace_seconds`), then `background`
    in the order given (what appends before what it feeds), then the log connection, then the
    databases."""
    if server is not None:
        await server.stop(grace_seconds)
    for part in background:
        if part is not None:
            await part.stop()
    if store is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(store.client.close(), 5)
    for engine in engines:
        engine.dispose()


async def connect_with_retry(
    settings: ServiceSettings, service: str, on_change: Callable[[bool], Awaitable[None]]
) -> JetStreamEventStore:
    """Connects to NATS, retrying until it is reachable; reports later losses and recoveries."""

    async def lost() -> None:
        await on_change(False)

    async def back() -> None:
        await on_change(True)

    while True:
        try:
            nc = await connect(
                settings.nats_url, name=f"careops-{service}", on_disconnect=lost, on_reconnect=back
            )
            return JetStreamEventStore(nc, append_timeout=settings.append_timeout_seconds)
        except LogUnavailable as exc:
            log.warning("waiting for NATS: %s", exc)
            await asyncio.sleep(1.0)


def projection_group(
    *,
    store: JetStreamEventStore,
    engine: Engine,
    codec: EventCodec,
    stream: str,
    filter_subject: str,
    projections: Sequence[Projection],
) -> ProjectionGroup:
    """Returns one group (one consumer) feeding `projections`, not started (a worker starts
    it when it holds its lease)."""
    return ProjectionGroup(
        nc=store.client,
        engine=engine,
        projections=projections,
        codec=codec,
        stream=stream,
        filter_subject=filter_subject,
    )
