"""QualityService over gRPC: proto <-> domain translation and error -> status mapping only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import grpc
from careops.quality.v1 import quality_pb2 as pb
from careops.quality.v1 import quality_pb2_grpc, types_pb2
from careops.ticketing.v1 import types_pb2 as ticket_types
from careops_eventstore.codec import (
    dataclass_to_message,
    enum_from_proto,
    enum_to_proto,
    message_to_dataclass,
)
from careops_eventstore.sqlstate import aware
from careops_eventstore.tasks import raise_if_cancel_swallowed
from careops_platform.changes import ReadModelChanges
from careops_platform.errors import (
    DeadlineExceeded,
    FieldViolation,
    InvalidArgument,
)
from careops_platform.identity import caller
from careops_platform.paging import page_cursor, page_size, page_token
from careops_platform.policies import PolicyEndpoints
from careops_platform.requests import actor, aggregate_id, command_id, timestamp_field
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from quality import domain, readmodels
from quality import survey_templates as st
from quality.application import (
    QualityApp,
    Teams,
    Timelines,
    WhatIf,
    authorize_scorecard,
    kpi_days,
    what_if_as_of,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["QualityService"].full_name
MAX_PAGE = 500
DEFAULT_PAGE = 100

EMOTION = types_pb2.Emotion.DESCRIPTOR
FOLLOW_UP = types_pb2.FollowUpStatus.DESCRIPTOR
QUESTION_KIND = types_pb2.QuestionKind.DESCRIPTOR
QUESTION_METRIC = types_pb2.QuestionMetric.DESCRIPTOR
CHANNEL = ticket_types.Channel.DESCRIPTOR
TYPE = ticket_types.TicketType.DESCRIPTOR
PRIORITY = ticket_types.Priority.DESCRIPTOR
HOLD_REASON = ticket_types.HoldReason.DESCRIPTOR
SLA_CLOCK = ticket_types.SlaClock.DESCRIPTOR
FOLLOW_UP_STATUS = {
    types_pb2.FOLLOW_UP_STATUS_PENDING: readmodels.FOLLOW_UP_PENDING,
    types_pb2.FOLLOW_UP_STATUS_OVERDUE: readmodels.FOLLOW_UP_OVERDUE,
    types_pb2.FOLLOW_UP_STATUS_DONE: readmodels.FOLLOW_UP_DONE,
}
FOLLOW_UP_NUMBER = {value: number for number, value in FOLLOW_UP_STATUS.items()}

ReadWait = Callable[[int, float], Awaitable[bool]]
"""Waits (bounded) until a read model reached a sequence; returns whether it did."""


@dataclass(frozen=True)
class ReadWaits:
    """The waits of quality's read models: ticket facts, surveys, incident facts."""

    tickets: ReadWait
    surveys: ReadWait
    incidents: ReadWait
    # When any of them moved: WatchKpis pushes again.
    changes: ReadModelChanges


class _Waits:
    """DEADLINE_EXCEEDED when a read model does not reach the sequence a query asks for."""

    def __init__(self, waits: ReadWaits, timeout: float) -> None:
        self._waits = waits
        self._timeout = timeout

    async def tickets(self, sequence: int, what: str) -> None:
        await self._wait(self._waits.tickets, sequence, what)

    async def surveys(self, sequence: int, what: str) -> None:
        await self._wait(self._waits.surveys, sequence, what)

    async def incidents(self, sequence: int, what: str) -> None:
        await self._wait(self._waits.incidents, sequence, what)

    @property
    def changes(self) -> ReadModelChanges:
        """When any KPI read model moved."""
        return self._waits.changes

    async def _wait(self, wait: ReadWait, sequence: int, what: str) -> None:
        if sequence and not await wait(sequence, self._timeout):
            raise DeadlineExceeded(f"{what} has not reached sequence {sequence} yet; retry")


def error_map() -> dict[type[Exception], grpc.StatusCode]:
    """Returns how domain errors map to gRPC status codes."""
    return {
        domain.InvalidCommand: grpc.StatusCode.INVALID_ARGUMENT,
        domain.TicketUnknown: grpc.StatusCode.NOT_FOUND,
        domain.SurveyNotFound: grpc.StatusCode.NOT_FOUND,
        st.TemplateNotFound: grpc.StatusCode.NOT_FOUND,
        domain.SurveyAlreadySubmitted: grpc.StatusCode.ALREADY_EXISTS,
        domain.IllegalTransition: grpc.StatusCode.FAILED_PRECONDITION,
        domain.QualityError: grpc.StatusCode.FAILED_PRECONDITION,
    }


def _ticket_id(value: str) -> str:
    return aggregate_id(value, "ticket_id", kind="ticket")


def _template_id(value: str) -> str:
    """Returns a template id fit to be a subject token; INVALID_ARGUMENT otherwise."""
    if not st.TEMPLATE_ID.fullmatch(value):
        raise InvalidArgument(
            "template_id must be 1-64 of a-z, 0-9, _ and -",
            [FieldViolation("template_id", "must be 1-64 of a-z, 0-9, _ and -")],
        )
    return value


def _stamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def survey_to_proto(state: domain.Survey, version: int) -> pb.Survey:
    """Returns the API view of a survey aggregate."""
    submitted = state.submitted
    assert submitted is not None
    message = pb.Survey(
        ticket_id=state.ticket_id,
        customer_id=submitted.customer_id,
        agent_id=submitted.agent_id,
        csat=submitted.csat,
        comment=submitted.comment,
        emotion=enum_to_proto(submitted.emotion, EMOTION),
        emotion_score=submitted.emotion_score,
        submitted_at=_stamp(submitted.submitted_at),
        follow_up_required=submitted.follow_up_required,
        follow_up_due_at=_stamp(submitted.follow_up_due_at),
        follow_up_status=_status(state),
        version=version,
        # Surveys from before templates answered the built-in default, version 1.
        template_id=submitted.template_id or st.DEFAULT_TEMPLATE,
        template_version=submitted.template_version or 1,
    )
    for recorded in submitted.answers:
        dataclass_to_message(recorded, message.answers.add())
    if submitted.has_nps:
        message.nps = submitted.nps
    return message


def _status(state: domain.Survey) -> types_pb2.FollowUpStatus.ValueType:
    if state.submitted is None or not state.submitted.follow_up_required:
        return types_pb2.FOLLOW_UP_STATUS_UNSPECIFIED
    if state.done_at is not None:
        return types_pb2.FOLLOW_UP_STATUS_DONE
    if state.overdue:
        return types_pb2.FOLLOW_UP_STATUS_OVERDUE
    return types_pb2.FOLLOW_UP_STATUS_PENDING


def follow_up_to_proto(row: Any) -> pb.FollowUp:
    message = pb.FollowUp(
        ticket_id=row.ticket_id,
        customer_id=row.customer_id,
        agent_id=row.agent_id,
        csat=row.csat,
        emotion=enum_to_proto(domain.Emotion(row.emotion), EMOTION),
        due_at=_stamp(aware(row.follow_up_due_at)),
        status=FOLLOW_UP_NUMBER.get(row.follow_up_status, types_pb2.FOLLOW_UP_STATUS_UNSPECIFIED),
        done_at=_stamp(aware(row.done_at)),
        note=row.note,
    )
    if row.nps is not None:
        message.nps = row.nps
    return message


def _major(cents: int) -> str:
    """Returns hundredths as a decimal string in major units ("2500.00")."""
    return f"{Decimal(cents) / 100:.2f}"


def complaint_to_proto(kpis: readmodels.ComplaintKpis) -> pb.ComplaintKpis:
    """Returns the API view of the complaint KPIs."""
    return pb.ComplaintKpis(**asdict(kpis))


def compensation_to_proto(kpis: readmodels.CompensationKpis) -> pb.CompensationKpis:
    """Returns the API view of the compensation KPIs (amounts as decimal strings)."""
    message = pb.CompensationKpis()
    for name in ("totals", "by_kind", "by_agent", "by_ticket_type"):
        target = getattr(message, name)
        for total in getattr(kpis, name):
            per_ticket = Decimal(total.amount_cents) / total.tickets if total.tickets else 0
            target.add(
                key=total.key,
                currency=total.currency,
                amount=_major(total.amount_cents),
                count=total.count,
                tickets=total.tickets,
                per_ticket=f"{Decimal(per_ticket) / 100:.2f}",
            )
    return message


def template_to_proto(template: st.TemplateVersion) -> pb.SurveyTemplate:
    """Returns the API view of one template version."""
    message = pb.SurveyTemplate()
    dataclass_to_message(template, message)
    return message


def questions_from_proto(request: pb.PutSurveyTemplateRequest) -> list[st.SurveyQuestion]:
    """Returns the request's questions; INVALID_ARGUMENT for an unknown kind or metric."""
    violations = []
    for index, question in enumerate(request.questions):
        for name, descriptor in (("kind", QUESTION_KIND), ("metric", QUESTION_METRIC)):
            if getattr(question, name) not in descriptor.values_by_number:
                violations.append(FieldViolation(f"questions[{index}].{name}", "unknown value"))
    if violations:
        raise InvalidArgument("unknown question kind or metric", violations)
    return [message_to_dataclass(q, st.SurveyQuestion) for q in request.questions]


def answers_from_proto(request: pb.SubmitSurveyRequest) -> list[st.Answer]:
    """Returns the request's answers, each with the one value it gives (None: none given)."""
    answers = []
    for given in request.answers:
        which = given.WhichOneof("value")
        value = {which: getattr(given, which)} if which else {}
        answers.append(st.Answer(given.question_id, **value))
    return answers


def kpis_to_proto(kpis: domain.Kpis, day: datetime | None = None) -> pb.Kpis:
    message = pb.Kpis()
    dataclass_to_message(kpis, message)
    if day is not None:
        message.day.FromDatetime(day)
    return message


def hold_to_proto(row: Any) -> pb.Hold:
    """Returns a quality_holds row as a Hold."""
    message = pb.Hold(
        ticket_id=row.ticket_id,
        held_by=row.held_by,
        reason=enum_to_proto(row.reason or None, HOLD_REASON),
        pausing=row.pausing,
        ended_by=row.ended_by,
        agent_id=row.agent_id,
        channel=enum_to_proto(row.channel or None, CHANNEL),
        type=enum_to_proto(row.type or None, TYPE),
        priority=enum_to_proto(row.priority or None, PRIORITY),
        sequence=row.sequence,
    )
    for name in ("held_at", "ended_at"):
        if (stamp := _stamp(aware(getattr(row, name)))) is not None:
            getattr(message, name).CopyFrom(stamp)
    for name in readmodels.PAUSE_CLOCKS:
        clock = message.clocks.add(
            clock=enum_to_proto(name, SLA_CLOCK),
            paused=getattr(row, f"{name}_paused"),
            before_breach=getattr(row, f"{name}_before_breach"),
        )
        share, seconds = getattr(row, f"{name}_share"), getattr(row, f"{name}_paused_seconds")
        if share is not None:
            clock.consumed_share = share
        if seconds is not None:
            clock.paused_seconds = seconds
    return message


def pause_row_to_proto(row: domain.PauseRow) -> pb.PauseRow:
    message = pb.PauseRow()
    dataclass_to_message(row, message)
    return message


def period_from_proto(message: pb.Period, now: datetime) -> readmodels.Period:
    start = timestamp_field(message, "start", path="period.start")
    end = timestamp_field(message, "end", path="period.end")
    if start is not None and end is not None and start >= end:
        raise InvalidArgument(
            "period.start must be before period.end",
            [FieldViolation("period", "start must be before end")],
        )
    return readmodels.Period(start, end)


PUSH_INTERVAL_SECONDS = 1.0  # WatchKpis: at most one push a second (a burst is one push)
QUIET_SECONDS = 30.0  # WatchKpis re-arms its wait this often while nothing moves


class QualityServicer(quality_pb2_grpc.QualityServiceServicer):
    """gRPC front of QualityApp and the quality read models."""

    def __init__(
        self,
        app: QualityApp,
        engine: Engine,
        waits: ReadWaits,
        read_wait_seconds: float,
        *,
        teams: Teams,
        what_if: WhatIf,
        push_interval: float = PUSH_INTERVAL_SECONDS,
    ) -> None:
        self._push_interval = push_interval
        self._app = app
        self._engine = engine
        self._waits = _Waits(waits, read_wait_seconds)
        self._teams = teams
        self._team_policy = PolicyEndpoints(teams.book)
        self._what_if = what_if

    async def _read(self, query: Callable[[Session], Any]) -> Any:
        def run() -> Any:
            with Session(self._engine) as session:
                return query(session)

        return await asyncio.to_thread(run)

    async def SubmitSurvey(
        self, request: pb.SubmitSurveyRequest, context: Any
    ) -> pb.SubmitSurveyResponse:
        ticket_id = _ticket_id(request.ticket_id)
        answered = await self._answered(request)
        await self._waits.tickets(request.ticketing_min_sequence, "the ticket projection")
        facts = await self._read(
            lambda session: readmodels.ticket_facts(session=session, ticket_id=ticket_id)
        )
        result = await self._app.submit_survey(
            facts, ticket_id, answered=answered, command_id=command_id(), actor=actor()
        )
        return pb.SubmitSurveyResponse(
            survey=survey_to_proto(result.state, result.sequence), sequence=result.sequence
        )

    async def _answered(self, request: pb.SubmitSurveyRequest) -> st.AnsweredSurvey:
        """Checks the answers against their template version, or today's csat, nps and comment
        as answers to the built-in default template."""
        nps = request.nps if request.HasField("nps") else None
        if not request.answers:
            if request.template_id or request.template_version:
                raise InvalidArgument(
                    "a template survey needs answers",
                    [FieldViolation("answers", "required with template_id or template_version")],
                )
            return st.legacy_survey(request.csat, nps, request.comment)
        legacy = [
            FieldViolation(name, "not with answers: answer the template's question")
            for name, given in (
                ("csat", request.csat),
                ("nps", request.HasField("nps")),
                ("comment", request.comment),
            )
            if given
        ]
        if legacy:
            raise InvalidArgument("give answers or csat, nps and comment, not both", legacy)
        template_id = request.template_id or st.DEFAULT_TEMPLATE
        template = await self._app.template(_template_id(template_id), request.template_version)
        return st.answer(template, answers_from_proto(request))

    async def PutQualityTeams(
        self, request: pb.PutQualityTeamsRequest, context: Any
    ) -> pb.PutQualityTeamsResponse:
        return await self._team_policy.put(request, pb.PutQualityTeamsResponse)

    async def GetQualityTeams(
        self, request: pb.GetQualityTeamsRequest, context: Any
    ) -> pb.GetQualityTeamsResponse:
        return await self._team_policy.get(request, pb.GetQualityTeamsResponse)

    async def ListQualityTeamsVersions(
        self, request: pb.ListQualityTeamsVersionsRequest, context: Any
    ) -> pb.ListQualityTeamsVersionsResponse:
        return await self._team_policy.list_versions(request, pb.ListQualityTeamsVersionsResponse)

    async def PutSurveyTemplate(
        self, request: pb.PutSurveyTemplateRequest, context: Any
    ) -> pb.PutSurveyTemplateResponse:
        questions = questions_from_proto(request)
        violations = st.validate_template(request.template_id, request.title, questions)
        if violations:
            raise domain.InvalidCommand(violations)
        template, sequence = await self._app.put_template(
            request.template_id,
            request.title,
            questions,
            command_id=command_id(),
            actor=actor(),
        )
        return pb.PutSurveyTemplateResponse(template=template_to_proto(template), sequence=sequence)

    async def GetSurveyTemplate(
        self, request: pb.GetSurveyTemplateRequest, context: Any
    ) -> pb.GetSurveyTemplateResponse:
        template = await self._app.template(_template_id(request.template_id), request.version)
        return pb.GetSurveyTemplateResponse(template=template_to_proto(template))

    async def ListSurveyTemplateVersions(
        self, request: pb.ListSurveyTemplateVersionsRequest, context: Any
    ) -> pb.ListSurveyTemplateVersionsResponse:
        template = await self._app.template_versions(_template_id(request.template_id))
        if not template.versions:
            raise st.TemplateNotFound(f"no survey template {template.template_id!r}")
        return pb.ListSurveyTemplateVersionsResponse(
            versions=[template_to_proto(version) for version in template.versions]
        )

    async def GetSurvey(self, request: pb.GetSurveyRequest, context: Any) -> pb.GetSurveyResponse:
        state, version = await self._app.get(_ticket_id(request.ticket_id))
        return pb.GetSurveyResponse(survey=survey_to_proto(state, version))

    async def ListFollowUps(
        self, request: pb.ListFollowUpsRequest, context: Any
    ) -> pb.ListFollowUpsResponse:
        if request.page_size > MAX_PAGE:
            raise InvalidArgument(
                f"page_size must be at most {MAX_PAGE}",
                [FieldViolation("page_size", f"at most {MAX_PAGE}")],
            )
        if request.status and request.status not in FOLLOW_UP_STATUS:
            raise InvalidArgument(
                f"unknown follow-up status {request.status}",
                [FieldViolation("status", "unknown value")],
            )
        await self._waits.surveys(request.min_sequence, "the follow-up list")
        status = FOLLOW_UP_STATUS.get(request.status, "")
        limit = request.page_size or DEFAULT_PAGE
        rows = await self._read(
            lambda session: readmodels.follow_ups(session=session, status=status, limit=limit)
        )
        return pb.ListFollowUpsResponse(follow_ups=[follow_up_to_proto(row) for row in rows])

    async def RecordFollowUp(
        self, request: pb.RecordFollowUpRequest, context: Any
    ) -> pb.RecordFollowUpResponse:
        ticket_id = _ticket_id(request.ticket_id)
        command = domain.RecordFollowUp(request.agent_id, request.note, request.solved)
        result = await self._app.execute(ticket_id, command, command_id=command_id(), actor=actor())
        survey = survey_to_proto(result.state, result.sequence)
        follow_up = pb.FollowUp(
            ticket_id=ticket_id,
            customer_id=survey.customer_id,
            agent_id=request.agent_id.strip(),
            csat=survey.csat,
            emotion=survey.emotion,
            due_at=survey.follow_up_due_at,
            status=survey.follow_up_status,
            done_at=_stamp(result.state.done_at),
            note=request.note,
        )
        if survey.HasField("nps"):
            follow_up.nps = survey.nps
        return pb.RecordFollowUpResponse(follow_up=follow_up, sequence=result.sequence)

    async def _filter(self, message: pb.KpiFilter) -> readmodels.KpiFilter:
        agents: tuple[str, ...] = ()
        if message.agent_id and message.team:
            raise InvalidArgument(
                "filter: give agent_id or team, not both",
                [FieldViolation("filter.team", "not together with agent_id")],
            )
        if message.agent_id:
            agents = (message.agent_id,)
        if message.team:
            agents = await self._teams.agents(message.team)
        for name, descriptor in (("channel", CHANNEL), ("type", TYPE), ("priority", PRIORITY)):
            number = getattr(message, name)
            if number not in descriptor.values_by_number:
                raise InvalidArgument(
                    f"filter.{name}: unknown value {number}",
                    [FieldViolation(f"filter.{name}", "unknown enum value")],
                )
        channel = enum_from_proto(message.channel, CHANNEL, str)  # type: ignore[arg-type]
        type_ = enum_from_proto(message.type, TYPE, str)  # type: ignore[arg-type]
        priority = enum_from_proto(message.priority, PRIORITY, str)  # type: ignore[arg-type]
        return readmodels.KpiFilter(
            agent_ids=agents,
            channel=channel or "",
            type=type_ or "",
            priority=priority or "",
        )

    async def GetKpis(self, request: pb.GetKpisRequest, context: Any) -> pb.GetKpisResponse:
        where = await self._filter(request.filter)
        period = period_from_proto(request.period, self._app.clock())
        days = kpi_days(period.start, period.end) if request.by_day else []
        await self._kpis_caught_up(request)

        def query(session: Session) -> pb.GetKpisResponse:
            response = pb.GetKpisResponse(
                kpis=kpis_to_proto(readmodels.kpis(session=session, where=where, period=period)),
                compensation=compensation_to_proto(
                    readmodels.compensation_kpis(session=session, where=where, period=period)
                ),
                complaint=complaint_to_proto(
                    readmodels.complaint_kpis(session=session, where=where, period=period)
                ),
            )
            add_emotions(
                response, readmodels.emotion_counts(session=session, where=where, period=period)
            )
            report = readmodels.pause_report(session=session, where=where, period=period)
            response.pauses.extend(pause_row_to_proto(row) for row in report.totals)
            for day in days:
                bounded = readmodels.Period(day.start, day.end)
                values = readmodels.kpis(session=session, where=where, period=bounded)
                response.by_day.append(kpis_to_proto(values, day.day))
                counts = readmodels.emotion_counts(session=session, where=where, period=bounded)
                add_emotions(response, counts, day.day)
            return response

        return await self._read(query)  # type: ignore[no-any-return]

    async def WatchKpis(
        self, request: pb.WatchKpisRequest, context: Any
    ) -> AsyncIterator[pb.WatchKpisResponse]:
        query = request.query
        # Positions read before each query: an event applied while it runs is pushed next.
        changes = self._waits.changes
        since = changes.positions()
        yield pb.WatchKpisResponse(kpis=await self.GetKpis(query, context))
        # Later answers read whatever the read models hold: the min sequences were for the first.
        again = pb.GetKpisRequest(filter=query.filter, period=query.period, by_day=query.by_day)
        while True:
            raise_if_cancel_swallowed()
            if not await changes.moved(since, QUIET_SECONDS):
                continue
            # Coalesce a burst of events (a ticket's command appends several) into one push.
            await asyncio.sleep(self._push_interval)
            since = changes.positions()
            yield pb.WatchKpisResponse(kpis=await self.GetKpis(again, context))

    async def _kpis_caught_up(self, request: pb.GetKpisRequest | pb.GetScorecardRequest) -> None:
        """Waits (bounded) for the sequences a KPI query asks its read models to have applied."""
        await self._waits.tickets(request.ticketing_min_sequence, "the ticket projection")
        await self._waits.surveys(request.min_sequence, "the survey projection")
        await self._waits.incidents(request.incident_min_sequence, "the incident projection")

    async def GetScorecard(
        self, request: pb.GetScorecardRequest, context: Any
    ) -> pb.GetScorecardResponse:
        subject = request.WhichOneof("subject")
        if subject is None or not getattr(request, subject):
            raise InvalidArgument(
                "give agent_id or team", [FieldViolation("subject", "agent_id or team required")]
            )
        authorize_scorecard(caller(), agent_id=request.agent_id, team=request.team)
        where = await self._filter(pb.KpiFilter(**{subject: getattr(request, subject)}))
        period = period_from_proto(request.period, self._app.clock())
        await self._kpis_caught_up(request)
        kpis = await self._read(
            lambda session: readmodels.kpis(session=session, where=where, period=period)
        )
        components = domain.score_components(kpis)
        return pb.GetScorecardResponse(
            agent_id=request.agent_id,
            team=request.team,
            kpis=kpis_to_proto(kpis),
            quality_score=domain.quality_score(components),
            components=[
                pb.ScoreComponent(name=c.name, value=c.value, weight=c.weight, present=c.present)
                for c in components
            ],
        )

    async def ListHolds(self, request: pb.ListHoldsRequest, context: Any) -> pb.ListHoldsResponse:
        ticket_id, agent_id = request.ticket_id.strip(), request.agent_id.strip()
        if bool(ticket_id) == bool(agent_id):
            raise InvalidArgument(
                "give ticket_id or agent_id, not both",
                [FieldViolation("ticket_id", "exactly one of ticket_id and agent_id")],
            )
        if ticket_id:
            ticket_id = _ticket_id(ticket_id)
            if request.HasField("period"):
                raise InvalidArgument(
                    "period goes with agent_id: a ticket's holds are listed whole",
                    [FieldViolation("period", "only with agent_id")],
                )
        elif len(agent_id) > domain.MAX_ID:
            raise InvalidArgument(
                f"agent_id must be at most {domain.MAX_ID} characters",
                [FieldViolation("agent_id", f"at most {domain.MAX_ID} characters")],
            )
        size = page_size(request.page_size)
        before = page_cursor(request.page_token, "ListHolds")
        period = period_from_proto(request.period, self._app.clock())
        await self._waits.tickets(request.ticketing_min_sequence, "the hold list")

        def query(session: Session) -> list[Any]:
            if ticket_id and readmodels.ticket_facts(session=session, ticket_id=ticket_id) is None:
                raise domain.TicketUnknown(f"quality knows no ticket {ticket_id}")
            return readmodels.list_holds(
                session=session,
                ticket_id=ticket_id,
                held_by=agent_id,
                period=period,
                page_size=size + 1,
                before_sequence=before,
            )

        rows = await self._read(query)
        response = pb.ListHoldsResponse(holds=[hold_to_proto(row) for row in rows[:size]])
        if len(rows) > size:
            response.next_page_token = page_token(rows[size - 1].sequence)
        return response

    async def GetPauseReport(
        self, request: pb.GetPauseReportRequest, context: Any
    ) -> pb.GetPauseReportResponse:
        where = await self._filter(request.filter)
        period = period_from_proto(request.period, self._app.clock())
        await self._waits.tickets(request.ticketing_min_sequence, "the hold read model")
        report = await self._read(
            lambda session: readmodels.pause_report(session=session, where=where, period=period)
        )
        return pb.GetPauseReportResponse(
            rows=[pause_row_to_proto(row) for row in report.rows],
            totals=[pause_row_to_proto(row) for row in report.totals],
        )

    async def WhatIf(self, request: pb.WhatIfRequest, context: Any) -> pb.WhatIfResponse:
        alternative = self._what_if.alternative(request.policy_yaml)
        where = await self._filter(request.filter)
        now = self._app.clock()
        period = period_from_proto(request.period, now)
        as_of = what_if_as_of(period.end, now)
        await self._waits.tickets(request.ticketing_min_sequence, "the ticket projection")

        async def timelines(limit: int) -> Timelines | None:
            return await self._read(  # type: ignore[no-any-return]
                lambda session: readmodels.sla_timelines(
                    session=session, where=where, period=period, limit=limit
                )
            )

        outcome = await self._what_if.compare(alternative, timelines, as_of=as_of)
        response = pb.WhatIfResponse(tickets=outcome.tickets)
        response.actual.SetInParent()  # present even when every count is 0
        response.alternative.SetInParent()
        dataclass_to_message(outcome.actual, response.actual)
        dataclass_to_message(outcome.alternative, response.alternative)
        response.changes_nothing = outcome.changes_nothing
        for groups, field in (
            (outcome.by_channel, response.by_channel),
            (outcome.by_priority, response.by_priority),
            (outcome.by_team, response.by_team),
        ):
            for group in groups:
                entry = field.add(key=group.key, tickets=group.tickets)
                dataclass_to_message(group.actual, entry.actual)
                dataclass_to_message(group.alternative, entry.alternative)
        return response


def add_emotions(
    response: pb.GetKpisResponse,
    counts: list[readmodels.EmotionCount],
    day: datetime | None = None,
) -> None:
    """Appends the emotion counts (of one day, or of the whole period when `day` is None)."""
    for item in counts:
        entry = response.emotions.add(
            channel=item.channel, emotion=enum_to_proto(item.emotion, EMOTION), count=item.count
        )
        if day is not None:
            entry.day.FromDatetime(day)
