""" "Who did what, when", read from the raw log: one entry per event of every context's stream.

The log is the record (ARCHITECTURE §2): every envelope names its actor (the gateway's verified
principal, or `"<principal> via <reaction>"` for what a reaction or timer appended because of
that principal's event, see careops_eventstore.causes). The query scans the streams from the
registry; it is an operator's tool, not a hot path, so it reads each stream in pages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime

from careops.events.v1.envelope_pb2 import EventEnvelope
from careops_eventstore.causes import principal
from careops_eventstore.codec import from_timestamp
from careops_eventstore.model import EventStore

from careops_platform.registry import BACKENDS, ServiceEntry

PAGE = 500


@dataclass(frozen=True)
class AuditEntry:
    """One event as the audit shows it."""

    recorded_at: datetime
    actor: str
    service: str
    aggregate_type: str
    aggregate_id: str
    event_type: str
    event_id: str
    command_id: str

    def as_dict(self) -> dict[str, str]:
        """Returns the entry as JSON-ready strings (the time in ISO 8601)."""
        return {
            "recordedAt": self.recorded_at.isoformat(),
            "actor": self.actor,
            "service": self.service,
            "aggregateType": self.aggregate_type,
            "aggregateId": self.aggregate_id,
            "eventType": self.event_type,
            "eventId": self.event_id,
            "commandId": self.command_id,
        }


def acted_for(actor: str, wanted: str) -> bool:
    """True if the event's `actor` is `wanted` or was caused by `wanted` ("wanted via …")."""
    return not wanted or actor == wanted or principal(actor) == wanted


async def audit(
    store: EventStore,
    *,
    since: datetime,
    until: datetime | None = None,
    actor: str = "",
    service: str = "",
) -> list[AuditEntry]:
    """Returns the events recorded in [since, until) by `actor` (or caused by them; "" for
    everyone) in `service`'s stream ("" for every context), in recorded order."""
    found: list[AuditEntry] = []
    for entry in _services(service):
        async for envelope in _envelopes(store, entry):
            recorded = from_timestamp(envelope.recorded_at)
            if recorded < since or (until is not None and recorded >= until):
                continue
            if acted_for(envelope.actor, actor):
                found.append(_entry(entry.name, recorded, envelope))
    return sorted(found, key=lambda item: (item.recorded_at, item.service))


def _services(service: str) -> Iterable[ServiceEntry]:
    """Returns the contexts to read: every one that owns a stream, or the one named."""
    chosen = [entry for entry in BACKENDS if not service or entry.name == service]
    if not chosen:
        names = ", ".join(entry.name for entry in BACKENDS)
        raise ValueError(f"{service!r} owns no stream; choose one of {names}")
    return chosen


async def _envelopes(store: EventStore, entry: ServiceEntry) -> AsyncIterator[EventEnvelope]:
    """Yields every envelope of the context's stream, page by page."""
    if entry.stream is None:  # BACKENDS all own one; the type does not say so
        return
    name = entry.stream.name
    last = await store.last_sequence(name)  # 0: nobody provisioned it yet
    after = 0
    while after < last:
        page = await store.read_stream(stream=name, after_sequence=after, limit=PAGE)
        if not page:
            return
        for message in page:
            for envelope in message.batch.events:
                yield envelope
        after = page[-1].sequence


def _entry(service: str, recorded: datetime, envelope: EventEnvelope) -> AuditEntry:
    return AuditEntry(
        recorded_at=recorded,
        actor=envelope.actor,
        service=service,
        aggregate_type=envelope.aggregate_type,
        aggregate_id=envelope.aggregate_id,
        event_type=envelope.type,
        event_id=envelope.event_id,
        command_id=envelope.command_id,
    )
