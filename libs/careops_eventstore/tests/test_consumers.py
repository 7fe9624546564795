"""The lag a projection reports from its consumer's state; a delivery's sequences; fetching
a batch from a real NATS."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import cast

import pytest
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError
from nats.js import api

from careops_eventstore.consumers import delivery, fetch_batch, pending
from careops_eventstore.jetstream import connect
from careops_eventstore.nats_embedded import EmbeddedNats


def consumer_info(*, delivered: int, num_pending: int, ack_pending: int) -> api.ConsumerInfo:
    return cast(
        api.ConsumerInfo,
        api.ConsumerInfo(
            name="c",
            stream_name="S",
            config=api.ConsumerConfig(),
            created=datetime(2026, 1, 1, tzinfo=UTC),
            delivered=api.SequenceInfo(consumer_seq=delivered, stream_seq=delivered),
            num_pending=num_pending,
            num_ack_pending=ack_pending,
        ),
    )


def test_unacked_messages_count_while_not_applied() -> None:
    info = consumer_info(delivered=10, num_pending=3, ack_pending=2)
    assert pending(info) == 5
    assert pending(info, applied_through=8) == 5


def test_acks_in_flight_after_everything_delivered_was_applied_are_not_lag() -> None:
    """A rebuild reaches its target, then reports lag 1 while its last ack is on the wire."""
    info = consumer_info(delivered=10, num_pending=0, ack_pending=1)
    assert pending(info, applied_through=10) == 0
    assert pending(consumer_info(delivered=10, num_pending=4, ack_pending=1), 12) == 4


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.TICKETING.proj-tickets-1.1.4182.77.1764720000123456789.9",
        "$JS.ACK.hub.ACCOUNTHASH.TICKETING.proj-tickets-1.2.4182.77.1764720000123456789.9.x",
        "$JS.ACK.hub.ACCOUNTHASH.TICKETING.proj-tickets-1.2.4182.77.1764720000123456789.9",
    ],
)
def test_a_delivery_reads_the_sequences_nats_py_metadata_reads(reply: str) -> None:
    message = Msg(_client=None, subject="s", reply=reply)  # type: ignore[arg-type]
    expected = Msg(_client=None, subject="s", reply=reply).metadata.sequence  # type: ignore[arg-type]
    assert delivery(message) == (expected.stream, expected.consumer) == (4182, 77)


def test_a_message_not_from_jetstream_has_no_delivery() -> None:
    with pytest.raises(NotJSMessageError):
        delivery(Msg(_client=None, subject="s", reply="_INBOX.abc"))  # type: ignore[arg-type]


async def test_fetch_batch_fills_batches_from_a_backlog_and_returns_what_there_is(
    nats_server: EmbeddedNats,
) -> None:
    """600 messages waiting: batches of 256, 256, 88 in order, each delivered once; then a
    trickle of 3 comes back as 3 without waiting for a full batch; then nothing, after the
    idle wait."""
    nc = await connect(nats_server.url, name="careops-tests-fetch")
    js = nc.jetstream()
    stream = f"FETCH_{uuid.uuid4().hex[:8].upper()}"
    subject = f"{stream.lower()}.x"
    await js.add_stream(name=stream, subjects=[subject])
    try:
        for number in range(600):
            await js.publish(subject, str(number).encode())
        config = api.ConsumerConfig(durable_name="d", ack_policy=api.AckPolicy.ALL)
        await js.add_consumer(stream, config)
        subscription = await js.pull_subscribe_bind(durable="d", stream=stream)
        sizes: list[int] = []
        received: list[int] = []
        while len(received) < 600:
            batch = await fetch_batch(subscription, 256)
            sizes.append(len(batch))
            received.extend(int(message.data) for message in batch)
            await batch[-1].ack()
        assert sizes == [256, 256, 88]
        assert received == list(range(600))
        assert [delivery(message)[1] for message in batch] == list(range(513, 601))
        for number in range(600, 603):
            await js.publish(subject, str(number).encode())
        trickle = await fetch_batch(subscription, 256)
        assert [int(message.data) for message in trickle] == [600, 601, 602]
        await trickle[-1].ack()
        assert await fetch_batch(subscription, 256, idle_wait=0.2) == []
    finally:
        await js.delete_stream(stream)
        await nc.close()
