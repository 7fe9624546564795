"""`careops drill …`: schedule, run, list, cancel drills and read their reports (docs/drills.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import grpc
import typer
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from google.protobuf.timestamp_pb2 import Timestamp
from rich.table import Table

from careops_cli.client import call, channel, console, print_message, report

drill_app = typer.Typer(
    help="Drills: scheduled drill incidents and their reports.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the response as JSON.")]
RECURRENCES = ("once", "monthly", "quarterly", "yearly")


def _stub(opened: grpc.Channel) -> incident_pb2_grpc.IncidentServiceStub:
    return incident_pb2_grpc.IncidentServiceStub(opened)


def _name(enum: Any, prefix: str, number: int) -> str:
    return str(enum.Name(number)).removeprefix(prefix + "_").lower()


def _when(stamp: Timestamp) -> str:
    return stamp.ToDatetime().isoformat() + "Z" if stamp.seconds else "-"


def _show(drill: pb.Drill, as_json: bool) -> None:
    if as_json:
        print_message(drill)
        return
    status = _name(pb.DrillStatus, "DRILL_STATUS", drill.status)
    recurrence = _name(t.DrillRecurrence, "DRILL_RECURRENCE", drill.recurrence)
    console.print(
        f"[bold]{drill.drill_id}[/] {drill.scenario.scenario_id} ({status}, {recurrence}); "
        f"next {_when(drill.next_due_at)}; runs {len(drill.runs)}"
    )


@drill_app.command("schedule")
def schedule(
    scenario: Annotated[str, typer.Argument(help="single_point_failure, campaign_crisis, …")],
    at: Annotated[str, typer.Option(help="When, ISO 8601 with offset: 2026-06-01T02:00+08:00.")],
    every: Annotated[str, typer.Option(help="once, monthly, quarterly or yearly.")] = "once",
    as_json: JsonOption = False,
) -> None:
    """Schedule a drill of a scenario; when due it declares a drill incident that pages."""
    if every not in RECURRENCES:
        report(f"--every must be one of {', '.join(RECURRENCES)}")
        raise typer.Exit(2)
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        report(f"--at {at!r} is not an ISO 8601 time")
        raise typer.Exit(2) from None
    if when.tzinfo is None:
        report("--at needs a UTC offset (e.g. +08:00 or Z)")
        raise typer.Exit(2)
    stamp = Timestamp()
    stamp.FromDatetime(when)
    request = pb.ScheduleDrillRequest(
        scenario_id=scenario,
        at=stamp,
        recurrence=t.DrillRecurrence.Value("DRILL_RECURRENCE_" + every.upper()),
    )
    with channel() as opened:
        response = call(_stub(opened).ScheduleDrill, request)
    _show(response.drill, as_json)


@drill_app.command("run")
def run(scenario: str, as_json: JsonOption = False) -> None:
    """Run a drill of a scenario now (a drill incident that pages for real)."""
    with channel() as opened:
        response = call(_stub(opened).RunDrill, pb.RunDrillRequest(scenario_id=scenario))
    if as_json:
        print_message(response)
        return
    _show(response.drill, False)
    console.print(f"drill incident {response.incident.incident_id}")


@drill_app.command("list")
def list_drills(
    finished: Annotated[bool, typer.Option("--all", help="Also cancelled and done.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List drills, newest first."""
    with channel() as opened:
        response = call(_stub(opened).ListDrills, pb.ListDrillsRequest(include_finished=finished))
    if as_json:
        print_message(response)
        return
    table = Table("drill", "scenario", "status", "every", "next run", "runs", "last incident")
    for item in response.drills:
        table.add_row(
            item.drill_id,
            item.scenario_id,
            _name(pb.DrillStatus, "DRILL_STATUS", item.status),
            _name(t.DrillRecurrence, "DRILL_RECURRENCE", item.recurrence),
            _when(item.next_due_at),
            str(item.runs),
            item.last_incident_id or "-",
        )
    console.print(table)


@drill_app.command("cancel")
def cancel(drill_id: str, reason: str = "", as_json: JsonOption = False) -> None:
    """Cancel a scheduled drill (no further runs)."""
    request = pb.CancelDrillRequest(drill_id=drill_id, reason=reason)
    with channel() as opened:
        response = call(_stub(opened).CancelDrill, request)
    _show(response.drill, as_json)


@drill_app.command("record")
def record(
    drill_id: str,
    reputation: Annotated[float, typer.Option(help="Reputation recovered, 0..1.")],
    incident: Annotated[str, typer.Option(help="The run's incident; default the latest.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Record a drill's measured reputation recovery."""
    request = pb.RecordDrillFigureRequest(
        drill_id=drill_id,
        incident_id=incident,
        kind=t.DRILL_TARGET_KIND_REPUTATION_RECOVERY,
        value=reputation,
    )
    with channel() as opened:
        response = call(_stub(opened).RecordDrillFigure, request)
    _show(response.drill, as_json)


@drill_app.command("report")
def drill_report(
    drill_id: str,
    incident: Annotated[str, typer.Option(help="The run's incident; default the latest.")] = "",
    as_json: JsonOption = False,
) -> None:
    """A drill run's report: each target, its bar, what was achieved, met or missed."""
    request = pb.GetDrillReportRequest(drill_id=drill_id, incident_id=incident)
    with channel() as opened:
        response = call(_stub(opened).GetDrillReport, request)
    if as_json:
        print_message(response)
        return
    verdict = "MET" if response.met else "NOT MET"
    console.print(
        f"[bold]{response.drill_id}[/] {response.scenario_id} run {response.run} "
        f"({response.incident_id}): {verdict}"
    )
    teams = Table("team", "acknowledged", "minutes")
    for team in response.teams:
        minutes = f"{team.minutes:g}" if team.HasField("minutes") else "-"
        teams.add_row(team.team_id, _when(team.acknowledged_at), minutes)
    console.print(teams)
    targets = Table("target", "bar", "achieved", "outcome", "note")
    for target in response.targets:
        kind = _name(t.DrillTargetKind, "DRILL_TARGET_KIND", target.kind)
        sign = ">=" if kind == "reputation_recovery" else "<="
        achieved = f"{target.achieved:g}" if target.HasField("achieved") else "-"
        targets.add_row(
            kind,
            f"{sign} {target.bar:g} {target.unit}",
            achieved,
            _name(pb.DrillOutcome, "DRILL_OUTCOME", target.outcome).upper(),
            target.note,
        )
    console.print(targets)
