"""Loading aggregates (cache plus tail) and executing commands with optimistic concurrency."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from opentelemetry import propagate, trace
from prometheus_client import Counter, Histogram

from careops_eventstore.causes import attributed
from careops_eventstore.codec import DecodedEvent, EnvelopeContext, EventCodec, from_timestamp
from careops_eventstore.model import (
    EXPECTED_SUBJECT_SEQ_HEADER,
    ConcurrencyConflict,
    EventStore,
    RecordedBatch,
)

S = TypeVar("S")
log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

APPENDS = Counter(
    "careops_eventstore_appends_total",
    "Command appends by stream and outcome.",
    ["stream", "outcome"],
)
APPEND_SECONDS = Histogram(
    "careops_eventstore_append_duration_seconds",
    "Time to append one command's batch, including conflict retries.",
    ["stream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
FOLD_SKIPPED = Counter(
    "careops_eventstore_fold_skipped_total",
    "Messages or events left out of an aggregate's state, by stream and reason "
    "(undecodable, unknown_type, invalid).",
    ["stream", "reason"],
)
FOLD_SKIP_REASONS = ("undecodable", "unknown_type", "invalid")
LOAD_SOURCES = ("cache", "tail", "full", "delivered")
LOAD_SOURCE = Counter(
    "careops_eventstore_aggregate_loads_total",
    "Aggregate loads by source (cache hit, tail read, full read; delivered: the cache moved "
    "on by a message a consumer received, with no read).",
    ["stream", "source"],
)


@dataclass(frozen=True)
class AggregateKind(Generic[S]):
    """How to fold one aggregate type: its stream, subject prefix, initial state and evolve."""

    stream: str
    subject_prefix: str
    aggregate_type: str
    initial: Callable[[str], S]
    evolve: Callable[[S, Any, datetime], S]
    codec: EventCodec

    def subject(self, aggregate_id: str) -> str:
        return f"{self.subject_prefix}.{aggregate_id}"


@dataclass(frozen=True)
class Loaded(Generic[S]):
    """An aggregate's state at `version` (the stream sequence of its last event, 0 if new)."""

    state: S
    version: int
    commands: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CommandResult(Generic[S]):
    """The state after a command, the sequence of its append and the events it produced."""

    state: S
    sequence: int
    events: Sequence[Any]
    replayed: bool = False


class AggregateRepository(Generic[S]):
    """Loads aggregates from a bounded LRU cache, reading only the log tail past the cache."""

    def __init__(
        self, store: EventStore, kind: AggregateKind[S], *, cache_size: int = 10_000
    ) -> None:
        self.store = store
        self.kind = kind
        self._cache: OrderedDict[str, Loaded[S]] = OrderedDict()
        self._cache_size = cache_size
        for reason in FOLD_SKIP_REASONS:
            FOLD_SKIPPED.labels(kind.stream, reason)
        for source in LOAD_SOURCES:
            LOAD_SOURCE.labels(kind.stream, source)

    async def load(self, aggregate_id: str, *, refresh: bool = False) -> Loaded[S]:
        """Returns the aggregate; with `refresh`, also reads any events newer than the cache."""
        cached = self._cache.get(aggregate_id)
        if cached is not None and not refresh:
            self._cache.move_to_end(aggregate_id)
            LOAD_SOURCE.labels(self.kind.stream, "cache").inc()
            return cached
        base = cached or Loaded(self.kind.initial(aggregate_id), 0, {})
        tail = await self.store.read_subject(
            stream=self.kind.stream,
            subject=self.kind.subject(aggregate_id),
            after_sequence=base.version,
        )
        LOAD_SOURCE.labels(self.kind.stream, "tail" if cached else "full").inc()
        loaded = self._fold(base, tail)
        self.remember(aggregate_id, loaded)
        return loaded

    def observe(
        self,
        aggregate_id: str,
        message: RecordedBatch,
        decoded: Sequence[DecodedEvent] | None = None,
    ) -> Loaded[S] | None:
        """Moves the cached state on by a message a consumer received, when it is the
        aggregate's next one (its expected-subject-sequence header is the cached version, or 0
        for an aggregate not cached and new): a reaction to a fresh aggregate's events then
        reads nothing back from the log. `decoded`: the message's events of known types as
        the caller decoded them already (EventCodec.decode_batch), not decoded again. Returns
        the state it knows at least as of the message (None: unknown, `load` reads the log)."""
        if message.subject != self.kind.subject(aggregate_id):
            return None
        cached = self._cache.get(aggregate_id)
        if cached is not None and cached.version >= message.sequence:
            return cached
        expected = message.headers.get(EXPECTED_SUBJECT_SEQ_HEADER)
        base = cached or Loaded(self.kind.initial(aggregate_id), 0, {})
        if expected is None or not expected.isdigit() or int(expected) != base.version:
            return None
        if decoded is None:
            loaded = self._fold(base, [message])
        else:
            loaded = self._fold_decoded(base, message, decoded)
        self.remember(aggregate_id, loaded)
        LOAD_SOURCE.labels(self.kind.stream, "delivered").inc()
        return loaded

    async def load_until(self, aggregate_id: str, sequence: int) -> Loaded[S]:
        """Returns the aggregate as it was right after `sequence` (read from the log)."""
        messages = await self.store.read_subject(
            stream=self.kind.stream,
            subject=self.kind.subject(aggregate_id),
            until_sequence=sequence,
        )
        return self._fold(Loaded(self.kind.initial(aggregate_id), 0, {}), messages)

    def remember(self, aggregate_id: str, loaded: Loaded[S]) -> None:
        self._cache[aggregate_id] = loaded
        self._cache.move_to_end(aggregate_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def cached(self, aggregate_id: str) -> bool:
        return aggregate_id in self._cache

    def forget(self, aggregate_id: str) -> None:
        self._cache.pop(aggregate_id, None)

    def _fold(self, base: Loaded[S], messages: Sequence[RecordedBatch]) -> Loaded[S]:
        """Folds messages into the state. Poison never makes the aggregate unusable: a message
        that is not an event batch, an unknown type, or an event that does not decode or evolve
        is skipped, counted and logged; its sequence still becomes the version (the log's
        expected-sequence check counts every message on the subject)."""
        state, version, commands = base.state, base.version, dict(base.commands)
        for message in messages:
            if message.undecodable:
                self._skipped(message, "undecodable", "")
            for envelope in message.batch.events:
                state = self._evolve(state, message, envelope)
            if message.batch.events:
                commands[message.batch.events[0].command_id] = message.sequence
            version = message.sequence
        return Loaded(state, version, commands)

    def _fold_decoded(
        self, base: Loaded[S], message: RecordedBatch, decoded: Sequence[DecodedEvent]
    ) -> Loaded[S]:
        """Folds one message whose known events are decoded already, as `_fold` would."""
        state = base.state
        for envelope in message.batch.events:
            if not self.kind.codec.knows(envelope.type):
                self._skipped(message, "unknown_type", envelope.type)
        for event in decoded:
            try:
                state = self.kind.evolve(
                    state, event.event, from_timestamp(event.envelope.occurred_at)
                )
            except Exception as exc:  # pure code: whatever it raises comes from the data
                self._skipped(message, "invalid", event.envelope.type, exc)
        commands = dict(base.commands)
        if message.batch.events:
            commands[message.batch.events[0].command_id] = message.sequence
        return Loaded(state, message.sequence, commands)

    def _evolve(self, state: S, message: RecordedBatch, envelope: Any) -> S:
        codec = self.kind.codec
        if not codec.knows(envelope.type):
            self._skipped(message, "unknown_type", envelope.type)
            return state
        try:
            event = codec.decode(envelope)
            return self.kind.evolve(state, event, from_timestamp(envelope.occurred_at))
        except Exception as exc:  # pure code: whatever it raises comes from the data
            self._skipped(message, "invalid", envelope.type, exc)
            return state

    def _skipped(
        self, message: RecordedBatch, reason: str, event_type: str, exc: Exception | None = None
    ) -> None:
        FOLD_SKIPPED.labels(self.kind.stream, reason).inc()
        log.error(
            "poison message left out of the aggregate",
            extra={
                "stream": message.stream,
                "subject": message.subject,
                "sequence": message.sequence,
                "reason": reason,
                "event_type": event_type,
                "error": type(exc).__name__ if exc else "",
            },
        )


class CommandExecutor(Generic[S]):
    """load -> decide -> append, retrying on conflicts against fresh state (ARCHITECTURE §2)."""

    def __init__(self, repository: AggregateRepository[S], *, max_attempts: int = 5) -> None:
        self.repository = repository
        self.max_attempts = max_attempts
        # Commands on one aggregate within this process take turns: racing them would only
        # turn into conflicts and retries (and, under a burst, ABORTED). Other processes and
        # replicas are still kept apart by the log's expected-sequence check.
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def _turn(self, aggregate_id: str) -> AsyncIterator[None]:
        """Holds the in-process turn of one aggregate; the lock is dropped when nobody waits."""
        lock, users = self._turns.get(aggregate_id, (asyncio.Lock(), 0))
        self._turns[aggregate_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[aggregate_id]
            if users == 1:
                del self._turns[aggregate_id]
            else:
                self._turns[aggregate_id] = (lock, users - 1)

    async def execute(
        self,
        *,
        aggregate_id: str,
        decide: Callable[[S], Sequence[Any]],
        context: EnvelopeContext,
        expect_new: bool = False,
    ) -> CommandResult[S]:
        """Appends the events `decide` returns for the current state, all in one message.

        A command id already in the aggregate (or deduplicated by the log) returns the original
        result instead of deciding again. Raises ConcurrencyConflict after `max_attempts`.
        With `expect_new` (a freshly generated id) the first attempt skips reading the log: the
        expected sequence 0 makes the append fail if the aggregate exists after all.
        """
        kind = self.repository.kind
        started = time.perf_counter()
        with tracer.start_as_current_span(
            f"command {kind.aggregate_type}", attributes={"careops.aggregate_id": aggregate_id}
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            # Within a reaction, the event's principal is who caused the command.
            context = replace(context, trace_context=carrier, actor=attributed(context.actor))
            try:
                async with self._turn(aggregate_id):
                    return await self._attempts(aggregate_id, decide, context, expect_new)
            finally:
                APPEND_SECONDS.labels(kind.stream).observe(time.perf_counter() - started)

    async def _attempts(
        self,
        aggregate_id: str,
        decide: Callable[[S], Sequence[Any]],
        context: EnvelopeContext,
        expect_new: bool,
    ) -> CommandResult[S]:
        kind = self.repository.kind
        refresh = False
        for attempt in range(self.max_attempts):
            if attempt == 0 and expect_new and not self.repository.cached(aggregate_id):
                loaded: Loaded[S] = Loaded(kind.initial(aggregate_id), 0, {})
            else:
                loaded = await self.repository.load(aggregate_id, refresh=refresh)
            if context.command_id in loaded.commands:
                APPENDS.labels(kind.stream, "replayed").inc()
                return await self._replay(aggregate_id, loaded.commands[context.command_id])
            events = list(decide(loaded.state))
            if not events:
                return CommandResult(loaded.state, loaded.version, [])
            try:
                result = await self.repository.store.append(
                    stream=kind.stream,
                    subject=kind.subject(aggregate_id),
                    batch=kind.codec.encode(events, context),
                    expected_sequence=loaded.version,
                    message_id=context.command_id,
                )
            except ConcurrencyConflict:
                APPENDS.labels(kind.stream, "conflict").inc()
                refresh = True
                continue
            if result.duplicate:
                APPENDS.labels(kind.stream, "replayed").inc()
                self.repository.forget(aggregate_id)
                return await self._replay(aggregate_id, result.sequence)
            state = loaded.state
            for event in events:
                state = kind.evolve(state, event, context.occurred_at)
            commands = {**loaded.commands, context.command_id: result.sequence}
            self.repository.remember(aggregate_id, Loaded(state, result.sequence, commands))
            APPENDS.labels(kind.stream, "appended").inc()
            return CommandResult(state, result.sequence, events)
        APPENDS.labels(kind.stream, "aborted").inc()
        raise ConcurrencyConflict(
            f"{kind.aggregate_type} {aggregate_id} kept changing; gave up after "
            f"{self.max_attempts} attempts"
        )

    async def _replay(self, aggregate_id: str, sequence: int) -> CommandResult[S]:
        loaded = await self.repository.load_until(aggregate_id, sequence)
        return CommandResult(loaded.state, sequence, [], replayed=True)
