"""`careops survey …`, `careops kpi …` (show, pauses, holds), `careops scorecard`,
`careops followups …`: quality."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import grpc
import typer
from careops.quality.v1 import quality_pb2 as pb
from careops.quality.v1 import quality_pb2_grpc
from careops.quality.v1 import types_pb2 as t
from careops.ticketing.v1 import types_pb2 as tt
from rich.table import Table

from careops_cli.client import call, channel, console, errors, print_message

survey_app = typer.Typer(help="Customer satisfaction surveys.", no_args_is_help=True)
kpi_app = typer.Typer(help="Service KPIs (docs/kpis.md).", no_args_is_help=True)
followups_app = typer.Typer(help="Follow-ups of negative feedback.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the response as JSON.")]
DaysOption = Annotated[int, typer.Option(help="Period: the last N days (0: all time).")]


def _stub(opened: grpc.Channel) -> quality_pb2_grpc.QualityServiceStub:
    return quality_pb2_grpc.QualityServiceStub(opened)


def _name(enum: Any, prefix: str, number: int) -> str:
    return str(enum.Name(number)).removeprefix(prefix + "_").lower()


def _enum(enum: Any, prefix: str, value: str, option: str) -> int:
    if not value:
        return 0
    try:
        return int(enum.Value(f"{prefix}_{value.upper()}"))
    except ValueError:
        names = [n.removeprefix(prefix + "_").lower() for n in enum.keys()[1:]]
        errors.print(f"[red]--{option}[/] must be one of {', '.join(names)}")
        raise typer.Exit(2) from None


def _period(days: int) -> pb.Period:
    period = pb.Period()
    if days:
        period.start.FromDatetime(datetime.now(UTC) - timedelta(days=days))
    return period


@survey_app.command("submit")
def submit(
    ticket_id: str,
    csat: Annotated[int, typer.Option(help="Satisfaction 1..5.")],
    nps: Annotated[int | None, typer.Option(help="Likelihood to recommend 0..10.")] = None,
    comment: str = "",
    as_json: JsonOption = False,
) -> None:
    """Submit the survey of a resolved ticket (one per ticket)."""
    request = pb.SubmitSurveyRequest(ticket_id=ticket_id, csat=csat, comment=comment)
    if nps is not None:
        request.nps = nps
    with channel() as opened:
        response = call(_stub(opened).SubmitSurvey, request)
    survey = response.survey
    if as_json:
        print_message(survey)
        return
    emotion = _name(t.Emotion, "EMOTION", survey.emotion)
    console.print(f"survey of [bold]{survey.ticket_id}[/]: CSAT {survey.csat}, emotion {emotion}")
    if survey.follow_up_required:
        due = survey.follow_up_due_at.ToDatetime(tzinfo=UTC).isoformat(timespec="minutes")
        console.print(f"[yellow]negative feedback[/]: follow-up due by {due}")


KPI_ROWS = (
    ("tickets opened", "tickets_opened", "{:.0f}"),
    ("tickets resolved", "tickets_resolved", "{:.0f}"),
    ("backlog", "backlog", "{:.0f}"),
    ("surveys", "surveys", "{:.0f}"),
    ("CSAT 4-5 share", "csat_satisfied_ratio", "{:.1%}"),
    ("CSAT mean", "csat_mean", "{:.2f}"),
    ("NPS", "nps", "{:+.1f}"),
    ("FCR", "fcr_ratio", "{:.1%}"),
    ("first response (mean s)", "first_response_seconds_mean", "{:.0f}"),
    ("resolution (mean s)", "resolution_seconds_mean", "{:.0f}"),
    ("AHT (s)", "aht_seconds", "{:.0f}"),
    ("first responses due", "first_responses_due", "{:.0f}"),
    ("SLA compliance", "sla_compliance_ratio", "{:.1%}"),
    ("SLA breaches", "sla_breaches", "{:.0f}"),
    ("escalation rate", "escalation_ratio", "{:.1%}"),
    ("reopen rate", "reopen_ratio", "{:.1%}"),
    ("survey response rate", "survey_response_ratio", "{:.1%}"),
    ("balanced quality score", "quality_score", "{:.1f}"),
)


def _kpi_table(kpis: pb.Kpis, title: str) -> Table:
    table = Table("KPI", "value", title=title)
    for label, name, fmt in KPI_ROWS:
        table.add_row(label, fmt.format(getattr(kpis, name)))
    for label, counts in (
        ("CSAT 1-5", kpis.csat_distribution),
        ("NPS 0-10", kpis.nps_distribution),
    ):
        if counts:
            table.add_row(label, " ".join(f"{c.score}:{c.count}" for c in counts))
    for item in kpis.yes_no:
        table.add_row(f"{item.template_id}/{item.question_id}", f"yes {item.yes}, no {item.no}")
    for crisis in kpis.crisis:
        if crisis.incidents:
            table.add_row(f"crisis level {crisis.level}", crisis_summary(crisis))
    return table


def crisis_summary(crisis: pb.CrisisKpis) -> str:
    """One level's crisis KPIs; a mean is shown only over the incidents it covers (a mean of 0 s
    would read as instant), e.g. "2 incidents, ack 600 s (1 of 2), resolve: none yet"."""

    def mean(label: str, count: int, seconds: float) -> str:
        if not count:
            return f"{label}: none yet"
        return f"{label} {seconds:.0f} s ({count} of {crisis.incidents})"

    return ", ".join(
        (
            f"{crisis.incidents} incidents",
            mean("ack", crisis.acknowledged, crisis.acknowledge_seconds_mean),
            mean("resolve", crisis.resolved, crisis.resolve_seconds_mean),
        )
    )


@kpi_app.command("show")
def show(
    agent: str = "",
    team: str = "",
    channel_name: Annotated[str, typer.Option("--channel", help="e.g. chat")] = "",
    ticket_type: Annotated[str, typer.Option("--type", help="e.g. complaint")] = "",
    priority: str = "",
    days: DaysOption = 7,
    as_json: JsonOption = False,
) -> None:
    """Show the KPIs of a period, narrowed by agent, team, channel, type or priority."""
    request = pb.GetKpisRequest(
        filter=pb.KpiFilter(
            agent_id=agent,
            team=team,
            channel=_enum(tt.Channel, "CHANNEL", channel_name, "channel"),  # type: ignore[arg-type]
            type=_enum(tt.TicketType, "TICKET_TYPE", ticket_type, "type"),  # type: ignore[arg-type]
            priority=_enum(tt.Priority, "PRIORITY", priority, "priority"),  # type: ignore[arg-type]
        ),
        period=_period(days),
    )
    with channel() as opened:
        response = call(_stub(opened).GetKpis, request)
    if as_json:
        print_message(response.kpis)
        return
    console.print(_kpi_table(response.kpis, f"KPIs, last {days} days" if days else "KPIs"))


PAUSE_COLUMNS = (
    "agent", "reason", "holds", "open", "tickets", "share", "paused 1st resp (h)",
    "paused resolution (h)", "before breach",
)  # fmt: skip


def _pause_cells(row: pb.PauseRow) -> list[str]:
    return [
        row.agent_id or "all",
        _name(tt.HoldReason, "HOLD_REASON", row.reason),
        str(row.holds),
        str(row.open_holds),
        f"{row.tickets} of {row.handled_tickets}",
        f"{row.ticket_share:.1%}",
        f"{row.first_response_paused_seconds / 3600:.2f}",
        f"{row.resolution_paused_seconds / 3600:.2f}",
        str(row.pauses_before_breach),
    ]


@kpi_app.command("pauses")
def pauses(
    agent: str = "",
    team: str = "",
    channel_name: Annotated[str, typer.Option("--channel", help="e.g. chat")] = "",
    days: DaysOption = 7,
    as_json: JsonOption = False,
) -> None:
    """Show who put tickets on hold, why, and how long that paused the SLA clocks (per agent and
    reason, then per reason; docs/kpis.md "Pauses")."""
    request = pb.GetPauseReportRequest(
        filter=pb.KpiFilter(
            agent_id=agent,
            team=team,
            channel=_enum(tt.Channel, "CHANNEL", channel_name, "channel"),  # type: ignore[arg-type]
        ),
        period=_period(days),
    )
    with channel() as opened:
        response = call(_stub(opened).GetPauseReport, request)
    if as_json:
        print_message(response)
        return
    title = f"pauses, last {days} days" if days else "pauses"
    table = Table(*PAUSE_COLUMNS, title=title)
    for row in [*response.rows, *response.totals]:
        table.add_row(*_pause_cells(row))
    console.print(table)


@kpi_app.command("holds")
def holds(
    ticket_id: Annotated[str, typer.Argument(help="A ticket's holds (or give --agent).")] = "",
    agent: Annotated[str, typer.Option(help="The holds this agent set.")] = "",
    days: DaysOption = 7,
    page_size: int = 50,
    as_json: JsonOption = False,
) -> None:
    """List holds, newest first: a ticket's, or those an agent set in the last N days."""
    request = pb.ListHoldsRequest(ticket_id=ticket_id, agent_id=agent, page_size=page_size)
    if agent:
        request.period.CopyFrom(_period(days))
    with channel() as opened:
        response = call(_stub(opened).ListHolds, request)
    if as_json:
        print_message(response)
        return
    table = Table(
        "ticket", "held by", "reason", "held", "ended", "paused min (1st resp / resolution)",
        "before breach",
    )  # fmt: skip
    for item in response.holds:
        ended = "still held"
        if item.ended_by:
            ended = f"{item.ended_by} {item.ended_at.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M}"
        paused = [
            f"{c.paused_seconds / 60:.0f}" if c.HasField("paused_seconds") else "?"
            for c in item.clocks
        ]
        before = [_name(tt.SlaClock, "SLA_CLOCK", c.clock) for c in item.clocks if c.before_breach]
        table.add_row(
            item.ticket_id,
            item.held_by,
            _name(tt.HoldReason, "HOLD_REASON", item.reason),
            item.held_at.ToDatetime(tzinfo=UTC).isoformat(timespec="minutes"),
            ended,
            " / ".join(paused),
            ", ".join(before) or "-",
        )
    console.print(table)
    if response.next_page_token:
        console.print("[dim]more holds: narrow the period or raise --page-size[/]")


def scorecard(
    agent: str = "",
    team: str = "",
    days: DaysOption = 30,
    as_json: JsonOption = False,
) -> None:
    """Show the balanced scorecard of an agent or a team."""
    if bool(agent) == bool(team):
        errors.print("[red]give exactly one of --agent or --team[/]")
        raise typer.Exit(2)
    request = pb.GetScorecardRequest(period=_period(days))
    if agent:
        request.agent_id = agent
    else:
        request.team = team
    with channel() as opened:
        response = call(_stub(opened).GetScorecard, request)
    if as_json:
        print_message(response)
        return
    console.print(_kpi_table(response.kpis, f"scorecard of {agent or team}"))
    table = Table("component", "value", "weight", "data")
    for item in response.components:
        table.add_row(
            item.name, f"{item.value:.3f}", f"{item.weight:.2f}", "yes" if item.present else "no"
        )
    console.print(table)
    console.print(f"[bold]balanced quality score {response.quality_score:.1f}[/] / 100")


@followups_app.command("list")
def list_followups(
    status: Annotated[str, typer.Option(help="pending, overdue or done; empty: all")] = "",
    as_json: JsonOption = False,
) -> None:
    """List the follow-ups negative surveys require (due 24 h after the survey)."""
    request = pb.ListFollowUpsRequest(
        status=_enum(t.FollowUpStatus, "FOLLOW_UP_STATUS", status, "status")  # type: ignore[arg-type]
    )
    with channel() as opened:
        response = call(_stub(opened).ListFollowUps, request)
    if as_json:
        print_message(response)
        return
    table = Table("ticket", "agent", "CSAT", "emotion", "due", "status")
    for item in response.follow_ups:
        table.add_row(
            item.ticket_id,
            item.agent_id or "-",
            str(item.csat),
            _name(t.Emotion, "EMOTION", item.emotion),
            item.due_at.ToDatetime(tzinfo=UTC).isoformat(timespec="minutes"),
            _name(t.FollowUpStatus, "FOLLOW_UP_STATUS", item.status),
        )
    console.print(table)


@followups_app.command("record")
def record_followup(
    ticket_id: str,
    agent: Annotated[str, typer.Option(help="Who called the customer back.")],
    note: Annotated[str, typer.Option(help="What was agreed.")],
    solved: Annotated[bool, typer.Option("--solved", help="The problem is solved.")] = False,
) -> None:
    """Record the follow-up of a negative survey."""
    request = pb.RecordFollowUpRequest(
        ticket_id=ticket_id, agent_id=agent, note=note, solved=solved
    )
    with channel() as opened:
        response = call(_stub(opened).RecordFollowUp, request)
    due = response.follow_up.due_at.ToDatetime(tzinfo=UTC)
    late = " (late)" if response.follow_up.done_at.ToDatetime(tzinfo=UTC) > due else ""
    console.print(f"follow-up of [bold]{ticket_id}[/] recorded{late}")


quality_app = typer.Typer(help="Surveys, KPIs, scorecards and follow-ups.", no_args_is_help=True)
quality_app.add_typer(survey_app, name="survey")
quality_app.add_typer(kpi_app, name="kpi")
quality_app.add_typer(followups_app, name="followups")
quality_app.command("scorecard")(scorecard)
