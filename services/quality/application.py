"""Quality command handlers (surveys, follow-ups) and the codecs of the events quality reads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import get_args

from careops.incident.v1 import events_pb2 as incident_events
from careops.quality.v1 import events_pb2
from careops.ticketing.v1 import events_pb2 as ticket_events
from careops_emotion import classify
from careops_eventstore import EventStore
from careops_eventstore.aggregates import CommandResult
from careops_eventstore.application import ContextApplication, aggregate_kind, codec_of
from careops_eventstore.application import utc_now as utc_now  # re-exported for main.py and tests
from careops_eventstore.codec import EventCodec
from careops_eventstore.timers import DueTimer
from careops_platform import registry
from careops_platform.collectors import preinitialise
from prometheus_client import Counter

from quality import domain

log = logging.getLogger(__name__)

STREAM = registry.QUALITY.spec()
SUBJECT_PREFIX = registry.QUALITY.prefix("survey")
TICKETING_STREAM = registry.TICKETING.name
TICKETING_SUBJECTS = registry.TICKETING.filter()
INCIDENT_STREAM = registry.INCIDENT.name
INCIDENT_SUBJECTS = registry.INCIDENT.filter()

CODEC = codec_of(get_args(domain.SurveyEvent), events_pb2)

# The subset of ticketing's and incident's events quality reads (fields matched by name).
# Projections consume the whole stream (the runner needs contiguous sequences); other
# aggregates' events are unknown types, skipped and counted.
TICKETING_CODEC = EventCodec(
    {
        domain.TicketOpened: ticket_events.TicketOpened,
        domain.TicketAssigned: ticket_events.TicketAssigned,
        domain.ReplyAdded: ticket_events.ReplyAdded,
        domain.PriorityChanged: ticket_events.PriorityChanged,
        domain.TicketEscalated: ticket_events.TicketEscalated,
        domain.TicketHeld: ticket_events.TicketHeld,
        domain.TicketResumed: ticket_events.TicketResumed,
        domain.TicketResolved: ticket_events.TicketResolved,
        domain.TicketReopened: ticket_events.TicketReopened,
        domain.TicketClosed: ticket_events.TicketClosed,
        domain.SlaBreached: ticket_events.SlaBreached,
    }
)
INCIDENT_CODEC = EventCodec(
    {
        domain.IncidentDeclared: incident_events.IncidentDeclared,
        domain.IncidentReassessed: incident_events.IncidentReassessed,
        domain.IncidentEscalated: incident_events.IncidentEscalated,
        domain.PageAcknowledged: incident_events.PageAcknowledged,
        domain.IncidentResolved: incident_events.IncidentResolved,
    }
)

SURVEY = aggregate_kind(
    STREAM, SUBJECT_PREFIX, "survey", initial=domain.initial, evolve=domain.evolve, codec=CODEC
)

EVENTS = Counter("careops_quality_events_total", "Quality events appended by type.", ["event"])
preinitialise(EVENTS, (event.__name__ for event in get_args(domain.SurveyEvent)))


class QualityApp(ContextApplication[domain.Survey]):
    """The survey use cases over an event store; every write goes through `execute`."""

    def __init__(
        self,
        *,
        store: EventStore,
        follow_up_after: timedelta = domain.FOLLOW_UP_AFTER,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(store=store, stream=STREAM, kind=SURVEY, clock=clock)
        self.follow_up_after = follow_up_after

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
        result = await self.run(
            ticket_id,
            lambda state: domain.decide(state, command, now=now),
            now=now,
            command_id=command_id,
            actor=actor,
        )
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
