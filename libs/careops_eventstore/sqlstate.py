"""SQL tables every service shares: projection checkpoints, parked messages and due timers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

metadata = MetaData()

checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("projection", String(100), primary_key=True),
    Column("stream", String(100), nullable=False),
    Column("last_sequence", BigInteger, nullable=False, default=0),
    Column("unknown_events", Integer, nullable=False, default=0),
)

# Poison a projection or reaction skipped: one row per message (written in the transaction
# that moves the checkpoint past it), so an operator can list it and look it up in the log.
parked = Table(
    "parked_messages",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("consumer", String(100), nullable=False, index=True),
    Column("stream", String(100), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("subject", String(255), nullable=False, default=""),
    Column("event_type", String(200), nullable=False, default=""),
    Column("reason", String(30), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("parked_at", DateTime(timezone=True), nullable=False),
)
DETAIL_LIMIT = 300

timers = Table(
    "timers",
    metadata,
    Column("timer_id", String(200), primary_key=True),
    Column("aggregate_id", String(100), nullable=False, index=True),
    Column("kind", String(50), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False, index=True),
    Column("data", Text, nullable=False, default="{}"),
)


@overload
def aware(value: datetime) -> datetime: ...


@overload
def aware(value: None) -> None: ...


def aware(value: datetime | None) -> datetime | None:
    """Returns a datetime read from SQL as aware UTC (SQLite drops the zone; None stays None)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def insert_for(dialect: str) -> Callable[[Table], Any]:
    """Returns the INSERT construct of `dialect` (PostgreSQL or SQLite): it has ON CONFLICT."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


@dataclass(frozen=True)
class ParkedMessage:
    """A message a projection or reaction skipped as poison, and why."""

    consumer: str
    stream: str
    sequence: int
    reason: str
    subject: str = ""
    event_type: str = ""
    detail: str = ""
    parked_at: datetime | None = None


def park(connection: Connection, message: ParkedMessage) -> None:
    """Records a skipped message (in the caller's transaction, beside its checkpoint)."""
    connection.execute(
        insert(parked).values(
            consumer=message.consumer,
            stream=message.stream,
            sequence=message.sequence,
            subject=message.subject[:255],
            event_type=message.event_type[:200],
            reason=message.reason,
            detail=message.detail[:DETAIL_LIMIT],
            parked_at=message.parked_at or datetime.now(UTC),
        )
    )


def list_parked(
    connection: Connection, *, consumers: Sequence[str] = (), limit: int = 100
) -> list[ParkedMessage]:
    """Returns the newest parked messages (of `consumers`, when given), newest first."""
    query = select(parked).order_by(parked.c.id.desc()).limit(limit)
    if consumers:
        query = query.where(parked.c.consumer.in_(consumers))
    return [
        ParkedMessage(
            consumer=row.consumer,
            stream=row.stream,
            sequence=int(row.sequence),
            reason=row.reason,
            subject=row.subject,
            event_type=row.event_type,
            detail=row.detail,
            parked_at=aware(row.parked_at),
        )
        for row in connection.execute(query)
    ]


def parked_counts(connection: Connection) -> dict[str, int]:
    """Returns how many messages each consumer has parked."""
    query = select(parked.c.consumer, func.count()).group_by(parked.c.consumer)
    return {str(consumer): int(count) for consumer, count in connection.execute(query)}


def unpark_all(connection: Connection, consumer: str) -> None:
    """Forgets a consumer's parked messages (its rebuild parks them again)."""
    connection.execute(delete(parked).where(parked.c.consumer == consumer))
