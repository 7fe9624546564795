"""Quality command handlers (surveys, follow-ups) and the codecs of the events quality reads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from careops.quality.v1 import events_pb2
from careops_emotion import classify
from careops_eventstore import EventStore, StreamSpec
from careops_eventstore.aggregates import (
    AggregateKind,
    AggregateRepository,
    CommandExecutor,
    CommandResult,
)
from careops_eventstore.codec import EnvelopeContext, EventCodec
from careops_eventstore.timers import DueTimer
from careops_platform.collectors import preinitialise
from careops_published import incident as inc
from careops_published import ticketing as tk
from careops_published.codec import view_codec
from prometheus_client import Counter

from quality import domain

log = logging.getLogger(__name__)

STREAM = StreamSpec(name="CAREOPS_QUALITY", subjects=("careops.quality.>",))
SUBJECT_PREFIX = "careops.quality.survey"
TICKETING_STREAM = "CAREOPS_TICKETING"
TICKETING_SUBJECTS = "careops.ticketing.>"
INCIDENT_STREAM = "CAREOPS_INCIDENT"
INCIDENT_SUBJECTS = "careops.incident.>"

CODEC = EventCodec(
    {
        domain.SurveySubmitted: events_pb2.SurveySubmitted,
        domain.FollowUpOverdue: events_pb2.FollowUpOverdue,
        domain.FollowUpRecorded: events_pb2.FollowUpRecorded,
    }
)

# The ticketing and incident events quality reads, as their published views. Projections
# consume the whole stream (the runner needs contiguous sequences); other events are skipped and
# counted.
TICKETING_CODEC = view_codec(
    tk.TicketOpened,
    tk.TicketAssigned,
    tk.ReplyAdded,
    tk.PriorityChanged,
    tk.TicketEscalated,
    tk.TicketHeld,
    tk.TicketResumed,
    tk.TicketResolved,
    tk.TicketReopened,
    tk.TicketClosed,
    tk.SlaBreached,
)
INCIDENT_CODEC = view_codec(
    inc.IncidentDeclared,
    inc.IncidentReassessed,
    inc.IncidentEscalated,
    inc.PageAcknowledged,
    inc.IncidentResolved,
)

SURVEY = AggregateKind(
    stream=STREAM.name,
    subject_prefix=SUBJECT_PREFIX,
    aggregate_type="survey",
    initial=domain.initial,
    evolve=domain.evolve,
    codec=CODEC,
)

EVENTS = Counter("careops_quality_events_total", "Quality events appended by type.", ["event"])
preinitialise(EVENTS, (event.__name__ for event in get_args(domain.SurveyEvent)))


def utc_now() -> datetime:
    return datetime.now(UTC)


class QualityApp:
    """The survey use cases over an event store; every write goes through `execute`."""

    def __init__(
        self,
        *,
        store: EventStore,
        follow_up_after: timedelta = domain.FOLLOW_UP_AFTER,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.repository = AggregateRepository(store, SURVEY)
        self.executor = CommandExecutor(self.repository)
        self.follow_up_after = follow_up_after
        self.clock = clock

    async def provision(self, *, replicas: int = 1) -> None:
        """Creates or updates the quality stream."""
        await self.repository.store.ensure_stream(
            StreamSpec(STREAM.name, STREAM.subjects, replicas=replicas)
        )

    async def execute(
        self,
        ticket_id: str,
        command: domain.Command,
        *,
        command_id: str,
        actor: str = "system",
    ) -> CommandResult[domain.Survey]:
        """Decides and appends one command against the survey's current state."""
        now = self.clock()
        context = EnvelopeContext(
            aggregate_id=ticket_id,
            aggregate_type=SURVEY.aggregate_type,
            command_id=command_id,
            occurred_at=now,
            actor=actor,
        )

        def decide(state: domain.Survey) -> list[Any]:
            return domain.decide(state, command, now=now)

        result = await self.executor.execute(aggregate_id=ticket_id, decide=decide, context=context)
        for event in result.events:
            EVENTS.labels(type(event).__name__).inc()
        return result

    async def submit_survey(
        self,
        ticket: domain.TicketFacts | None,
        ticket_id: str,
        *,
        csat: int,
        nps: int | None,
        comment: str,
        command_id: str,
        actor: str,
    ) -> CommandResult[domain.Survey]:
        """Labels the comment's emotion and submits the survey."""
        emotion = classify(comment)
        command = domain.SubmitSurvey(
            ticket=ticket,
            csat=csat,
            nps=nps,
            comment=comment,
            emotion=emotion.emotion,
            emotion_score=emotion.score,
            follow_up_after=self.follow_up_after,
        )
        result = await self.execute(ticket_id, command, command_id=command_id, actor=actor)
        if result.events and result.state.submitted and result.state.submitted.follow_up_required:
            log.info("negative feedback: follow-up due", extra={"ticket_id": ticket_id})
        return result

    async def get(self, ticket_id: str) -> tuple[domain.Survey, int]:
        """Returns the survey as of the log's latest event and its version."""
        loaded = await self.repository.load(ticket_id, refresh=True)
        if not loaded.state.exists:
            raise domain.SurveyNotFound(f"ticket {ticket_id} has no survey")
        return loaded.state, loaded.version

    async def fire_timer(self, timer: DueTimer) -> None:
        """Marks a follow-up overdue; the timer id is the command id, so it is appended once."""
        await self.execute(
            timer.aggregate_id,
            domain.MarkFollowUpOverdue(),
            command_id=timer.timer_id,
            actor="follow-up-timer",
        )
        log.warning("follow-up overdue", extra={"ticket_id": timer.aggregate_id})
