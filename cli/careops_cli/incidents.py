"""`careops incident …` and `careops oncall …`: declare and follow crises, watch and ack pages."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from google.protobuf import json_format
from rich.markup import escape
from rich.table import Table

from careops_cli.client import call, channel, console, errors, failure, print_message, report

incident_app = typer.Typer(help="Declare and follow incidents.", no_args_is_help=True)
oncall_app = typer.Typer(help="On-call staff: watch and acknowledge pages.", no_args_is_help=True)
team_app = typer.Typer(
    help="On-call teams: members, notification rules and escalation policies.",
    no_args_is_help=True,
)
oncall_app.add_typer(team_app, name="team")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the response as JSON.")]


def _name(enum: Any, prefix: str, number: int) -> str:
    return str(enum.Name(number)).removeprefix(prefix + "_").lower()


def _stub(opened: grpc.Channel) -> incident_pb2_grpc.IncidentServiceStub:
    return incident_pb2_grpc.IncidentServiceStub(opened)


def _show(incident: pb.Incident, as_json: bool) -> None:
    if as_json:
        print_message(incident)
        return
    level = _name(t.IncidentLevel, "INCIDENT_LEVEL", incident.level).upper()
    status = _name(t.IncidentStatus, "INCIDENT_STATUS", incident.status)
    console.print(
        f"[bold]{incident.incident_id}[/] level {level} {incident.type}: {incident.title} "
        f"({status}{', DRILL' if incident.drill else ''}); risk {incident.risk_index:.2f}"
    )
    table = Table("page", "team", "member", "engagement", "state", "deliveries")
    for page in incident.pages:
        state = "acked" if page.acknowledged else "escalated" if page.escalated else "waiting"
        deliveries = ", ".join(
            f"{_name(t.ContactKind, 'CONTACT_KIND', d.kind)}:"
            f"{'ok' if d.delivered else 'FAILED'}({d.attempts})"
            for d in page.deliveries
        )
        table.add_row(
            page.page_id,
            page.team_id,
            page.member_id,
            _name(t.Engagement, "ENGAGEMENT", page.engagement),
            state,
            deliveries or "-",
        )
    console.print(table)
    for statement in incident.statements:
        console.print(
            f"public statement v{statement.version} by {escape(statement.published_by)}: "
            f"{escape(statement.headline)}"
        )
    for notices in incident.customer_notices:  # set by GetIncident (`show`) only
        console.print(
            f"customers told by {escape(notices.channel)}: {notices.notified} notified, "
            f"{notices.failed} failed"
        )


@incident_app.command("declare")
def declare(
    incident_type: Annotated[str, typer.Option("--type", help="A type of the response matrix.")],
    title: Annotated[str, typer.Option(help="What is happening.")],
    description: str = "",
    users: Annotated[int, typer.Option(help="Users affected.")] = 0,
    core: Annotated[float, typer.Option(help="Core-system coefficient 0..1.")] = 0.0,
    elapsed: Annotated[float, typer.Option(help="Minutes since it began.")] = 0.0,
    exposure: Annotated[float, typer.Option(help="Sentiment / media exposure 0..1.")] = 0.0,
    drill: Annotated[bool, typer.Option("--drill", help="A drill: pages, but no KPIs.")] = False,
    tickets: Annotated[
        list[str] | None,
        typer.Option("--ticket", help="A ticket it affects (repeat); its customer's 360 shows it."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Declare an incident: the risk index sets its level, the matrix engages the teams."""
    request = pb.DeclareIncidentRequest(
        type=incident_type,
        title=title,
        description=description,
        source=t.INCIDENT_SOURCE_MANUAL,
        factors=t.RiskFactors(
            users_affected=users, core_system=core, elapsed_minutes=elapsed, exposure=exposure
        ),
        drill=drill,
        ticket_ids=tickets or [],
    )
    with channel() as opened:
        response = call(_stub(opened).DeclareIncident, request)
    _show(response.incident, as_json)


@incident_app.command("show")
def show(incident_id: str, as_json: JsonOption = False) -> None:
    """Show an incident with its pages and deliveries."""
    with channel() as opened:
        response = call(_stub(opened).GetIncident, pb.GetIncidentRequest(incident_id=incident_id))
    _show(response.incident, as_json)


@incident_app.command("list")
def list_incidents(
    open_only: Annotated[bool, typer.Option("--open", help="Only open incidents.")] = False,
    drills: Annotated[bool, typer.Option("--drills", help="Include drills.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List incidents, newest first."""
    request = pb.ListIncidentsRequest(open_only=open_only, include_drills=drills)
    with channel() as opened:
        response = call(_stub(opened).ListIncidents, request)
    if as_json:
        print_message(response)
        return
    table = Table("incident", "level", "status", "type", "title", "awaiting ack")
    for item in response.incidents:
        table.add_row(
            item.incident_id,
            _name(t.IncidentLevel, "INCIDENT_LEVEL", item.level).upper(),
            _name(t.IncidentStatus, "INCIDENT_STATUS", item.status),
            item.type,
            item.title,
            str(item.pages_awaiting_ack),
        )
    console.print(table)


@incident_app.command("resolve")
def resolve(incident_id: str, summary: str = "", as_json: JsonOption = False) -> None:
    """Resolve an incident."""
    request = pb.ResolveIncidentRequest(incident_id=incident_id, summary=summary)
    with channel() as opened:
        response = call(_stub(opened).ResolveIncident, request)
    _show(response.incident, as_json)


@incident_app.command("close")
def close(
    incident_id: str,
    root_cause: Annotated[str, typer.Option(help="Why it happened.")],
    action: Annotated[list[str], typer.Option(help="A prevention action (repeatable).")],
    kb: Annotated[str, typer.Option(help="Knowledge-base entry.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Close a resolved incident with its post-incident review."""
    review = t.PostIncidentReview(
        root_cause=root_cause, prevention_actions=action, knowledge_base_entry=kb
    )
    request = pb.CloseIncidentRequest(incident_id=incident_id, review=review)
    with channel() as opened:
        response = call(_stub(opened).CloseIncident, request)
    _show(response.incident, as_json)


@incident_app.command("publish")
def publish(
    incident_id: str,
    headline: Annotated[str, typer.Option(help="Public headline (Chinese, the source).")],
    text: Annotated[str, typer.Option(help="Public statement (Chinese, the source).")],
    headline_en: Annotated[str, typer.Option(help="English headline.")] = "",
    text_en: Annotated[str, typer.Option(help="English statement.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Publish the next version of the incident's public statement (the status page)."""
    request = pb.PublishStatementRequest(
        incident_id=incident_id,
        headline=headline,
        text=text,
        headline_en=headline_en,
        text_en=text_en,
    )
    with channel() as opened:
        response = call(_stub(opened).PublishStatement, request)
    if as_json:
        print_message(response.incident)
        return
    latest = response.incident.statements[-1]
    console.print(
        f"{incident_id}: statement v{latest.version} published: {escape(latest.headline)}"
    )


@incident_app.command("notify-customers")
def notify_customers(
    incident_id: str,
    template: Annotated[str, typer.Option(help="Template id, e.g. first_notice.")],
    segment: Annotated[
        list[str] | None, typer.Option(help="A customer tier also told (repeatable).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Tell the incident's affected customers (linked customers and tickets, segments)."""
    request = pb.NotifyCustomersRequest(
        incident_id=incident_id, template_id=template, segments=segment or []
    )
    with channel() as opened:
        response = call(_stub(opened).NotifyCustomers, request)
    if as_json:
        print_message(response)
        return
    console.print(f"{incident_id}: customers to be told ({response.notification_id})")


# A watch survives these (a restarted or unreachable incident service); others end it.
RECONNECT_ON = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
AlertKey = tuple[int, str, str]


@dataclass
class AlertCursor:
    """How far a watch got in the incident log: the sequence of the last alert shown and the
    alerts of that sequence already shown (one message may hold several)."""

    sequence: int = 0
    shown: set[AlertKey] = field(default_factory=set)

    def resume_after(self) -> int:
        """Returns the `after_sequence` to reconnect with: the last message again, so none of
        its alerts is lost (0, a fresh watch, before any alert)."""
        return max(self.sequence - 1, 0)

    def take(self, alert: pb.WatchAlertsResponse) -> bool:
        """Records `alert`; returns False if it was shown already."""
        key = (alert.kind, alert.page_id, alert.member_id)
        if alert.sequence < self.sequence or (
            alert.sequence == self.sequence and key in self.shown
        ):
            return False
        if alert.sequence > self.sequence:
            self.sequence, self.shown = alert.sequence, set()
        self.shown.add(key)
        return True


def follow_alerts(
    open_stream: Callable[[int], AbstractContextManager[Iterable[pb.WatchAlertsResponse]]],
    show: Callable[[pb.WatchAlertsResponse], None],
    *,
    count: int = 0,
    sleep: Callable[[float], None] = time.sleep,
    first_delay: float = 0.5,
    max_delay: float = 10.0,
) -> None:
    """Shows every alert once, reconnecting with a doubling delay whenever the stream breaks
    and resuming where it was (`open_stream(after_sequence)`); returns after `count` alerts
    (0: never). Raises grpc.RpcError for a status that retrying cannot fix."""
    cursor = AlertCursor()
    shown = 0
    delay = first_delay
    while True:
        try:
            with open_stream(cursor.resume_after()) as alerts:
                for alert in alerts:
                    delay = first_delay
                    if not cursor.take(alert):
                        continue
                    show(alert)
                    shown += 1
                    if count and shown >= count:
                        return
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code not in RECONNECT_ON:
                raise
            errors.print(f"[yellow]{code.name}[/]: reconnecting in {delay:.1f} s")
        sleep(delay)
        delay = min(delay * 2, max_delay)


@contextmanager
def _alert_stream(team: str, after_sequence: int) -> Iterator[Iterable[pb.WatchAlertsResponse]]:
    """One WatchAlerts call on a fresh channel (a restarted server is found at once)."""
    with channel() as opened:
        request = pb.WatchAlertsRequest(team_id=team, after_sequence=after_sequence)
        stream = _stub(opened).WatchAlerts(request)
        try:
            yield stream
        finally:
            stream.cancel()


def _print_alert(alert: pb.WatchAlertsResponse, as_json: bool) -> None:
    if as_json:
        print_message(alert)
        return
    kind = _name(t.AlertKind, "ALERT_KIND", alert.kind).upper()
    level = _name(t.IncidentLevel, "INCIDENT_LEVEL", alert.level).upper()
    console.print(
        f"[bold red]{kind}[/] {alert.page_id} level {level} {alert.title} "
        f"-> {alert.member_id}{' (replayed)' if alert.replayed else ''}"
        f"{' [DRILL]' if alert.drill else ''}"
    )


@oncall_app.command("watch")
def watch(
    team: Annotated[str, typer.Option(help="Team to watch.")],
    count: Annotated[int, typer.Option(help="Exit after this many alerts (0: never).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Stream the team's alerts: first the pages still waiting, then new ones. Survives a
    restart of the platform: reconnects and resumes without losing or repeating an alert."""
    try:
        follow_alerts(
            lambda after: _alert_stream(team, after),
            lambda alert: _print_alert(alert, as_json),
            count=count,
        )
    except grpc.RpcError as exc:
        report(failure(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


@oncall_app.command("ack")
def ack(
    page_id: str,
    member: Annotated[str, typer.Option(help="Who acknowledges.")],
    as_json: JsonOption = False,
) -> None:
    """Acknowledge a page: the escalation chain stops."""
    request = pb.AcknowledgePageRequest(page_id=page_id, member_id=member)
    with channel() as opened:
        response = call(_stub(opened).AcknowledgePage, request)
    _show(response.incident, as_json)


def _show_team(team: t.Team, as_json: bool) -> None:
    if as_json:
        print_message(team)
        return
    console.print(f"[bold]{team.team_id}[/] {team.name} (version {team.version})")
    for member in team.members:
        rules = ", ".join(
            f"{_name(t.ContactKind, 'CONTACT_KIND', r.kind)}+{r.delay_seconds}s"
            for r in member.notification_rules
        )
        console.print(f"  member {member.member_id}: {rules or 'every contact point at once'}")

    def chain(policy: t.EscalationPolicy) -> str:
        steps = " -> ".join(f"{s.target} ({s.wait_seconds}s)" for s in policy.steps)
        return f"{steps or 'default chain'} x{policy.repeat or 1}"

    console.print(f"  escalation: {chain(team.escalation)}")
    for policy in team.policies:
        console.print(f"  policy {policy.policy_id}: {chain(policy)}")
    table = Table("rule", "levels", "window", "policy", "skip", "hold")
    for index, rule in enumerate(team.routing):
        levels = ",".join(_name(t.IncidentLevel, "INCIDENT_LEVEL", v).upper() for v in rule.levels)
        window = (
            f"{rule.from_time}-{rule.until_time} {rule.time_zone or 'UTC'}"
            if rule.until_time
            else "all day"
        )
        table.add_row(
            str(index),
            levels or "any",
            window,
            rule.policy_id or "escalation",
            ",".join(str(s) for s in rule.skip_steps) or "-",
            "yes" if rule.hold else "no",
        )
    if team.routing:
        console.print(table)


@team_app.command("show")
def team_show(team_id: str, as_json: JsonOption = False) -> None:
    """Show a team: members' notification rules, its policies and routing rules."""
    with channel() as opened:
        response = call(_stub(opened).GetTeam, pb.GetTeamRequest(team_id=team_id))
    _show_team(response.team, as_json)


@team_app.command("put")
def team_put(
    file: Annotated[Path, typer.Argument(help="The Team message as JSON (proto field names).")],
    as_json: JsonOption = False,
) -> None:
    """Define or replace a team from a JSON file (docs/incidents.md, Escalation policies)."""
    try:
        team = json_format.Parse(file.read_text(encoding="utf-8"), t.Team())
    except (OSError, json_format.ParseError) as exc:
        report(f"{file}: {exc}")
        raise typer.Exit(1) from None
    with channel() as opened:
        response = call(_stub(opened).PutTeam, pb.PutTeamRequest(team=team))
    _show_team(response.team, as_json)
