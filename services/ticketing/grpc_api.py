"""TicketingService over gRPC: proto <-> domain translation and error -> status mapping only."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import grpc
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc, types_pb2
from careops_eventstore.aggregates import CommandResult
from careops_eventstore.codec import (
    dataclass_to_message,
    enum_from_proto,
    enum_to_proto,
    set_timestamp,
)
from careops_platform.errors import DeadlineExceeded, FieldViolation, InvalidArgument
from careops_platform.identity import caller
from careops_platform.paging import page_cursor, page_size, page_token
from careops_platform.policies import PolicyEndpoints
from careops_platform.requests import (
    actor,
    aggregate_id,
    command_id,
    derived_id,
    timestamp_field,
)
from google.protobuf.descriptor import EnumDescriptor
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ticketing import domain, readmodels
from ticketing.application import (
    Assignment,
    CustomerClaim,
    CustomerLookup,
    TicketingApp,
    profile_of,
    sla_snapshots,
    workloads_of,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TicketingService"].full_name

E = TypeVar("E", bound=Enum)
R = TypeVar("R")


def _enum(number: int, descriptor: EnumDescriptor, domain_type: type[E]) -> E | None:
    return enum_from_proto(number, descriptor, domain_type)  # type: ignore[no-any-return]


CHANNEL = types_pb2.Channel.DESCRIPTOR
TYPE = types_pb2.TicketType.DESCRIPTOR
EMOTION = types_pb2.Emotion.DESCRIPTOR
PRIORITY = types_pb2.Priority.DESCRIPTOR
STATUS = types_pb2.TicketStatus.DESCRIPTOR
TIER = types_pb2.CustomerTier.DESCRIPTOR
HOLD = types_pb2.HoldReason.DESCRIPTOR
AUTHOR = types_pb2.Author.DESCRIPTOR
KIND = types_pb2.CompensationKind.DESCRIPTOR
COMPENSATION_STATUS = types_pb2.CompensationStatus.DESCRIPTOR
AVAILABILITY = types_pb2.Availability.DESCRIPTOR
STEP = types_pb2.ComplaintStep.DESCRIPTOR


def error_map() -> dict[type[Exception], grpc.StatusCode]:
    """Returns how domain errors map to gRPC status codes."""
    return {
        domain.InvalidCommand: grpc.StatusCode.INVALID_ARGUMENT,
        domain.IllegalTransition: grpc.StatusCode.FAILED_PRECONDITION,
        domain.TicketNotFound: grpc.StatusCode.NOT_FOUND,
        domain.AgentNotFound: grpc.StatusCode.NOT_FOUND,
        domain.TicketAlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
        domain.CompensationNotFound: grpc.StatusCode.NOT_FOUND,
        domain.LimitExceeded: grpc.StatusCode.PERMISSION_DENIED,
        domain.TicketError: grpc.StatusCode.FAILED_PRECONDITION,
    }


def _event_clocks(
    result: CommandResult[domain.Ticket],
) -> tuple[domain.SlaClockSnapshot, ...] | None:
    """The clocks of a TicketOpened that is the command's last event: decide snapshotted
    every clock at the ticket's `updated_at`, so the reply reuses them instead of computing
    them again. None otherwise: a replayed command (the state may have moved on), or another
    last event (whose snapshot may hold only the clocks it changed, or `paused_for`)."""
    if result.replayed or not result.events:
        return None
    last = result.events[-1]
    if not isinstance(last, domain.TicketOpened) or last.sla is None:
        return None
    names = tuple(clock.clock for clock in last.sla.clocks)
    return last.sla.clocks if names == tuple(result.state.clocks) else None


def command_reply(
    response_type: type[Any], result: CommandResult[domain.Ticket], app: TicketingApp
) -> Any:
    """A ticket command's response: the ticket after it, and the sequence to read it at."""
    # Clocks as of the command's own event keep a retried command's response identical.
    state = result.state
    ticket = ticket_to_proto(
        state, result.sequence, app, at=state.updated_at, clocks=_event_clocks(result)
    )
    return response_type(ticket=ticket, sequence=result.sequence)


def ticket_to_proto(
    ticket: domain.Ticket,
    version: int,
    app: TicketingApp,
    *,
    at: datetime | None = None,
    clocks: Sequence[domain.SlaClockSnapshot] | None = None,
) -> pb.Ticket:
    """Returns the API view of a ticket, SLA clocks as of `at` (default: now), or `clocks`
    when the caller has them as of that time already."""
    message = pb.Ticket(
        ticket_id=ticket.ticket_id,
        customer_id=ticket.customer_id,
        channel=enum_to_proto(ticket.channel, CHANNEL),
        type=enum_to_proto(ticket.type, TYPE),
        priority=enum_to_proto(ticket.priority, PRIORITY),
        status=enum_to_proto(ticket.status, STATUS),
        subject=ticket.subject,
        description=ticket.description,
        tier=enum_to_proto(ticket.tier, TIER),
        assignee_id=ticket.assignee_id,
        escalation_level=ticket.escalation_level,
        hold_reason=enum_to_proto(ticket.hold_reason, HOLD),
        reopen_count=ticket.reopen_count,
        agent_replies=ticket.agent_replies,
        customer_replies=ticket.customer_replies,
        sla_policy_version=app.policy_of(ticket).version,
        product=ticket.product,
        version=version,
        emotion=enum_to_proto(ticket.emotion, EMOTION),
        angry_customer=ticket.angry_customer,
        detailed_explanation_requested=ticket.detailed_explanation_requested,
        survey_invited=ticket.survey_invited,
    )
    for name in ("created_at", "updated_at", "first_responded_at", "resolved_at", "closed_at"):
        value: datetime | None = getattr(ticket, name)
        if value is not None:
            set_timestamp(getattr(message, name), value)
    for snapshot in sla_snapshots(app, ticket, at) if clocks is None else clocks:
        dataclass_to_message(snapshot, message.sla.add())
    for item in ticket.compensations:
        compensation_to_proto(item, message.compensations.add(), ticket.ticket_id)
    complaint_to_proto(ticket, message)
    ticked = {item.item: item for item in ticket.checklist}
    for name in domain.CHECKLISTS.get(ticket.type, ()):
        entry = message.checklist.add(item=name)
        if (done := ticked.get(name)) is not None:
            entry.done, entry.by, entry.note = True, done.by, done.note
            set_timestamp(entry.at, done.at)
    return message


def complaint_to_proto(ticket: domain.Ticket, message: pb.Ticket) -> None:
    """Fills a complaint's procedure: steps taken, steps left, the committed follow-up."""
    if ticket.type is not domain.TicketType.COMPLAINT:
        return
    complaint = ticket.complaint
    for taken in complaint.steps:
        item = message.complaint_steps.add(
            step=enum_to_proto(taken.step, STEP),
            by=taken.by,
            note=taken.detail.note,
            plan=taken.detail.plan,
            options=taken.detail.options,
            outcome=taken.detail.outcome,
            root_cause=taken.detail.root_cause,
            prevention=taken.detail.prevention,
            shared=taken.detail.shared,
            late=taken.detail.late,
        )
        item.at.FromDatetime(taken.at)
        if taken.detail.follow_up_at is not None:
            item.follow_up_at.FromDatetime(taken.detail.follow_up_at)
    done = {taken.step for taken in complaint.steps}
    message.complaint_steps_left.extend(
        enum_to_proto(step, STEP) for step in domain.ComplaintStep if step not in done
    )
    if complaint.follow_up_due is not None:
        message.follow_up_due_at.FromDatetime(complaint.follow_up_due)
    message.follow_up_missed = complaint.follow_up_missed


def compensation_to_proto(
    item: domain.Compensation, message: pb.Compensation, ticket_id: str = ""
) -> pb.Compensation:
    """Fills the API view of one compensation (on the ticket `ticket_id`)."""
    message.compensation_id = item.compensation_id
    message.ticket_id = ticket_id
    message.kind = enum_to_proto(item.kind, KIND)
    message.amount = item.amount
    message.currency = item.currency
    message.reason = item.reason
    message.status = enum_to_proto(item.status, COMPENSATION_STATUS)
    message.requested_by = item.requested_by
    message.requested_at.FromDatetime(item.requested_at)
    message.decided_by = item.decided_by
    if item.decided_at is not None:
        message.decided_at.FromDatetime(item.decided_at)
    message.decision_reason = item.decision_reason
    return message


def summary_to_proto(row: readmodels.TicketRow, message: pb.TicketSummary) -> pb.TicketSummary:
    """Fills the API view of one row of the ticket list (its clocks as of its last event)."""
    message.ticket_id = row.ticket_id
    message.customer_id = row.customer_id
    message.channel = enum_to_proto(domain.Channel(row.channel), CHANNEL)
    message.type = enum_to_proto(domain.TicketType(row.type), TYPE)
    message.priority = enum_to_proto(domain.Priority(row.priority), PRIORITY)
    message.status = enum_to_proto(domain.Status(row.status), STATUS)
    message.subject = row.subject
    message.assignee_id = row.assignee_id
    message.sla_breached = row.sla_breached
    message.version = row.version
    message.pending_compensations = row.pending_compensations
    message.created_at.FromDatetime(row.created_at)
    message.updated_at.FromDatetime(row.updated_at)
    for clock in row.sla:
        dataclass_to_message(clock, message.sla.add())
    if row.sla_due_at is not None:
        message.sla_due_at.FromDatetime(row.sla_due_at)
    return message


_ORDERS = {
    pb.TICKET_ORDER_UNSPECIFIED: readmodels.NEWEST_FIRST,
    pb.TICKET_ORDER_NEWEST_FIRST: readmodels.NEWEST_FIRST,
    pb.TICKET_ORDER_OLDEST_FIRST: readmodels.OLDEST_FIRST,
    pb.TICKET_ORDER_SLA_DUE: readmodels.SLA_DUE,
}


def _order(number: int) -> str:
    """Returns the read model's order of a TicketOrder; INVALID_ARGUMENT for an unknown one."""
    order = _ORDERS.get(number)  # type: ignore[call-overload]
    if order is None:
        raise InvalidArgument(
            f"order {number} is not a TicketOrder", [FieldViolation("order", "unknown value")]
        )
    return str(order)


def _tickets_token(cursor: readmodels.TicketCursor, order: str) -> str:
    """Returns the page token after `cursor`: the opening sequence, and for the SLA order the
    due time too (so a token of one order is refused by the other)."""
    if order != readmodels.SLA_DUE:
        return page_token(cursor.opened_sequence)
    due = "" if cursor.due_ms is None else str(cursor.due_ms)
    return base64.urlsafe_b64encode(f"sla:{cursor.opened_sequence}:{due}".encode()).decode()


def _tickets_cursor(token: str, order: str, rpc: str) -> readmodels.TicketCursor:
    """Returns where a page token of `order` continues; INVALID_ARGUMENT for a foreign token."""
    if order != readmodels.SLA_DUE:
        return readmodels.TicketCursor(page_cursor(token, rpc))
    if not token:
        return readmodels.TicketCursor()
    try:
        tag, sequence, due = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        if tag != "sla" or int(sequence) <= 0:
            raise ValueError(tag)
        return readmodels.TicketCursor(int(sequence), int(due) if due else None)
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        raise InvalidArgument(
            f"page_token is not a token returned by {rpc} in this order",
            [FieldViolation("page_token", "malformed")],
        ) from exc


def _compensation_id(value: str) -> str:
    return aggregate_id(value, "compensation_id", kind="compensation")


def _ticket_id(value: str, field: str = "ticket_id") -> str:
    return aggregate_id(value, field, kind="ticket")


def _internal(visibility: int) -> bool:
    """Returns whether AddReply's visibility asks for an internal note."""
    if visibility not in pb.Visibility.values():
        raise domain.InvalidCommand([("visibility", "unknown visibility")])
    return visibility == pb.VISIBILITY_INTERNAL


def _macro_id(value: str) -> str:
    return aggregate_id(value, "macro_id", kind="macro")


ReadWait = Callable[[str, int, float], Awaitable[bool]]
"""Waits (bounded) until the named projection reached a sequence; returns whether it did."""


class TicketingServicer(ticketing_pb2_grpc.TicketingServiceServicer):
    """Thin gRPC adapter over TicketingApp and the ticket read models."""

    def __init__(
        self,
        app: TicketingApp,
        engine: Engine,
        wait_for: ReadWait,
        read_wait_seconds: float = 5.0,
        *,
        customers: CustomerLookup,
        directory: readmodels.Directory,
    ) -> None:
        self._app = app
        self._engine = engine
        self._wait_for = wait_for
        self._read_wait = read_wait_seconds
        self._customers = customers
        self._directory = directory
        self._assignment = Assignment(app, workloads_of(directory))
        self._sla = PolicyEndpoints(app.sla_book, put=app.put_sla_policy)

    async def _command(self, response_type: type[R], ticket_id: str, command: domain.Command) -> R:
        """Validates the id, runs the command and wraps the ticket in `response_type`."""
        result = await self._app.execute(
            _ticket_id(ticket_id),
            command,
            command_id=command_id(),
            actor=actor(),
            caller=caller(),
        )
        return command_reply(response_type, result, self._app)  # type: ignore[no-any-return]

    async def OpenTicket(
        self, request: pb.OpenTicketRequest, context: Any
    ) -> pb.OpenTicketResponse:
        claim = CustomerClaim(
            customer_id=request.customer_id,
            email=request.contact_email,
            phone=request.contact_phone,
            tier=_enum(request.tier, TIER, domain.CustomerTier),
        )
        customer_id, tier = await self._customers.resolve(claim)
        command = domain.OpenTicket(
            ticket_id=derived_id("T"),
            customer_id=customer_id,
            channel=_enum(request.channel, CHANNEL, domain.Channel),
            type=_enum(request.type, TYPE, domain.TicketType),
            priority=_enum(request.priority, PRIORITY, domain.Priority),
            subject=request.subject,
            description=request.description,
            tier=tier,
            product=request.product,
        )
        return await self._command(pb.OpenTicketResponse, command.ticket_id, command)

    async def GetTicket(self, request: pb.GetTicketRequest, context: Any) -> pb.GetTicketResponse:
        ticket, version = await self._app.get(_ticket_id(request.ticket_id))
        return pb.GetTicketResponse(ticket=ticket_to_proto(ticket, version, self._app))

    async def ListTickets(
        self, request: pb.ListTicketsRequest, context: Any
    ) -> pb.ListTicketsResponse:
        size = page_size(request.page_size)
        order = _order(request.order)
        after = _tickets_cursor(request.page_token, order, "ListTickets")
        await self._read_your_writes(readmodels.TICKETS_PROJECTION, request.min_sequence)
        where = readmodels.TicketFilter(
            status=_value(_enum(request.status, STATUS, domain.Status)),
            priority=_value(_enum(request.priority, PRIORITY, domain.Priority)),
            channel=_value(_enum(request.channel, CHANNEL, domain.Channel)),
            assignee_id=request.assignee_id or None,
            customer_id=request.customer_id or None,
            open_only=request.open_only,
        )
        rows = await asyncio.to_thread(self._list, where, size + 1, after, order)
        response = pb.ListTicketsResponse()
        for row in rows[:size]:
            summary_to_proto(row, response.tickets.add())
        if len(rows) > size:
            response.next_page_token = _tickets_token(rows[size - 1].cursor(), order)
        return response

    async def _read_your_writes(self, projection: str, sequence: int) -> None:
        """Waits (bounded) for `projection` to reach `sequence`; DEADLINE_EXCEEDED if not."""
        if sequence and not await self._wait_for(projection, sequence, self._read_wait):
            raise DeadlineExceeded(
                f"the {projection} read model has not reached sequence {sequence} yet; retry"
            )

    def _list(
        self,
        where: readmodels.TicketFilter,
        limit: int,
        after: readmodels.TicketCursor,
        order: str = readmodels.NEWEST_FIRST,
    ) -> list[readmodels.TicketRow]:
        with Session(self._engine) as session:
            return readmodels.list_tickets(
                session=session, where=where, page_size=limit, after=after, order=order
            )

    async def SuggestAssignee(
        self, request: pb.SuggestAssigneeRequest, context: Any
    ) -> pb.SuggestAssigneeResponse:
        suggestions = await self._assignment.suggestions(_ticket_id(request.ticket_id))
        response = pb.SuggestAssigneeResponse()
        for suggestion in suggestions:
            response.suggestions.add(
                agent_id=suggestion.agent_id,
                score=suggestion.score,
                open_tickets=suggestion.open_tickets,
                reason=suggestion.reason,
            )
        return response

    async def AssignTicket(
        self, request: pb.AssignTicketRequest, context: Any
    ) -> pb.AssignTicketResponse:
        ticket_id = _ticket_id(request.ticket_id)
        command = await self._assignment.command(ticket_id, request.agent_id)
        return await self._command(pb.AssignTicketResponse, ticket_id, command)

    async def AddReply(self, request: pb.AddReplyRequest, context: Any) -> pb.AddReplyResponse:
        ticket_id = _ticket_id(request.ticket_id)
        command = domain.AddReply(
            author=_enum(request.author, AUTHOR, domain.Author),
            author_id=request.author_id,
            body=request.body,
            internal=_internal(request.visibility),
            channel=_enum(request.channel, CHANNEL, domain.Channel),
            macro_id=_macro_id(request.macro_id) if request.macro_id else "",
        )
        command = await self._app.render_macro(ticket_id, command, dict(request.macro_values))
        return await self._command(pb.AddReplyResponse, ticket_id, command)

    async def GetConversation(
        self, request: pb.GetConversationRequest, context: Any
    ) -> pb.GetConversationResponse:
        ticket_id = _ticket_id(request.ticket_id)
        size = page_size(request.page_size)
        after = page_cursor(request.page_token, "GetConversation")
        await self._app.get(ticket_id)  # NOT_FOUND for a ticket the log does not have
        await self._read_your_writes(readmodels.CONVERSATION_PROJECTION, request.min_sequence)
        internal = domain.sees_internal(caller().roles)
        rows = await asyncio.to_thread(self._conversation, ticket_id, size + 1, after, internal)
        response = pb.GetConversationResponse()
        for row in rows[:size]:
            message = response.messages.add(
                kind=row.kind,
                author=enum_to_proto(row.author or None, AUTHOR),
                author_id=row.author_id,
                channel=enum_to_proto(row.channel or None, CHANNEL),
                visibility=pb.VISIBILITY_INTERNAL if row.internal else pb.VISIBILITY_PUBLIC,
                subject=row.subject,
                body=row.body,
                macro_id=row.macro_id,
                macro_version=row.macro_version,
                sequence=row.sequence,
            )
            message.at.FromDatetime(row.at)
        if len(rows) > size:
            response.next_page_token = page_token(rows[size - 1].entry)
        return response

    def _conversation(
        self, ticket_id: str, limit: int, after: int, internal: bool
    ) -> list[readmodels.MessageRow]:
        with Session(self._engine) as session:
            return readmodels.conversation_page(
                session=session,
                ticket_id=ticket_id,
                page_size=limit,
                after_entry=after,
                internal=internal,
            )

    async def PutMacro(self, request: pb.PutMacroRequest, context: Any) -> pb.PutMacroResponse:
        macro_id = _macro_id(request.macro_id)
        command = domain.PutMacro(title=request.title, body=request.body)
        result = await self._app.change_macro(
            macro_id, command, command_id=command_id(), actor=actor()
        )
        macro = result.state
        response = pb.PutMacroResponse(
            macro=pb.Macro(
                macro_id=macro_id, title=macro.title, body=macro.body, version=macro.version
            ),
            sequence=result.sequence,
        )
        if macro.updated_at is not None:
            response.macro.updated_at.FromDatetime(macro.updated_at)
        return response

    async def ListMacros(
        self, request: pb.ListMacrosRequest, context: Any
    ) -> pb.ListMacrosResponse:
        await self._read_your_writes(readmodels.MACROS_PROJECTION, request.min_sequence)
        rows = await asyncio.to_thread(self._macros)
        response = pb.ListMacrosResponse()
        for row in rows:
            macro = response.macros.add(
                macro_id=row.macro_id, title=row.title, body=row.body, version=row.version
            )
            macro.updated_at.FromDatetime(row.updated_at)
        return response

    def _macros(self) -> list[readmodels.MacroRow]:
        with Session(self._engine) as session:
            return readmodels.list_macros(session=session)

    async def DeleteMacro(
        self, request: pb.DeleteMacroRequest, context: Any
    ) -> pb.DeleteMacroResponse:
        result = await self._app.change_macro(
            _macro_id(request.macro_id),
            domain.DeleteMacro(),
            command_id=command_id(),
            actor=actor(),
        )
        return pb.DeleteMacroResponse(sequence=result.sequence)

    async def ChangePriority(
        self, request: pb.ChangePriorityRequest, context: Any
    ) -> pb.ChangePriorityResponse:
        command = domain.ChangePriority(
            priority=_enum(request.priority, PRIORITY, domain.Priority), reason=request.reason
        )
        return await self._command(pb.ChangePriorityResponse, request.ticket_id, command)

    async def EscalateTicket(
        self, request: pb.EscalateTicketRequest, context: Any
    ) -> pb.EscalateTicketResponse:
        command = domain.EscalateTicket(reason=request.reason, to_team=request.to_team)
        return await self._command(pb.EscalateTicketResponse, request.ticket_id, command)

    async def HoldTicket(
        self, request: pb.HoldTicketRequest, context: Any
    ) -> pb.HoldTicketResponse:
        command = domain.HoldTicket(
            reason=_enum(request.reason, HOLD, domain.HoldReason), note=request.note
        )
        return await self._command(pb.HoldTicketResponse, request.ticket_id, command)

    async def ResumeTicket(
        self, request: pb.ResumeTicketRequest, context: Any
    ) -> pb.ResumeTicketResponse:
        return await self._command(
            pb.ResumeTicketResponse, request.ticket_id, domain.ResumeTicket()
        )

    async def ResolveTicket(
        self, request: pb.ResolveTicketRequest, context: Any
    ) -> pb.ResolveTicketResponse:
        command = domain.ResolveTicket(resolution=request.resolution)
        return await self._command(pb.ResolveTicketResponse, request.ticket_id, command)

    async def ReopenTicket(
        self, request: pb.ReopenTicketRequest, context: Any
    ) -> pb.ReopenTicketResponse:
        command = domain.ReopenTicket(reason=request.reason)
        return await self._command(pb.ReopenTicketResponse, request.ticket_id, command)

    async def CloseTicket(
        self, request: pb.CloseTicketRequest, context: Any
    ) -> pb.CloseTicketResponse:
        command = domain.CloseTicket(note=request.note)
        return await self._command(pb.CloseTicketResponse, request.ticket_id, command)

    async def RecordComplaintStep(
        self, request: pb.RecordComplaintStepRequest, context: Any
    ) -> pb.RecordComplaintStepResponse:
        follow_up_at = timestamp_field(request, "follow_up_at")
        command = domain.RecordComplaintStep(
            step=_enum(request.step, STEP, domain.ComplaintStep),
            by=caller().subject,
            note=request.note,
            plan=request.plan,
            options=tuple(request.options),
            follow_up_at=follow_up_at,
            outcome=request.outcome,
            root_cause=request.root_cause,
            prevention=request.prevention,
            shared=request.shared,
        )
        return await self._command(pb.RecordComplaintStepResponse, request.ticket_id, command)

    async def TickChecklistItem(
        self, request: pb.TickChecklistItemRequest, context: Any
    ) -> pb.TickChecklistItemResponse:
        command = domain.TickChecklistItem(request.item, by=caller().subject, note=request.note)
        return await self._command(pb.TickChecklistItemResponse, request.ticket_id, command)

    async def _compensate(
        self, response_type: type[R], ticket_id: str, command: domain.Command, compensation_id: str
    ) -> R:
        """Runs a compensation command; the response carries the compensation it touched."""
        response: Any = await self._command(response_type, ticket_id, command)
        for item in response.ticket.compensations:
            if item.compensation_id == compensation_id:
                response.compensation.CopyFrom(item)
        return response  # type: ignore[no-any-return]

    async def GrantCompensation(
        self, request: pb.GrantCompensationRequest, context: Any
    ) -> pb.GrantCompensationResponse:
        command = domain.GrantCompensation(
            compensation_id=derived_id("C"),
            kind=_enum(request.kind, KIND, domain.CompensationKind),
            amount=request.amount,
            currency=request.currency,
            reason=request.reason,
        )
        return await self._compensate(
            pb.GrantCompensationResponse, request.ticket_id, command, command.compensation_id
        )

    async def ApproveCompensation(
        self, request: pb.ApproveCompensationRequest, context: Any
    ) -> pb.ApproveCompensationResponse:
        compensation_id = _compensation_id(request.compensation_id)
        command = domain.ApproveCompensation(compensation_id, reason=request.reason)
        return await self._compensate(
            pb.ApproveCompensationResponse, request.ticket_id, command, compensation_id
        )

    async def RejectCompensation(
        self, request: pb.RejectCompensationRequest, context: Any
    ) -> pb.RejectCompensationResponse:
        compensation_id = _compensation_id(request.compensation_id)
        command = domain.RejectCompensation(compensation_id, reason=request.reason)
        return await self._compensate(
            pb.RejectCompensationResponse, request.ticket_id, command, compensation_id
        )

    async def ListCompensations(
        self, request: pb.ListCompensationsRequest, context: Any
    ) -> pb.ListCompensationsResponse:
        status = _enum(request.status, COMPENSATION_STATUS, domain.CompensationStatus)
        if not request.ticket_id:
            return await self._pending_compensations(request, status)
        ticket, _version = await self._app.get(_ticket_id(request.ticket_id))
        response = pb.ListCompensationsResponse()
        for item in ticket.compensations:
            if status is None or item.status is status:
                compensation_to_proto(item, response.compensations.add(), ticket.ticket_id)
        return response

    async def _pending_compensations(
        self, request: pb.ListCompensationsRequest, status: domain.CompensationStatus | None
    ) -> pb.ListCompensationsResponse:
        """The pending compensations across tickets: the ticket list finds the tickets with
        one waiting (indexed), each ticket's state gives them."""
        if status not in (None, domain.CompensationStatus.PENDING):
            raise InvalidArgument(
                "without ticket_id only the PENDING compensations are listed",
                [FieldViolation("status", "PENDING or unspecified without ticket_id")],
            )
        size = page_size(request.page_size)
        after = readmodels.TicketCursor(page_cursor(request.page_token, "ListCompensations"))
        await self._read_your_writes(readmodels.TICKETS_PROJECTION, request.min_sequence)
        where = readmodels.TicketFilter(with_pending_compensations=True)
        rows = await asyncio.to_thread(self._list, where, size + 1, after, readmodels.OLDEST_FIRST)
        tickets = await asyncio.gather(*(self._app.get(row.ticket_id) for row in rows[:size]))
        response = pb.ListCompensationsResponse()
        for ticket, _version in tickets:
            for item in ticket.compensations:
                if item.status is domain.CompensationStatus.PENDING:
                    compensation_to_proto(item, response.compensations.add(), ticket.ticket_id)
        if len(rows) > size:
            response.next_page_token = page_token(rows[size - 1].opened_sequence)
        return response

    # ------------------------------------------------------------------- SLA policy

    async def PutSlaPolicy(
        self, request: pb.PutSlaPolicyRequest, context: Any
    ) -> pb.PutSlaPolicyResponse:
        return await self._sla.put(request, pb.PutSlaPolicyResponse)

    async def GetSlaPolicy(
        self, request: pb.GetSlaPolicyRequest, context: Any
    ) -> pb.GetSlaPolicyResponse:
        return await self._sla.get(request, pb.GetSlaPolicyResponse)

    async def ListSlaPolicyVersions(
        self, request: pb.ListSlaPolicyVersionsRequest, context: Any
    ) -> pb.ListSlaPolicyVersionsResponse:
        return await self._sla.list_versions(request, pb.ListSlaPolicyVersionsResponse)

    # ------------------------------------------------------------------- agent directory

    async def _agent_view(self, profile: domain.AgentProfile, version: int) -> pb.Agent:
        totals, _channels = await self._directory.loads()
        return agent_to_proto(profile, version, totals.get(profile.agent_id, 0))

    async def PutAgent(self, request: pb.PutAgentRequest, context: Any) -> pb.PutAgentResponse:
        command = domain.PutAgent(
            name=request.name,
            team=request.team,
            channels=_channels(request.channels),
            ticket_types=tuple(request.ticket_types),
            languages=tuple(request.languages),
            senior=request.senior,
            availability=_enum(request.availability, AVAILABILITY, domain.Availability),
        )
        result = await self._app.put_agent(
            _agent_id(request.agent_id), command, command_id=command_id(), actor=actor()
        )
        agent = await self._agent_view(result.state, result.sequence)
        return pb.PutAgentResponse(agent=agent, sequence=result.sequence)

    async def GetAgent(self, request: pb.GetAgentRequest, context: Any) -> pb.GetAgentResponse:
        profile, version = await self._app.agent(_agent_id(request.agent_id))
        return pb.GetAgentResponse(agent=await self._agent_view(profile, version))

    async def ListAgents(
        self, request: pb.ListAgentsRequest, context: Any
    ) -> pb.ListAgentsResponse:
        availability = _enum(request.availability, AVAILABILITY, domain.Availability)
        await self._read_your_writes(readmodels.AGENTS_PROJECTION, request.min_sequence)
        rows = await self._directory.agents(
            team=request.team, availability=_value(availability) or ""
        )
        totals, _channels = await self._directory.loads()
        response = pb.ListAgentsResponse()
        for row in rows:
            profile = replace(
                profile_of(row), name=row.name, team=row.team, languages=row.languages
            )
            response.agents.append(
                agent_to_proto(profile, row.version, totals.get(row.agent_id, 0))
            )
        return response

    async def SetAvailability(
        self, request: pb.SetAvailabilityRequest, context: Any
    ) -> pb.SetAvailabilityResponse:
        principal = caller()
        agent_id = request.agent_id or principal.subject
        command = domain.SetAvailability(
            _enum(request.availability, AVAILABILITY, domain.Availability)
        )
        result = await self._app.set_availability(
            _agent_id(agent_id), command, command_id=command_id(), actor=actor(), caller=principal
        )
        agent = await self._agent_view(result.state, result.sequence)
        return pb.SetAvailabilityResponse(agent=agent, sequence=result.sequence)


def _agent_id(value: str) -> str:
    return aggregate_id(value, "agent_id", kind="agent")


def _channels(items: Iterable[types_pb2.ChannelCapacity]) -> tuple[domain.ChannelCapacity, ...]:
    """Returns the capacities of a request; INVALID_ARGUMENT for an unspecified channel."""
    channels = []
    for index, item in enumerate(items):
        channel = _enum(item.channel, CHANNEL, domain.Channel)
        if channel is None:
            raise InvalidArgument(
                "every capacity names a channel",
                [FieldViolation(f"channels[{index}].channel", "must be specified")],
            )
        channels.append(domain.ChannelCapacity(channel, item.capacity))
    return tuple(channels)


def agent_to_proto(profile: domain.AgentProfile, version: int, open_tickets: int) -> pb.Agent:
    """Returns the API view of an agent."""
    message = pb.Agent(
        agent_id=profile.agent_id,
        name=profile.name,
        team=profile.team,
        ticket_types=profile.ticket_types,
        languages=profile.languages,
        senior=profile.senior,
        availability=enum_to_proto(profile.availability, AVAILABILITY),
        open_tickets=open_tickets,
        version=version,
    )
    for item in profile.channels:
        message.channels.add(channel=enum_to_proto(item.channel, CHANNEL), capacity=item.capacity)
    return message


def _value(member: Enum | None) -> str | None:
    return str(member.value) if member is not None else None
