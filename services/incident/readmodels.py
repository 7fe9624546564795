"""Incident read models: incidents, pages, timeline entries, complaint-surge bookkeeping, drills."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from careops_eventstore.projection import read_checkpoint
from careops_eventstore.sqlstate import aware as aware  # re-exported for grpc_api
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.orm import Session

metadata = MetaData()

incidents = Table(
    "incidents",
    metadata,
    Column("incident_id", String(64), primary_key=True),
    Column("declared_sequence", BigInteger, nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("level", String(1), nullable=False),
    Column("status", String(20), nullable=False),
    Column("source", String(20), nullable=False),
    Column("drill", Boolean, nullable=False),
    Column("risk_index", Float, nullable=False),
    Column("matrix_version", BigInteger, nullable=False),
    Column("surge_key", String(150), nullable=False),
    Column("declared_at", DateTime(timezone=True), nullable=False),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("response_deadline_missed", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("ix_incidents_status_level", "status", "level"),
)

pages = Table(
    "incident_pages",
    metadata,
    Column("page_id", String(80), primary_key=True),
    Column("incident_id", String(64), nullable=False, index=True),
    Column("team_id", String(64), nullable=False),
    Column("member_id", String(100), nullable=False),
    Column("engagement", String(10), nullable=False),
    Column("step", Integer, nullable=False),
    Column("round", Integer, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("ack_due_at", DateTime(timezone=True), nullable=False),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("escalated", Boolean, nullable=False),
    Column("closed", Boolean, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Index("ix_pages_team_waiting", "team_id", "acknowledged_at", "escalated", "closed"),
)

timeline = Table(
    "incident_timeline",
    metadata,
    Column("incident_id", String(64), primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("text", Text, nullable=False),
)

surge_complaints = Table(
    "surge_complaints",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("surge_key", String(150), primary_key=True),
    Column("customer_id", String(100), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Index("ix_surge_key_time", "surge_key", "opened_at"),
)

surge_incidents = Table(
    "surge_incidents",
    metadata,
    Column("surge_key", String(150), primary_key=True),
    Column("incident_id", String(64), nullable=False),
    Column("open", Boolean, nullable=False),
)


drills = Table(
    "drills",
    metadata,
    Column("drill_id", String(64), primary_key=True),
    Column("scheduled_sequence", BigInteger, nullable=False, unique=True),
    Column("scenario_id", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("recurrence", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("next_due_at", DateTime(timezone=True)),
    Column("runs", Integer, nullable=False),
    Column("last_incident_id", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("ix_drills_status", "status"),
)


# The public status page's read model: public facts only (no member, team, page, risk or
# internal update is ever written here). Non-drill incidents only; listed once a statement is out.
status_incidents = Table(
    "status_incidents",
    metadata,
    Column("incident_id", String(64), primary_key=True),
    Column("declared_sequence", BigInteger, nullable=False, unique=True),
    Column("declared_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("open", Boolean, nullable=False),
    Column("published", Boolean, nullable=False),
    Index("ix_status_incidents_listed", "published", "open", "resolved_at"),
)

status_updates = Table(
    "status_updates",
    metadata,
    Column("incident_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("headline", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Column("headline_en", String(200), nullable=False),
    Column("text_en", Text, nullable=False),
)


# How customer-profile's notices about an incident went: one row per notification (a customer
# told once through one channel), its last outcome (CustomerNotified, customer's stream).
customer_notices = Table(
    "customer_notices",
    metadata,
    Column("notification_id", String(128), primary_key=True),
    Column("customer_id", String(64), primary_key=True),
    Column("incident_id", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("delivered", Boolean, nullable=False),
    Index("ix_customer_notices_incident", "incident_id"),
)


@dataclass(frozen=True)
class NoticeDeliveryRow:
    """Customers notified / failed through one channel."""

    channel: str
    notified: int
    failed: int


def notice_deliveries(*, session: Session, incident_id: str) -> list[NoticeDeliveryRow]:
    """Returns how the incident's customer notices went, per channel (alphabetical)."""
    delivered = func.sum(func.cast(customer_notices.c.delivered, Integer))
    rows = session.execute(
        select(customer_notices.c.channel, delivered, func.count())
        .where(customer_notices.c.incident_id == incident_id)
        .group_by(customer_notices.c.channel)
        .order_by(customer_notices.c.channel)
    ).all()
    return [
        NoticeDeliveryRow(name, int(ok or 0), int(total - (ok or 0))) for name, ok, total in rows
    ]


@dataclass(frozen=True)
class StatusUpdateRow:
    """One published statement version."""

    version: int
    published_at: datetime
    headline: str
    text: str
    headline_en: str
    text_en: str


@dataclass(frozen=True)
class StatusIncidentRow:
    """An incident on the status page with its statements, newest first."""

    incident_id: str
    open: bool
    declared_at: datetime
    resolved_at: datetime | None
    updates: tuple[StatusUpdateRow, ...]


def status_page(
    *, session: Session, resolved_since: datetime, limit: int = 100
) -> tuple[list[StatusIncidentRow], list[StatusIncidentRow]]:
    """Returns the published open incidents (newest declared first) and those resolved since
    `resolved_since` (newest resolved first), each with its statements, newest first."""
    listed = status_incidents.c.published
    open_rows = session.execute(
        select(status_incidents)
        .where(listed, status_incidents.c.open)
        .order_by(status_incidents.c.declared_sequence.desc())
        .limit(limit)
    ).all()
    resolved_rows = session.execute(
        select(status_incidents)
        .where(
            listed,
            ~status_incidents.c.open,
            status_incidents.c.resolved_at >= resolved_since,
        )
        .order_by(status_incidents.c.resolved_at.desc())
        .limit(limit)
    ).all()
    ids = [row.incident_id for row in (*open_rows, *resolved_rows)]
    updates: dict[str, list[StatusUpdateRow]] = {incident_id: [] for incident_id in ids}
    if ids:
        query = (
            select(status_updates)
            .where(status_updates.c.incident_id.in_(ids))
            .order_by(status_updates.c.incident_id, status_updates.c.version.desc())
        )
        for row in session.execute(query):
            updates[row.incident_id].append(
                StatusUpdateRow(
                    row.version,
                    aware(row.published_at),
                    row.headline,
                    row.text,
                    row.headline_en,
                    row.text_en,
                )
            )

    def of(row: Any) -> StatusIncidentRow:
        resolved = aware(row.resolved_at) if row.resolved_at is not None else None
        return StatusIncidentRow(
            row.incident_id,
            bool(row.open),
            aware(row.declared_at),
            resolved,
            tuple(updates[row.incident_id]),
        )

    return [of(row) for row in open_rows], [of(row) for row in resolved_rows]


async def read_status_page(
    engine: Engine, resolved_since: datetime
) -> tuple[list[StatusIncidentRow], list[StatusIncidentRow]]:
    """`status_page` in its own session, off the event loop."""

    def read() -> tuple[list[StatusIncidentRow], list[StatusIncidentRow]]:
        with Session(engine) as session:
            return status_page(session=session, resolved_since=resolved_since)

    return await asyncio.to_thread(read)


@dataclass(frozen=True)
class IncidentFilter:
    status: str | None = None
    level: str | None = None
    open_only: bool = False
    include_drills: bool = False


def list_incidents(
    *, session: Session, where: IncidentFilter, page_size: int, before_sequence: int = 0
) -> list[tuple[Any, int]]:
    """Returns (incident row, pages awaiting ack) newest first, older than the cursor."""
    waiting = (
        select(pages.c.incident_id, func.count().label("waiting"))
        .where(pages.c.acknowledged_at.is_(None), ~pages.c.escalated, ~pages.c.closed)
        .group_by(pages.c.incident_id)
        .subquery()
    )
    query = select(incidents, func.coalesce(waiting.c.waiting, 0)).outerjoin(
        waiting, waiting.c.incident_id == incidents.c.incident_id
    )
    if where.status:
        query = query.where(incidents.c.status == where.status)
    if where.level:
        query = query.where(incidents.c.level == where.level)
    if where.open_only:
        query = query.where(incidents.c.status.in_(("declared", "acknowledged")))
    if not where.include_drills:
        query = query.where(~incidents.c.drill)
    if before_sequence:
        query = query.where(incidents.c.declared_sequence < before_sequence)
    query = query.order_by(incidents.c.declared_sequence.desc()).limit(page_size)
    return [(row, int(row[-1])) for row in session.execute(query)]


@dataclass(frozen=True)
class DeclaredIncident:
    """An incident declared in a what-if's period."""

    incident_id: str
    drill: bool


def declared_between(
    *, session: Session, since: datetime, until: datetime, limit: int
) -> list[DeclaredIncident]:
    """Returns up to `limit` incidents declared in [since, until), drills too, oldest first."""
    query = (
        select(incidents.c.incident_id, incidents.c.drill)
        .where(incidents.c.declared_at >= since, incidents.c.declared_at < until)
        .order_by(incidents.c.declared_sequence)
        .limit(limit)
    )
    return [DeclaredIncident(row.incident_id, bool(row.drill)) for row in session.execute(query)]


async def declared_in(
    engine: Engine, since: datetime, until: datetime, limit: int
) -> list[DeclaredIncident]:
    """`declared_between` in its own session, off the event loop (the what-if's reader)."""

    def read() -> list[DeclaredIncident]:
        with Session(engine) as session:
            return declared_between(session=session, since=since, until=until, limit=limit)

    return await asyncio.to_thread(read)


def waiting_pages(*, session: Session, team_id: str) -> list[Any]:
    """Returns the team's pages nobody acknowledged yet (not escalated, incident open)."""
    query = (
        select(pages, incidents.c.title, incidents.c.level, incidents.c.type, incidents.c.drill)
        .join(incidents, incidents.c.incident_id == pages.c.incident_id)
        .where(
            pages.c.team_id == team_id,
            pages.c.acknowledged_at.is_(None),
            ~pages.c.escalated,
            ~pages.c.closed,
        )
        .order_by(pages.c.sequence)
    )
    return list(session.execute(query))


def open_counts(*, session: Session) -> dict[str, int]:
    """Returns open (declared or acknowledged) non-drill incidents per level."""
    query = (
        select(incidents.c.level, func.count())
        .where(incidents.c.status.in_(("declared", "acknowledged")), ~incidents.c.drill)
        .group_by(incidents.c.level)
    )
    return {level: int(count) for level, count in session.execute(query)}


class WaitingPagesAsOf:
    """The team's waiting pages with the position of the projection (`checkpoint`) they hold
    as of, read in one transaction, so a live tail after that position misses none."""

    def __init__(self, engine: Engine, checkpoint: str) -> None:
        self._engine = engine
        self._checkpoint = checkpoint

    async def read(self, team_id: str) -> tuple[int, list[Any]]:
        """Returns the projection's last applied sequence and the team's waiting pages."""
        return await asyncio.to_thread(self._read, team_id)

    def _read(self, team_id: str) -> tuple[int, list[Any]]:
        with Session(self._engine) as session, session.begin():
            position = read_checkpoint(session, self._checkpoint)
            return position, waiting_pages(session=session, team_id=team_id)


def list_drills(
    *, session: Session, include_finished: bool, page_size: int, before_sequence: int = 0
) -> list[Any]:
    """Returns drills newest first, older than the cursor; by default only scheduled ones."""
    query = select(drills)
    if not include_finished:
        query = query.where(drills.c.status == "scheduled")
    if before_sequence:
        query = query.where(drills.c.scheduled_sequence < before_sequence)
    query = query.order_by(drills.c.scheduled_sequence.desc()).limit(page_size)
    return list(session.execute(query))
