"""IncidentService over gRPC: proto <-> domain translation, error mapping, the alert stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

import grpc
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_eventstore.codec import (
    dataclass_to_message,
    enum_from_proto,
    enum_to_proto,
    message_to_dataclass,
    to_timestamp,
)
from careops_platform.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
)
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
from careops_published.customer import TIERS
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from incident import domain as d
from incident import readmodels
from incident.alerts import Alert, AlertKind, AlertWatch
from incident.application import IncidentApp, incident_of_page
from incident.domain import intake
from incident.domain.whatif import Outcome
from incident.policies import (
    Comparison,
    IncidentWhatIf,
    MatrixVersion,
    WhatIfReport,
    matrix_versions,
    page_of_versions,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IncidentService"].full_name
R = TypeVar("R")
E = TypeVar("E", bound=Enum)

LEVEL = t.IncidentLevel.DESCRIPTOR
STATUS = t.IncidentStatus.DESCRIPTOR
SOURCE = t.IncidentSource.DESCRIPTOR
ENGAGEMENT = t.Engagement.DESCRIPTOR
CONTACT = t.ContactKind.DESCRIPTOR
TARGET_KIND = t.DrillTargetKind.DESCRIPTOR
RECURRENCE = t.DrillRecurrence.DESCRIPTOR
DRILL_STATUS = pb.DrillStatus.DESCRIPTOR
OUTCOME = pb.DrillOutcome.DESCRIPTOR
ALERT_SOURCE = pb.AlertSourceKind.DESCRIPTOR
ALERT_ACTION = pb.AlertAction.DESCRIPTOR
ALERT_OUTCOME = pb.AlertOutcome.DESCRIPTOR
ON_CALL_SOURCE = t.OnCallSource.DESCRIPTOR


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
            policy_id=page.policy_id,
        )
        for planned in page.plan:
            dataclass_to_message(planned, item.plan.add())
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
    for statement in incident.statements:
        published = message.statements.add(
            version=statement.version,
            headline=statement.headline,
            text=statement.text,
            published_by=statement.published_by,
            headline_en=statement.headline_en,
            text_en=statement.text_en,
        )
        _stamp(published, "published_at", statement.at)
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


def _extra_teams(request: pb.DeclareIncidentRequest) -> tuple[d.MatrixCell, ...]:
    """The request's extra teams (ids checked as subject tokens; the domain checks the rest)."""
    for index, cell in enumerate(request.extra_teams):
        _team_id(cell.team_id, f"extra_teams[{index}].team_id")
    return tuple(message_to_dataclass(cell, d.MatrixCell) for cell in request.extra_teams)


def _level_floor(number: int) -> d.Level | None:
    """The level floor (0: none); a number that is no level is INVALID_ARGUMENT, not ignored."""
    if number and number not in LEVEL.values_by_number:
        message = "an incident level (A, B or C)"
        raise InvalidArgument(f"level_floor {message}", [FieldViolation("level_floor", message)])
    return _enum(number, LEVEL, d.Level)


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


def _required_time(message: Any, name: str) -> datetime:
    value = timestamp_field(message, name)
    if value is None:
        raise InvalidArgument(f"{name} is required", [FieldViolation(name, "must be set")])
    return value


def swap_to_proto(swap: d.ShiftSwap) -> t.ShiftSwap:
    return dataclass_to_message(swap, t.ShiftSwap())  # type: ignore[return-value]


def shift_to_proto(shift: d.Shift) -> t.OnCallShift:
    message = t.OnCallShift(
        member_id=shift.member_id,
        decided_by=enum_to_proto(shift.decided_by, ON_CALL_SOURCE),
        layer=shift.layer,
        ref=shift.ref,
    )
    _stamp(message, "starts_at", shift.starts_at)
    _stamp(message, "ends_at", shift.ends_at)
    return message


def matrix_to_proto(matrix: d.Matrix) -> t.ResponseMatrix:
    message = t.ResponseMatrix(version=matrix.version)
    for row in matrix.rows.values():
        dataclass_to_message(row, message.rows.add())
    return message


ReadWait = Callable[[int, float], Awaitable[bool]]
"""Waits (bounded) until the incident read model reached a sequence; returns whether it did."""

StatusPageRead = Callable[
    [datetime],
    Awaitable[tuple[list[readmodels.StatusIncidentRow], list[readmodels.StatusIncidentRow]]],
]
"""Reads the status page's open incidents and those resolved since a time."""

HISTORY_DAYS_DEFAULT = 7
HISTORY_DAYS_MAX = 90
PUBLIC_STATE = pb.PublicIncidentState


def history_days(requested: int) -> int:
    """Returns the status page's history window in days (0: the default); INVALID_ARGUMENT
    above HISTORY_DAYS_MAX."""
    if requested > HISTORY_DAYS_MAX:
        message = f"must be at most {HISTORY_DAYS_MAX}"
        raise InvalidArgument(f"history_days {message}", [FieldViolation("history_days", message)])
    return requested or HISTORY_DAYS_DEFAULT


def status_incident_to_proto(row: readmodels.StatusIncidentRow) -> pb.StatusIncident:
    """Returns the public view of a status-page incident (public facts only)."""
    state = PUBLIC_STATE.PUBLIC_INCIDENT_STATE_OPEN
    if not row.open:
        state = PUBLIC_STATE.PUBLIC_INCIDENT_STATE_RESOLVED
    message = pb.StatusIncident(incident_id=row.incident_id, state=state)
    _stamp(message, "declared_at", row.declared_at)
    _stamp(message, "resolved_at", row.resolved_at)
    for update in row.updates:
        item = message.updates.add(
            version=update.version,
            headline=update.headline,
            text=update.text,
            headline_en=update.headline_en,
            text_en=update.text_en,
        )
        _stamp(item, "published_at", update.published_at)
    return message


class IncidentServicer(incident_pb2_grpc.IncidentServiceServicer):
    """Thin gRPC adapter over IncidentApp and the incident read models."""

    def __init__(
        self,
        app: IncidentApp,
        engine: Engine,
        alerts: AlertWatch,
        wait_for: ReadWait,
        read_wait_seconds: float = 5.0,
        what_if: IncidentWhatIf | None = None,
        status_page: StatusPageRead | None = None,
    ) -> None:
        self._app = app
        self._engine = engine
        self._alerts = alerts
        self._wait_for = wait_for
        self._read_wait = read_wait_seconds
        self._risk = PolicyEndpoints(app.risk_book, put=app.put_risk_policy)
        self._integrations = PolicyEndpoints(app.intake.book, put=app.intake.put)
        self._notice_templates = PolicyEndpoints(app.notice_book)
        self._what_if = what_if
        self._status_page = status_page

    async def _command(self, response_type: type[R], incident_id: str, command: d.Command) -> R:
        result = await self._app.execute(
            _incident_id(incident_id),
            command,
            command_id=command_id(),
            actor=actor(),
            caller=caller(),
        )
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
            extra_teams=_extra_teams(request),
            level_floor=_level_floor(request.level_floor),
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
        incident_id = incident_of_page(request.page_id)
        command = d.AcknowledgePage(request.page_id, request.member_id)
        return await self._command(pb.AcknowledgePageResponse, incident_id, command)

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
        incident, version = await self._app.get(incident_id)
        message = incident_to_proto(incident, version)

        def deliveries() -> list[readmodels.NoticeDeliveryRow]:
            with Session(self._engine) as session:
                return readmodels.notice_deliveries(session=session, incident_id=incident_id)

        for row in await asyncio.to_thread(deliveries):
            message.customer_notices.add(
                channel=row.channel, notified=row.notified, failed=row.failed
            )
        return pb.GetIncidentResponse(incident=message)

    async def ListIncidents(
        self, request: pb.ListIncidentsRequest, context: Any
    ) -> pb.ListIncidentsResponse:
        size = page_size(request.page_size)
        before = page_cursor(request.page_token, "ListIncidents")
        if request.min_sequence and not await self._wait_for(request.min_sequence, self._read_wait):
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
        matrix, sequence = await self._app.put_matrix(rows, command_id=command_id(), actor=actor())
        return pb.PutResponseMatrixResponse(matrix=matrix_to_proto(matrix), sequence=sequence)

    async def GetResponseMatrix(
        self, request: pb.GetResponseMatrixRequest, context: Any
    ) -> pb.GetResponseMatrixResponse:
        return pb.GetResponseMatrixResponse(matrix=matrix_to_proto(await self._app.matrix()))

    async def PutTeam(self, request: pb.PutTeamRequest, context: Any) -> pb.PutTeamResponse:
        _team_id(request.team.team_id, "team.team_id")
        team, sequence = await self._app.put_team(
            _team_from_proto(request.team), command_id=command_id(), actor=actor()
        )
        return pb.PutTeamResponse(team=team_to_proto(team, sequence), sequence=sequence)

    async def GetTeam(self, request: pb.GetTeamRequest, context: Any) -> pb.GetTeamResponse:
        team, version = await self._app.team(_team_id(request.team_id))
        return pb.GetTeamResponse(team=team_to_proto(team, version))

    async def AddOnCallOverride(
        self, request: pb.AddOnCallOverrideRequest, context: Any
    ) -> pb.AddOnCallOverrideResponse:
        override, sequence = await self._app.add_override(
            _team_id(request.team_id),
            request.member_id,
            _required_time(request, "starts_at"),
            _required_time(request, "ends_at"),
            command_id=command_id(),
            actor=actor(),
            caller=caller(),
        )
        message = dataclass_to_message(override, t.Override())
        return pb.AddOnCallOverrideResponse(override=message, sequence=sequence)  # type: ignore[arg-type]

    async def RemoveOnCallOverride(
        self, request: pb.RemoveOnCallOverrideRequest, context: Any
    ) -> pb.RemoveOnCallOverrideResponse:
        if not request.override_id:
            raise InvalidArgument(
                "override_id is required", [FieldViolation("override_id", "must be set")]
            )
        override, sequence = await self._app.remove_override(
            _team_id(request.team_id),
            request.override_id,
            command_id=command_id(),
            actor=actor(),
            caller=caller(),
        )
        message = dataclass_to_message(override, t.Override())
        return pb.RemoveOnCallOverrideResponse(override=message, sequence=sequence)  # type: ignore[arg-type]

    async def RequestShiftSwap(
        self, request: pb.RequestShiftSwapRequest, context: Any
    ) -> pb.RequestShiftSwapResponse:
        swap = d.ShiftSwap(
            swap_id="",
            requester_id=request.requester_id,
            counterpart_id=request.counterpart_id,
            starts_at=_required_time(request, "starts_at"),
            ends_at=_required_time(request, "ends_at"),
            return_starts_at=timestamp_field(request, "return_starts_at"),
            return_ends_at=timestamp_field(request, "return_ends_at"),
        )
        if not swap.counterpart_id:
            raise InvalidArgument(
                "counterpart_id is required", [FieldViolation("counterpart_id", "must be set")]
            )
        swap, sequence = await self._app.request_swap(
            _team_id(request.team_id), swap, command_id=command_id(), actor=actor(), caller=caller()
        )
        return pb.RequestShiftSwapResponse(swap=swap_to_proto(swap), sequence=sequence)

    async def _decide_swap(self, request: Any, action: str, response_type: type[R]) -> R:
        if not request.swap_id:
            raise InvalidArgument("swap_id is required", [FieldViolation("swap_id", "must be set")])
        swap, sequence = await self._app.decide_swap(
            _team_id(request.team_id),
            request.swap_id,
            action,
            command_id=command_id(),
            actor=actor(),
            caller=caller(),
        )
        return response_type(swap=swap_to_proto(swap), sequence=sequence)  # type: ignore[call-arg]

    async def AcceptShiftSwap(
        self, request: pb.AcceptShiftSwapRequest, context: Any
    ) -> pb.AcceptShiftSwapResponse:
        return await self._decide_swap(request, "accept", pb.AcceptShiftSwapResponse)

    async def DeclineShiftSwap(
        self, request: pb.DeclineShiftSwapRequest, context: Any
    ) -> pb.DeclineShiftSwapResponse:
        return await self._decide_swap(request, "decline", pb.DeclineShiftSwapResponse)

    async def CancelShiftSwap(
        self, request: pb.CancelShiftSwapRequest, context: Any
    ) -> pb.CancelShiftSwapResponse:
        return await self._decide_swap(request, "cancel", pb.CancelShiftSwapResponse)

    async def WhoIsOnCall(
        self, request: pb.WhoIsOnCallRequest, context: Any
    ) -> pb.WhoIsOnCallResponse:
        shift, at = await self._app.who(_team_id(request.team_id), timestamp_field(request, "at"))
        response = pb.WhoIsOnCallResponse(shift=shift_to_proto(shift))
        response.at.FromDatetime(at)
        return response

    async def ListMemberShifts(
        self, request: pb.ListMemberShiftsRequest, context: Any
    ) -> pb.ListMemberShiftsResponse:
        if not request.member_id:
            raise InvalidArgument(
                "member_id is required", [FieldViolation("member_id", "must be set")]
            )
        shifts = await self._app.member_shifts(
            _team_id(request.team_id),
            request.member_id,
            timestamp_field(request, "start"),
            timestamp_field(request, "end"),
        )
        return pb.ListMemberShiftsResponse(shifts=[shift_to_proto(s) for s in shifts])

    async def PutRiskPolicy(
        self, request: pb.PutRiskPolicyRequest, context: Any
    ) -> pb.PutRiskPolicyResponse:
        return await self._risk.put(request, pb.PutRiskPolicyResponse)

    async def GetRiskPolicy(
        self, request: pb.GetRiskPolicyRequest, context: Any
    ) -> pb.GetRiskPolicyResponse:
        return await self._risk.get(request, pb.GetRiskPolicyResponse)

    async def ListRiskPolicyVersions(
        self, request: pb.ListRiskPolicyVersionsRequest, context: Any
    ) -> pb.ListRiskPolicyVersionsResponse:
        return await self._risk.list_versions(request, pb.ListRiskPolicyVersionsResponse)

    async def ListResponseMatrixVersions(
        self, request: pb.ListResponseMatrixVersionsRequest, context: Any
    ) -> pb.ListResponseMatrixVersionsResponse:
        versions = await matrix_versions(self._app)
        page, next_before = page_of_versions(
            versions, page_size=request.page_size, before_revision=request.before_revision
        )
        current = versions[-1].revision if versions else 0
        return pb.ListResponseMatrixVersionsResponse(
            versions=[matrix_version_to_proto(v, current=v.revision == current) for v in page],
            next_before_revision=next_before,
        )

    async def WhatIfIncidents(
        self, request: pb.WhatIfIncidentsRequest, context: Any
    ) -> pb.WhatIfIncidentsResponse:
        assert self._what_if is not None, "the servicer is wired with the what-if"
        drafts = await self._what_if.drafts(request.risk_document, request.matrix_document)
        since = timestamp_field(request, "since")
        until = timestamp_field(request, "until")
        if request.min_sequence and not await self._wait_for(request.min_sequence, self._read_wait):
            raise DeadlineExceeded(f"incidents have not reached {request.min_sequence} yet")
        report = await self._what_if.compare(
            drafts, since=since, until=until, include_drills=request.include_drills
        )
        return what_if_to_proto(report)

    async def WatchAlerts(
        self, request: pb.WatchAlertsRequest, context: Any
    ) -> AsyncIterator[pb.WatchAlertsResponse]:
        alerts = await self._alerts.watch(_team_id(request.team_id), request.after_sequence)
        # Accepted: the response headers go out now, not with the first alert (which may be
        # hours away), so a client or the gateway's HTTP edge knows the watch is on.
        await context.send_initial_metadata(())
        async for alert in alerts:
            yield alert_to_proto(alert)

    # ------------------------------------------------------------------- alert intake

    async def IngestAlerts(
        self, request: pb.IngestAlertsRequest, context: Any
    ) -> pb.IngestAlertsResponse:
        source = _enum(request.source, ALERT_SOURCE, intake.SourceKind)
        if source is None:
            raise InvalidArgument(
                "source is required",
                [FieldViolation("source", "alertmanager, pagerduty or webhook")],
            )
        alerts = []
        for index, alert in enumerate(request.alerts):
            action = _enum(alert.action, ALERT_ACTION, intake.Action)
            raw_body = source is intake.SourceKind.WEBHOOK and not alert.dedup_key
            if action is None and raw_body:
                action = intake.Action.TRIGGER  # a raw body: the integration's mapping decides
            if action is None:
                raise InvalidArgument(
                    f"alerts[{index}].action is required",
                    [FieldViolation(f"alerts[{index}].action", "trigger, acknowledge or resolve")],
                )
            alerts.append(
                intake.Alert(
                    dedup_key=alert.dedup_key,
                    group_key=alert.group_key,
                    action=action,
                    summary=alert.summary,
                    severity=alert.severity,
                    labels=dict(alert.labels),
                    starts_at=timestamp_field(
                        alert, "starts_at", path=f"alerts[{index}].starts_at"
                    ),
                )
            )
        ingested, sequence = await self._app.intake.ingest(
            request.integration_id, source, alerts, command_id=command_id(), actor=actor()
        )
        return pb.IngestAlertsResponse(
            alerts=[
                pb.IngestedAlert(
                    dedup_key=alert.dedup_key,
                    outcome=enum_to_proto(outcome, ALERT_OUTCOME),
                    incident_id=incident_id,
                )
                for alert, outcome, incident_id in ingested
            ],
            sequence=sequence,
        )

    async def PutIntegrationPolicy(
        self, request: pb.PutIntegrationPolicyRequest, context: Any
    ) -> pb.PutIntegrationPolicyResponse:
        return await self._integrations.put(request, pb.PutIntegrationPolicyResponse)

    async def GetIntegrationPolicy(
        self, request: pb.GetIntegrationPolicyRequest, context: Any
    ) -> pb.GetIntegrationPolicyResponse:
        return await self._integrations.get(request, pb.GetIntegrationPolicyResponse)

    async def ListIntegrationPolicyVersions(
        self, request: pb.ListIntegrationPolicyVersionsRequest, context: Any
    ) -> pb.ListIntegrationPolicyVersionsResponse:
        return await self._integrations.list_versions(
            request, pb.ListIntegrationPolicyVersionsResponse
        )

    # ------------------------------------------------------------------- drills

    async def ScheduleDrill(
        self, request: pb.ScheduleDrillRequest, context: Any
    ) -> pb.ScheduleDrillResponse:
        result = await self._app.drills.schedule(
            derived_id("D"),
            request.scenario_id,
            timestamp_field(request, "at"),
            _enum(request.recurrence, RECURRENCE, d.Recurrence),
            command_id=command_id(),
            actor=actor(),
            caller=caller(),
        )
        return pb.ScheduleDrillResponse(
            drill=drill_to_proto(result.state, result.sequence), sequence=result.sequence
        )

    async def RunDrill(self, request: pb.RunDrillRequest, context: Any) -> pb.RunDrillResponse:
        drill, incident, sequence = await self._app.drills.run_now(
            derived_id("D"),
            request.scenario_id,
            command_id=command_id(),
            actor=actor(),
            caller=caller(),
        )
        return pb.RunDrillResponse(
            drill=drill_to_proto(drill, sequence),
            incident=incident_to_proto(incident, 0),
            sequence=sequence,
        )

    async def CancelDrill(
        self, request: pb.CancelDrillRequest, context: Any
    ) -> pb.CancelDrillResponse:
        result = await self._app.drills.cancel(
            _drill_id(request.drill_id),
            request.reason,
            command_id=command_id(),
            actor=actor(),
            caller=caller(),
        )
        return pb.CancelDrillResponse(
            drill=drill_to_proto(result.state, result.sequence), sequence=result.sequence
        )

    async def RecordDrillFigure(
        self, request: pb.RecordDrillFigureRequest, context: Any
    ) -> pb.RecordDrillFigureResponse:
        if request.incident_id:
            _incident_id(request.incident_id)
        result = await self._app.drills.record_figure(
            _drill_id(request.drill_id),
            request.incident_id,
            _enum(request.kind, TARGET_KIND, d.TargetKind),
            request.value,
            command_id=command_id(),
            actor=actor(),
        )
        return pb.RecordDrillFigureResponse(
            drill=drill_to_proto(result.state, result.sequence), sequence=result.sequence
        )

    async def ListDrills(
        self, request: pb.ListDrillsRequest, context: Any
    ) -> pb.ListDrillsResponse:
        size = page_size(request.page_size)
        before = page_cursor(request.page_token, "ListDrills")
        if request.min_sequence and not await self._wait_for(request.min_sequence, self._read_wait):
            raise DeadlineExceeded(f"drills have not reached {request.min_sequence} yet")

        def query() -> list[Any]:
            with Session(self._engine) as session:
                return readmodels.list_drills(
                    session=session,
                    include_finished=request.include_finished,
                    page_size=size + 1,
                    before_sequence=before,
                )

        rows = await asyncio.to_thread(query)
        response = pb.ListDrillsResponse()
        for row in rows[:size]:
            item = response.drills.add(
                drill_id=row.drill_id,
                scenario_id=row.scenario_id,
                title=row.title,
                recurrence=enum_to_proto(d.Recurrence(row.recurrence), RECURRENCE),
                status=enum_to_proto(d.DrillStatus(row.status), DRILL_STATUS),
                runs=row.runs,
                last_incident_id=row.last_incident_id,
                version=row.version,
            )
            _stamp(item, "next_due_at", readmodels.aware(row.next_due_at))
        if len(rows) > size:
            response.next_page_token = page_token(rows[size - 1].scheduled_sequence)
        return response

    async def GetDrillReport(
        self, request: pb.GetDrillReportRequest, context: Any
    ) -> pb.GetDrillReportResponse:
        if request.incident_id:
            _incident_id(request.incident_id)
        report = await self._app.drills.report(_drill_id(request.drill_id), request.incident_id)
        return report_to_proto(report)

    async def GetDrillScenarios(
        self, request: pb.GetDrillScenariosRequest, context: Any
    ) -> pb.GetDrillScenariosResponse:
        scenarios, version = await self._app.drills.scenarios()
        response = pb.GetDrillScenariosResponse(version=version)
        for scenario in scenarios.values():
            dataclass_to_message(scenario, response.scenarios.add())
        return response

    async def PutDrillScenarios(
        self, request: pb.PutDrillScenariosRequest, context: Any
    ) -> pb.PutDrillScenariosResponse:
        scenarios = [_scenario_from_proto(s) for s in request.scenarios]
        stored, version = await self._app.drills.put_scenarios(
            scenarios, command_id=command_id(), actor=actor()
        )
        response = pb.PutDrillScenariosResponse(version=version)
        for scenario in stored.values():
            dataclass_to_message(scenario, response.scenarios.add())
        return response

    async def PublishStatement(
        self, request: pb.PublishStatementRequest, context: Any
    ) -> pb.PublishStatementResponse:
        command = d.PublishStatement(
            headline=request.headline,
            text=request.text,
            published_by=actor(),
            headline_en=request.headline_en,
            text_en=request.text_en,
        )
        return await self._command(pb.PublishStatementResponse, request.incident_id, command)

    async def NotifyCustomers(
        self, request: pb.NotifyCustomersRequest, context: Any
    ) -> pb.NotifyCustomersResponse:
        unknown = [
            FieldViolation(f"segments[{index}]", f"one of {', '.join(TIERS)}")
            for index, segment in enumerate(request.segments)
            if segment not in TIERS
        ]
        if unknown:
            raise InvalidArgument("segments must be customer tiers", unknown)
        templates = await self._app.notice_templates()
        command = d.NotifyCustomers(
            template_id=request.template_id,
            template=templates.templates.get(request.template_id),
            decided_by=actor(),
            segments=tuple(request.segments),
            templates_version=templates.version,
        )
        result = await self._app.execute(
            _incident_id(request.incident_id),
            command,
            command_id=command_id(),
            actor=actor(),
            caller=caller(),
        )
        notified = result.state.customer_notifications
        return pb.NotifyCustomersResponse(
            incident=incident_to_proto(result.state, result.sequence),
            sequence=result.sequence,
            notification_id=notified[-1] if notified else "",
        )

    async def PutNoticeTemplates(
        self, request: pb.PutNoticeTemplatesRequest, context: Any
    ) -> pb.PutNoticeTemplatesResponse:
        return await self._notice_templates.put(request, pb.PutNoticeTemplatesResponse)

    async def GetNoticeTemplates(
        self, request: pb.GetNoticeTemplatesRequest, context: Any
    ) -> pb.GetNoticeTemplatesResponse:
        return await self._notice_templates.get(request, pb.GetNoticeTemplatesResponse)

    async def ListNoticeTemplatesVersions(
        self, request: pb.ListNoticeTemplatesVersionsRequest, context: Any
    ) -> pb.ListNoticeTemplatesVersionsResponse:
        return await self._notice_templates.list_versions(
            request, pb.ListNoticeTemplatesVersionsResponse
        )

    async def GetStatusPage(
        self, request: pb.GetStatusPageRequest, context: Any
    ) -> pb.GetStatusPageResponse:
        days = history_days(request.history_days)
        if self._status_page is None:
            raise FailedPrecondition("this replica serves no status page")
        now = self._app.clock()
        open_rows, resolved_rows = await self._status_page(now - timedelta(days=days))
        response = pb.GetStatusPageResponse(
            open=[status_incident_to_proto(row) for row in open_rows],
            resolved=[status_incident_to_proto(row) for row in resolved_rows],
            history_days=days,
        )
        _stamp(response, "generated_at", now)
        return response


def _drill_id(value: str) -> str:
    return aggregate_id(value, "drill_id", kind="drill")


def _scenario_from_proto(message: t.DrillScenario) -> d.DrillScenario:
    """Returns the domain scenario; a target's fraction 0 means 1 (the whole target)."""
    scenario: d.DrillScenario = message_to_dataclass(message, d.DrillScenario)
    targets = tuple(
        d.DrillTarget(target.kind, target.target, target.fraction or 1.0)
        for target in scenario.targets
    )
    return d.DrillScenario(
        scenario.scenario_id,
        scenario.title,
        scenario.incident_type,
        scenario.factors,
        targets,
        scenario.description,
    )


def drill_to_proto(drill: d.Drill, version: int) -> pb.Drill:
    """Returns the API view of a drill."""
    message = pb.Drill(
        drill_id=drill.drill_id,
        recurrence=enum_to_proto(drill.recurrence, RECURRENCE),
        status=enum_to_proto(drill.status, DRILL_STATUS),
        cancel_reason=drill.cancel_reason,
        version=version,
    )
    if drill.scenario is not None:
        dataclass_to_message(drill.scenario, message.scenario)
    _stamp(message, "next_due_at", drill.next_due_at)
    for run in drill.runs:
        dataclass_to_message(run, message.runs.add())
    return message


def report_to_proto(report: d.DrillReport) -> pb.GetDrillReportResponse:
    """Returns the API view of a drill report."""
    message = pb.GetDrillReportResponse(
        drill_id=report.drill_id,
        scenario_id=report.scenario_id,
        incident_id=report.incident_id,
        run=report.run,
        met=report.met,
    )
    _stamp(message, "declared_at", report.declared_at)
    _stamp(message, "resolved_at", report.resolved_at)
    for team in report.teams:
        item = message.teams.add(team_id=team.team_id)
        _stamp(item, "acknowledged_at", team.acknowledged_at)
        if team.minutes is not None:
            item.minutes = team.minutes
    for target in report.targets:
        result = message.targets.add(
            kind=enum_to_proto(target.kind, TARGET_KIND),
            target=target.target,
            fraction=target.fraction,
            bar=target.bar,
            unit=target.unit,
            outcome=enum_to_proto(target.outcome, OUTCOME),
            note=target.note,
        )
        if target.achieved is not None:
            result.achieved = target.achieved
    return message


def matrix_version_to_proto(version: MatrixVersion, *, current: bool) -> pb.ResponseMatrixVersion:
    """Returns one version of the response matrix."""
    return pb.ResponseMatrixVersion(
        matrix=matrix_to_proto(version.matrix),
        revision=version.revision,
        author=version.author,
        put_at=to_timestamp(version.put_at),
        current=current,
    )


def _teams(outcome: Outcome) -> list[pb.EngagedTeam]:
    return [
        pb.EngagedTeam(
            team_id=team_id, engagement=enum_to_proto(engaged.engagement, ENGAGEMENT), paged=paged
        )
        for team_id, engaged in sorted(outcome.teams.items())
        for paged in (engaged.paged,)
    ]


def comparison_to_proto(comparison: Comparison) -> pb.IncidentWhatIf:
    """Returns one incident side by side."""
    actual, draft = comparison.actual, comparison.draft
    return pb.IncidentWhatIf(
        incident_id=comparison.incident_id,
        type=comparison.type,
        title=comparison.title,
        drill=comparison.drill,
        declared_at=to_timestamp(comparison.declared_at),
        actual_level=enum_to_proto(actual.level, LEVEL),
        draft_level=enum_to_proto(draft.level, LEVEL),
        actual_risk_index=actual.risk_index,
        draft_risk_index=draft.risk_index,
        actual_teams=_teams(actual),
        draft_teams=_teams(draft),
        actual_paged_teams=actual.paged,
        draft_paged_teams=draft.paged,
        changed=comparison.changed,
        risk_version=comparison.risk_version,
        matrix_version=comparison.matrix_version,
        type_not_in_draft=not draft.type_in_matrix,
    )


def what_if_to_proto(report: WhatIfReport) -> pb.WhatIfIncidentsResponse:
    """Returns the comparison with its totals per level and per team."""

    def totals(rows: list[tuple[str, int, int]]) -> list[pb.WhatIfTotal]:
        return [pb.WhatIfTotal(key=key, actual=a, draft=b) for key, a, b in rows]

    changed = report.changed
    return pb.WhatIfIncidentsResponse(
        incidents=[comparison_to_proto(c) for c in report.incidents],
        levels=totals(report.levels()),
        teams_engaged=totals(report.teams_engaged()),
        teams_paged=totals(report.teams_paged()),
        changes_nothing=changed == 0,
        incidents_changed=changed,
        drills_excluded=report.drills_excluded,
        draft_risk_version=report.draft_risk_version,
        since=to_timestamp(report.since),
        until=to_timestamp(report.until),
    )


ALERT_KINDS = {
    AlertKind.PAGE: t.ALERT_KIND_PAGE,
    AlertKind.ACKNOWLEDGED: t.ALERT_KIND_ACKNOWLEDGED,
    AlertKind.INFORMED: t.ALERT_KIND_INFORMED,
}


def alert_to_proto(alert: Alert) -> pb.WatchAlertsResponse:
    """Returns the API view of one alert."""
    message = pb.WatchAlertsResponse(
        kind=ALERT_KINDS[alert.kind],
        incident_id=alert.incident_id,
        page_id=alert.page_id,
        team_id=alert.team_id,
        member_id=alert.member_id,
        level=enum_to_proto(alert.level, LEVEL),
        incident_type=alert.incident_type,
        title=alert.title,
        engagement=enum_to_proto(alert.engagement, ENGAGEMENT),
        drill=alert.drill,
        replayed=alert.replayed,
        sequence=alert.sequence,
    )
    _stamp(message, "at", alert.at)
    _stamp(message, "ack_due_at", alert.ack_due_at)
    return message
