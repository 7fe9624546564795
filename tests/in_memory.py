"""Application-layer tests without NATS: a service's composition root over the in-memory store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from careops.events.v1.envelope_pb2 import EventEnvelope
from careops_eventstore.codec import EventCodec
from careops_eventstore.memory import InMemoryEventStore
from careops_platform.policies import TYPE_NAME as POLICY_REVISION


@dataclass(frozen=True)
class Logged:
    """One event on the in-memory log: where it sits, its envelope and the decoded event."""

    sequence: int
    subject: str
    envelope: EventEnvelope
    event: Any


async def logged(store: InMemoryEventStore, stream: str, codec: EventCodec) -> list[Logged]:
    """Returns every event of `stream` in log order, decoded with `codec`; the policies'
    revisions (careops_platform.policies), which a context seeds as it starts, are left out."""
    found = []
    for message in await store.read_stream(stream=stream, limit=100_000):
        for envelope in message.batch.events:
            if envelope.type == POLICY_REVISION:
                continue
            event = codec.decode(envelope) if codec.knows(envelope.type) else None
            found.append(Logged(message.sequence, message.subject, envelope, event))
    return found


def types_of(events: list[Logged]) -> list[str]:
    """Returns the event types, in log order."""
    return [item.envelope.type for item in events]
