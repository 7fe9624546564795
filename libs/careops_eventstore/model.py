"""Event-store interface shared by the JetStream and in-memory implementations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from careops.events.v1.envelope_pb2 import EventBatch

EVENT_TYPE_HEADER = "CareOps-Event-Type"
MSG_ID_HEADER = "Nats-Msg-Id"
EXPECTED_SUBJECT_SEQ_HEADER = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQUENCE_ERR_CODE = 10071
# A clustered stream checks the expected sequence before proposing and answers with this
# constant form ("wrong last sequence", no number).
WRONG_LAST_SEQUENCE_CONSTANT_ERR_CODE = 10164
# A clustered stream still proposing an earlier append with the same message id (a retry came
# before its outcome): undetermined, and a retry with the same id gets the first one's ack.
DUPLICATE_IN_PROCESS_ERR_CODE = 10158
# JetStream (or the stream's group) without a leader for the moment: nothing was appended.
TEMPORARILY_UNAVAILABLE_ERR_CODE = 10008


class EventStoreError(Exception):
    """Base class of event-store failures."""


class ConcurrencyConflict(EventStoreError):
    """The aggregate moved on since it was loaded (expected sequence mismatch)."""


class LogUnavailable(EventStoreError):
    """The log cannot be reached; nothing was appended (or the outcome is unknown)."""


@dataclass(frozen=True)
class StreamSpec:
    """A context's stream: name, subject space and durability settings (ARCHITECTURE §2)."""

    name: str
    subjects: tuple[str, ...]
    replicas: int = 1
    duplicate_window_seconds: float = 120.0


@dataclass(frozen=True)
class AppendResult:
    """Where an append landed; `duplicate` is true when the message id was already in the log."""

    sequence: int
    duplicate: bool = False


@dataclass(frozen=True)
class RecordedBatch:
    """One stored message: the events of one command at one stream sequence.

    `undecodable` marks a message that is not an event batch (its `batch` is then empty): it
    still occupies its sequence, so an aggregate's version counts it.
    """

    stream: str
    subject: str
    sequence: int
    batch: EventBatch
    headers: Mapping[str, str] = field(default_factory=dict)
    undecodable: bool = False
    # How often the log has delivered the message to this consumer (JetStream's num_delivered):
    # above 1, an earlier delivery may have had side effects before it was lost or failed.
    deliveries: int = 1


def event_types_header(batch: EventBatch) -> str:
    """Returns the comma-joined event types of a batch, for the CareOps-Event-Type header."""
    return ",".join(envelope.type for envelope in batch.events)


class EventStore(Protocol):
    """Append-only log of event batches, addressed by stream and subject."""

    async def ensure_stream(self, spec: StreamSpec) -> None:
        """Creates or updates the stream so it matches the spec."""

    async def append(
        self,
        *,
        stream: str,
        subject: str,
        batch: EventBatch,
        expected_sequence: int,
        message_id: str,
    ) -> AppendResult:
        """Appends one batch if the subject's last sequence equals `expected_sequence`.

        Raises ConcurrencyConflict on a mismatch and LogUnavailable when the log is unreachable.
        The expected sequence is checked first; then a message id seen within the duplicate
        window returns the original sequence with duplicate=True.
        """

    async def read_subject(
        self, *, stream: str, subject: str, after_sequence: int = 0, until_sequence: int = 0
    ) -> list[RecordedBatch]:
        """Returns the subject's batches with after < sequence (<= until, when until > 0)."""

    async def read_stream(
        self, *, stream: str, after_sequence: int = 0, limit: int = 1000
    ) -> list[RecordedBatch]:
        """Returns up to `limit` batches of the whole stream after a sequence, in order."""

    async def last_sequence(self, stream: str) -> int:
        """Returns the stream's last sequence (0 when empty)."""
