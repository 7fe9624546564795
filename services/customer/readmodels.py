"""Customer read models: SQL tables and keyword-only query functions.

Personal fields are stored as they are on the log, sealed (nonce + ciphertext under the
customer's data key); contacts only as keyed hashes. Each projection owns its own tables, so
any one can be rebuilt alone; the 360 view joins them at read time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from careops_eventstore.sqlstate import aware
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    bindparam,
    case,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from customer import domain as d

metadata = MetaData()

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("registered_sequence", BigInteger, nullable=False, unique=True),
    Column("key_version", Integer, nullable=True),
    Column("sealed_nonce", LargeBinary, nullable=True),
    Column("sealed_personal", LargeBinary, nullable=True),
    Column("email_hash", String(64), nullable=True, index=True),
    Column("phone_hash", String(64), nullable=True, index=True),
    Column("locale", String(40), nullable=False, default=""),
    Column("consent_marketing", Boolean, nullable=False, default=False),
    Column("consent_profiling", Boolean, nullable=False, default=False),
    Column("tier", String(20), nullable=False),
    Column("recency_score", Integer, nullable=False, default=0),
    Column("frequency_score", Integer, nullable=False, default=0),
    Column("monetary_score", Integer, nullable=False, default=0),
    Column("churn_risk", Boolean, nullable=False, default=False),
    Column("purchase_count", Integer, nullable=False, default=0),
    Column("last_purchase_at", DateTime(timezone=True), nullable=True),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("forgotten", Boolean, nullable=False, default=False),
    Column("forgotten_at", DateTime(timezone=True), nullable=True),
    Column("version", BigInteger, nullable=False),
    Index("ix_customers_tier", "tier", "registered_sequence"),
)

customer_tags = Table(
    "customer_tags",
    metadata,
    Column("customer_id", String(64), nullable=False),
    Column("tag", String(40), nullable=False),
    PrimaryKeyConstraint("customer_id", "tag"),
    Index("ix_customer_tags_tag", "tag", "customer_id"),
)

purchases = Table(
    "customer_purchases",
    metadata,
    Column("customer_id", String(64), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("purchased_at", DateTime(timezone=True), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    PrimaryKeyConstraint("customer_id", "order_id"),
    Index("ix_customer_purchases_at", "customer_id", "purchased_at"),
)

# Timeline of the customer's own events (registered, purchases, tags, segment, erasure).
activity = Table(
    "customer_activity",
    metadata,
    Column("entry_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("summary", String(300), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Index("ix_customer_activity", "customer_id", "at"),
)

tickets = Table(
    "customer_tickets",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("customer_id", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("type", String(20), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_customer_tickets_customer", "customer_id", "status"),
    Index("ix_customer_tickets_opened", "customer_id", "opened_at"),
)

ticket_activity = Table(
    "customer_ticket_activity",
    metadata,
    Column("entry_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("customer_id", String(100), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("summary", String(300), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    # A customer message's emotion (opening or reply; "" for every other entry).
    Column("emotion", String(20), nullable=False, server_default=""),
    Index("ix_customer_ticket_activity", "customer_id", "at"),
)

incidents = Table(
    "customer_incidents",
    metadata,
    Column("incident_id", String(64), nullable=False),
    Column("customer_id", String(100), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("summary", String(300), nullable=False),
    PrimaryKeyConstraint("incident_id", "customer_id"),
    Index("ix_customer_incidents", "customer_id", "at"),
)

# Tickets linked to an incident (declared with them, or TicketsLinked), by ticket: the
# customer is found at query time through customer_tickets, so the link shows whichever of
# the two streams customer-profile reads first.
incident_tickets = Table(
    "customer_incident_tickets",
    metadata,
    Column("incident_id", String(64), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("summary", String(300), nullable=False),
    PrimaryKeyConstraint("incident_id", "ticket_id"),
    Index("ix_customer_incident_tickets_ticket", "ticket_id"),
)

surveys = Table(
    "customer_surveys",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("customer_id", String(100), nullable=False),
    Column("csat", Integer, nullable=False),
    Column("nps", Integer, nullable=True),
    Column("emotion", String(20), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Index("ix_customer_surveys", "customer_id", "submitted_at"),
)

MAX_TIMELINE = 500


@dataclass(frozen=True)
class CustomerRow:
    customer_id: str
    sealed: d.Sealed | None
    locale: str
    consent: d.Consent
    tags: tuple[str, ...]
    segment: d.Segment
    purchase_count: int
    last_purchase_at: datetime | None
    registered_at: datetime
    forgotten: bool
    version: int
    registered_sequence: int


@dataclass(frozen=True)
class TimelineRow:
    at: datetime
    source: str
    kind: str
    summary: str
    ticket_id: str = ""
    channel: str = ""
    emotion: str = ""
    csat: int = 0


@dataclass(frozen=True)
class PurchaseRow:
    order_id: str
    amount_minor: int
    currency: str
    purchased_at: datetime


@dataclass(frozen=True)
class SurveyRow:
    ticket_id: str
    csat: int
    nps: int | None
    emotion: str
    channel: str
    submitted_at: datetime


@dataclass(frozen=True)
class TicketRow:
    ticket_id: str
    channel: str
    type: str
    priority: str
    status: str
    opened_at: datetime
    updated_at: datetime


def _purchase(row: Any) -> PurchaseRow:
    return PurchaseRow(row.order_id, row.amount_minor, row.currency, aware(row.purchased_at))


def _survey(row: Any) -> SurveyRow:
    return SurveyRow(
        row.ticket_id,
        row.csat,
        row.nps,
        row.emotion,
        row.channel,
        aware(row.submitted_at),
    )


def _ticket(row: Any) -> TicketRow:
    return TicketRow(
        row.ticket_id,
        row.channel,
        row.type,
        row.priority,
        row.status,
        aware(row.opened_at),
        aware(row.updated_at),
    )


@dataclass(frozen=True)
class View360:
    """Everything the 360 shows except the decrypted profile."""

    customer: CustomerRow
    open_tickets: list[TicketRow]
    surveys: list[SurveyRow]
    timeline: list[TimelineRow]
    recent_purchases: list[PurchaseRow]
    ticket_count: int
    monetary_minor: int


def _row(row: Any, tags: Sequence[str]) -> CustomerRow:
    sealed = (
        d.Sealed(row.key_version, row.sealed_nonce, row.sealed_personal)
        if row.sealed_personal is not None
        else None
    )
    return CustomerRow(
        customer_id=row.customer_id,
        sealed=sealed,
        locale=row.locale,
        consent=d.Consent(row.consent_marketing, row.consent_profiling),
        tags=tuple(sorted(tags)),
        segment=d.Segment(
            d.Tier(row.tier),
            row.recency_score,
            row.frequency_score,
            row.monetary_score,
            row.churn_risk,
        ),
        purchase_count=row.purchase_count,
        last_purchase_at=aware(row.last_purchase_at),
        registered_at=aware(row.registered_at),
        forgotten=row.forgotten,
        version=row.version,
        registered_sequence=row.registered_sequence,
    )


def _tags(session: Session, ids: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    if ids:
        query = select(customer_tags).where(customer_tags.c.customer_id.in_(ids))
        for row in session.execute(query):
            found.setdefault(row.customer_id, []).append(row.tag)
    return found


def get(*, session: Session, customer_id: str) -> CustomerRow | None:
    """Returns one customer, or None."""
    row = session.execute(select(customers).where(customers.c.customer_id == customer_id)).first()
    if row is None:
        return None
    return _row(row, _tags(session, [customer_id]).get(customer_id, []))


def _by_contact(kind: str, *columns: Any) -> Any:
    """The newest live customer whose e-mail ("email") or phone has the keyed hash `digest`."""
    column = customers.c.email_hash if kind == "email" else customers.c.phone_hash
    return (
        select(*columns)
        .where(column == bindparam("digest"), customers.c.forgotten.is_(False))
        .order_by(customers.c.registered_sequence.desc())
        .limit(1)
    )


# Built once: what a registration asks per contact (the owner's id, no row, no tags).
_OWNER_BY_CONTACT = {
    kind: _by_contact(kind, customers.c.customer_id) for kind in ("email", "phone")
}


def find_by_contact(*, session: Session, kind: str, digest: str) -> CustomerRow | None:
    """Returns the newest live customer whose e-mail or phone has this keyed hash."""
    row = session.execute(_by_contact(kind, customers), {"digest": digest}).first()
    if row is None:
        return None
    return _row(row, _tags(session, [row.customer_id]).get(row.customer_id, []))


def contact_owner(*, connection: Connection, kind: str, digest: str) -> str | None:
    """Returns the id of the customer `find_by_contact` finds, or None."""
    owner = connection.execute(_OWNER_BY_CONTACT[kind], {"digest": digest}).scalar()
    return str(owner) if owner is not None else None


def list_customers(
    *,
    session: Session,
    tier: str | None,
    tag: str | None,
    churn_risk_only: bool,
    page_size: int,
    before_sequence: int = 0,
) -> list[CustomerRow]:
    """Returns live customers, newest first, filtered by tier, tag and churn risk."""
    query = select(customers).where(customers.c.forgotten.is_(False))
    if tier:
        query = query.where(customers.c.tier == tier)
    if churn_risk_only:
        query = query.where(customers.c.churn_risk.is_(True))
    if tag:
        tagged = select(customer_tags.c.customer_id).where(customer_tags.c.tag == tag)
        query = query.where(customers.c.customer_id.in_(tagged))
    if before_sequence:
        query = query.where(customers.c.registered_sequence < before_sequence)
    rows = session.execute(
        query.order_by(customers.c.registered_sequence.desc()).limit(page_size)
    ).all()
    tags = _tags(session, [row.customer_id for row in rows])
    return [_row(row, tags.get(row.customer_id, [])) for row in rows]


def tier_counts(*, session: Session) -> dict[str, int]:
    """Returns live customers per tier."""
    query = (
        select(customers.c.tier, func.count())
        .where(customers.c.forgotten.is_(False))
        .group_by(customers.c.tier)
    )
    return {tier: int(count) for tier, count in session.execute(query)}


def _newest(table: Table, source: str, customer_id: str, limit: int) -> Any:
    """The newest `limit` entries of one timeline table, as a UNION-able select."""
    empty = literal("")
    inner = (
        select(
            table.c.at,
            literal(source).label("source"),
            table.c.kind,
            table.c.summary,
            (table.c.ticket_id if "ticket_id" in table.c else empty).label("ticket_id"),
            (table.c.channel if "channel" in table.c else empty).label("channel"),
            (table.c.emotion if "emotion" in table.c else empty).label("emotion"),
        )
        .where(table.c.customer_id == customer_id)
        .order_by(table.c.at.desc())
        .limit(limit)
        .subquery()
    )
    return select(inner)


def timeline(
    *, session: Session, customer_id: str, limit: int, surveys: Sequence[SurveyRow] | None = None
) -> list[TimelineRow]:
    """Returns the newest `limit` entries of every source, merged, newest first (one query for
    the customer, ticket and incident entries; `surveys` when the caller already has them)."""
    union = union_all(
        *(
            _newest(table, source, customer_id, limit)
            for table, source in (
                (activity, "customer"),
                (ticket_activity, "ticketing"),
                (incidents, "incident"),
            )
        )
    ).subquery()
    rows = session.execute(select(union).order_by(union.c.at.desc()).limit(limit))
    logged = [
        TimelineRow(aware(r.at), r.source, r.kind, r.summary, r.ticket_id, r.channel, r.emotion)
        for r in rows
    ]
    linked = incidents_through_tickets(session=session, customer_id=customer_id, limit=limit)
    if linked:
        logged = sorted([*logged, *linked], key=lambda entry: entry.at, reverse=True)[:limit]
    if surveys is None:
        surveys = survey_history(session=session, customer_id=customer_id, limit=limit)
    answered = [
        TimelineRow(
            survey.submitted_at,
            "quality",
            "survey",
            f"survey: CSAT {survey.csat}/5"
            + (f", NPS {survey.nps}/10" if survey.nps is not None else ""),
            survey.ticket_id,
            survey.channel,
            survey.emotion,
            survey.csat,
        )
        for survey in surveys[:limit]
    ]
    merged = heapq.merge(logged, answered, key=lambda entry: entry.at, reverse=True)
    return [entry for _, entry in zip(range(limit), merged, strict=False)]


def incidents_through_tickets(
    *, session: Session, customer_id: str, limit: int
) -> list[TimelineRow]:
    """Returns the newest `limit` incidents linked to one of the customer's tickets but not to
    the customer directly, one entry per incident (its first link), newest first."""
    direct = select(incidents.c.incident_id).where(incidents.c.customer_id == customer_id)
    rows = session.execute(
        select(incident_tickets)
        .join(tickets, tickets.c.ticket_id == incident_tickets.c.ticket_id)
        .where(
            tickets.c.customer_id == customer_id,
            incident_tickets.c.incident_id.not_in(direct),
        )
        .order_by(incident_tickets.c.at, incident_tickets.c.ticket_id)
    )
    first: dict[str, TimelineRow] = {}
    for r in rows:
        entry = TimelineRow(aware(r.at), "incident", r.kind, r.summary, r.ticket_id)
        first.setdefault(r.incident_id, entry)
    return sorted(first.values(), key=lambda entry: entry.at, reverse=True)[:limit]


def open_tickets(*, session: Session, customer_id: str) -> list[TicketRow]:
    """Returns the customer's tickets that are not resolved or closed, newest first."""
    return [
        _ticket(row)
        for row in session.execute(
            select(tickets)
            .where(
                tickets.c.customer_id == customer_id,
                tickets.c.status.not_in(("resolved", "closed")),
            )
            .order_by(tickets.c.opened_at.desc())
        )
    ]


def survey_history(*, session: Session, customer_id: str, limit: int) -> list[SurveyRow]:
    rows = session.execute(
        select(surveys)
        .where(surveys.c.customer_id == customer_id)
        .order_by(surveys.c.submitted_at.desc())
        .limit(limit)
    )
    return [_survey(row) for row in rows]


def recent_purchases(*, session: Session, customer_id: str, limit: int) -> list[PurchaseRow]:
    rows = session.execute(
        select(purchases)
        .where(purchases.c.customer_id == customer_id)
        .order_by(purchases.c.purchased_at.desc())
        .limit(limit)
    )
    return [_purchase(row) for row in rows]


def view_360(
    *, session: Session, customer_id: str, timeline_limit: int, currency: str
) -> View360 | None:
    """Returns the 360 view of one customer (profile still sealed), or None."""
    customer = get(session=session, customer_id=customer_id)
    if customer is None:
        return None
    ticket_count, monetary = session.execute(
        select(
            select(func.count())
            .select_from(tickets)
            .where(tickets.c.customer_id == customer_id)
            .scalar_subquery(),
            select(func.coalesce(func.sum(purchases.c.amount_minor), 0))
            .where(purchases.c.customer_id == customer_id, purchases.c.currency == currency)
            .scalar_subquery(),
        )
    ).one()
    answered = survey_history(
        session=session, customer_id=customer_id, limit=max(MAX_TIMELINE, timeline_limit)
    )
    return View360(
        customer=customer,
        open_tickets=open_tickets(session=session, customer_id=customer_id),
        surveys=answered,
        timeline=timeline(
            session=session, customer_id=customer_id, limit=timeline_limit, surveys=answered
        ),
        recent_purchases=recent_purchases(session=session, customer_id=customer_id, limit=20),
        ticket_count=int(ticket_count),
        monetary_minor=int(monetary),
    )


def all_purchases(*, session: Session, customer_id: str) -> list[PurchaseRow]:
    rows = session.execute(
        select(purchases)
        .where(purchases.c.customer_id == customer_id)
        .order_by(purchases.c.purchased_at)
    )
    return [_purchase(row) for row in rows]


def all_tickets(*, session: Session, customer_id: str) -> list[TicketRow]:
    query = select(tickets).where(tickets.c.customer_id == customer_id)
    return [_ticket(row) for row in session.execute(query.order_by(tickets.c.opened_at))]


Versions = dict[str, tuple[int, d.Segment]]
"""Customer id -> (read-model version, recorded segment)."""

_SEGMENT_COLUMNS = (
    customers.c.customer_id,
    customers.c.version,
    customers.c.tier,
    customers.c.recency_score,
    customers.c.frequency_score,
    customers.c.monetary_score,
    customers.c.churn_risk,
)
_ONE_SEGMENT = select(*_SEGMENT_COLUMNS).where(customers.c.customer_id == bindparam("customer"))


def recorded_segments(*, session: Session, customer_ids: Sequence[str]) -> Versions:
    """Returns the read-model version and recorded segment of the given customers (those that
    exist)."""
    if len(customer_ids) == 1:
        rows = session.execute(_ONE_SEGMENT, {"customer": customer_ids[0]})
    else:
        query = select(*_SEGMENT_COLUMNS).where(customers.c.customer_id.in_(customer_ids))
        rows = session.execute(query)
    return {
        row.customer_id: (
            row.version,
            d.Segment(
                d.Tier(row.tier),
                row.recency_score,
                row.frequency_score,
                row.monetary_score,
                row.churn_risk,
            ),
        )
        for row in rows
    }


def _activity_statements() -> dict[str, Any]:
    """The segmentation inputs' four queries for every live customer (parameters
    frequency_since, monetary_since and currency bound at execution)."""
    return {
        "live": select(customers.c.customer_id, customers.c.registered_at).where(
            customers.c.forgotten.is_(False)
        ),
        "bought": select(
            purchases.c.customer_id,
            func.sum(
                case((purchases.c.purchased_at >= bindparam("frequency_since"), 1), else_=0)
            ).label("frequency"),
            func.max(purchases.c.purchased_at).label("last_purchase_at"),
        ),
        "spent": select(
            purchases.c.customer_id, func.sum(purchases.c.amount_minor).label("monetary")
        ).where(
            purchases.c.purchased_at >= bindparam("monetary_since"),
            purchases.c.currency == bindparam("currency"),
        ),
        "contacted": select(
            tickets.c.customer_id, func.max(tickets.c.opened_at).label("last_contact")
        ),
    }


_OWNERS = {"live": customers, "bought": purchases, "spent": purchases, "contacted": tickets}


def _activity_queries(match: Callable[[Any], Any] | None) -> dict[str, Any]:
    """The four queries, each restricted by `match(<its customer_id column>)` when given; the
    aggregates grouped by customer."""
    queries = {}
    for name, query in _activity_statements().items():
        column = _OWNERS[name].c.customer_id
        if match is not None:
            query = query.where(match(column))
        queries[name] = query if name == "live" else query.group_by(column)
    return queries


# Built once: everyone's (the periodic recomputation) and one customer's (each purchase).
_EVERYONE = _activity_queries(None)
_ONE_CUSTOMER = _activity_queries(lambda column: column == bindparam("customer"))


def activities(
    *,
    session: Session,
    frequency_since: datetime,
    monetary_since: datetime,
    currency: str,
    customer_ids: Sequence[str] | None = None,
) -> list[d.Activity]:
    """Returns the segmentation inputs of live customers (all, or the given ones): the last
    purchase ever, purchases since `frequency_since`, amounts in `currency` since
    `monetary_since`, the last ticket."""
    parameters: dict[str, Any] = {
        "frequency_since": frequency_since,
        "monetary_since": monetary_since,
        "currency": currency,
    }
    if customer_ids is None:
        queries = _EVERYONE
    elif len(customer_ids) == 1:
        queries, parameters["customer"] = _ONE_CUSTOMER, customer_ids[0]
    else:
        queries = _activity_queries(lambda column: column.in_(customer_ids))
    frequency = {
        row.customer_id: (int(row.frequency or 0), aware(row.last_purchase_at))
        for row in session.execute(queries["bought"], parameters)
    }
    monetary = {
        row.customer_id: int(row.monetary or 0)
        for row in session.execute(queries["spent"], parameters)
    }
    contacts = {
        row.customer_id: aware(row.last_contact)
        for row in session.execute(queries["contacted"], parameters)
    }
    result = []
    for row in session.execute(queries["live"], parameters):
        count, last = frequency.get(row.customer_id, (0, None))
        result.append(
            d.Activity(
                customer_id=row.customer_id,
                registered_at=aware(row.registered_at),
                last_purchase_at=last,
                last_contact_at=contacts.get(row.customer_id),
                frequency=int(count),
                monetary=monetary.get(row.customer_id, 0),
            )
        )
    return result
