"""Incident command handlers: declare, page, escalate; teams and the response matrix."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any, get_args

from careops.incident.v1 import events_pb2
from careops_eventstore import EventStore
from careops_eventstore.aggregates import (
    AggregateKind,
    AggregateRepository,
    CommandExecutor,
    CommandResult,
)
from careops_eventstore.application import ContextApplication, aggregate_kind, codec_of
from careops_eventstore.application import utc_now as utc_now  # re-exported for main.py and tests
from careops_eventstore.codec import DecodedEvent
from careops_eventstore.model import RecordedBatch
from careops_eventstore.timers import DueTimer
from careops_platform import registry
from careops_platform.collectors import preinitialise
from careops_platform.errors import NotFound, PermissionDenied
from careops_platform.identity import Principal
from careops_platform.policies import PolicyBook, PolicyKind, PutOutcome
from careops_platform.requests import AGGREGATE_ID
from prometheus_client import Counter, Histogram

from incident import config
from incident import domain as d
from incident.config import load_matrix as load_matrix
from incident.config import load_teams as load_teams
from incident.domain import intake
from incident.templates import NoticeTemplatesError, parse_notice_templates, templates_document

log = logging.getLogger(__name__)

STREAM = registry.INCIDENT.spec()
INCIDENT_SUBJECTS = registry.INCIDENT.prefix("incident")
MATRIX_ID = "default"
# Runtime overrides and swaps that ended longer ago than this leave the team's state.
SCHEDULE_RETENTION = timedelta(days=30)
WHO_WINDOW = timedelta(days=35)  # a shift reported by WhoIsOnCall is cut to at +- this
SHIFTS_WINDOW = timedelta(days=28)
REFRESH_SECONDS = 1.0

# The incident aggregate's events, then the team's and the matrix's (one stream).
CODEC = codec_of(
    (
        *get_args(d.IncidentEvent),
        *get_args(d.TeamEvent),
        d.ResponseMatrixChanged,
        *get_args(d.DrillEvent),
        d.DrillScenariosChanged,
        *get_args(intake.AlertGroupEvent),
    ),
    events_pb2,
)

INCIDENT = aggregate_kind(
    STREAM, INCIDENT_SUBJECTS, "incident", initial=d.initial, evolve=d.evolve, codec=CODEC
)
TEAM: AggregateKind[d.Team | None] = aggregate_kind(
    STREAM,
    registry.INCIDENT.prefix("team"),
    "team",
    initial=lambda _id: None,
    evolve=d.evolve_team,
    codec=CODEC,
)
MATRIX = aggregate_kind(
    STREAM,
    registry.INCIDENT.prefix("matrix"),
    "matrix",
    initial=lambda _id: d.Matrix(),
    evolve=d.evolve_matrix,
    codec=CODEC,
)

DRILL: AggregateKind[d.Drill] = aggregate_kind(
    STREAM,
    registry.INCIDENT.prefix("drill"),
    "drill",
    initial=d.initial_drill,
    evolve=d.evolve_drill,
    codec=CODEC,
)
SCENARIOS: AggregateKind[Mapping[str, d.DrillScenario]] = aggregate_kind(
    STREAM,
    registry.INCIDENT.prefix("drill_scenarios"),
    "drill_scenarios",
    initial=lambda _id: {},
    evolve=d.evolve_scenarios,
    codec=CODEC,
)
SCENARIOS_ID = "default"
DRILL_TIMER = "drill"
# The risk policy as versioned data (docs/policies.md, kind `risk`): careops.incident.policy.risk.
RISK_POLICY = PolicyKind(
    "risk", config.parse_risk_policy, lambda model: model.version, (config.RiskPolicyError,)
)
# The customer message templates (docs/incidents.md "Telling customers"), kind notice_templates.
NOTICE_TEMPLATES = PolicyKind(
    "notice_templates",
    parse_notice_templates,
    lambda templates: templates.version,
    (NoticeTemplatesError,),
)

DECLARED = Counter(
    "careops_incidents_declared_total",
    "Incidents declared by level, type and whether they are drills.",
    ["level", "type", "drill"],
)
PAGES = Counter(
    "careops_pages_total",
    "Pages by team and outcome (requested, delivered, failed).",
    ["team", "outcome"],
)
ESCALATIONS = Counter(
    "careops_page_escalations_total", "Pages escalated for lack of acknowledgement.", ["team"]
)
DELAYED_CONTACTS = Counter(
    "careops_page_delayed_contacts_total",
    "Pages whose delayed contacts (a member's notification rules) were sent, unacknowledged.",
    ["team"],
)
SCHEDULE_CHANGES = Counter(
    "careops_oncall_schedule_changes_total",
    "Runtime schedule changes by team and kind (override, override_removed, swap_requested, "
    "swap_accepted, swap_declined, swap_cancelled, pruned).",
    ["team", "change"],
)
SCHEDULE_CHANGE_KINDS = (
    "override",
    "override_removed",
    "swap_requested",
    "swap_accepted",
    "swap_declined",
    "swap_cancelled",
    "pruned",
)
DEADLINES_MISSED = Counter(
    "careops_incident_response_deadline_missed_total",
    "Incidents whose response deadline passed without acknowledgement.",
    ["level"],
)
LATENCY_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 86400)
TIME_TO_ACK = Histogram(
    "careops_incident_time_to_acknowledge_seconds",
    "Declaration to acknowledgement of a team's page, by level and team (drills excluded).",
    ["level", "team"],
    buckets=LATENCY_BUCKETS,
)
TIME_TO_RESOLVE = Histogram(
    "careops_incident_time_to_resolve_seconds",
    "Declaration to resolution, by level (drills excluded).",
    ["level"],
    buckets=LATENCY_BUCKETS,
)
# Rule 2 of docs/permissions.md: the permission (permissions.yaml) a refusal names, and the rule.
ACKNOWLEDGE = "incident.acknowledge_page"
ACKNOWLEDGE_RULE = (
    "a page is acknowledged only by its paged member, that member's escalation target, "
    "the team's lead or the team's current on-call"
)
# The schedule rules (docs/permissions.md): the permissions a refusal names, and the rule.
OVERRIDE = "incident.oncall.override"
REMOVE_OVERRIDE = "incident.oncall.override.remove"
REQUEST_SWAP = "incident.oncall.swap.request"
SWAP_PERMISSIONS = {
    "accept": "incident.oncall.swap.accept",
    "decline": "incident.oncall.swap.decline",
    "cancel": "incident.oncall.swap.cancel",
}
SCHEDULE_RULE = (
    "on-call staff add overrides for themselves or a team they lead, request swaps of their own "
    "shifts, accept or decline only swaps asked of them and cancel only their own; supervisors "
    "and admins any"
)
_SCHEDULE_CHANGE: dict[type, str] = {
    d.OverrideAdded: "override",
    d.OverrideRemoved: "override_removed",
    d.SchedulePruned: "pruned",
    d.ShiftSwapRequested: "swap_requested",
    d.ShiftSwapAccepted: "swap_accepted",
    d.ShiftSwapDeclined: "swap_declined",
    d.ShiftSwapCancelled: "swap_cancelled",
}
LEVELS = tuple(level.value.upper() for level in d.Level)
preinitialise(DEADLINES_MISSED, LEVELS)
preinitialise(TIME_TO_RESOLVE, LEVELS)


def preinitialise_metrics(matrix: d.Matrix) -> None:
    """Creates every team's and incident type's series at 0 (the matrix names them), so an
    alert's increase() counts the first page, escalation or declaration."""
    types = list(matrix.rows)
    teams = sorted({cell.team_id for row in matrix.rows.values() for cell in row.cells})
    preinitialise(DECLARED, LEVELS, types, ("true", "false"))
    preinitialise_teams(teams)


def preinitialise_teams(teams: Sequence[str]) -> None:
    """Creates the page series of teams at 0 (the matrix's, and those integration rules
    engage besides it)."""
    preinitialise(PAGES, teams, ("requested", "delivered", "failed"))
    preinitialise(ESCALATIONS, teams)
    preinitialise(DELAYED_CONTACTS, teams)
    preinitialise(TIME_TO_ACK, LEVELS, teams)
    preinitialise(SCHEDULE_CHANGES, teams, SCHEDULE_CHANGE_KINDS)


def digest(value: Any) -> str:
    """Returns a short stable digest of a JSON-able value (used for command ids)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class IncidentApp(ContextApplication[d.Incident]):
    """The incident use cases over an event store."""

    def __init__(
        self,
        *,
        store: EventStore,
        risk: d.RiskModel | None = None,
        clock: Callable[[], datetime] = utc_now,
        notice_templates: str | None = None,
        schedule_retention: timedelta = SCHEDULE_RETENTION,
    ) -> None:
        super().__init__(store=store, stream=STREAM, kind=INCIDENT, clock=clock)
        self.schedule_retention = schedule_retention
        # The customer message templates as versioned data (kind notice_templates): the
        # settings' document seeds revision 1 and applies until one is put.
        self.templates_document = notice_templates or templates_document(None)
        self.templates = parse_notice_templates(self.templates_document)
        self.notice_book = PolicyBook(
            store, STREAM, registry.INCIDENT.prefix("policy"), NOTICE_TEMPLATES, clock=clock
        )
        self.incidents = self.repository
        self.teams = AggregateRepository(store, TEAM)
        self.matrix_repository = AggregateRepository(store, MATRIX)
        self.risk = risk or d.RiskModel()  # the settings' model: seeds the risk policy
        self.risk_book = PolicyBook(
            store, STREAM, registry.INCIDENT.prefix("policy"), RISK_POLICY, clock=clock
        )
        self._refreshed: dict[str, float] = {}
        self.drills = Drills(self, store)
        self.intake = Intake(self, store)

    async def risk_model(self) -> d.RiskModel:
        """The risk policy in force (re-read from the log at most every REFRESH_SECONDS);
        the settings' model until one is put."""
        return await self.risk_book.in_force(self.risk)

    async def put_risk_policy(self, document: str, **put: Any) -> PutOutcome[d.RiskModel]:
        """Puts a risk policy revision (PolicyBook.put's arguments); the next Declare and
        Reassess of this replica use it, other replicas' within REFRESH_SECONDS."""
        outcome = await self.risk_book.put(document, **put)
        if not outcome.unchanged:
            log.info(
                "risk policy put",
                extra={
                    "revision": outcome.version.revision,
                    "version": outcome.version.version,
                    "author": outcome.version.author,
                    "sequence": outcome.sequence,
                },
            )
        return outcome

    async def notice_templates(self) -> d.NoticeTemplates:
        """The templates revision in force (re-read at most every REFRESH_SECONDS)."""
        return await self.notice_book.in_force(self.templates)

    async def seed_notice_templates(self) -> None:
        """Puts the settings' templates as revision 1 of notice_templates if none exists."""
        await self.notice_book.seed(self.templates_document)

    async def seed_risk_policy(self) -> None:
        """Puts the settings' risk model as the risk policy's revision 1 if none exists yet."""
        await self.risk_book.seed(config.risk_document(self.risk))

    def _stale(self, key: str) -> bool:
        """True when `key` was last read from the log more than REFRESH_SECONDS ago."""
        now = time.monotonic()
        if now - self._refreshed.get(key, -REFRESH_SECONDS) >= REFRESH_SECONDS:
            self._refreshed[key] = now
            return True
        return False

    async def matrix(self, *, fresh: bool = False) -> d.Matrix:
        """Returns the response matrix with its version (stream sequence); read from the log at
        most every REFRESH_SECONDS, so a change made through another replica applies within it."""
        refresh = fresh or self._stale("matrix")
        loaded = await self.matrix_repository.load(MATRIX_ID, refresh=refresh)
        return d.Matrix(loaded.state.rows, loaded.version)

    async def team(self, team_id: str) -> tuple[d.Team, int]:
        loaded = await self.teams.load(team_id, refresh=True)
        if loaded.state is None:
            raise d.NotFound(f"team {team_id} does not exist")
        return loaded.state, loaded.version

    async def _teams(self, ids: Sequence[str], *, fresh: bool = False) -> dict[str, d.Team]:
        found = {}
        for team_id in ids:
            loaded = await self.teams.load(team_id, refresh=fresh or self._stale(f"team:{team_id}"))
            if loaded.state is not None:
                found[team_id] = loaded.state
        return found

    async def execute(
        self,
        incident_id: str,
        command: d.Command,
        *,
        command_id: str,
        actor: str = "system",
        causation_id: str = "",
        caller: Principal | None = None,
    ) -> CommandResult[d.Incident]:
        """Decides and appends one incident command. With a `caller`, the data rules apply
        first (PERMISSION_DENIED, nothing appended, timers untouched); None: no data rule."""
        now = self.clock()
        if caller is not None:
            command = acknowledging_as(command, caller)
        matrix = await self.matrix()
        incident_type = command.type if isinstance(command, d.DeclareIncident) else ""
        team_ids: list[str] = []
        if not incident_type:
            current = (await self.incidents.load(incident_id)).state
            incident_type = current.type
            team_ids = _paged_team(current, command)
            team_ids += [cell.team_id for cell in current.extra_teams]
        row = matrix.rows.get(incident_type)
        teams = await self._teams([cell.team_id for cell in row.cells] if row else [])
        if isinstance(command, d.DeclareIncident) and command.extra_teams:
            extra = [cell.team_id for cell in command.extra_teams]
            teams |= await self._teams([team for team in extra if team not in teams], fresh=True)
            d.require(
                [
                    (f"extra_teams[{index}].team_id", f"no team {team!r}")
                    for index, team in enumerate(extra)
                    if team not in teams
                ]
            )
        teams |= await self._teams([team for team in team_ids if team not in teams])
        # The teams their escalation policies page (schedule:<id>, team:<id>).
        named = {other for team in teams.values() for other in d.escalation.referenced_teams(team)}
        teams |= await self._teams(sorted(named - set(teams)))
        risk = await self.risk_model()
        ctx = d.Context(now=now, risk=risk, matrix=matrix, teams=teams)

        def decide(state: d.Incident) -> list[d.IncidentEvent]:
            # Checked on the very state the decision is made on (again on a conflict's retry).
            if caller is not None and isinstance(command, d.AcknowledgePage):
                authorize_acknowledgement(state, command, caller, teams, now)
            return d.decide(state, command, ctx)

        result = await self.run(
            incident_id,
            decide,
            now=now,
            command_id=command_id,
            actor=actor,
            causation_id=causation_id,
            policy_versions={
                "risk_model": risk.version,
                "response_matrix": str(matrix.version),
            },
            expect_new=isinstance(command, d.DeclareIncident),
        )
        self._observe(result, now)
        return result

    def _observe(self, result: CommandResult[d.Incident], now: datetime) -> None:
        incident = result.state
        level = incident.level.value.upper()
        for event in result.events:
            if isinstance(event, d.IncidentDeclared):
                DECLARED.labels(level, event.type, str(event.drill).lower()).inc()
            elif isinstance(event, d.PageRequested):
                PAGES.labels(event.team_id, "requested").inc()
            elif isinstance(event, d.NotificationDelivered | d.NotificationFailed):
                team = _team_of(incident, event.notice_id)
                outcome = "delivered" if isinstance(event, d.NotificationDelivered) else "failed"
                PAGES.labels(team, outcome).inc()
            elif isinstance(event, d.PageEscalated):
                ESCALATIONS.labels(incident.pages[event.page_id].team_id).inc()
            elif isinstance(event, d.PageContactsDue):
                DELAYED_CONTACTS.labels(incident.pages[event.page_id].team_id).inc()
            elif isinstance(event, d.ResponseDeadlineMissed) and not incident.drill:
                DEADLINES_MISSED.labels(level).inc()
            elif isinstance(event, d.PageAcknowledged) and not incident.drill:
                page = incident.pages[event.page_id]
                if incident.declared_at and not _acked_before(incident, page):
                    seconds = (now - incident.declared_at).total_seconds()
                    TIME_TO_ACK.labels(level, page.team_id).observe(seconds)
            elif isinstance(event, d.IncidentResolved) and not incident.drill:
                declared = incident.declared_at or now
                TIME_TO_RESOLVE.labels(level).observe((now - declared).total_seconds())

    def observe(
        self,
        incident_id: str,
        message: RecordedBatch,
        decoded: Sequence[DecodedEvent] | None = None,
    ) -> None:
        """Moves this replica's cached incident on by a message of its subject a consumer
        received (AggregateRepository.observe; `decoded`: its events, if the caller decoded
        them already): the pager then reads a new incident's state from the message it got
        instead of back from the log."""
        self.incidents.observe(incident_id, message, decoded)

    async def get(self, incident_id: str, *, at_least: int = 0) -> tuple[d.Incident, int]:
        """Returns the incident as the log has it now; with `at_least`, this replica's cached
        state when it is at least that recent (no read of the log), else the log's."""
        loaded = await self.incidents.load(incident_id)
        if not at_least or loaded.version < at_least:
            loaded = await self.incidents.load(incident_id, refresh=True)
        if not loaded.state.exists:
            raise d.NotFound(f"incident {incident_id} does not exist")
        return loaded.state, loaded.version

    async def put_team(self, team: d.Team, *, command_id: str, actor: str) -> tuple[d.Team, int]:
        """Defines or replaces a team (no event when unchanged); the long-ended overrides and
        swaps are pruned with it (so at least every start, which puts the file's teams)."""
        now = self.clock()

        def decide(current: d.Team | None) -> Sequence[d.TeamEvent]:
            pruned, current = self._prune(current, now)
            return [*pruned, *d.decide_team(current, team)]

        result = await self.run_on(
            CommandExecutor(self.teams),
            team.team_id,
            decide,
            now=now,
            command_id=command_id,
            actor=actor,
        )
        self._count_schedule_changes(team.team_id, result.events)
        assert result.state is not None
        return result.state, result.sequence

    def _prune(
        self, current: d.Team | None, now: datetime
    ) -> tuple[list[d.SchedulePruned], d.Team | None]:
        """The pruning event due on the team (if any), and the team after it."""
        if current is None:
            return [], None
        pruned = d.decide_prune(current, now, self.schedule_retention)
        for event in pruned:
            current = d.evolve_team(current, event, now)
        return pruned, current

    @staticmethod
    def _count_schedule_changes(team_id: str, events: Sequence[Any]) -> None:
        for event in events:
            if type(event) in _SCHEDULE_CHANGE:
                SCHEDULE_CHANGES.labels(team_id, _SCHEDULE_CHANGE[type(event)]).inc()

    async def _on_team(
        self,
        team_id: str,
        decide: Callable[[d.Team], Sequence[d.TeamEvent]],
        *,
        command_id: str,
        actor: str,
    ) -> tuple[d.Team, int]:
        """Decides and appends one command on an existing team: the team after it, and the
        append's sequence (see _team_command)."""
        result = await self._team_command(team_id, decide, command_id=command_id, actor=actor)
        assert result.state is not None
        return result.state, result.sequence

    async def _team_command(
        self,
        team_id: str,
        decide: Callable[[d.Team], Sequence[d.TeamEvent]],
        *,
        command_id: str,
        actor: str,
    ) -> CommandResult[d.Team | None]:
        """Decides and appends one command on an existing team (NOT_FOUND otherwise). The
        overrides and swaps that ended before the retention are pruned first, in the same
        append: the command is decided on the pruned team."""
        now = self.clock()

        def on(current: d.Team | None) -> Sequence[d.TeamEvent]:
            if current is None:
                raise d.NotFound(f"team {team_id} does not exist")
            pruned, current = self._prune(current, now)
            assert current is not None
            return [*pruned, *decide(current)]

        result = await self.run_on(
            CommandExecutor(self.teams),
            team_id,
            on,
            now=now,
            command_id=command_id,
            actor=actor,
        )
        self._count_schedule_changes(team_id, result.events)
        return result

    async def add_override(
        self,
        team_id: str,
        member_id: str,
        starts_at: datetime,
        ends_at: datetime,
        *,
        command_id: str,
        actor: str,
        caller: Principal | None = None,
    ) -> tuple[d.Override, int]:
        """Adds a one-off override: `member_id` on call for the team in [starts_at, ends_at).
        With a caller: on-call staff add one only for themselves or for a team they lead."""
        now = self.clock()
        by = caller.subject if caller else actor

        def decide(team: d.Team) -> list[d.OverrideAdded]:
            if caller is not None and not (
                caller.roles & d.SCHEDULE_ANY or caller.subject in (member_id, team.manager_id)
            ):
                raise PermissionDenied(
                    f"permission {OVERRIDE}: {SCHEDULE_RULE}", permission=OVERRIDE
                )
            return d.decide_override(team, member_id, starts_at, ends_at, by=by, now=now)

        team, sequence = await self._on_team(team_id, decide, command_id=command_id, actor=actor)
        return team.overrides[-1], sequence

    async def remove_override(
        self,
        team_id: str,
        override_id: str,
        *,
        command_id: str,
        actor: str,
        caller: Principal | None = None,
    ) -> tuple[d.Override, int]:
        """Removes a runtime override (returned as it was). With a caller: the rule of
        add_override for the override's member."""
        by = caller.subject if caller else actor

        def decide(team: d.Team) -> list[d.OverrideRemoved]:
            override = d.find_override(team, override_id)
            if caller is not None and not (
                caller.roles & d.SCHEDULE_ANY
                or caller.subject in (override.member_id, team.manager_id)
            ):
                raise PermissionDenied(
                    f"permission {REMOVE_OVERRIDE} is refused on override {override_id}: "
                    f"{SCHEDULE_RULE}",
                    permission=REMOVE_OVERRIDE,
                )
            return d.decide_override_removal(team, override_id, by=by)

        result = await self._team_command(team_id, decide, command_id=command_id, actor=actor)
        removed = [e.override for e in result.events if isinstance(e, d.OverrideRemoved)]
        if removed:
            return removed[0], result.sequence
        # A retried command is not decided again: it answers from the team as it was just
        # before its append.
        before = await self.teams.load_until(team_id, result.sequence - 1)
        assert before.state is not None
        return d.find_override(before.state, override_id), result.sequence

    async def request_swap(
        self,
        team_id: str,
        swap: d.ShiftSwap,
        *,
        command_id: str,
        actor: str,
        caller: Principal | None = None,
    ) -> tuple[d.ShiftSwap, int]:
        """Records a swap request (an empty requester: the caller); only a supervisor or an
        admin requests one for someone else."""
        if caller is not None:
            if not swap.requester_id:
                swap = replace(swap, requester_id=caller.subject)
            if swap.requester_id != caller.subject and not caller.roles & d.SCHEDULE_ANY:
                raise PermissionDenied(
                    f"permission {REQUEST_SWAP}: {SCHEDULE_RULE}", permission=REQUEST_SWAP
                )
        swap = replace(swap, requested_by=caller.subject if caller else actor)
        now = self.clock()
        team, sequence = await self._on_team(
            team_id,
            lambda team: d.decide_swap_request(team, swap, now=now),
            command_id=command_id,
            actor=actor,
        )
        return team.swaps[-1], sequence

    async def decide_swap(
        self,
        team_id: str,
        swap_id: str,
        action: str,
        *,
        command_id: str,
        actor: str,
        caller: Principal | None = None,
    ) -> tuple[d.ShiftSwap, int]:
        """Accepts, declines or cancels a requested swap (`action`: accept, decline, cancel):
        only its counterpart accepts or declines, only its requester cancels (or a supervisor
        or an admin)."""
        by = caller.subject if caller else actor
        permission = SWAP_PERMISSIONS[action]

        def decide(team: d.Team) -> Sequence[d.TeamEvent]:
            swap = d.find_swap(team, swap_id)
            if caller is not None and not d.may_decide_swap(
                swap, caller.subject, caller.roles, action
            ):
                raise PermissionDenied(
                    f"permission {permission} is refused on swap {swap_id}: {SCHEDULE_RULE}",
                    permission=permission,
                )
            return d.decide_swap(team, swap_id, action, by=by)

        team, sequence = await self._on_team(team_id, decide, command_id=command_id, actor=actor)
        return d.find_swap(team, swap_id), sequence

    async def who(self, team_id: str, at: datetime | None = None) -> tuple[d.Shift, datetime]:
        """Returns the shift running at `at` (default now) for the team, with what decided it
        (member_id "" when nobody is on call), and `at`."""
        team, _ = await self.team(team_id)
        at = at or self.clock()
        d.require(d.time_violations(at=at))
        around = d.timeline(
            team.schedule(), at - WHO_WINDOW, at + WHO_WINDOW, team.overrides, team.swaps
        )
        shift = next((s for s in around if s.starts_at <= at < s.ends_at), None)
        return shift or d.Shift("", at, at, d.DecidedBy.NOBODY), at

    async def member_shifts(
        self, team_id: str, member_id: str, start: datetime | None, end: datetime | None
    ) -> list[d.Shift]:
        """Returns a member's shifts in the team over [start, end) (default: the next 28 days;
        at most 366 days)."""
        team, _ = await self.team(team_id)
        if team.member(member_id) is None:
            raise d.NotFound(f"member {member_id} is not a member of team {team_id}")
        d.require(d.time_violations(start=start, end=end))
        start = start or self.clock()
        end = end or start + SHIFTS_WINDOW
        if end <= start:
            raise d.InvalidCommand([("end", "must be after start")])
        if end - start > d.MAX_RANGE:
            raise d.InvalidCommand([("end", "at most 366 days after start")])
        return d.member_shifts(team.schedule(), member_id, start, end, team.overrides, team.swaps)

    async def put_matrix(
        self, rows: Sequence[d.MatrixRow], *, command_id: str, actor: str
    ) -> tuple[d.Matrix, int]:
        """Replaces the response matrix; every team it names must exist."""
        named = {cell.team_id for row in rows for cell in row.cells}
        known = set(await self._teams(sorted(named), fresh=True))
        result = await self.run_on(
            CommandExecutor(self.matrix_repository),
            MATRIX_ID,
            lambda current: d.decide_matrix(current, rows, known),
            now=self.clock(),
            command_id=command_id,
            actor=actor,
        )
        matrix = d.Matrix(result.state.rows, result.sequence)
        preinitialise_metrics(matrix)  # a new type or team is counted from its first page
        return matrix, result.sequence

    async def fire_timer(self, timer: DueTimer) -> None:
        """Fires a page-acknowledgement, delayed-contact or response-deadline timer (appended
        once by its id), or a drill's run."""
        if timer.kind == DRILL_TIMER:
            await self.drills.start_run(
                timer.aggregate_id, command_id=timer.timer_id, actor="timer"
            )
            return
        command: d.Command
        if timer.kind == "page_ack":
            command = d.FirePageTimer(timer.data["page_id"])
        elif timer.kind == "page_contact":
            command = d.FireContactTimer(timer.data["page_id"], int(timer.data["delay_seconds"]))
        else:
            command = d.FireResponseTimer()
        await self.execute(timer.aggregate_id, command, command_id=timer.timer_id, actor="timer")

    async def load_defaults(self, *, oncall_file: str | None, matrix_file: str | None) -> None:
        """Applies the on-call file's teams and, if none exists yet, the default matrix."""
        for team in load_teams(oncall_file):
            await self.put_team(team, command_id="team-" + digest(asdict(team)), actor="config")
        if (await self.matrix(fresh=True)).version == 0 or matrix_file:
            rows = load_matrix(matrix_file)
            await self.put_matrix(
                rows, command_id="matrix-" + digest([asdict(r) for r in rows]), actor="config"
            )
        preinitialise_metrics(await self.matrix(fresh=True))
        await self.drills.load_defaults()


def acknowledging_as(command: d.Command, caller: Principal) -> d.Command:
    """Returns `command` acknowledging as the caller: an empty `member_id` becomes the caller's
    subject; another member's id is refused with PERMISSION_DENIED (nobody acknowledges as
    someone else)."""
    if not isinstance(command, d.AcknowledgePage):
        return command
    if not command.member_id:
        return replace(command, member_id=caller.subject)
    if command.member_id != caller.subject:
        raise PermissionDenied(
            f"permission {ACKNOWLEDGE}: a page is acknowledged by the caller; member_id must "
            "be empty or the caller's own id",
            permission=ACKNOWLEDGE,
        )
    return command


def authorize_acknowledgement(
    incident: d.Incident,
    command: d.AcknowledgePage,
    caller: Principal,
    teams: Mapping[str, d.Team],
    at: datetime,
) -> None:
    """Raises PermissionDenied, naming the permission and the rule, unless `caller` may
    acknowledge the page at `at` (rule 2 of docs/permissions.md). An unknown page is left to
    the decision (NOT_FOUND); a page whose team is gone is refused."""
    page = incident.pages.get(command.page_id)
    if page is None:
        return
    team = teams.get(page.team_id)
    if team is None or not d.may_acknowledge(page, team, caller.subject, caller.roles, at):
        raise PermissionDenied(
            f"permission {ACKNOWLEDGE} is refused on page {page.page_id}: {ACKNOWLEDGE_RULE}",
            permission=ACKNOWLEDGE,
        )


def _paged_team(incident: d.Incident, command: d.Command) -> list[str]:
    """Returns the team of the page `command` acknowledges, which the rule needs ([] if none)."""
    if isinstance(command, d.AcknowledgePage) and command.page_id in incident.pages:
        return [incident.pages[command.page_id].team_id]
    return []


def _team_of(incident: d.Incident, notice_id: str) -> str:
    page = incident.pages.get(notice_id)
    if page is not None:
        return page.team_id
    return incident.notices.get(notice_id, ("unknown", ()))[0]


def _acked_before(incident: d.Incident, page: d.PageState) -> bool:
    return any(
        other.acknowledged_at
        and other.acknowledged_at < (page.acknowledged_at or other.acknowledged_at)
        for other in incident.pages.values()
        if other.team_id == page.team_id and other.page_id != page.page_id
    )


# ------------------------------------------------------------------------- edge use cases

# The domain names pages `<incident id>-p<n>`, so a page id says which incident it belongs to.
PAGE_ID = re.compile(rf"(?P<incident>{AGGREGATE_ID.pattern})-p[0-9]+")  # fullmatch only


def incident_of_page(page_id: str) -> str:
    """Returns the id of the incident a page belongs to; NOT_FOUND for a malformed page id."""
    match = PAGE_ID.fullmatch(page_id)
    if not match:
        raise NotFound(f"page {page_id!r} does not exist")
    return match["incident"]


# ------------------------------------------------------------------------- drills

DRILL_RUNS = Counter(
    "careops_drill_runs_total",
    "Drill runs by scenario and outcome (started: its drill incident was declared; failed).",
    ["scenario", "outcome"],
)
# Rule 9 of docs/permissions.md: on-call staff schedule only drills that page a team they lead.
SCHEDULE_DRILL = "incident.drill.schedule"
RUN_DRILL = "incident.drill.run"
CANCEL_DRILL = "incident.drill.cancel"
DRILL_RULE = (
    "on-call staff schedule, run or cancel a drill only when they lead (manage) a team the "
    "scenario's incident type pages; supervisors and admins any drill"
)
DRILL_ANY = frozenset({"supervisor", "admin"})


class Drills:
    """The drill use cases (docs/drills.md): scenarios on the log, scheduled drills whose runs
    declare drill incidents through the incident app, and their reports."""

    def __init__(self, app: IncidentApp, store: EventStore) -> None:
        self._app = app
        self.repository = AggregateRepository(store, DRILL)
        self.scenarios_repository = AggregateRepository(store, SCENARIOS)

    async def scenarios(self, *, fresh: bool = True) -> tuple[Mapping[str, d.DrillScenario], int]:
        """Returns the drill scenarios by id and their version (stream sequence)."""
        loaded = await self.scenarios_repository.load(SCENARIOS_ID, refresh=fresh)
        return loaded.state, loaded.version

    async def put_scenarios(
        self, scenarios: Sequence[d.DrillScenario], *, command_id: str, actor: str
    ) -> tuple[Mapping[str, d.DrillScenario], int]:
        """Replaces the drill scenarios (no event when unchanged)."""
        result = await self._app.run_on(
            CommandExecutor(self.scenarios_repository),
            SCENARIOS_ID,
            lambda current: d.decide_scenarios(current, scenarios),
            now=self._app.clock(),
            command_id=command_id,
            actor=actor,
        )
        preinitialise(DRILL_RUNS, list(result.state), ("started", "failed"))
        return result.state, result.sequence

    async def load_defaults(self) -> None:
        """Puts the built-in scenarios (004 §7) when none are on the log yet."""
        current, version = await self.scenarios()
        if version == 0:
            scenarios = d.DEFAULT_SCENARIOS
            command_id = "drill-scenarios-" + digest([asdict(s) for s in scenarios])
            current, _ = await self.put_scenarios(scenarios, command_id=command_id, actor="config")
        preinitialise(DRILL_RUNS, list(current), ("started", "failed"))

    async def get(self, drill_id: str) -> tuple[d.Drill, int]:
        loaded = await self.repository.load(drill_id, refresh=True)
        if not loaded.state.exists:
            raise d.NotFound(f"drill {drill_id} does not exist")
        return loaded.state, loaded.version

    async def _authorize(
        self, caller: Principal | None, incident_type: str, permission: str
    ) -> None:
        """Raises PermissionDenied (naming `permission`) unless `caller` may schedule, run or
        cancel a drill of `incident_type` (None: no data rule)."""
        if caller is None or caller.roles & DRILL_ANY:
            return
        row = (await self._app.matrix()).rows.get(incident_type)
        teams = await self._app._teams([cell.team_id for cell in row.cells] if row else [])
        if not any(team.manager_id == caller.subject for team in teams.values()):
            raise PermissionDenied(
                f"permission {permission} is refused: {DRILL_RULE}", permission=permission
            )

    async def schedule(
        self,
        drill_id: str,
        scenario_id: str,
        at: datetime | None,
        recurrence: d.Recurrence | None,
        *,
        command_id: str,
        actor: str,
        caller: Principal | None = None,
        permission: str = SCHEDULE_DRILL,
    ) -> CommandResult[d.Drill]:
        """Schedules a drill of a scenario; its timer runs it when due."""
        scenarios, version = await self.scenarios()
        scenario = scenarios.get(scenario_id)
        if scenario is not None:
            await self._authorize(caller, scenario.incident_type, permission)
        matrix = await self._app.matrix()
        now = self._app.clock()
        return await self._app.run_on(
            CommandExecutor(self.repository),
            drill_id,
            lambda state: d.decide_schedule(
                state,
                scenario,
                scenario_id,
                at,
                recurrence,
                frozenset(matrix.rows),
                scenarios_version=version,
                now=now,
            ),
            now=now,
            command_id=command_id,
            actor=actor,
        )

    async def run_now(
        self,
        drill_id: str,
        scenario_id: str,
        *,
        command_id: str,
        actor: str,
        caller: Principal | None = None,
    ) -> tuple[d.Drill, d.Incident, int]:
        """Schedules a one-off drill at now and runs it: returns the drill, its incident and the
        sequence of the run's append."""
        now = self._app.clock()
        await self.schedule(
            drill_id,
            scenario_id,
            now,
            d.Recurrence.ONCE,
            command_id=f"{command_id}-schedule",
            actor=actor,
            caller=caller,
            permission=RUN_DRILL,
        )
        sequence = await self.start_run(drill_id, command_id=command_id, actor=actor, now=now)
        drill, _ = await self.get(drill_id)
        incident, _ = await self._app.get(d.run_of(drill).incident_id)
        return drill, incident, sequence

    async def start_run(
        self, drill_id: str, *, command_id: str, actor: str, now: datetime | None = None
    ) -> int:
        """Runs the drill's due run: declares its drill incident (id derived from the run, so a
        retry or a second replica declares it once), then records the run; returns the
        sequence of the run's record (0: nothing was due)."""
        now = now or self._app.clock()
        state = (await self.repository.load(drill_id, refresh=True)).state
        run = d.due_run(state, now)
        if run is None or state.scenario is None:
            return 0
        scenario = state.scenario
        declared, error = True, ""
        try:
            await self._app.execute(
                state.run_id(run),
                d.DeclareIncident(
                    incident_id=state.run_id(run),
                    type=scenario.incident_type,
                    title=f"Drill: {scenario.title}"[: d.MAX_TITLE],
                    description=scenario.description,
                    source=d.Source.MANUAL,
                    factors=scenario.factors,
                    drill=True,
                ),
                command_id=f"{command_id}-declare",
                actor=actor,
            )
        except d.IncidentAlreadyExists:
            pass  # declared by an earlier attempt of this run; record it
        except d.InvalidCommand as exc:
            declared, error = False, str(exc)
            log.error("drill run refused", extra={"drill": drill_id, "run": run, "error": error})
        result = await self._app.run_on(
            CommandExecutor(self.repository),
            drill_id,
            lambda current: d.decide_run(current, run, now, declared=declared, error=error),
            now=now,
            command_id=command_id,
            actor=actor,
        )
        if result.events:
            DRILL_RUNS.labels(scenario.scenario_id, "started" if declared else "failed").inc()
            log.info(
                "drill run",
                extra={"drill": drill_id, "run": run, "scenario": scenario.scenario_id},
            )
        return result.sequence

    async def cancel(
        self,
        drill_id: str,
        reason: str,
        *,
        command_id: str,
        actor: str,
        caller: Principal | None = None,
    ) -> CommandResult[d.Drill]:
        """Cancels a scheduled drill: no further runs (a running drill incident stays open)."""
        state, _ = await self.get(drill_id)
        if state.scenario is not None:
            await self._authorize(caller, state.scenario.incident_type, CANCEL_DRILL)
        return await self._app.run_on(
            CommandExecutor(self.repository),
            drill_id,
            lambda current: d.decide_cancel(current, reason),
            now=self._app.clock(),
            command_id=command_id,
            actor=actor,
        )

    async def record_figure(
        self,
        drill_id: str,
        incident_id: str,
        kind: d.TargetKind | None,
        value: float,
        *,
        command_id: str,
        actor: str,
    ) -> CommandResult[d.Drill]:
        """Records a figure measured outside the platform (reputation recovery) for a run."""
        await self.get(drill_id)
        return await self._app.run_on(
            CommandExecutor(self.repository),
            drill_id,
            lambda current: d.decide_figure(current, incident_id, kind, value),
            now=self._app.clock(),
            command_id=command_id,
            actor=actor,
        )

    async def report(self, drill_id: str, incident_id: str = "") -> d.DrillReport:
        """Returns a run's report (default: the latest run that declared an incident)."""
        drill, _ = await self.get(drill_id)
        run = d.run_of(drill, incident_id)
        incident, _ = await self._app.get(run.incident_id)
        return d.report(drill, incident, run, self._app.clock())


# ------------------------------------------------------------------------- alert intake

ALERT_GROUP: AggregateKind[intake.AlertGroup] = aggregate_kind(
    STREAM,
    registry.INCIDENT.prefix("alert_group"),
    "alert_group",
    initial=intake.initial_group,
    evolve=intake.evolve_group,
    codec=CODEC,
)
# The integration rules as versioned data (kind `integrations`):
# careops.incident.policy.integrations.
INTEGRATION_POLICY = PolicyKind(
    "integrations",
    config.parse_integration_policy,
    lambda rules: rules.version,
    (config.IntegrationPolicyError,),
)
ALERTS_RECEIVED = Counter(
    "careops_alerts_received_total",
    "Alerts received from integrations by source and outcome.",
    ["source", "outcome"],
)
preinitialise(
    ALERTS_RECEIVED,
    [kind.value for kind in intake.SourceKind],
    [outcome.value for outcome in intake.Outcome],
)


class Intake:
    """The alert intake use case (docs/incidents.md "Alert intake"): an integration's alerts
    decided on their alert group (the one place the decision is made, so replicas and retries
    agree), then the group's incident brought in line: declared, acknowledged, resolved."""

    def __init__(self, app: IncidentApp, store: EventStore) -> None:
        self._app = app
        self.repository = AggregateRepository(store, ALERT_GROUP)
        self.book = PolicyBook(
            store, STREAM, registry.INCIDENT.prefix("policy"), INTEGRATION_POLICY, clock=app.clock
        )
        self.default = config.parse_integration_policy(config.INTEGRATIONS_DEFAULT)

    async def rules(self) -> intake.IntegrationRules:
        """The integration rules in force; the built-in default until one is put."""
        return await self.book.in_force(self.default)

    async def seed(self) -> None:
        """Puts the built-in integrations policy as revision 1 if none exists yet; the teams
        the rules in force engage get their page series."""
        await self.book.seed(config.INTEGRATIONS_DEFAULT)
        preinitialise_teams(config.rule_teams(await self.rules()))

    async def put(self, document: str, **put: Any) -> PutOutcome[intake.IntegrationRules]:
        """Puts an integrations policy revision; every incident type it names must be a type
        of the response matrix."""
        rules = self.book.check(document)
        unknown = config.check_rule_types(rules, frozenset((await self._app.matrix()).rows))
        violations = []
        if unknown:
            violations.append(
                ("document", f"incident type(s) {', '.join(unknown)} not in the response matrix")
            )
        named = config.rule_teams(rules)
        missing = sorted(set(named) - set(await self._app._teams(named, fresh=True)))
        if missing:
            violations.append(("document", f"team(s) {', '.join(missing)} do not exist"))
        d.require(violations)
        outcome = await self.book.put(document, **put)
        preinitialise_teams(named)  # a rule's team is counted from its first page
        return outcome

    async def ingest(
        self,
        integration_id: str,
        source: intake.SourceKind,
        alerts: Sequence[intake.Alert],
        *,
        command_id: str,
        actor: str,
    ) -> tuple[list[tuple[intake.Alert, intake.Outcome, str]], int]:
        """Decides the alerts group by group; returns each alert (a webhook's as mapped) with
        its outcome and incident id, in order, and the sequence of the last append (0:
        nothing appended)."""
        integration = (await self.rules()).of(integration_id)
        violations: list[tuple[str, str]] = []
        if source is intake.SourceKind.WEBHOOK:
            alerts, violations = _mapped(integration.mapping, alerts)
        violations += intake.validate_alerts(integration_id, alerts) if not violations else []
        if integration.kind is not None and integration.kind is not source:
            violations.append(
                ("source", f"integration {integration_id} takes {integration.kind.value} alerts")
            )
        if violations:
            ALERTS_RECEIVED.labels(source.value, "rejected").inc(max(1, len(alerts)))
            d.require(violations)
        groups: dict[str, list[int]] = {}
        for index, alert in enumerate(alerts):
            groups.setdefault(alert.group_key, []).append(index)
        outcomes: list[tuple[intake.Outcome, str]] = [(intake.Outcome.DUPLICATE, "")] * len(alerts)
        sequence = 0
        now = self._app.clock()
        for indexes in groups.values():
            batch = [alerts[i] for i in indexes]
            decided, appended = await self._ingest_group(
                integration, source, batch, now=now, command_id=command_id, actor=actor
            )
            sequence = max(sequence, appended)
            for i, result in zip(indexes, decided, strict=True):
                outcomes[i] = result
        for outcome, _ in outcomes:
            ALERTS_RECEIVED.labels(source.value, outcome.value).inc()
        return [(a, o, i) for a, (o, i) in zip(alerts, outcomes, strict=True)], sequence

    async def _ingest_group(
        self,
        integration: intake.Integration,
        source: intake.SourceKind,
        batch: list[intake.Alert],
        *,
        now: datetime,
        command_id: str,
        actor: str,
    ) -> tuple[list[tuple[intake.Outcome, str]], int]:
        """Decides one group's alerts on its aggregate, then reconciles its incident."""
        decided: list[intake.Decision] = []

        def decide(state: intake.AlertGroup) -> list[intake.AlertGroupEvent]:
            # Run again on a conflict's retry: the outcomes are those of the last decision.
            decided[:] = [intake.decide_alerts(state, integration, source, batch, now)]
            return decided[0].events

        gid = intake.group_id(integration.integration_id, batch[0].group_key)
        result = await self._app.run_on(
            CommandExecutor(self.repository),
            gid,
            decide,
            now=now,
            command_id=f"{command_id}-{gid}",
            actor=actor,
        )
        sequence = result.sequence if result.events else 0
        outcomes = decided[0].outcomes if decided else [(intake.Outcome.DUPLICATE, "")] * len(batch)
        opener = next(
            (a for a, (o, _) in zip(batch, outcomes, strict=True) if o is intake.Outcome.OPENED),
            batch[0],
        )
        reconciled = await self._reconcile(result.state, integration, opener, actor)
        return outcomes, max(sequence, reconciled)

    async def _reconcile(
        self,
        group: intake.AlertGroup,
        integration: intake.Integration,
        alert: intake.Alert,
        actor: str,
    ) -> int:
        """Brings the group's incident in line with the group: declared while its episode is
        open, its pages acknowledged once the group is, resolved when the episode ended.
        Every command id derives from the incident, so a retry (or another replica) appends
        nothing twice; returns the last append's sequence (0: none)."""
        sequence = 0
        incident_id = group.incident_id or group.last_resolved
        if not incident_id:
            return 0
        incident = (await self._app.incidents.load(incident_id, refresh=True)).state
        if group.open and not incident.exists:
            rule = integration.rule_for(alert.labels)
            described = "\n".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
            try:
                result = await self._app.execute(
                    incident_id,
                    d.DeclareIncident(
                        incident_id=incident_id,
                        type=group.incident_type or rule.type,
                        title=intake.alert_title(alert.summary, group.group_key),
                        description=f"Alerts of {integration.integration_id}, group "
                        f"{group.group_key}\n{described}"[: d.MAX_TEXT],
                        source=d.Source.MONITORING,
                        factors=rule.factors,
                        extra_teams=rule.extra_teams,
                        level_floor=rule.level,
                    ),
                    command_id=f"alert-declare-{incident_id}",
                    actor=actor,
                )
                sequence = result.sequence
                incident = result.state
            except d.IncidentAlreadyExists:
                incident = (await self._app.incidents.load(incident_id, refresh=True)).state
            except d.InvalidCommand as exc:
                log.error(
                    "alert incident refused",
                    extra={
                        "incident": incident_id,
                        "integration": integration.integration_id,
                        "error": str(exc),
                    },
                )
                return 0
        if group.open and group.acknowledged and incident.exists:
            for page in incident.pages.values():
                if page.acknowledged_at is not None:
                    continue
                try:
                    result = await self._app.execute(
                        incident_id,
                        d.AcknowledgePage(
                            page.page_id,
                            page.member_id or f"integration:{integration.integration_id}",
                        ),
                        command_id=f"alert-ack-{page.page_id}",
                        actor=actor,
                    )
                    sequence = max(sequence, result.sequence if result.events else 0)
                except (d.IllegalTransition, d.NotFound):
                    pass
        if not group.open and incident.exists and incident.status in d.OPEN:
            try:
                result = await self._app.execute(
                    incident_id,
                    d.ResolveIncident(f"Resolved by integration {integration.integration_id}"),
                    command_id=f"alert-resolve-{incident_id}",
                    actor=actor,
                )
                sequence = max(sequence, result.sequence)
            except d.IllegalTransition:
                pass
        return sequence


def _mapped(
    mapping: intake.FieldMapping, alerts: Sequence[intake.Alert]
) -> tuple[list[intake.Alert], list[tuple[str, str]]]:
    """A generic webhook's raw bodies (the gateway forwards each as the label `body`) mapped by
    the integration's field mapping; alerts already mapped pass as they are."""
    mapped: list[intake.Alert] = []
    violations: list[tuple[str, str]] = []
    for index, alert in enumerate(alerts):
        if alert.dedup_key or "body" not in alert.labels:
            mapped.append(alert)
            continue
        try:
            body = json.loads(alert.labels["body"])
        except ValueError:
            violations.append((f"alerts[{index}].labels.body", "not JSON"))
            continue
        found, wrong = intake.map_webhook(mapping, body, index)
        violations += wrong
        if found is not None:
            mapped.append(found)
    return mapped, violations
