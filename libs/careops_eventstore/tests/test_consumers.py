"""The lag a projection reports from its consumer's state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from nats.js import api

from careops_eventstore.consumers import pending


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
