"""Quality command handlers (surveys, follow-ups) and the codecs of the events quality reads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, get_args

import careops_sla
from careops.quality.v1 import events_pb2
from careops_emotion import classify
from careops_eventstore import EventStore
from careops_eventstore.aggregates import (
    AggregateKind,
    AggregateRepository,
    CommandExecutor,
    CommandResult,
)
from careops_eventstore.application import ContextApplication, aggregate_kind, codec_of
from careops_eventstore.application import utc_now as utc_now  # re-exported for main.py and tests
from careops_eventstore.timers import DueTimer
from careops_platform import registry
from careops_platform.collectors import preinitialise
from careops_platform.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied
from careops_platform.identity import Principal
from careops_platform.policies import PolicyBook
from careops_platform.sealing import (
    TextSealer,
    opening,
    sealed_all,
    sealing_key,
    unless_erased,
)
from careops_published import customer as cu
from careops_published import incident as inc
from careops_published import ticketing as tk
from careops_published.codec import view_codec
from prometheus_client import Counter

from quality import domain
from quality import survey_templates as st
from quality.config import TEAMS_KIND, QualityTeams

log = logging.getLogger(__name__)

STREAM = registry.QUALITY.spec()
SUBJECT_PREFIX = registry.QUALITY.prefix("survey")
TICKETING_STREAM = registry.TICKETING.name
TICKETING_SUBJECTS = registry.TICKETING.filter()
INCIDENT_STREAM = registry.INCIDENT.name
INCIDENT_SUBJECTS = registry.INCIDENT.filter()

TEMPLATE_PREFIX = registry.QUALITY.prefix("template")
# The survey aggregate's events, then the survey template's (one stream).
CODEC = codec_of(
    (*get_args(domain.SurveyEvent), st.SurveyTemplatePut),
    events_pb2,
    sealed_fields=domain.FREE_TEXT,
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
    tk.SlaPolicyApplied,
    tk.CompensationGranted,
    tk.CompensationApproved,
    tk.ComplaintStepRecorded,
    tk.ComplaintFollowUpMissed,
)
# Customer-profile's erasures, for the shredder of survey texts (projections.text_shredder).
CUSTOMER_CODEC = view_codec(cu.CustomerForgotten)
INCIDENT_CODEC = view_codec(
    inc.IncidentDeclared,
    inc.IncidentReassessed,
    inc.IncidentEscalated,
    inc.PageAcknowledged,
    inc.IncidentResolved,
)

SURVEY = aggregate_kind(
    STREAM, SUBJECT_PREFIX, "survey", initial=domain.initial, evolve=domain.evolve, codec=CODEC
)

TEMPLATE: AggregateKind[st.Template] = aggregate_kind(
    STREAM, TEMPLATE_PREFIX, "survey_template", initial=st.initial, evolve=st.evolve, codec=CODEC
)

EVENTS = Counter("careops_quality_events_total", "Quality events appended by type.", ["event"])
preinitialise(
    EVENTS, [*(event.__name__ for event in get_args(domain.SurveyEvent)), "SurveyTemplatePut"]
)


class QualityApp(ContextApplication[domain.Survey]):
    """The survey use cases over an event store; every write goes through `execute`."""

    def __init__(
        self,
        *,
        store: EventStore,
        follow_up_after: timedelta = domain.FOLLOW_UP_AFTER,
        clock: Callable[[], datetime] = utc_now,
        texts: TextSealer | None = None,
    ) -> None:
        kind = replace(SURVEY, evolve=opening(domain.evolve, texts)) if texts else SURVEY
        super().__init__(store=store, stream=STREAM, kind=kind, clock=clock)
        # Seals the surveys' free text for their customer (main.py always passes one).
        self.texts = texts
        self.follow_up_after = follow_up_after
        self.templates = AggregateRepository(store, TEMPLATE)
        self.teams = PolicyBook(
            store, STREAM, registry.QUALITY.prefix("policy"), TEAMS_KIND, clock=clock
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
        owner = await self._customer_of(ticket_id, command)
        key = await sealing_key(self.texts, self.repository, ticket_id, owner, now)

        def decide(state: domain.Survey) -> list[domain.SurveyEvent]:
            return sealed_all(self.texts, domain.decide(state, command, now=now), owner, key)

        result = await self.run(
            ticket_id,
            decide,
            now=now,
            command_id=command_id,
            actor=actor,
        )
        for event in result.events:
            EVENTS.labels(type(event).__name__).inc()
        return result

    async def _customer_of(self, ticket_id: str, command: domain.Command) -> str:
        """The survey's customer, whose key seals the command's texts ("" without a sealer)."""
        if self.texts is None:
            return ""
        if isinstance(command, domain.SubmitSurvey):
            return command.ticket.customer_id if command.ticket else ""
        submitted = (await self.repository.load(ticket_id)).state.submitted
        return submitted.customer_id if submitted else ""

    async def template(self, template_id: str, version: int = 0) -> st.TemplateVersion:
        """Returns a version of a survey template (0: the latest); NOT_FOUND without it."""
        return (await self.template_versions(template_id)).version(version)

    async def template_versions(self, template_id: str) -> st.Template:
        """Returns every version of a survey template, as of the log's latest event."""
        return (await self.templates.load(template_id, refresh=True)).state

    async def put_template(
        self,
        template_id: str,
        title: str,
        questions: Sequence[st.SurveyQuestion],
        *,
        command_id: str,
        actor: str,
    ) -> tuple[st.TemplateVersion, int]:
        """Appends the template's next version (nothing when equal to the latest)."""
        result = await self.run_on(
            CommandExecutor(self.templates),
            template_id,
            lambda current: st.decide_put(current, title, questions),
            now=self.clock(),
            command_id=command_id,
            actor=actor,
        )
        for event in result.events:
            EVENTS.labels(type(event).__name__).inc()
        return result.state.version(), result.sequence

    async def submit_survey(
        self,
        ticket: domain.TicketFacts | None,
        ticket_id: str,
        *,
        csat: int = 0,
        nps: int | None = None,
        comment: str = "",
        answered: st.AnsweredSurvey | None = None,
        command_id: str,
        actor: str,
    ) -> CommandResult[domain.Survey]:
        """Labels the comment's emotion and submits the survey: `answered` (a template
        version's checked answers) or today's csat, nps and comment as the default template."""
        if answered is None:
            answered = st.legacy_survey(csat, nps, comment)
        emotion = classify(answered.comment)
        command = domain.SubmitSurvey(
            ticket=ticket,
            csat=answered.csat,
            nps=answered.nps,
            comment=answered.comment,
            emotion=emotion.emotion,
            emotion_score=emotion.score,
            follow_up_after=self.follow_up_after,
            template_id=answered.template_id,
            template_version=answered.template_version,
            answers=answered.answers,
        )
        result = await self.execute(ticket_id, command, command_id=command_id, actor=actor)
        if result.events and result.state.submitted and result.state.submitted.follow_up_required:
            log.info("negative feedback: follow-up due", extra={"ticket_id": ticket_id})
        return result

    async def get(self, ticket_id: str) -> tuple[domain.Survey, int]:
        """Returns the survey as of the log's latest event and its version."""
        loaded = await self.repository.load(ticket_id, refresh=True)
        submitted = loaded.state.submitted
        owner = submitted.customer_id if submitted else ""
        loaded = await unless_erased(self.texts, self.repository, ticket_id, loaded, owner)
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


# ------------------------------------------------------------------------- what-if replay

MAX_WHAT_IF_TICKETS = 200_000  # each ticket's timeline is replayed in memory, twice
MAX_POLICY = 100_000

Timelines = Sequence[tuple[Any, Sequence[domain.TimelineStep]]]
"""(ticket row with channel, priority, tier; its SLA timeline) per ticket."""


@dataclass(frozen=True)
class SlaOutcome:
    """Compliance and breach counts of tickets replayed under one SLA policy."""

    policy_version: str
    first_responses: int
    first_responses_on_time: int
    first_response_breaches: int
    resolutions: int
    resolution_breaches: int
    sla_compliance_ratio: float


@dataclass(frozen=True)
class WhatIfGroup:
    """One channel's, priority's or team's tickets, replayed as decided and under the draft."""

    key: str
    tickets: int
    actual: SlaOutcome
    alternative: SlaOutcome


@dataclass(frozen=True)
class WhatIfOutcome:
    actual: SlaOutcome
    alternative: SlaOutcome
    tickets: int
    by_channel: tuple[WhatIfGroup, ...] = ()
    by_priority: tuple[WhatIfGroup, ...] = ()
    by_team: tuple[WhatIfGroup, ...] = ()
    # The draft decides every ticket exactly as happened.
    changes_nothing: bool = True


Versions = Callable[[str], careops_sla.SlaPolicy]
"""An SLA policy version label -> that version (the one in force for "" or an unknown label)."""


NO_TEAMS = QualityTeams("", {})


class WhatIf:
    """A period's tickets replayed as they were decided (each under the SLA policy version its
    events record: ticketing's `sla` revisions, read from its stream through `book`) and under
    a draft, side by side, in total, per channel, per priority and per quality team."""

    def __init__(
        self,
        policy: careops_sla.SlaPolicy,
        book: PolicyBook[careops_sla.SlaPolicy] | None = None,
        teams: PolicyBook[QualityTeams] | None = None,
    ) -> None:
        # Tickets whose version the book does not hold (opened before issue 13, or a ticketing
        # that keeps no revisions) are replayed under this one, quality's configured policy.
        self.policy = policy
        self.book = book
        self.teams = teams  # the quality teams in force group the tickets per team

    async def versions(self) -> Versions:
        """Returns ticketing's SLA policy versions as of now (re-read from its stream)."""
        if self.book is None:
            return lambda _label: self.policy
        book = self.book
        history = await book.history(fresh=True)
        by_label = {version.version: book.parsed(version) for version in history.versions}
        return lambda label: by_label.get(label, self.policy)

    @staticmethod
    def alternative(text: str) -> careops_sla.SlaPolicy:
        """Returns the SLA policy of a YAML document; INVALID_ARGUMENT naming the bad key."""
        if not text.strip():
            raise InvalidArgument(
                "policy_yaml is required", [FieldViolation("policy_yaml", "must not be empty")]
            )
        if len(text) > MAX_POLICY:
            raise InvalidArgument(
                f"policy_yaml is longer than {MAX_POLICY} characters",
                [FieldViolation("policy_yaml", "too long")],
            )
        try:
            return careops_sla.parse_policy_text(text)
        except careops_sla.PolicyError as exc:
            raise InvalidArgument(
                f"invalid SLA policy: {exc}", [FieldViolation("policy_yaml", str(exc)[:200])]
            ) from exc

    async def compare(
        self,
        alternative: careops_sla.SlaPolicy,
        read: Callable[[int], Awaitable[Timelines | None]],
        *,
        as_of: datetime,
    ) -> WhatIfOutcome:
        """Returns both replays of the timelines `read(limit)` gives (None: more than limit,
        INVALID_ARGUMENT)."""
        timelines = await read(MAX_WHAT_IF_TICKETS)
        if timelines is None:
            raise InvalidArgument(
                f"the what-if covers more than {MAX_WHAT_IF_TICKETS:,} tickets; narrow it",
                [FieldViolation("period", f"at most {MAX_WHAT_IF_TICKETS:,} tickets")],
            )
        versions = await self.versions()
        directory = (await self.teams.in_force(NO_TEAMS)).teams if self.teams else {}
        return await asyncio.to_thread(
            compare_replays, timelines, versions, alternative, as_of, directory
        )


def compare_replays(
    timelines: Timelines,
    versions: Versions,
    alternative: careops_sla.SlaPolicy,
    as_of: datetime,
    teams: Mapping[str, Sequence[str]] | None = None,
) -> WhatIfOutcome:
    """Replays every ticket as decided and under `alternative`; groups both per channel, per
    priority and per quality team (`teams`: agent ids by team; a ticket counts in each team
    of its agent, none when unassigned or in no team)."""
    teams = teams or {}
    actual, used = [], set()
    for row, steps in timelines:
        opened_under = versions(getattr(row, "sla_policy_version", "") or "")
        used.add(opened_under.version)
        used.update(versions(s.value).version for s in steps if s.step is domain.Step.POLICY)
        actual.append(replay(row, steps, opened_under, as_of, versions))
    draft = [replay(row, steps, alternative, as_of, None) for row, steps in timelines]
    label = ", ".join(sorted(used)) or versions("").version

    def groups(keys: Callable[[Any], Sequence[str]]) -> tuple[WhatIfGroup, ...]:
        members: dict[str, list[int]] = {}
        for index, (row, _steps) in enumerate(timelines):
            for name in keys(row):
                members.setdefault(name, []).append(index)
        return tuple(
            WhatIfGroup(
                key=name,
                tickets=len(indices),
                actual=sla_outcome([actual[i] for i in indices], label),
                alternative=sla_outcome([draft[i] for i in indices], alternative.version),
            )
            for name, indices in sorted(members.items())
        )

    def of(column: str) -> Callable[[Any], Sequence[str]]:
        return lambda row: (str(getattr(row, column)),)

    def teams_of(row: Any) -> Sequence[str]:
        return [team for team, agents in teams.items() if row.agent_id in agents]

    return WhatIfOutcome(
        actual=sla_outcome(actual, label),
        alternative=sla_outcome(draft, alternative.version),
        tickets=len(timelines),
        by_channel=groups(of("channel")),
        by_priority=groups(of("priority")),
        by_team=groups(teams_of),
        changes_nothing=actual == draft,
    )


def replay(
    row: Any,
    steps: Sequence[domain.TimelineStep],
    policy: careops_sla.SlaPolicy,
    as_of: datetime,
    versions: Versions | None,
) -> domain.TicketSla:
    """One ticket's SLA replayed under `policy` (with `versions`: as decided, see replay_sla)."""
    return domain.replay_sla(
        channel=row.channel,
        priority=row.priority,
        tier=row.tier,
        ticket_type=getattr(row, "type", "") or "",
        steps=steps,
        policy=policy,
        as_of=as_of,
        versions=versions,
    )


def what_if_as_of(period_end: datetime | None, now: datetime) -> datetime:
    """Returns the instant a what-if replays to: the period's end, at most now."""
    return min(period_end, now) if period_end else now


def sla_outcome(replays: Sequence[domain.TicketSla], policy_version: str) -> SlaOutcome:
    """Returns compliance and breach counts of replayed tickets."""
    responded = [sla for sla in replays if sla.responded]
    on_time = sum(not sla.first_response_breached for sla in responded)
    return SlaOutcome(
        policy_version=policy_version,
        first_responses=len(responded),
        first_responses_on_time=on_time,
        first_response_breaches=sum(sla.first_response_breached for sla in replays),
        resolutions=sum(sla.resolved for sla in replays),
        resolution_breaches=sum(sla.resolution_breached for sla in replays),
        # The same definition as GetKpis' sla_compliance_ratio (docs/kpis.md).
        sla_compliance_ratio=domain.sla_compliance(
            on_time=on_time,
            first_responses=len(responded),
            unanswered_breaches=sum(sla.unanswered_breach for sla in replays),
        ),
    )


class Teams:
    """The quality teams (policy kind "teams"): which agents a team's KPIs and scorecard cover,
    as the revision in force when the query is made."""

    def __init__(self, book: PolicyBook[QualityTeams]) -> None:
        self.book = book

    async def agents(self, team: str) -> tuple[str, ...]:
        """Returns the team's agents; NOT_FOUND for an unknown team."""
        _, directory = await self.book.current()
        if team not in directory.teams:
            known = ", ".join(sorted(directory.teams)) or "none"
            raise NotFound(f"no team named {team!r} (known: {known})")
        return directory.teams[team]


# ------------------------------------------------------------------------- who reads scorecards

# Rule 4 of docs/permissions.md: the permission (permissions.yaml) a refusal names, and the rule.
SCORECARD = "quality.scorecard.read"
SCORECARD_RULE = (
    "an agent reads their own scorecard; another agent's or a team's needs senior_agent, "
    "supervisor or admin"
)


def authorize_scorecard(caller: Principal | None, *, agent_id: str = "", team: str = "") -> None:
    """Raises PermissionDenied, naming the permission and the rule, unless `caller` may read the
    scorecard of `agent_id` or of `team`; None (no caller): no data rule."""
    if caller is None:
        return
    if not domain.may_read_scorecard(caller.subject, caller.roles, agent_id=agent_id, team=team):
        whose = f"team {team}" if team else f"agent {agent_id}"
        raise PermissionDenied(
            f"permission {SCORECARD} is refused for the scorecard of {whose}: {SCORECARD_RULE}",
            permission=SCORECARD,
        )


# ------------------------------------------------------------------------- KPIs by day

MAX_DAYS = 92


@dataclass(frozen=True)
class Day:
    """One calendar day (UTC) of a KPI period, cut to the period's bounds."""

    day: datetime
    start: datetime
    end: datetime


def kpi_days(start: datetime | None, end: datetime | None) -> list[Day]:
    """Returns the days a by-day KPI query covers; INVALID_ARGUMENT without both bounds or
    over MAX_DAYS days."""
    if start is None or end is None:
        raise InvalidArgument(
            "by_day needs a period with start and end",
            [FieldViolation("period", "start and end are required with by_day")],
        )
    days: list[datetime] = []
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        days.append(day)
        day += timedelta(days=1)
    if len(days) > MAX_DAYS:
        raise InvalidArgument(
            f"by_day covers at most {MAX_DAYS} days",
            [FieldViolation("period", f"at most {MAX_DAYS} days with by_day")],
        )
    return [Day(day, max(day, start), min(day + timedelta(days=1), end)) for day in days]
