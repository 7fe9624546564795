"""In-memory event store with the same semantics as JetStream, for pure unit tests."""

from __future__ import annotations

import time

from careops.events.v1.envelope_pb2 import EventBatch

from careops_eventstore.model import (
    EVENT_TYPE_HEADER,
    EXPECTED_SUBJECT_SEQ_HEADER,
    AppendResult,
    ConcurrencyConflict,
    RecordedBatch,
    StreamSpec,
    event_types_header,
)


class InMemoryEventStore:
    """Keeps streams in lists; enforces expected sequences and message-id deduplication."""

    def __init__(self) -> None:
        self._specs: dict[str, StreamSpec] = {}
        self._messages: dict[str, list[RecordedBatch]] = {}
        self._subject_last: dict[tuple[str, str], int] = {}
        self._seen_ids: dict[tuple[str, str], tuple[int, float]] = {}

    async def ensure_stream(self, spec: StreamSpec) -> None:
        self._specs[spec.name] = spec
        self._messages.setdefault(spec.name, [])

    async def append(
        self,
        *,
        stream: str,
        subject: str,
        batch: EventBatch,
        expected_sequence: int,
        message_id: str,
    ) -> AppendResult:
        messages = self._messages[stream]
        now = time.monotonic()
        if self._subject_last.get((stream, subject), 0) != expected_sequence:
            raise ConcurrencyConflict(f"{subject}: expected last sequence {expected_sequence}")
        seen = self._seen_ids.get((stream, message_id))
        if seen and now - seen[1] <= self._specs[stream].duplicate_window_seconds:
            return AppendResult(sequence=seen[0], duplicate=True)
        sequence = len(messages) + 1
        stored = EventBatch()
        stored.CopyFrom(batch)
        headers = {
            EVENT_TYPE_HEADER: event_types_header(batch),
            EXPECTED_SUBJECT_SEQ_HEADER: str(expected_sequence),
        }
        messages.append(RecordedBatch(stream, subject, sequence, stored, headers))
        self._subject_last[(stream, subject)] = sequence
        self._seen_ids[(stream, message_id)] = (sequence, now)
        return AppendResult(sequence=sequence)

    async def read_subject(
        self, *, stream: str, subject: str, after_sequence: int = 0, until_sequence: int = 0
    ) -> list[RecordedBatch]:
        return [
            message
            for message in self._messages[stream][after_sequence:]
            if message.subject == subject
            and (until_sequence <= 0 or message.sequence <= until_sequence)
        ]

    async def read_stream(
        self, *, stream: str, after_sequence: int = 0, limit: int = 1000
    ) -> list[RecordedBatch]:
        return self._messages[stream][after_sequence : after_sequence + limit]

    async def last_sequence(self, stream: str) -> int:
        return len(self._messages.get(stream, ()))
