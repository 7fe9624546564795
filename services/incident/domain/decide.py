"""`decide`: the events an incident command produces, or the IncidentError refusing it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from incident.domain import escalation as esc
from incident.domain.commands import (
    AcknowledgePage,
    AddUpdate,
    AssignRole,
    CloseIncident,
    Command,
    DeclareIncident,
    EscalateIncident,
    FireContactTimer,
    FirePageTimer,
    FireResponseTimer,
    LinkTickets,
    NotifyCustomers,
    PublishStatement,
    ReassessIncident,
    RecordDeliveries,
    RecordDelivery,
    RecordDeliveryBatch,
    ResolveIncident,
)
from incident.domain.errors import IllegalTransition, IncidentAlreadyExists, NotFound, require
from incident.domain.events import (
    CustomersNotificationDecided,
    EscalationExhausted,
    IncidentClosed,
    IncidentDeclared,
    IncidentEscalated,
    IncidentEvent,
    IncidentReassessed,
    IncidentResolved,
    NotificationDelivered,
    NotificationFailed,
    PageAcknowledged,
    PageContactsDue,
    PageEscalated,
    PageRequested,
    ResponseDeadlineMissed,
    RoleAssigned,
    StatementPublished,
    TeamEngaged,
    TeamInformed,
    TicketsLinked,
    UpdateAdded,
)
from incident.domain.incident import Incident, evolve
from incident.domain.matrix import Matrix, MatrixCell, effective_engagement
from incident.domain.notices import MAX_SEGMENTS, SEGMENT, needs_statement, render
from incident.domain.oncall import Team
from incident.domain.risk import RiskFactors, RiskModel, validate_factors
from incident.domain.values import (
    HIGHER,
    ID_PATTERN,
    MAX_TEXT,
    MAX_TITLE,
    OPEN,
    ROLE_PATTERN,
    ContactKind,
    Engagement,
    Level,
    Source,
    Status,
)


@dataclass(frozen=True)
class Context:
    """What decide may consult: the time, the risk model, the matrix and the teams."""

    now: datetime
    risk: RiskModel
    matrix: Matrix
    teams: Mapping[str, Team]


def decide(state: Incident, command: Command, ctx: Context) -> list[IncidentEvent]:
    """Returns the events of a command; raises an IncidentError when it is not allowed."""
    if isinstance(command, DeclareIncident):
        return _declare(state, command, ctx)
    if not state.exists:
        raise NotFound(f"incident {state.incident_id} does not exist")
    return _HANDLERS[type(command)](state, command, ctx)  # type: ignore[operator]


def _text(name: str, value: str, *, required: bool, limit: int) -> list[tuple[str, str]]:
    """Returns the violations of a text field: required and at most `limit` characters."""
    if required and not value.strip():
        return [(name, "must not be empty")]
    if len(value) > limit:
        return [(name, f"must be at most {limit} characters")]
    return []


def _declare(state: Incident, command: DeclareIncident, ctx: Context) -> list[IncidentEvent]:
    """Declares the incident and engages the matrix row's teams at its level."""
    violations = _text("title", command.title, required=True, limit=MAX_TITLE)
    violations += _text("description", command.description, required=False, limit=MAX_TEXT)
    violations += validate_factors(command.factors)
    if command.type not in ctx.matrix.rows:
        known = ", ".join(sorted(ctx.matrix.rows)) or "none"
        violations.append(("type", f"unknown incident type {command.type!r}; known: {known}"))
    violations += _extra_team_violations(command.extra_teams)
    require(violations)
    if state.exists:
        raise IncidentAlreadyExists(f"incident {state.incident_id} already exists")
    factors = command.factors or RiskFactors()
    index = ctx.risk.index(factors)
    level = at_least(ctx.risk.level(index), command.level_floor)
    declared = IncidentDeclared(
        incident_id=state.incident_id,
        type=command.type,
        title=command.title.strip(),
        description=command.description,
        source=command.source or Source.MANUAL,
        factors=factors,
        risk_index=index,
        level=level,
        drill=command.drill,
        response_due_at=ctx.risk.response_due(level, ctx.now),
        matrix_version=ctx.matrix.version,
        ticket_ids=command.ticket_ids,
        customer_ids=command.customer_ids,
        surge_key=command.surge_key,
        extra_teams=command.extra_teams,
        level_floor=command.level_floor,
    )
    fresh = evolve(state, declared, ctx.now)
    return [declared, *_engage(fresh, level, ctx)]


_LEVEL_ORDER = (Level.C, Level.B, Level.A)
MAX_EXTRA_TEAMS = 10


def at_least(level: Level, floor: Level | None) -> Level:
    """The higher of `level` and `floor` (None: `level`)."""
    if floor is None:
        return level
    return max(level, floor, key=_LEVEL_ORDER.index)


def _extra_team_violations(cells: tuple[MatrixCell, ...]) -> list[tuple[str, str]]:
    violations: list[tuple[str, str]] = []
    if len(cells) > MAX_EXTRA_TEAMS:
        violations.append(("extra_teams", f"at most {MAX_EXTRA_TEAMS} teams"))
    if len({cell.team_id for cell in cells}) != len(cells):
        violations.append(("extra_teams", "each team at most once"))
    for index, cell in enumerate(cells[:MAX_EXTRA_TEAMS]):
        if not ID_PATTERN.fullmatch(cell.team_id):
            violations.append((f"extra_teams[{index}].team_id", "a team id like payments"))
        if cell.engagement is None:
            violations.append((f"extra_teams[{index}].engagement", "unspecified"))
    return violations


def engaged_cells(state: Incident, matrix: Matrix) -> list[MatrixCell]:
    """The matrix row's cells and the incident's extra teams (a team in both: the stronger
    engagement), red first."""
    row = matrix.rows.get(state.type)
    strongest: dict[str, Engagement] = {}
    for cell in (*(row.cells if row else ()), *state.extra_teams):
        engagement = cell.engagement or Engagement.GREY
        known = strongest.get(cell.team_id)
        if known is None or _RANK[engagement] < _RANK[known]:
            strongest[cell.team_id] = engagement
    cells = [MatrixCell(team_id, engagement) for team_id, engagement in strongest.items()]
    return sorted(cells, key=lambda c: _RANK[c.engagement or Engagement.GREY])


def _engage(state: Incident, level: Level, ctx: Context) -> list[IncidentEvent]:
    """Engages the matrix row's teams and the incident's extra teams at `level`: pages those
    not yet paged, informs the rest."""
    events: list[IncidentEvent] = []
    cells = engaged_cells(state, ctx.matrix)
    page_number = len(state.pages)
    notice_number = len(state.notices)
    for cell in cells:
        team = ctx.teams.get(cell.team_id)
        engagement, paged = effective_engagement(cell.engagement or Engagement.GREY, level)
        already = state.teams.get(cell.team_id)
        if already is not None and (already.paged or not paged):
            continue
        events.append(TeamEngaged(cell.team_id, engagement, paged))
        if team is None:
            continue
        member = team.on_call(ctx.now)
        if paged:
            chosen = esc.route(team, level, ctx.now)
            start = esc.first(chosen) or (0, 0)
            pages = _pages(state, team, chosen, start, engagement, page_number, "", ctx)
            events += pages
            page_number += len(pages)
        elif already is None:
            events.append(
                TeamInformed(
                    team.team_id,
                    member,
                    team.contacts_of(member),
                    f"{state.incident_id}-n{notice_number}",
                )
            )
            notice_number += 1
    return events


def _pages(
    state: Incident,
    team: Team,
    chosen: esc.Route,
    at_step: tuple[int, int],
    engagement: Engagement,
    page_number: int,
    escalated_from: str,
    ctx: Context,
) -> list[PageRequested]:
    """Returns the pages of one step: one per member the step targets (a whole team is paged
    at once), each with the member's contact plan; its contacts are those due at once."""
    step, round_ = at_step
    target = chosen.policy.steps[step]
    recipients = esc.recipients(team, target.target, ctx.now, ctx.teams) or (
        esc.Recipient("", None),
    )
    due = esc.ack_due(chosen, step, ctx.now)
    pages = []
    for offset, recipient in enumerate(recipients):
        plan = esc.contact_plan(recipient.member)
        pages.append(
            PageRequested(
                page_id=f"{state.incident_id}-p{page_number + offset}",
                team_id=team.team_id,
                member_id=recipient.member_id,
                step=step,
                round=round_,
                contacts=esc.due_now(plan, 0),
                ack_due_at=due,
                engagement=engagement,
                escalated_from=escalated_from,
                policy_id=chosen.policy.policy_id,
                plan=plan if any(entry.delay_seconds for entry in plan) else (),
            )
        )
    return pages


_RANK = {Engagement.RED: 0, Engagement.YELLOW: 1, Engagement.GREY: 2}


def _not_in(state: Incident, allowed: frozenset[Status], action: str) -> None:
    """Raises IllegalTransition unless the incident's status is in `allowed`."""
    if state.status not in allowed:
        raise IllegalTransition(
            f"cannot {action} incident {state.incident_id}: it is {state.status.value}"
        )


def _reassess(state: Incident, command: ReassessIncident, ctx: Context) -> list[IncidentEvent]:
    """Reassesses from new factors; a higher level engages more teams."""
    violations = validate_factors(command.factors)
    violations += _text("reason", command.reason, required=True, limit=MAX_TITLE)
    require(violations)
    _not_in(state, OPEN, "reassess")
    factors = command.factors or RiskFactors()
    index = ctx.risk.index(factors)
    level = ctx.risk.level(index)
    assert state.declared_at is not None
    due = ctx.risk.response_due(level, state.declared_at)
    event = IncidentReassessed(factors, index, state.level, level, command.reason, due)
    return [event, *_engage(evolve(state, event, ctx.now), level, ctx)]


def _escalate(state: Incident, command: EscalateIncident, ctx: Context) -> list[IncidentEvent]:
    """Raises the level by one and engages the teams of the new level."""
    require(_text("reason", command.reason, required=True, limit=MAX_TITLE))
    _not_in(state, OPEN, "escalate")
    higher = HIGHER.get(state.level)
    if higher is None:
        raise IllegalTransition(f"incident {state.incident_id} is already level A")
    assert state.declared_at is not None
    due = ctx.risk.response_due(higher, state.declared_at)
    event = IncidentEscalated(state.level, higher, command.reason, due)
    return [event, *_engage(evolve(state, event, ctx.now), higher, ctx)]


def _assign_role(state: Incident, command: AssignRole, ctx: Context) -> list[IncidentEvent]:
    """Assigns a role; nothing when the member already has it."""
    violations = (
        [] if ROLE_PATTERN.fullmatch(command.role) else [("role", "like incident_commander")]
    )
    violations += _text("member_id", command.member_id, required=True, limit=100)
    require(violations)
    _not_in(state, OPEN | {Status.RESOLVED}, "assign a role in")
    if state.roles.get(command.role) == command.member_id:
        return []
    return [RoleAssigned(command.role, command.member_id)]


def _add_update(state: Incident, command: AddUpdate, ctx: Context) -> list[IncidentEvent]:
    """Adds a progress update to an open or resolved incident."""
    violations = _text("message", command.message, required=True, limit=MAX_TEXT)
    violations += _text("status_note", command.status_note, required=False, limit=MAX_TITLE)
    violations += _text(
        "public_statement_draft", command.public_statement_draft, required=False, limit=MAX_TEXT
    )
    require(violations)
    _not_in(state, OPEN | {Status.RESOLVED}, "update")
    return [UpdateAdded(command.message, command.status_note, command.public_statement_draft)]


def _acknowledge(state: Incident, command: AcknowledgePage, ctx: Context) -> list[IncidentEvent]:
    """Acknowledges a page; nothing when it already was."""
    require(_text("member_id", command.member_id, required=True, limit=100))
    page = state.pages.get(command.page_id)
    if page is None:
        raise NotFound(f"page {command.page_id} does not exist")
    if page.acknowledged_at is not None:
        return []
    _not_in(state, OPEN | {Status.RESOLVED}, "acknowledge a page of")
    return [PageAcknowledged(command.page_id, command.member_id)]


def _resolve(state: Incident, command: ResolveIncident, ctx: Context) -> list[IncidentEvent]:
    """Resolves an open incident."""
    require(_text("summary", command.summary, required=False, limit=MAX_TEXT))
    _not_in(state, OPEN, "resolve")
    return [IncidentResolved(command.summary)]


def _close(state: Incident, command: CloseIncident, ctx: Context) -> list[IncidentEvent]:
    """Closes a resolved incident; the review needs a root cause and a prevention action."""
    review = command.review
    violations = []
    if review is None or not review.root_cause.strip():
        violations.append(("review.root_cause", "a post-incident review needs the root cause"))
    elif not any(action.strip() for action in review.prevention_actions):
        violations.append(("review.prevention_actions", "name at least one prevention action"))
    require(violations)
    _not_in(state, frozenset({Status.RESOLVED}), "close")
    return [IncidentClosed(review)]


def _link(state: Incident, command: LinkTickets, ctx: Context) -> list[IncidentEvent]:
    """Links the tickets and customers not linked yet."""
    new_tickets = tuple(t for t in command.ticket_ids if t not in state.ticket_ids)
    new_customers = tuple(c for c in command.customer_ids if c not in state.customer_ids)
    if not new_tickets and not new_customers:
        return []
    return [TicketsLinked(new_tickets, new_customers)]


def _publish(state: Incident, command: PublishStatement, ctx: Context) -> list[IncidentEvent]:
    """Publishes the next statement version; nothing when it repeats the latest word for word."""
    violations = _text("headline", command.headline, required=True, limit=MAX_TITLE)
    violations += _text("text", command.text, required=True, limit=MAX_TEXT)
    violations += _text("headline_en", command.headline_en, required=False, limit=MAX_TITLE)
    violations += _text("text_en", command.text_en, required=False, limit=MAX_TEXT)
    require(violations)
    _not_in(state, OPEN | {Status.RESOLVED}, "publish a statement for")
    wording = (
        command.headline.strip(),
        command.text.strip(),
        command.headline_en.strip(),
        command.text_en.strip(),
    )
    latest = state.statements[-1] if state.statements else None
    if latest is not None and wording == (
        latest.headline,
        latest.text,
        latest.headline_en,
        latest.text_en,
    ):
        return []
    headline, text, headline_en, text_en = wording
    version = len(state.statements) + 1
    return [StatementPublished(version, headline, text, command.published_by, headline_en, text_en)]


def _notify(state: Incident, command: NotifyCustomers, ctx: Context) -> list[IncidentEvent]:
    """Decides to tell the affected customers with a template quoting the latest statement."""
    violations: list[tuple[str, str]] = []
    if command.template is None:
        violations.append(("template_id", f"no template {command.template_id!r}"))
    if len(command.segments) > MAX_SEGMENTS:
        violations.append(("segments", f"at most {MAX_SEGMENTS}"))
    for index, segment in enumerate(command.segments):
        if not SEGMENT.fullmatch(segment):
            violations.append((f"segments[{index}]", "a customer tier such as high_value"))
    require(violations)
    assert command.template is not None
    if state.drill:
        raise IllegalTransition(f"incident {state.incident_id} is a drill: no customer is told")
    _not_in(state, OPEN | {Status.RESOLVED}, "notify the customers of")
    segments = tuple(dict.fromkeys(command.segments))
    if not state.customer_ids and not state.ticket_ids and not segments:
        raise IllegalTransition(
            f"incident {state.incident_id} has no linked customers or tickets: name segments"
        )
    statement = state.statements[-1] if state.statements else None
    if statement is None and needs_statement(command.template):
        raise IllegalTransition(
            f"template {command.template_id} quotes the public statement: publish one first"
        )
    notice = render(command.template, state, statement)
    return [
        CustomersNotificationDecided(
            notification_id=f"{state.incident_id}-c{len(state.customer_notifications)}",
            template_id=command.template_id,
            statement_version=statement.version if statement else 0,
            decided_by=command.decided_by,
            customer_ids=state.customer_ids,
            ticket_ids=state.ticket_ids,
            segments=segments,
            subject=notice.subject,
            body=notice.body,
            subject_en=notice.subject_en,
            body_en=notice.body_en,
            templates_version=command.templates_version,
        )
    ]


def _record_delivery(state: Incident, command: RecordDelivery, ctx: Context) -> list[IncidentEvent]:
    """Records a delivery outcome once per notice and contact kind."""
    if command.notice_id not in state.pages and command.notice_id not in state.notices:
        raise NotFound(f"notification {command.notice_id} does not exist")
    if command.kind in state.deliveries_of(command.notice_id):
        return []
    if command.error:
        failed = NotificationFailed(
            command.notice_id, command.kind, command.attempts, command.error
        )
        return [failed, *_next_channel(state, command.notice_id, command.kind)]
    return [NotificationDelivered(command.notice_id, command.kind, command.attempts)]


def _next_channel(state: Incident, page_id: str, kind: ContactKind) -> list[IncidentEvent]:
    """A page's channel failed: the member's plan's next channels are tried at once (while the
    page is unacknowledged, not escalated and the incident open)."""
    page = state.pages.get(page_id)
    if (
        page is None
        or page.acknowledged_at is not None
        or page.escalated
        or state.status not in OPEN
        or state.team_acknowledged(page.team_id)
    ):
        return []
    delay = esc.next_after_failure(page.plan, kind, page.contacts_due)
    if delay is None:
        return []
    return [PageContactsDue(page.page_id, delay, esc.due_now(page.plan, delay))]


def _record_deliveries(
    state: Incident, command: RecordDeliveries, ctx: Context
) -> list[IncidentEvent]:
    """Records several delivery outcomes of one notice at once, each once per contact kind
    (the first outcome of a kind wins, as with one RecordDelivery per kind)."""
    events: list[IncidentEvent] = []
    seen: set[ContactKind] = set()
    for outcome in command.outcomes:
        if outcome.kind in seen:
            continue
        seen.add(outcome.kind)
        events += _record_delivery(
            state,
            RecordDelivery(command.notice_id, outcome.kind, outcome.attempts, outcome.error),
            ctx,
        )
    return events


def _record_delivery_batch(
    state: Incident, command: RecordDeliveryBatch, ctx: Context
) -> list[IncidentEvent]:
    """Records the outcomes of several notices, each as its RecordDeliveries would, against
    the state the earlier notices' events left (as one command after the other would)."""
    events: list[IncidentEvent] = []
    for notice in command.notices:
        recorded = _record_deliveries(state, notice, ctx)
        for event in recorded:
            state = evolve(state, event, ctx.now)
        events += recorded
    return events


def _fire_page(state: Incident, command: FirePageTimer, ctx: Context) -> list[IncidentEvent]:
    """Escalates an unacknowledged page (with the other pages of its step) to the chain's next
    step, or exhausts the chain."""
    page = state.pages.get(command.page_id)
    if (
        page is None
        or page.escalated
        or page.acknowledged_at is not None
        or page.ack_due_at > ctx.now
        or state.status not in OPEN
        or state.team_acknowledged(page.team_id)
    ):
        return []
    team = ctx.teams.get(page.team_id) or Team(page.team_id)
    chosen = esc.continuing(team, page.policy_id, state.level, ctx.now)
    step_pages = [
        other
        for other in state.pages.values()
        if other.team_id == page.team_id
        and (other.step, other.round) == (page.step, page.round)
        and not other.escalated
    ]
    events: list[IncidentEvent] = [
        PageEscalated(other.page_id, "not acknowledged in time") for other in step_pages
    ]
    following = esc.following(chosen, page.step, page.round)
    if following is None:
        return [*events, EscalationExhausted(page.team_id, page.page_id)]
    return [
        *events,
        *_pages(
            state,
            team,
            chosen,
            following,
            page.engagement,
            len(state.pages),
            page.page_id,
            ctx,
        ),
    ]


def _fire_contact(state: Incident, command: FireContactTimer, ctx: Context) -> list[IncidentEvent]:
    """Issues a page's contacts planned `delay_seconds` after it, unless the page (or its team)
    was acknowledged, it escalated, or the incident is no longer open."""
    page = state.pages.get(command.page_id)
    if (
        page is None
        or command.delay_seconds in page.contacts_due
        or page.acknowledged_at is not None
        or page.escalated
        or state.status not in OPEN
        or state.team_acknowledged(page.team_id)
        or page.requested_at + timedelta(seconds=command.delay_seconds) > ctx.now
    ):
        return []
    contacts = esc.due_now(page.plan, command.delay_seconds)
    if not contacts:
        return []
    return [PageContactsDue(page.page_id, command.delay_seconds, contacts)]


def _fire_response(
    state: Incident, command: FireResponseTimer, ctx: Context
) -> list[IncidentEvent]:
    """Records a missed response deadline while nobody has acknowledged."""
    due = state.response_due_at
    if (
        state.status is not Status.DECLARED
        or state.response_deadline_missed
        or due is None
        or due > ctx.now
    ):
        return []
    return [ResponseDeadlineMissed(state.level, due)]


_HANDLERS = {
    ReassessIncident: _reassess,
    AssignRole: _assign_role,
    AddUpdate: _add_update,
    AcknowledgePage: _acknowledge,
    EscalateIncident: _escalate,
    ResolveIncident: _resolve,
    CloseIncident: _close,
    LinkTickets: _link,
    PublishStatement: _publish,
    NotifyCustomers: _notify,
    RecordDelivery: _record_delivery,
    RecordDeliveries: _record_deliveries,
    RecordDeliveryBatch: _record_delivery_batch,
    FirePageTimer: _fire_page,
    FireResponseTimer: _fire_response,
    FireContactTimer: _fire_contact,
}
