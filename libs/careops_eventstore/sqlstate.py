"""SQL tables every service shares: projection checkpoints and due timers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, Text
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
