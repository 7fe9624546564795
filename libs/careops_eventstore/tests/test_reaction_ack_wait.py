"""A reaction's short ack_wait on a real nats-server: a handler slower than it is kept in
progress (not redelivered), and a consumer created with another ack_wait gets the runner's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api
from sqlalchemy import create_engine

from careops_eventstore.jetstream import connect
from careops_eventstore.model import RecordedBatch
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_eventstore.reactions import ReactionRunner
from careops_eventstore.sqlstate import metadata
from careops_eventstore.tests.test_runner import message
from tests.support import eventually

ACK_WAIT = 2.0


@pytest.fixture
async def client(nats_server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    nc = await connect(nats_server.url, name="reaction-ack-wait-test")
    yield nc
    await nc.close()


async def _stream(nc: NatsClient) -> str:
    stream = f"ACKWAIT_{uuid.uuid4().hex[:8].upper()}"
    await nc.jetstream().add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
    return stream


def _runner(nc: NatsClient, tmp_path: Path, stream: str, handle: object) -> ReactionRunner:
    engine = create_engine(f"sqlite:///{tmp_path / 'parked.db'}")
    metadata.create_all(engine)
    return ReactionRunner(
        nc=nc,
        engine=engine,
        name=f"test-{stream.lower()}",
        stream=stream,
        filter_subject=f"{stream.lower()}.>",
        handle=handle,  # type: ignore[arg-type]
        ack_wait_seconds=ACK_WAIT,
    )


async def test_a_handler_slower_than_ack_wait_is_kept_in_progress_not_redelivered(
    client: NatsClient, tmp_path: Path
) -> None:
    stream = await _stream(client)
    deliveries: list[int] = []
    release = asyncio.Event()

    async def handle(recorded: RecordedBatch) -> None:
        deliveries.append(recorded.sequence)
        await release.wait()

    runner = _runner(client, tmp_path, stream, handle)
    # The acks the runner sends for its consumer, "+WPI" (in progress) among them.
    progress: list[bytes] = []

    async def seen(msg: Msg) -> None:
        if msg.data.startswith(b"+WPI"):
            progress.append(msg.data)

    acks = await client.subscribe(f"$JS.ACK.{stream}.{runner.durable}.>", cb=seen)
    runner.start()
    try:
        await client.jetstream().publish(f"{stream.lower()}.one", message("slow"))
        # Eight keep-alives at a quarter of ack_wait each: the handler outlived two ack_waits.
        await eventually(lambda: len(progress) >= 8, timeout=30, what="eight keep-alives")
        release.set()
        info = await eventually(
            lambda: _acked(client, stream, runner.durable), timeout=30, what="acked"
        )
    finally:
        release.set()
        await runner.stop()
        await acks.unsubscribe()
    assert deliveries == [1]
    assert info.num_redelivered == 0


async def _acked(nc: NatsClient, stream: str, durable: str) -> api.ConsumerInfo | None:
    info = await nc.jetstream().consumer_info(stream, durable)
    floor = info.ack_floor.stream_seq if info.ack_floor else 0
    return info if floor == 1 and not info.num_ack_pending else None


async def test_a_consumer_created_with_another_ack_wait_gets_the_runners(
    client: NatsClient, tmp_path: Path
) -> None:
    stream = await _stream(client)

    async def handle(_recorded: RecordedBatch) -> None:
        return None

    runner = _runner(client, tmp_path, stream, handle)
    js = client.jetstream()
    old = api.ConsumerConfig(
        durable_name=runner.durable,
        filter_subject=f"{stream.lower()}.>",
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=30,
        max_ack_pending=10_000,
    )
    await js.add_consumer(stream, old)  # as a release before the keep-alive created it
    runner.start()
    try:

        async def updated() -> bool:
            info = await js.consumer_info(stream, runner.durable)
            return info.config.ack_wait == ACK_WAIT

        await eventually(updated, timeout=30, what="ack_wait updated")
    finally:
        await runner.stop()
