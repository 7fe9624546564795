"""Ticketing read models: SQL tables and keyword-only query functions."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from careops_eventstore.rows import EncodedJSON
from careops_eventstore.sqlstate import aware
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    null,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from ticketing.domain import SlaClock, SlaClockSnapshot

# The projections' names, for read-your-writes waits at the edge (which imports no projection).
TICKETS_PROJECTION = "tickets"
CONVERSATION_PROJECTION = "conversation"
MACROS_PROJECTION = "macros"
AGENTS_PROJECTION = "agents"

metadata = MetaData()
T = TypeVar("T")

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
    # When the ticket (last) joined the routing queue: opened, or handed back (0004).
    Column("queued_at", DateTime(timezone=True), nullable=True),
    # The SLA clocks as of the last event that moved one (`clocks_to_json`), the nearest due
    # time of a running clock (the SLA-due order) and the compensations awaiting a decision (0006).
    # Written encoded (`clocks_json`); the column is JSON all the same.
    Column("sla", EncodedJSON, nullable=True),
    Column("sla_due_at", DateTime(timezone=True), nullable=True),
    Column("pending_compensations", Integer, nullable=False, default=0),
    Index("ix_tickets_status", "status", "opened_sequence"),
    Index("ix_tickets_sla_due", "sla_due_at", "opened_sequence"),
    Index("ix_tickets_pending_compensations", "pending_compensations", "opened_sequence"),
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

# The agent directory as of the log (issue 12 item 5): listing and routing read it.
agents = Table(
    "agents",
    metadata,
    Column("agent_id", String(100), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("team", String(200), nullable=False, default=""),
    # [[channel, capacity], ...]
    Column("channels", JSON, nullable=False),
    Column("ticket_types", JSON, nullable=False),
    Column("languages", JSON, nullable=False),
    Column("senior", Boolean, nullable=False, default=False),
    Column("availability", String(20), nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("ix_agents_team", "team", "agent_id"),
)

# The conversation: every text written on a ticket, one row per event. Together with
# `tickets.subject` this is the only read-model place free text about a customer is kept,
# so a shredder (CustomerForgotten) blanks `subject` and `body` here by customer_id.
conversation = Table(
    "conversation",
    metadata,
    # Applied in log order, so `entry` orders the entries of one event batch too (one
    # command may write several texts under one stream sequence).
    Column("entry", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("sequence", BigInteger, nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("customer_id", String(100), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("author", String(20), nullable=False),
    Column("author_id", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("internal", Boolean, nullable=False),
    Column("subject", String(200), nullable=False, default=""),
    Column("body", Text, nullable=False),
    Column("macro_id", String(100), nullable=False, default=""),
    Column("macro_version", Integer, nullable=False, default=0),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_conversation_ticket", "ticket_id", "entry"),
    Index("ix_conversation_customer", "customer_id"),
)

# The macros as of their last put (deleted ones removed).
macros = Table(
    "macros",
    metadata,
    Column("macro_id", String(64), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


ACTIVE_STATUSES = ("open", "assigned", "in_progress", "on_hold")


NEWEST_FIRST, OLDEST_FIRST, SLA_DUE = "newest_first", "oldest_first", "sla_due"


@dataclass(frozen=True)
class TicketFilter:
    status: str | None = None
    priority: str | None = None
    channel: str | None = None
    assignee_id: str | None = None
    customer_id: str | None = None
    open_only: bool = False
    with_pending_compensations: bool = False


@dataclass(frozen=True)
class TicketCursor:
    """Where a page continues: after this ticket (its SLA due time in ms, for the SLA order;
    None: it had no running clock)."""

    opened_sequence: int = 0
    due_ms: int | None = None


def clocks_to_json(clocks: tuple[SlaClockSnapshot, ...]) -> list[dict[str, Any]]:
    """Returns the clocks of an event as the `sla` column stores them."""
    return [
        {
            "clock": clock.clock.value,
            "target_ms": _ms(clock.target),
            "consumed_ms": _ms(clock.consumed),
            "running": clock.running,
            "paused": clock.paused,
            "warn_at": _iso(clock.warn_at),
            "due_at": _iso(clock.due_at),
            "warned": clock.warned,
            "breached": clock.breached,
            "met": clock.met,
            "stopped_at": _iso(clock.stopped_at),
        }
        for clock in clocks
    ]


def clocks_json(clocks: tuple[SlaClockSnapshot, ...]) -> str:
    """`json.dumps(clocks_to_json(clocks))`, written directly: the ticket list stores the clocks
    of nearly every event, and building the dicts and encoding them was most of its apply."""
    return "[" + ", ".join(map(_clock_json, clocks)) + "]"


_JSON_BOOL = ("false", "true")


def _clock_json(clock: SlaClockSnapshot) -> str:
    # The keys and order of clocks_to_json; the values need no escaping (an enum value, ints,
    # booleans and ISO timestamps).
    b = _JSON_BOOL
    return (
        f'{{"clock": "{clock.clock.value}", "target_ms": {_ms(clock.target)}, '
        f'"consumed_ms": {_ms(clock.consumed)}, "running": {b[clock.running]}, '
        f'"paused": {b[clock.paused]}, "warn_at": {_iso_json(clock.warn_at)}, '
        f'"due_at": {_iso_json(clock.due_at)}, "warned": {b[clock.warned]}, '
        f'"breached": {b[clock.breached]}, "met": {b[clock.met]}, '
        f'"stopped_at": {_iso_json(clock.stopped_at)}}}'
    )


def _iso_json(value: datetime | None) -> str:
    return f'"{value.isoformat()}"' if value is not None else "null"


def clocks_from_json(data: list[dict[str, Any]] | None) -> tuple[SlaClockSnapshot, ...]:
    """Returns the clocks the `sla` column holds (none before 0006 or before any event)."""
    return tuple(
        SlaClockSnapshot(
            clock=SlaClock(item["clock"]),
            target=timedelta(milliseconds=item["target_ms"]),
            consumed=timedelta(milliseconds=item["consumed_ms"]),
            running=item["running"],
            paused=item["paused"],
            warn_at=_datetime(item["warn_at"]),
            due_at=_datetime(item["due_at"]),
            warned=item["warned"],
            breached=item["breached"],
            met=item["met"],
            stopped_at=_datetime(item["stopped_at"]),
        )
        for item in data or ()
    )


def nearest_due(clocks: tuple[SlaClockSnapshot, ...]) -> datetime | None:
    """Returns the earliest due time of a running clock, or None when none runs."""
    dues = [clock.due_at for clock in clocks if clock.running and clock.due_at is not None]
    return min(dues, default=None)


def _ms(value: timedelta) -> int:
    """`int(value / timedelta(milliseconds=1))` (toward zero), in integer arithmetic: the
    ticket list writes two of these per clock of nearly every event."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    return micros // 1000 if micros >= 0 else -(-micros // 1000)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _datetime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


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
    sla: tuple[SlaClockSnapshot, ...] = ()
    sla_due_at: datetime | None = None
    pending_compensations: int = 0

    def cursor(self) -> TicketCursor:
        """Returns the cursor of the page continuing after this row."""
        due = None if self.sla_due_at is None else int(self.sla_due_at.timestamp() * 1000)
        return TicketCursor(self.opened_sequence, due)


def list_tickets(
    *,
    session: Session,
    where: TicketFilter,
    page_size: int,
    after: TicketCursor | None = None,
    order: str = NEWEST_FIRST,
) -> list[TicketRow]:
    """Returns up to `page_size` matching tickets in `order`, continuing after the cursor."""
    query = select(tickets)
    for column in ("status", "priority", "channel", "assignee_id", "customer_id"):
        value = getattr(where, column)
        if value:
            query = query.where(tickets.c[column] == value)
    if where.open_only and not where.status:
        query = query.where(tickets.c.status.in_(ACTIVE_STATUSES))
    if where.with_pending_compensations:
        query = query.where(tickets.c.pending_compensations > 0)
    query = _ordered(query, order, after or TicketCursor()).limit(page_size)
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
            sla=clocks_from_json(row.sla),
            sla_due_at=aware(row.sla_due_at),
            pending_compensations=row.pending_compensations or 0,
        )
        for row in session.execute(query)
    ]


def _ordered(query: Any, order: str, after: TicketCursor) -> Any:
    """Applies the order and the keyset cursor (ties broken by the opening sequence)."""
    seq, due = tickets.c.opened_sequence, tickets.c.sla_due_at
    if order == OLDEST_FIRST:
        if after.opened_sequence:
            query = query.where(seq > after.opened_sequence)
        return query.order_by(seq.asc())
    if order == SLA_DUE:
        if after.opened_sequence and after.due_ms is None:
            query = query.where(due.is_(null()), seq > after.opened_sequence)
        elif after.opened_sequence:
            at = datetime.fromtimestamp(after.due_ms / 1000, tz=UTC)  # type: ignore[operator]
            later = or_(due > at, (due == at) & (seq > after.opened_sequence), due.is_(null()))
            query = query.where(later)
        # NULLS LAST: the tickets with no running clock come after every due one.
        return query.order_by(due.asc().nulls_last(), seq.asc())
    if after.opened_sequence:
        query = query.where(seq < after.opened_sequence)
    return query.order_by(seq.desc())


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


class KnownCustomers:
    """`known_customer` with a bounded in-memory cache in front, for OpenTicket's hot path: a
    hit costs no SQL and no worker thread.

    Every entry holds as of one position of the customer-directory projection (`position`, its
    runner's): as soon as that moves on (any customer event, applied here or by a replica),
    the whole cache is dropped, so a changed tier or contact applies to the next ticket opened
    after the projection has it, exactly as when reading the table each time. Customer events
    are rare next to tickets; a per-customer invalidation would keep more entries but needs
    the runner to report what it delivered."""

    def __init__(self, engine: Engine, position: Callable[[], int], capacity: int = 10_000):
        self._engine = engine
        self._position = position
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str, str], KnownCustomer | None] = OrderedDict()
        self._as_of = -1

    async def find(
        self, *, customer_id: str = "", kind: str = "", digest: str = ""
    ) -> KnownCustomer | None:
        """Returns the directory's customer by id or by contact digest, or None."""
        key = (customer_id, kind, digest)
        position = self._position()
        if position != self._as_of:
            self._entries.clear()
            self._as_of = position
        elif key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        found = await asyncio.to_thread(self._read, key)
        # Kept only if the projection did not move during the read (which may have seen
        # either side of that move).
        if self._position() == position == self._as_of:
            self._entries[key] = found
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return found

    def _read(self, key: tuple[str, str, str]) -> KnownCustomer | None:
        customer_id, kind, digest = key
        with Session(self._engine) as session:
            return known_customer(
                session=session, customer_id=customer_id, kind=kind, digest=digest
            )


# ----------------------------------------------------------------------------- agent directory


@dataclass(frozen=True)
class AgentRow:
    agent_id: str
    name: str
    team: str
    channels: tuple[tuple[str, int], ...]
    ticket_types: tuple[str, ...]
    languages: tuple[str, ...]
    senior: bool
    availability: str
    version: int


def list_agents(*, session: Session, team: str = "", availability: str = "") -> list[AgentRow]:
    """Returns the directory's agents by id, optionally of one team / availability."""
    query = select(agents).order_by(agents.c.agent_id)
    if team:
        query = query.where(agents.c.team == team)
    if availability:
        query = query.where(agents.c.availability == availability)
    return [
        AgentRow(
            agent_id=row.agent_id,
            name=row.name,
            team=row.team,
            channels=tuple((str(channel), int(capacity)) for channel, capacity in row.channels),
            ticket_types=tuple(row.ticket_types),
            languages=tuple(row.languages),
            senior=row.senior,
            availability=row.availability,
            version=row.version,
        )
        for row in session.execute(query)
    ]


def channel_loads(*, session: Session) -> dict[str, dict[str, int]]:
    """Returns each assignee's active tickets per channel."""
    query = (
        select(tickets.c.assignee_id, tickets.c.channel, func.count())
        .where(tickets.c.status.in_(ACTIVE_STATUSES), tickets.c.assignee_id != "")
        .group_by(tickets.c.assignee_id, tickets.c.channel)
    )
    loads: dict[str, dict[str, int]] = {}
    for agent, channel, count in session.execute(query):
        loads.setdefault(agent, {})[channel] = int(count)
    return loads


@dataclass(frozen=True)
class WaitingTicket:
    ticket_id: str
    type: str
    channel: str
    priority: str
    queued_at: datetime
    opened_sequence: int


# The routing queue: open tickets nobody is assigned.
_WAITING = (tickets.c.status == "open", tickets.c.assignee_id == "")


def waiting_tickets(
    *, session: Session, limit: int, kinds: Sequence[tuple[str, str]] | None = None
) -> list[WaitingTicket]:
    """Returns up to `limit` tickets waiting in the routing queue (open, nobody assigned),
    oldest first; with `kinds`, only those of these (type, channel) pairs."""
    query = (
        select(
            tickets.c.ticket_id,
            tickets.c.type,
            tickets.c.channel,
            tickets.c.priority,
            tickets.c.queued_at,
            tickets.c.created_at,
            tickets.c.opened_sequence,
        )
        .where(*_WAITING)
        .order_by(tickets.c.opened_sequence)
        .limit(limit)
    )
    if kinds is not None:
        query = query.where(tuple_(tickets.c.type, tickets.c.channel).in_(kinds))
    return [
        WaitingTicket(
            row.ticket_id,
            row.type,
            row.channel,
            row.priority,
            aware(row.queued_at or row.created_at),
            row.opened_sequence,
        )
        for row in session.execute(query)
    ]


def waiting_count(*, session: Session) -> int:
    """Returns how many tickets wait in the routing queue (open, nobody assigned)."""
    query = select(func.count()).select_from(tickets).where(*_WAITING)
    return int(session.execute(query).scalar() or 0)


def active_tickets(*, session: Session, after_sequence: int, limit: int) -> list[tuple[str, int]]:
    """Returns up to `limit` active tickets (open, assigned, in progress, on hold) opened after
    `after_sequence`, oldest first, as (ticket id, opened sequence)."""
    query = (
        select(tickets.c.ticket_id, tickets.c.opened_sequence)
        .where(tickets.c.status.in_(ACTIVE_STATUSES), tickets.c.opened_sequence > after_sequence)
        .order_by(tickets.c.opened_sequence)
        .limit(limit)
    )
    return [(row.ticket_id, row.opened_sequence) for row in session.execute(query)]


def unstarted_of(*, session: Session, agent_id: str) -> list[str]:
    """Returns the tickets assigned to `agent_id` that no agent replied to yet."""
    query = select(tickets.c.ticket_id).where(
        tickets.c.assignee_id == agent_id, tickets.c.status == "assigned"
    )
    return [row.ticket_id for row in session.execute(query)]


class Directory:
    """The agent directory and queue reads, off the event loop (a worker thread each)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _read(self, read: Callable[[Session], T]) -> Awaitable[T]:
        def run() -> T:
            with Session(self._engine) as session:
                return read(session)

        return asyncio.to_thread(run)

    async def agents(self, *, team: str = "", availability: str = "") -> list[AgentRow]:
        """Returns the directory's agents (see list_agents)."""
        return await self._read(
            lambda s: list_agents(session=s, team=team, availability=availability)
        )

    async def is_empty(self) -> bool:
        """Returns whether the directory has no agent."""
        return await self._read(
            lambda s: s.execute(select(agents.c.agent_id).limit(1)).first() is None
        )

    async def loads(self) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """Returns each assignee's active tickets: in total and per channel (one aggregate:
        a ticket has one channel, so the totals are the channels' sums)."""
        per_channel = await self._read(lambda s: channel_loads(session=s))
        return {agent: sum(loads.values()) for agent, loads in per_channel.items()}, per_channel

    async def waiting(
        self, limit: int, kinds: Sequence[tuple[str, str]] | None = None
    ) -> list[WaitingTicket]:
        """Returns the routing queue (see waiting_tickets)."""
        return await self._read(lambda s: waiting_tickets(session=s, limit=limit, kinds=kinds))

    async def waiting_count(self) -> int:
        """Returns how many tickets wait in the routing queue (see waiting_count)."""
        return await self._read(lambda s: waiting_count(session=s))

    async def active(self, after_sequence: int, limit: int) -> list[tuple[str, int]]:
        """Returns a page of the active tickets (see active_tickets)."""
        return await self._read(
            lambda s: active_tickets(session=s, after_sequence=after_sequence, limit=limit)
        )

    async def unstarted(self, agent_id: str) -> list[str]:
        """Returns the agent's unstarted tickets (see unstarted_of)."""
        return await self._read(lambda s: unstarted_of(session=s, agent_id=agent_id))


@dataclass(frozen=True)
class MessageRow:
    """One entry of a ticket's conversation."""

    entry: int
    sequence: int
    kind: str
    author: str
    author_id: str
    channel: str
    internal: bool
    subject: str
    body: str
    macro_id: str
    macro_version: int
    at: datetime


def conversation_page(
    *, session: Session, ticket_id: str, page_size: int, after_entry: int, internal: bool
) -> list[MessageRow]:
    """Returns up to `page_size` entries of a ticket after the cursor, oldest first; internal
    entries only with `internal`."""
    table = conversation
    query = select(table).where(table.c.ticket_id == ticket_id, table.c.entry > after_entry)
    if not internal:
        query = query.where(table.c.internal.is_(False))
    query = query.order_by(table.c.entry).limit(page_size)
    return [
        MessageRow(
            entry=row.entry,
            sequence=row.sequence,
            kind=row.kind,
            author=row.author,
            author_id=row.author_id,
            channel=row.channel,
            internal=row.internal,
            subject=row.subject,
            body=row.body,
            macro_id=row.macro_id,
            macro_version=row.macro_version,
            at=aware(row.at),
        )
        for row in session.execute(query)
    ]


@dataclass(frozen=True)
class MacroRow:
    """A macro as of its last put."""

    macro_id: str
    title: str
    body: str
    version: int
    updated_at: datetime


def list_macros(*, session: Session) -> list[MacroRow]:
    """Returns every macro, by id."""
    query = select(macros).order_by(macros.c.macro_id)
    return [
        MacroRow(row.macro_id, row.title, row.body, row.version, aware(row.updated_at))
        for row in session.execute(query)
    ]
