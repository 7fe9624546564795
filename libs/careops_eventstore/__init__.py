"""The CareOps event store: JetStream as the system of record, plus an in-memory twin for tests."""

from careops_eventstore.model import (
    AppendResult,
    ConcurrencyConflict,
    EventStore,
    EventStoreError,
    LogUnavailable,
    RecordedBatch,
    StreamSpec,
)

__all__ = [
    "AppendResult",
    "ConcurrencyConflict",
    "EventStore",
    "EventStoreError",
    "LogUnavailable",
    "RecordedBatch",
    "StreamSpec",
]
