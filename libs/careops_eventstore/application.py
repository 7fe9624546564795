"""What every context's application shares: its stream, its main aggregate's repository and
executor, the clock, and one `run` that builds the envelope context of a command.

A context's `application.py` declares its codec and aggregate kinds and keeps only its use
cases; it never builds an `EnvelopeContext` by hand.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

from careops_eventstore.aggregates import (
    AggregateKind,
    AggregateRepository,
    CommandExecutor,
    CommandResult,
)
from careops_eventstore.codec import EnvelopeContext, EventCodec
from careops_eventstore.model import EventStore, StreamSpec

S = TypeVar("S")
T = TypeVar("T")


def utc_now() -> datetime:
    """Returns the current time in UTC: the default clock of every application."""
    return datetime.now(UTC)


class OffsetClock:
    """`base` (the real time) moved forward by the seconds written in the file `path`, read at
    each call (0 while there is no file): the clock of a service that a test runs as a process
    and moves past a deadline instead of waiting for it (incident's CAREOPS_CLOCK_OFFSET_FILE).
    Tests only; a service reads no such file unless its setting names one."""

    def __init__(self, path: Path, base: Callable[[], datetime] = utc_now) -> None:
        self.path = path
        self._base = base

    def __call__(self) -> datetime:
        return self._base() + timedelta(seconds=self.offset())

    def offset(self) -> float:
        """The seconds the clock runs ahead of `base`."""
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return 0.0
        return float(text) if text else 0.0

    def advance(self, seconds: float) -> float:
        """Moves the clock `seconds` forward (a clock does not run backwards); the file is
        replaced whole, so a reader never sees half of it. Returns the new offset."""
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        offset = self.offset() + seconds
        staged = self.path.with_name(f"{self.path.name}.staged")
        staged.write_text(repr(offset))
        os.replace(staged, self.path)
        return offset


def codec_of(
    events: Iterable[type],
    messages: ModuleType,
    *,
    sealed_fields: Mapping[type, tuple[str, ...]] | None = None,
) -> EventCodec:
    """Returns the codec of a context's events: each one ⇄ the message of its name in
    `messages` (the context's generated events_pb2), fields matched by name. `sealed_fields`:
    the free text each event carries only sealed once sealed (see EventCodec)."""
    return EventCodec(
        {event: getattr(messages, event.__name__) for event in events},
        sealed_fields=sealed_fields,
    )


def aggregate_kind(
    stream: StreamSpec,
    subject_prefix: str,
    aggregate_type: str,
    *,
    initial: Callable[[str], S],
    evolve: Callable[[S, Any, datetime], S],
    codec: EventCodec,
) -> AggregateKind[S]:
    """Returns the kind of one aggregate type kept on `stream` under `subject_prefix`."""
    return AggregateKind(
        stream=stream.name,
        subject_prefix=subject_prefix,
        aggregate_type=aggregate_type,
        initial=initial,
        evolve=evolve,
        codec=codec,
    )


class ContextApplication(Generic[S]):
    """Base of one context's application over an event store (ARCHITECTURE §3).

    `repository` and `executor` serve the context's main aggregate kind; other kinds run
    through `run_on`.
    """

    def __init__(
        self,
        *,
        store: EventStore,
        stream: StreamSpec,
        kind: AggregateKind[S],
        clock: Callable[[], datetime] = utc_now,
        cache_size: int = 10_000,
    ) -> None:
        self.stream = stream
        self.repository = AggregateRepository(store, kind, cache_size=cache_size)
        self.executor = CommandExecutor(self.repository)
        self.clock = clock  # injected so tests drive time with a FakeClock

    @property
    def store(self) -> EventStore:
        return self.repository.store

    async def provision(self, *, replicas: int = 1) -> None:
        """Creates or updates the context's stream with `replicas`."""
        await self.store.ensure_stream(
            StreamSpec(self.stream.name, self.stream.subjects, replicas=replicas)
        )

    async def run(
        self,
        aggregate_id: str,
        decide: Callable[[S], Sequence[Any]],
        *,
        now: datetime,
        command_id: str,
        actor: str = "system",
        causation_id: str = "",
        policy_versions: Mapping[str, str] | None = None,
        expect_new: bool = False,
    ) -> CommandResult[S]:
        """Decides and appends one command on the main aggregate kind at `now`."""
        context = self.envelope(
            aggregate_id,
            self.repository.kind,
            now=now,
            command_id=command_id,
            actor=actor,
            causation_id=causation_id,
            policy_versions=policy_versions,
        )
        return await self.executor.execute(
            aggregate_id=aggregate_id, decide=decide, context=context, expect_new=expect_new
        )

    async def run_on(
        self,
        executor: CommandExecutor[T],
        aggregate_id: str,
        decide: Callable[[T], Sequence[Any]],
        *,
        now: datetime,
        command_id: str,
        actor: str = "system",
    ) -> CommandResult[T]:
        """Decides and appends one command on another aggregate kind of the context."""
        context = self.envelope(
            aggregate_id, executor.repository.kind, now=now, command_id=command_id, actor=actor
        )
        return await executor.execute(aggregate_id=aggregate_id, decide=decide, context=context)

    @staticmethod
    def envelope(
        aggregate_id: str,
        kind: AggregateKind[Any],
        *,
        now: datetime,
        command_id: str,
        actor: str,
        causation_id: str = "",
        policy_versions: Mapping[str, str] | None = None,
    ) -> EnvelopeContext:
        """Returns the envelope context every event of one command carries."""
        return EnvelopeContext(
            aggregate_id=aggregate_id,
            aggregate_type=kind.aggregate_type,
            command_id=command_id,
            occurred_at=now,
            actor=actor,
            causation_id=causation_id,
            policy_versions=dict(policy_versions or {}),
        )
