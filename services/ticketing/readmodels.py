"""Ticketing read models: SQL tables and keyword-only query functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from careops_eventstore.sqlstate import aware
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.orm import Session

metadata = MetaData()

tickets = Table(
    "tickets",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("opened_sequence", BigInteger, nullable=False, unique=True),
    Column("customer_id", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("type", String(20), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("assignee_id", String(100), nullable=False, default=""),
    Column("escalation_level", Integer, nullable=False, default=0),
    Column("reopen_count", Integer, nullable=False, default=0),
    Column("sla_breached", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("ix_tickets_status", "status", "opened_sequence"),
    Index("ix_tickets_assignee", "assignee_id", "status"),
    Index("ix_tickets_customer", "customer_id", "opened_sequence"),
    Index("ix_tickets_priority", "priority", "opened_sequence"),
    Index("ix_tickets_channel", "channel", "opened_sequence"),
)

# Ticketing's own projection of customer-profile's events: tier and contact hashes only.
customer_directory = Table(
    "customer_directory",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("tier", String(20), nullable=False),
    Column("email_hash", String(64), nullable=True, index=True),
    Column("phone_hash", String(64), nullable=True, index=True),
    Column("version", BigInteger, nullable=False),
)

ACTIVE_STATUSES = ("open", "assigned", "in_progress", "on_hold")


@dataclass(frozen=True)
class TicketFilter:
    status: str | None = None
    priority: str | None = None
    channel: str | None = None
    assignee_id: str | None = None
    customer_id: str | None = None


@dataclass(frozen=True)
class TicketRow:
    ticket_id: str
    customer_id: str
    channel: str
    type: str
    priority: str
    status: str
    subject: str
    assignee_id: str
    sla_breached: bool
    created_at: datetime
    updated_at: datetime
    version: int
    opened_sequence: int


def list_tickets(
    *, session: Session, where: TicketFilter, page_size: int, before_sequence: int = 0
) -> list[TicketRow]:
    """Returns up to `page_size` matching tickets, newest first, older than the cursor."""
    query = select(tickets)
    for column in ("status", "priority", "channel", "assignee_id", "customer_id"):
        value = getattr(where, column)
        if value:
            query = query.where(tickets.c[column] == value)
    if before_sequence:
        query = query.where(tickets.c.opened_sequence < before_sequence)
    query = query.order_by(tickets.c.opened_sequence.desc()).limit(page_size)
    return [
        TicketRow(
            ticket_id=row.ticket_id,
            customer_id=row.customer_id,
            channel=row.channel,
            type=row.type,
            priority=row.priority,
            status=row.status,
            subject=row.subject,
            assignee_id=row.assignee_id,
            sla_breached=row.sla_breached,
            created_at=aware(row.created_at),
            updated_at=aware(row.updated_at),
            version=row.version,
            opened_sequence=row.opened_sequence,
        )
        for row in session.execute(query)
    ]


def open_ticket_counts(*, session: Session) -> dict[str, int]:
    """Returns the number of active tickets per assignee."""
    query = (
        select(tickets.c.assignee_id, func.count())
        .where(tickets.c.status.in_(ACTIVE_STATUSES), tickets.c.assignee_id != "")
        .group_by(tickets.c.assignee_id)
    )
    return {agent: int(count) for agent, count in session.execute(query)}


@dataclass(frozen=True)
class KnownCustomer:
    customer_id: str
    tier: str


def known_customer(
    *, session: Session, customer_id: str = "", kind: str = "", digest: str = ""
) -> KnownCustomer | None:
    """Returns a customer of the directory by id, or by the keyed hash of an e-mail / phone."""
    table = customer_directory
    if customer_id:
        query = select(table).where(table.c.customer_id == customer_id)
    else:
        column = table.c.email_hash if kind == "email" else table.c.phone_hash
        query = select(table).where(column == digest).order_by(table.c.version.desc()).limit(1)
    row = session.execute(query).first()
    return KnownCustomer(row.customer_id, row.tier) if row is not None else None
