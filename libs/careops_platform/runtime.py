"""Process runtime shared by every service: connecting to the log, running projections."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from careops_eventstore import LogUnavailable
from careops_eventstore.codec import EventCodec
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.projection import Projection, ProjectionRunner
from sqlalchemy import Engine

from careops_platform.settings import ServiceSettings

log = logging.getLogger(__name__)


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


async def start_projections(
    *,
    store: JetStreamEventStore,
    engine: Engine,
    codec: EventCodec,
    stream: str,
    filter_subject: str,
    projections: Sequence[Projection],
) -> dict[str, ProjectionRunner]:
    """Starts one runner per projection; returns them by name."""
    runners = {}
    for projection in projections:
        runner = ProjectionRunner(
            nc=store.client,
            engine=engine,
            projection=projection,
            codec=codec,
            stream=stream,
            filter_subject=filter_subject,
        )
        await runner.start()
        runners[projection.name] = runner
    return runners
