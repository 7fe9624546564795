"""EmbeddedNatsCluster's configuration, and how the event store reads a clustered stream's
answers (the three-node behaviour itself: tests/faults/test_cluster_failover.py)."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from careops.events.v1.envelope_pb2 import EventBatch
from nats.js import api

from careops_eventstore.consumers import ConsumerRequests
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.model import ConcurrencyConflict, LogUnavailable
from careops_eventstore.nats_embedded import EmbeddedNatsCluster
from careops_eventstore.tasks import stop_task


def test_each_member_has_its_own_store_name_and_ports_and_routes_to_all(tmp_path: Path) -> None:
    cluster = EmbeddedNatsCluster(data_dir=tmp_path)
    configs = [node.write_config().read_text() for node in cluster.nodes]
    names = {node.server_name for node in cluster.nodes}
    ports = {p for n in cluster.nodes for p in (n.port, n.cluster_port, n.http_port)}
    assert len(names) == 3 and len(ports) == 9
    assert len({node.data_dir for node in cluster.nodes}) == 3
    for node, config in zip(cluster.nodes, configs, strict=True):
        assert "sync_interval: always" in config
        assert f"server_name: {node.server_name}" in config
        assert all(f"nats-route://127.0.0.1:{n.cluster_port}" in config for n in cluster.nodes)
    assert cluster.url.split(",") == [node.url for node in cluster.nodes]
    assert cluster.node("careops-n1") is cluster.nodes[1]


class _Refusing:
    """A NATS client whose JetStream answers every publish with `error`."""

    is_connected = True

    def __init__(self, error: Exception) -> None:
        self.error = error

    def jetstream(self, **_: Any) -> _Refusing:
        return self

    async def publish(self, *_: Any, **__: Any) -> None:
        raise self.error


async def _append(error: Exception) -> None:
    store = JetStreamEventStore(_Refusing(error))  # type: ignore[arg-type]
    await store.append(
        stream="S", subject="s.1", batch=EventBatch(), expected_sequence=0, message_id="m"
    )


@pytest.mark.parametrize("err_code", [10071, 10164])
async def test_a_wrong_last_sequence_is_a_conflict_in_either_form(err_code: int) -> None:
    error = nats.js.errors.BadRequestError(code=400, err_code=err_code, description="wrong")
    with pytest.raises(ConcurrencyConflict):
        await _append(error)


@pytest.mark.parametrize(
    "error",
    [
        nats.js.errors.APIError(code=409, err_code=10158, description="in process"),
        nats.js.errors.ServiceUnavailableError(code=503, err_code=10008, description="busy"),
        nats.js.errors.NoStreamResponseError(),
        nats.errors.TimeoutError(),
    ],
)
async def test_a_stream_between_leaders_leaves_the_append_unconfirmed(error: Exception) -> None:
    with pytest.raises(LogUnavailable):
        await _append(error)


async def test_any_other_refusal_is_not_hidden() -> None:
    with pytest.raises(nats.js.errors.APIError):
        await _append(nats.js.errors.APIError(code=400, err_code=10999, description="other"))


async def test_a_delete_sent_after_a_cancelled_create_is_answered(tmp_path: Path) -> None:
    """An R3 consumer's delete that reaches the servers while its create is in flight is never
    answered (the API timeout); ConsumerRequests sends it once the create is answered, also
    when the create's caller was cancelled (a projection group stopped, then rebuilt)."""
    cluster = EmbeddedNatsCluster(data_dir=tmp_path).start()
    nc = await connect(cluster.url, name="careops-tests-requests")
    try:
        js = nc.jetstream(timeout=5)
        await js.add_stream(api.StreamConfig(name="S", subjects=["s.>"], num_replicas=3))
        requests = ConsumerRequests()
        sent = asyncio.Event()

        async def create() -> api.ConsumerInfo:
            sent.set()
            return await js.add_consumer("S", api.ConsumerConfig(durable_name="c"))

        creating = asyncio.create_task(requests.run(create))
        await sent.wait()
        await stop_task(creating)  # as ProjectionGroup.stop does
        assert await requests.run(partial(js.delete_consumer, "S", "c"))
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.consumer_info("S", "c")
    finally:
        await nc.close()
        cluster.stop()
