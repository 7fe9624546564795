"""IncidentService over gRPC: proto <-> domain translation, error mapping, the alert stream."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import grpc
import nats.js.api
from careops.events.v1.envelope_pb2 import EventBatch
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_eventstore.aggregates import CommandResult
from careops_eventstore.codec import (
    dataclass_to_message,
    enum_from_proto,
    enum_to_proto,
    from_timestamp,
    message_to_dataclass,
)
from careops_eventstore.projection import read_checkpoint
from careops_platform.errors import (
    DeadlineExceeded,
    FieldViolation,
    InvalidArgument,
    NotFound,
    service_error,
)
from careops_platform.paging import page_cursor, page_size, page_token
from careops_platform.requests import (
    AGGREGATE_ID,
    actor,
    aggregate_id,
    command_id,
    derived_id,
    timestamp_field,
)
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NatsClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from incident import domain as d
from incident import readmodels
from incident.application import CODEC, INCIDENT_SUBJECTS, STREAM, IncidentApp
from incident.projections import IncidentProjection

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IncidentService"].full_name
PAGE_ID = re.compile(rf"(?P<incident>{AGGREGATE_ID.pattern})-p[0-9]+")  # fullmatch only
R = TypeVar("R")
E = TypeVar("E", bound=Enum)

LEVEL = t.IncidentLevel.DESCRIPTOR
STATUS = t.IncidentStatus.DESCRIPTOR
SOURCE = t.IncidentSource.DESCRIPTOR
ENGAGEMENT = t.Engagement.DESCRIPTOR
CONTACT = t.ContactKind.DESCRIPTOR


def _enum(number: int, descriptor: Any, domain_type: type[E]) -> E | None:
    return enum_from_proto(number, descriptor, domain_type)  # type: ignore[no-any-return]


def error_map() -> dict[type[Exception], grpc.StatusCode]:
    """Returns how domain errors map to gRPC status codes."""
    return {
        d.InvalidCommand: grpc.StatusCode.INVALID_ARGUMENT,
        d.NotFound: grpc.StatusCode.NOT_FOUND,
        d.IncidentAlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
        d.IncidentError: grpc.StatusCode.FAILED_PRECONDITION,
    }


def _translate(exc: d.IncidentError) -> Exception:
    return service_error(exc, error_map()) or exc  # the one shared mapping path


def _stamp(message: Any, name: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, name).FromDatetime(value)


def incident_to_proto(incident: d.Incident, version: int) -> pb.Incident:
    """Returns the API view of an incident."""
    message = pb.Incident(
        incident_id=incident.incident_id,
        type=incident.type,
        title=incident.title,
        description=incident.description,
        source=enum_to_proto(incident.source, SOURCE),
        risk_index=incident.risk_index,
        level=enum_to_proto(incident.level, LEVEL),
        status=enum_to_proto(incident.status, STATUS),
        drill=incident.drill,
        response_deadline_missed=incident.response_deadline_missed,
        matrix_version=incident.matrix_version,
        ticket_ids=incident.ticket_ids,
        customer_ids=incident.customer_ids,
        public_statement_draft=incident.public_statement_draft,
        version=version,
    )
    if incident.factors is not None:
        dataclass_to_message(incident.factors, message.factors)
    if incident.review is not None:
        dataclass_to_message(incident.review, message.review)
    for name in ("declared_at", "response_due_at", "acknowledged_at", "resolved_at", "closed_at"):
        _stamp(message, name, getattr(incident, name))
    for team_id, (engagement, paged) in incident.teams.items():
        message.teams.add(
            team_id=team_id, engagement=enum_to_proto(engagement, ENGAGEMENT), paged=paged
        )
    for page in incident.pages.values():
        item = message.pages.add(
            page_id=page.page_id,
            team_id=page.team_id,
            member_id=page.member_id,
            step=page.step,
            round=page.round,
            engagement=enum_to_proto(page.engagement, ENGAGEMENT),
            acknowledged=page.acknowledged_at is not None,
            escalated=page.escalated,
        )
        _stamp(item, "requested_at", page.requested_at)
        _stamp(item, "ack_due_at", page.ack_due_at)
        _stamp(item, "acknowledged_at", page.acknowledged_at)
        for kind, (delivered, attempts, error) in page.deliveries.items():
            item.deliveries.add(
                kind=enum_to_proto(kind, CONTACT),
                delivered=delivered,
                failed=not delivered,
                attempts=attempts,
                error=error,
            )
    message.roles.update(incident.roles)
    for at, entry_kind, text in incident.timeline:
        entry = message.timeline.add(kind=entry_kind, text=text)
        entry.at.FromDatetime(at)
    return message


def _incident_id(value: str, field: str = "incident_id") -> str:
    return aggregate_id(value, field, kind="incident")


def _team_id(value: str, field: str = "team_id") -> str:
    return aggregate_id(value, field, kind="team")


def _matrix_team_ids(request: pb.PutResponseMatrixRequest) -> None:
    """Every team a matrix names is a subject token before any team is loaded."""
    for index, row in enumerate(request.rows):
        for c_index, cell in enumerate(row.cells):
            _team_id(cell.team_id, f"rows[{index}].cells[{c_index}].team_id")


def _factors(request: Any) -> d.RiskFactors | None:
    if not request.HasField("factors"):
        return None
    return message_to_dataclass(request.factors, d.RiskFactors)  # type: ignore[no-any-return]


def _team_from_proto(team: t.Team) -> d.Team:
    for index, override in enumerate(team.overrides):
        for name in ("starts_at", "ends_at"):
            path = f"team.overrides[{index}].{name}"
            if timestamp_field(override, name, path=path) is None:
                raise InvalidArgument(f"{path} is required", [FieldViolation(path, "must be set")])
    return message_to_dataclass(team, d.Team)  # type: ignore[no-any-return]


def team_to_proto(team: d.Team, version: int) -> t.Team:
    message = dataclass_to_message(team, t.Team())
    message.version = version  # type: ignore[attr-defined]
    return message  # type: ignore[return-value]


def matrix_to_proto(matrix: d.Matrix) -> t.ResponseMatrix:
    message = t.ResponseMatrix(version=matrix.version)
    for row in matrix.rows.values():
        dataclass_to_message(row, message.rows.add())
    return message


class IncidentServicer(incident_pb2_grpc.IncidentServiceServicer):
    """Thin gRPC adapter over IncidentApp and the incident read models."""

    def __init__(
        self,
        app: IncidentApp,
        engine: Engine,
        nc: NatsClient,
        wait_for: Callable[[str, int, float], Awaitable[bool]],
        read_wait_seconds: float = 5.0,
    ) -> None:
        self._app = app
        self._engine = engine
        self._nc = nc
        self._wait_for = wait_for
        self._read_wait = read_wait_seconds

    async def _run(self, incident_id: str, command: d.Command) -> CommandResult[d.Incident]:
        try:
            return await self._app.execute(
                incident_id, command, command_id=command_id(), actor=actor()
            )
        except d.IncidentError as exc:
            raise _translate(exc) from exc

    async def _command(self, response_type: type[R], incident_id: str, command: d.Command) -> R:
        result = await self._run(_incident_id(incident_id), command)
        incident = incident_to_proto(result.state, result.sequence)
        return response_type(incident=incident, sequence=result.sequence)  # type: ignore[call-arg]

    async def DeclareIncident(
        self, request: pb.DeclareIncidentRequest, context: Any
    ) -> pb.DeclareIncidentResponse:
        command = d.DeclareIncident(
            incident_id=derived_id("I"),
            type=request.type,
            title=request.title,
            description=request.description,
            source=_enum(request.source, SOURCE, d.Source),
            factors=_factors(request),
            drill=request.drill,
            ticket_ids=tuple(request.ticket_ids),
            customer_ids=tuple(request.customer_ids),
        )
        return await self._command(pb.DeclareIncidentResponse, command.incident_id, command)

    async def ReassessIncident(
        self, request: pb.ReassessIncidentRequest, context: Any
    ) -> pb.ReassessIncidentResponse:
        command = d.ReassessIncident(_factors(request), request.reason)
        return await self._command(pb.ReassessIncidentResponse, request.incident_id, command)

    async def AssignRole(
        self, request: pb.AssignRoleRequest, context: Any
    ) -> pb.AssignRoleResponse:
        command = d.AssignRole(request.role, request.member_id)
        return await self._command(pb.AssignRoleResponse, request.incident_id, command)

    async def AddUpdate(self, request: pb.AddUpdateRequest, context: Any) -> pb.AddUpdateResponse:
        command = d.AddUpdate(request.message, request.status_note, request.public_statement_draft)
        return await self._command(pb.AddUpdateResponse, request.incident_id, command)

    async def AcknowledgePage(
        self, request: pb.AcknowledgePageRequest, context: Any
    ) -> pb.AcknowledgePageResponse:
        match = PAGE_ID.fullmatch(request.page_id)
        if not match:
            raise NotFound(f"page {request.page_id!r} does not exist")
        command = d.AcknowledgePage(request.page_id, request.member_id)
        return await self._command(pb.AcknowledgePageResponse, match["incident"], command)

    async def EscalateIncident(
        self, request: pb.EscalateIncidentRequest, context: Any
    ) -> pb.EscalateIncidentResponse:
        command = d.EscalateIncident(request.reason)
        return await self._command(pb.EscalateIncidentResponse, request.incident_id, command)

    async def ResolveIncident(
        self, request: pb.ResolveIncidentRequest, context: Any
    ) -> pb.ResolveIncidentResponse:
        command = d.ResolveIncident(request.summary)
        return await self._command(pb.ResolveIncidentResponse, request.incident_id, command)

    async def CloseIncident(
        self, request: pb.CloseIncidentRequest, context: Any
    ) -> pb.CloseIncidentResponse:
        review = (
            message_to_dataclass(request.review, d.PostIncidentReview)
            if request.HasField("review")
            else None
        )
        command = d.CloseIncident(review)
        return await self._command(pb.CloseIncidentResponse, request.incident_id, command)

    async def GetIncident(
        self, request: pb.GetIncidentRequest, context: Any
    ) -> pb.GetIncidentResponse:
        incident_id = _incident_id(request.incident_id)
        try:
            incident, version = await self._app.get(incident_id)
        except d.IncidentError as exc:
            raise _translate(exc) from exc
        return pb.GetIncidentResponse(incident=incident_to_proto(incident, version))

    async def ListIncidents(
        self, request: pb.ListIncidentsRequest, context: Any
    ) -> pb.ListIncidentsResponse:
        size = page_size(request.page_size)
        before = page_cursor(request.page_token, "ListIncidents")
        if request.min_sequence and not await self._wait_for(
            IncidentProjection.name, request.min_sequence, self._read_wait
        ):
            raise DeadlineExceeded(f"incidents have not reached {request.min_sequence} yet")
        status = _enum(request.status, STATUS, d.Status)
        level = _enum(request.level, LEVEL, d.Level)
        where = readmodels.IncidentFilter(
            status=status.value if status else None,
            level=level.value if level else None,
            open_only=request.open_only,
            include_drills=request.include_drills,
        )

        def query() -> list[tuple[Any, int]]:
            with Session(self._engine) as session:
                return readmodels.list_incidents(
                    session=session, where=where, page_size=size + 1, before_sequence=before
                )

        rows = await asyncio.to_thread(query)
        response = pb.ListIncidentsResponse()
        for row, waiting in rows[:size]:
            item = response.incidents.add(
                incident_id=row.incident_id,
                type=row.type,
                title=row.title,
                level=enum_to_proto(d.Level(row.level), LEVEL),
                status=enum_to_proto(d.Status(row.status), STATUS),
                drill=row.drill,
                pages_awaiting_ack=waiting,
                version=row.version,
            )
            _stamp(item, "declared_at", readmodels.aware(row.declared_at))
        if len(rows) > size:
            response.next_page_token = page_token(rows[size - 1][0].declared_sequence)
        return response

    async def PutResponseMatrix(
        self, request: pb.PutResponseMatrixRequest, context: Any
    ) -> pb.PutResponseMatrixResponse:
        _matrix_team_ids(request)
        rows = [message_to_dataclass(row, d.MatrixRow) for row in request.rows]
        try:
            matrix, sequence = await self._app.put_matrix(
                rows, command_id=command_id(), actor=actor()
            )
        except d.IncidentError as exc:
            raise _translate(exc) from exc
        return pb.PutResponseMatrixResponse(matrix=matrix_to_proto(matrix), sequence=sequence)

    async def GetResponseMatrix(
        self, request: pb.GetResponseMatrixRequest, context: Any
    ) -> pb.GetResponseMatrixResponse:
        return pb.GetResponseMatrixResponse(matrix=matrix_to_proto(await self._app.matrix()))

    async def PutTeam(self, request: pb.PutTeamRequest, context: Any) -> pb.PutTeamResponse:
        _team_id(request.team.team_id, "team.team_id")
        try:
            team, sequence = await self._app.put_team(
                _team_from_proto(request.team), command_id=command_id(), actor=actor()
            )
        except d.IncidentError as exc:
            raise _translate(exc) from exc
        return pb.PutTeamResponse(team=team_to_proto(team, sequence), sequence=sequence)

    async def GetTeam(self, request: pb.GetTeamRequest, context: Any) -> pb.GetTeamResponse:
        try:
            team, version = await self._app.team(_team_id(request.team_id))
        except d.IncidentError as exc:
            raise _translate(exc) from exc
        return pb.GetTeamResponse(team=team_to_proto(team, version))

    async def WatchAlerts(
        self, request: pb.WatchAlertsRequest, context: Any
    ) -> AsyncIterator[pb.WatchAlertsResponse]:
        team_id = _team_id(request.team_id)
        try:
            await self._app.team(team_id)
        except d.IncidentError as exc:
            raise _translate(exc) from exc
        position = request.after_sequence
        if position:
            last = await self._app.store.last_sequence(STREAM.name)
            if position > last:
                raise InvalidArgument(
                    f"after_sequence {position} is beyond the log's last sequence {last}",
                    [FieldViolation("after_sequence", f"must be at most {last}")],
                )
        # Accepted: the response headers go out now, not with the first alert (which may be
        # hours away), so a client or the gateway's HTTP edge knows the watch is on.
        await context.send_initial_metadata(())
        if not position:
            position, waiting = await asyncio.to_thread(self._waiting, team_id)
            for alert in waiting:
                yield alert
        async for alert in self._live(team_id, position):
            yield alert

    def _waiting(self, team_id: str) -> tuple[int, list[pb.WatchAlertsResponse]]:
        """Returns the read model's position and the team's unacknowledged pages as of it."""
        with Session(self._engine) as session, session.begin():
            position = read_checkpoint(session, IncidentProjection.name)
            rows = readmodels.waiting_pages(session=session, team_id=team_id)
        alerts = []
        for row in rows:
            alert = pb.WatchAlertsResponse(
                kind=t.ALERT_KIND_PAGE,
                incident_id=row.incident_id,
                page_id=row.page_id,
                team_id=row.team_id,
                member_id=row.member_id,
                level=enum_to_proto(d.Level(row.level), LEVEL),
                incident_type=row.type,
                title=row.title,
                engagement=enum_to_proto(d.Engagement(row.engagement), ENGAGEMENT),
                drill=row.drill,
                replayed=True,
                sequence=row.sequence,
            )
            _stamp(alert, "at", readmodels.aware(row.requested_at))
            _stamp(alert, "ack_due_at", readmodels.aware(row.ack_due_at))
            alerts.append(alert)
        return position, alerts

    async def _live(self, team_id: str, position: int) -> AsyncIterator[pb.WatchAlertsResponse]:
        """Streams the team's alerts from the log after `position` (an ordered consumer)."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)

        async def collect(msg: Any) -> None:
            await queue.put(msg)

        js = self._nc.jetstream()
        subscription = await js.subscribe(
            f"{INCIDENT_SUBJECTS}.>",
            cb=collect,
            ordered_consumer=True,
            config=nats.js.api.ConsumerConfig(
                deliver_policy=nats.js.api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=position + 1,
            ),
            stream=STREAM.name,
        )
        try:
            while True:
                msg = await queue.get()
                batch = EventBatch()
                with contextlib.suppress(DecodeError):
                    batch.ParseFromString(msg.data)
                sequence = msg.metadata.sequence.stream
                for alert in await self._alerts(batch, team_id, sequence):
                    yield alert
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _alerts(
        self, batch: EventBatch, team_id: str, sequence: int
    ) -> list[pb.WatchAlertsResponse]:
        alerts = []
        for decoded in CODEC.decode_batch(batch):
            event = decoded.event
            kind = _alert_kind(event)
            if kind is None:
                continue
            incident, _ = await self._app.get(decoded.envelope.aggregate_id)
            page = incident.pages.get(getattr(event, "page_id", ""))
            event_team = getattr(event, "team_id", "") or (page.team_id if page else "")
            if event_team != team_id:
                continue
            alert = pb.WatchAlertsResponse(
                kind=kind,
                incident_id=incident.incident_id,
                page_id=getattr(event, "page_id", "") or getattr(event, "notice_id", ""),
                team_id=team_id,
                member_id=event.member_id,
                level=enum_to_proto(incident.level, LEVEL),
                incident_type=incident.type,
                title=incident.title,
                engagement=enum_to_proto(
                    page.engagement if page else d.Engagement.GREY, ENGAGEMENT
                ),
                drill=incident.drill,
                sequence=sequence,
            )
            _stamp(alert, "at", from_timestamp(decoded.envelope.occurred_at))
            if isinstance(event, d.PageRequested):
                _stamp(alert, "ack_due_at", event.ack_due_at)
            alerts.append(alert)
        return alerts


def _alert_kind(event: Any) -> Any:
    if isinstance(event, d.PageRequested):
        return int(t.ALERT_KIND_PAGE)
    if isinstance(event, d.PageAcknowledged):
        return int(t.ALERT_KIND_ACKNOWLEDGED)
    if isinstance(event, d.TeamInformed):
        return int(t.ALERT_KIND_INFORMED)
    return None
