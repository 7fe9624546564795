"""CustomerProfileService over gRPC: proto <-> domain translation and error -> status mapping.

Error messages and logs never contain personal data: a bad e-mail is reported by field name,
never echoed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import grpc
from careops.customer.v1 import customer_pb2 as pb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as t
from careops.customer.v1.types_pb2 import PersonalData
from careops_eventstore.aggregates import CommandResult
from careops_eventstore.codec import enum_from_proto, enum_to_proto
from careops_eventstore.tasks import raise_if_cancel_swallowed
from careops_platform.changes import ReadModelChanges
from careops_platform.errors import DeadlineExceeded, FieldViolation, InvalidArgument, NotFound
from careops_platform.paging import page_cursor, page_size, page_token
from careops_platform.requests import actor, aggregate_id, command_id, derived_id, timestamp_field
from google.protobuf.json_format import MessageToDict
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from customer import currencies, readmodels
from customer import domain as d
from customer.application import (
    CustomerApp,
    PersonalInput,
    Profiles,
    average_csat,
    export_document,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CustomerProfileService"].full_name
TIER = t.CustomerTier.DESCRIPTOR
REASON = t.ErasureReason.DESCRIPTOR
DEFAULT_TIMELINE = 50
PUSH_INTERVAL_SECONDS = 1.0  # WatchCustomer360: at most one look a second (a burst is one)
QUIET_SECONDS = 30.0  # WatchCustomer360 re-arms its wait this often while nothing moves
EXPORT_TIMELINE = 100_000


def error_map() -> dict[type[Exception], grpc.StatusCode]:
    """Returns how domain errors map to gRPC status codes."""
    return {
        d.InvalidCommand: grpc.StatusCode.INVALID_ARGUMENT,
        d.IllegalTransition: grpc.StatusCode.FAILED_PRECONDITION,
        d.CustomerNotFound: grpc.StatusCode.NOT_FOUND,
        d.CustomerAlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
        d.CustomerError: grpc.StatusCode.FAILED_PRECONDITION,
    }


def _customer_id(value: str) -> str:
    return aggregate_id(value, "customer_id", kind="customer")


def _stamp(message: Any, name: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, name).FromDatetime(value)


def _profile(personal: PersonalData | None, locale: str) -> t.Profile:
    if personal is None:
        return t.Profile(locale=locale)
    return t.Profile(
        name=personal.name,
        email=personal.email,
        phone=personal.phone,
        address=personal.address,
        locale=locale,
        notes=personal.notes,
    )


def _customer(
    *,
    customer_id: str,
    personal: PersonalData | None,
    locale: str,
    consent: d.Consent,
    tags: tuple[str, ...] | frozenset[str],
    segment: d.Segment,
    purchase_count: int,
    last_purchase_at: datetime | None,
    registered_at: datetime | None,
    forgotten: bool,
    version: int,
) -> t.Customer:
    message = t.Customer(
        customer_id=customer_id,
        profile=_profile(personal, locale),
        consent=t.Consent(marketing=consent.marketing, profiling=consent.profiling),
        tags=sorted(tags),
        tier=enum_to_proto(segment.tier, TIER),
        rfm=t.RfmScores(
            recency=segment.recency, frequency=segment.frequency, monetary=segment.monetary
        ),
        churn_risk=segment.churn_risk,
        purchase_count=purchase_count,
        forgotten=forgotten,
        personal_data_available=personal is not None,
        version=version,
    )
    _stamp(message, "registered_at", registered_at)
    _stamp(message, "last_purchase_at", last_purchase_at)
    return message


def _purchase(order_id: str, amount_minor: int, currency: str, at: datetime) -> t.Purchase:
    message = t.Purchase(
        order_id=order_id,
        amount=currencies.to_decimal(amount_minor, currency),
        amount_minor=amount_minor,
        currency=currency,
    )
    message.purchased_at.FromDatetime(at)
    return message


def _state_customer(result: CommandResult[d.Customer], personal: PersonalData | None) -> t.Customer:
    """The customer a command answers with: its state after the command, `personal` opened."""
    state = result.state
    return _customer(
        customer_id=state.customer_id,
        personal=personal,
        locale=state.locale,
        consent=state.consent,
        tags=state.tags,
        segment=state.segment,
        purchase_count=state.purchase_count,
        last_purchase_at=state.last_purchase_at,
        registered_at=state.registered_at,
        forgotten=state.forgotten,
        version=result.sequence,
    )


ReadWait = Callable[[int, float], Awaitable[bool]]
"""Waits (bounded) until the customer read model reached a sequence; returns whether it did."""


class CustomerServicer(customer_pb2_grpc.CustomerProfileServiceServicer):
    """Thin gRPC adapter over CustomerApp and the customer read models."""

    def __init__(
        self,
        app: CustomerApp,
        engine: Engine,
        wait_for: ReadWait,
        read_wait_seconds: float = 5.0,
        *,
        changes: ReadModelChanges,
        push_interval: float = PUSH_INTERVAL_SECONDS,
    ) -> None:
        self._changes = changes
        self._push_interval = push_interval
        self._app = app
        self._engine = engine
        self._wait_for = wait_for
        self._read_wait = read_wait_seconds
        self._profiles = Profiles(app, self._contact_owner)

    # ------------------------------------------------------------------------- helpers

    async def _caught_up(self, min_sequence: int) -> None:
        if min_sequence and not await self._wait_for(min_sequence, self._read_wait):
            raise DeadlineExceeded(
                f"the customer read model has not reached sequence {min_sequence} yet; retry"
            )

    async def _from_state(self, result: CommandResult[d.Customer]) -> t.Customer:
        state = result.state
        personal = await asyncio.to_thread(
            self._app.open_personal, state.customer_id, state.personal
        )
        return _state_customer(result, personal)

    def _from_row(self, row: readmodels.CustomerRow) -> t.Customer:
        """Blocking (decrypts): call from a thread."""
        return _customer(
            customer_id=row.customer_id,
            personal=self._app.open_personal(row.customer_id, row.sealed),
            locale=row.locale,
            consent=row.consent,
            tags=row.tags,
            segment=row.segment,
            purchase_count=row.purchase_count,
            last_purchase_at=row.last_purchase_at,
            registered_at=row.registered_at,
            forgotten=row.forgotten,
            version=row.version,
        )

    def _lookup(self, kind: str, digest: str) -> readmodels.CustomerRow | None:
        with Session(self._engine) as session:
            return readmodels.find_by_contact(session=session, kind=kind, digest=digest)

    def _owner(self, kind: str, digest: str) -> str | None:
        with self._engine.connect() as connection:
            return readmodels.contact_owner(connection=connection, kind=kind, digest=digest)

    async def _contact_owner(self, kind: str, digest: str) -> str | None:
        return await asyncio.to_thread(self._owner, kind, digest)

    # ------------------------------------------------------------------------- commands

    async def RegisterCustomer(
        self, request: pb.RegisterCustomerRequest, context: Any
    ) -> pb.RegisterCustomerResponse:
        profile = request.profile
        customer_id = derived_id("C")
        personal = PersonalInput(
            name=profile.name,
            email=profile.email,
            phone=profile.phone,
            address=profile.address,
            notes=profile.notes,
            locale=profile.locale,
        )
        consent = d.Consent(request.consent.marketing, request.consent.profiling)
        result, opened = await self._profiles.register_opened(
            customer_id, personal, consent, command_id=command_id(), actor=actor()
        )
        return pb.RegisterCustomerResponse(
            customer=_state_customer(result, opened), sequence=result.sequence
        )

    async def UpdateProfile(
        self, request: pb.UpdateProfileRequest, context: Any
    ) -> pb.UpdateProfileResponse:
        customer_id = _customer_id(request.customer_id)
        changes = {
            name: getattr(request, name)
            for name in ("name", "email", "phone", "address", "locale", "notes")
            if request.HasField(name)
        }
        consent = (
            d.Consent(request.consent.marketing, request.consent.profiling)
            if request.HasField("consent")
            else None
        )
        result = await self._profiles.update_profile(
            customer_id, changes, consent, command_id=command_id(), actor=actor()
        )
        return pb.UpdateProfileResponse(
            customer=await self._from_state(result), sequence=result.sequence
        )

    async def TagCustomer(
        self, request: pb.TagCustomerRequest, context: Any
    ) -> pb.TagCustomerResponse:
        customer_id = _customer_id(request.customer_id)
        result = await self._app.tag(
            customer_id,
            list(request.add),
            list(request.remove),
            command_id=command_id(),
            actor=actor(),
        )
        return pb.TagCustomerResponse(
            customer=await self._from_state(result), sequence=result.sequence
        )

    async def RecordPurchase(
        self, request: pb.RecordPurchaseRequest, context: Any
    ) -> pb.RecordPurchaseResponse:
        customer_id = _customer_id(request.customer_id)
        command = d.RecordPurchase(
            order_id=request.order_id,
            amount=request.amount,
            currency=request.currency,
            purchased_at=timestamp_field(request, "purchased_at"),
        )
        result, bought = await self._profiles.record_purchase(
            customer_id, command, command_id=command_id(), actor=actor()
        )
        return pb.RecordPurchaseResponse(
            purchase=_purchase(
                bought.order_id, bought.amount_minor, bought.currency, bought.purchased_at
            ),
            customer=await self._from_state(result),
            sequence=result.sequence,
        )

    async def EraseCustomer(
        self, request: pb.EraseCustomerRequest, context: Any
    ) -> pb.EraseCustomerResponse:
        customer_id = _customer_id(request.customer_id)
        reason = enum_from_proto(request.reason, REASON, d.ErasureReason)
        result = await self._app.erase(customer_id, reason, command_id=command_id(), actor=actor())
        response = pb.EraseCustomerResponse(customer_id=customer_id, sequence=result.sequence)
        _stamp(response, "erased_at", result.state.forgotten_at)
        return response

    # ------------------------------------------------------------------------- queries

    async def FindCustomer(
        self, request: pb.FindCustomerRequest, context: Any
    ) -> pb.FindCustomerResponse:
        kind = request.WhichOneof("contact")
        if kind is None or not getattr(request, kind).strip():
            raise InvalidArgument(
                "give an e-mail address or a phone number",
                [FieldViolation("email", "set email or phone")],
            )
        digest = self._app.hash_contact(kind, getattr(request, kind))
        await self._caught_up(request.min_sequence)
        found = await asyncio.to_thread(self._find, kind, digest)
        if found is None:
            raise NotFound(f"no customer has this {kind.replace('email', 'e-mail')}")
        return pb.FindCustomerResponse(customer=found)

    def _find(self, kind: str, digest: str) -> t.Customer | None:
        row = self._lookup(kind, digest)
        return self._from_row(row) if row is not None else None

    async def GetCustomer360(
        self, request: pb.GetCustomer360Request, context: Any
    ) -> pb.GetCustomer360Response:
        customer_id = _customer_id(request.customer_id)
        limit = request.timeline_limit or DEFAULT_TIMELINE
        if limit > readmodels.MAX_TIMELINE:
            raise InvalidArgument(
                f"timeline_limit must be at most {readmodels.MAX_TIMELINE}",
                [FieldViolation("timeline_limit", f"1..{readmodels.MAX_TIMELINE}")],
            )
        await self._caught_up(request.min_sequence)
        view = await asyncio.to_thread(self._view, customer_id, limit)
        return pb.GetCustomer360Response(view=view)

    async def WatchCustomer360(
        self, request: pb.WatchCustomer360Request, context: Any
    ) -> AsyncIterator[pb.WatchCustomer360Response]:
        changes = self._changes
        # Positions read before each query: an event applied while it runs is looked at next.
        since = changes.positions()
        first = await self.GetCustomer360(request.query, context)
        yield pb.WatchCustomer360Response(view=first.view)
        shown = first.view.SerializeToString(deterministic=True)
        customer_id = _customer_id(request.query.customer_id)
        limit = request.query.timeline_limit or DEFAULT_TIMELINE
        while True:
            raise_if_cancel_swallowed()
            if not await changes.moved(since, QUIET_SECONDS):
                continue
            # Coalesce a burst (one command appends several events) into one look.
            await asyncio.sleep(self._push_interval)
            since = changes.positions()
            view = await asyncio.to_thread(self._view, customer_id, limit)
            answer = view.SerializeToString(deterministic=True)
            if answer != shown:  # most events are other customers'
                shown = answer
                yield pb.WatchCustomer360Response(view=view)

    def _view(self, customer_id: str, limit: int) -> t.Customer360:
        with Session(self._engine) as session:
            view = readmodels.view_360(
                session=session,
                customer_id=customer_id,
                timeline_limit=limit,
                currency=self._app.model.currency,
            )
        if view is None:
            raise NotFound(f"customer {customer_id} does not exist")
        return self._view_to_proto(view)

    def _view_to_proto(self, view: readmodels.View360) -> t.Customer360:
        message = t.Customer360(
            customer=self._from_row(view.customer),
            ticket_count=view.ticket_count,
            monetary_minor=view.monetary_minor,
            monetary_currency=self._app.model.currency,
        )
        for ticket in view.open_tickets:
            summary = message.open_tickets.add(
                ticket_id=ticket.ticket_id,
                channel=ticket.channel,
                type=ticket.type,
                priority=ticket.priority,
                status=ticket.status,
            )
            _stamp(summary, "opened_at", ticket.opened_at)
            _stamp(summary, "updated_at", ticket.updated_at)
        satisfaction = message.satisfaction
        for survey in view.surveys:
            record = satisfaction.history.add(
                ticket_id=survey.ticket_id, csat=survey.csat, emotion=survey.emotion
            )
            if survey.nps is not None:
                record.nps = survey.nps
            _stamp(record, "submitted_at", survey.submitted_at)
        satisfaction.surveys = len(view.surveys)
        average = average_csat([survey.csat for survey in view.surveys])
        if average is not None:
            satisfaction.average_csat = average
        for entry in view.timeline:
            item = message.timeline.add(
                source=entry.source,
                kind=entry.kind,
                summary=entry.summary,
                ticket_id=entry.ticket_id,
                channel=entry.channel,
                emotion=entry.emotion,
                csat=entry.csat,
            )
            _stamp(item, "at", entry.at)
        for purchase in view.recent_purchases:
            message.recent_purchases.append(
                _purchase(
                    purchase.order_id,
                    purchase.amount_minor,
                    purchase.currency,
                    purchase.purchased_at,
                )
            )
        return message

    async def ListCustomers(
        self, request: pb.ListCustomersRequest, context: Any
    ) -> pb.ListCustomersResponse:
        size = page_size(request.page_size)
        tag = request.tag.strip().lower()
        if tag and not d.TAG.match(tag):
            raise InvalidArgument(
                "tag is not a valid tag", [FieldViolation("tag", "1-40 of a-z 0-9 - _")]
            )
        before = page_cursor(request.page_token, "ListCustomers")
        await self._caught_up(request.min_sequence)
        tier = enum_from_proto(request.tier, TIER, d.Tier)
        return await asyncio.to_thread(
            self._list,
            tier.value if tier else None,
            tag or None,
            request.churn_risk_only,
            size,
            before,
        )

    def _list(
        self, tier: str | None, tag: str | None, churn: bool, size: int, before: int
    ) -> pb.ListCustomersResponse:
        with Session(self._engine) as session:
            rows = readmodels.list_customers(
                session=session,
                tier=tier,
                tag=tag,
                churn_risk_only=churn,
                page_size=size + 1,
                before_sequence=before,
            )
        response = pb.ListCustomersResponse(customers=[self._from_row(row) for row in rows[:size]])
        if len(rows) > size:
            response.next_page_token = page_token(rows[size - 1].registered_sequence)
        return response

    async def ExportCustomerData(
        self, request: pb.ExportCustomerDataRequest, context: Any
    ) -> pb.ExportCustomerDataResponse:
        customer_id = _customer_id(request.customer_id)
        await self._caught_up(request.min_sequence)
        document = await asyncio.to_thread(self._export, customer_id)
        self._app.export_requested()
        response = pb.ExportCustomerDataResponse(
            customer_id=customer_id, document_json=json.dumps(document, indent=2, default=str)
        )
        response.generated_at.FromDatetime(self._app.clock())
        return response

    def _export(self, customer_id: str) -> dict[str, Any]:
        with Session(self._engine) as session:
            found = readmodels.view_360(
                session=session,
                customer_id=customer_id,
                timeline_limit=EXPORT_TIMELINE,
                currency=self._app.model.currency,
            )
            if found is None:
                raise NotFound(f"customer {customer_id} does not exist")
            bought = readmodels.all_purchases(session=session, customer_id=customer_id)
            tickets = readmodels.all_tickets(session=session, customer_id=customer_id)
        view = MessageToDict(
            self._view_to_proto(found),
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,  # a DSAR shows "false" and "0" too
        )
        purchases = [
            MessageToDict(
                _purchase(p.order_id, p.amount_minor, p.currency, p.purchased_at),
                preserving_proto_field_name=True,
            )
            for p in bought
        ]
        return export_document(
            view=view,
            purchases=purchases,
            tickets=tickets,
            erased=found.customer.forgotten,
        )
