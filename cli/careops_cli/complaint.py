"""`careops complaint step …`: record one step of a complaint's six-step procedure (listen,
confirm, apologise, solve, follow_up, summarise); `careops ticket tick …`: tick a handling step
of another type's checklist. `ticket show` lists the steps taken and left."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc, types_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from rich.table import Table

from careops_cli.client import call, channel, console, print_message

complaint_app = typer.Typer(help="The complaint procedure.", no_args_is_help=True)

PREFIX = "COMPLAINT_STEP"
STEPS = [
    name.removeprefix(PREFIX + "_").lower()
    for name in types_pb2.ComplaintStep.DESCRIPTOR.values_by_name
][1:]

JsonOption = Annotated[bool, typer.Option("--json", help="Print the response as JSON.")]
KeyOption = Annotated[
    str, typer.Option("--idempotency-key", help="Make the command safe to retry.")
]


def _step_name(number: int) -> str:
    return str(types_pb2.ComplaintStep.Name(number)).removeprefix(PREFIX + "_").lower()  # type: ignore[arg-type]


def _timestamp(value: str) -> Timestamp | None:
    """Parses an ISO 8601 time (naive means UTC); None when empty."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: give an ISO 8601 time") from None
    stamp = Timestamp()
    stamp.FromDatetime(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return stamp


def complaint_rows(table: Table, ticket: pb.Ticket) -> None:
    """Adds the complaint's steps taken (who, when) and left to a ticket's table."""
    if ticket.type != types_pb2.TICKET_TYPE_COMPLAINT:
        return
    for taken in ticket.complaint_steps:
        late = " (late)" if taken.late else ""
        at = taken.at.ToDatetime().isoformat() + "Z"
        table.add_row(f"step {_step_name(taken.step)}", f"done by {taken.by} at {at}{late}")
    left = [_step_name(step) for step in ticket.complaint_steps_left]
    table.add_row("steps left", ", ".join(left) or "none")
    if ticket.HasField("follow_up_due_at"):
        missed = " (missed: escalated)" if ticket.follow_up_missed else ""
        due = ticket.follow_up_due_at.ToDatetime().isoformat() + "Z"
        table.add_row("follow-up due", due + missed)


def checklist_rows(table: Table, ticket: pb.Ticket) -> None:
    """Adds a consultation's, fault's or return's checklist (done: who, when) to a table."""
    for item in ticket.checklist:
        at = item.at.ToDatetime().isoformat() + "Z" if item.done else ""
        table.add_row(f"check {item.item}", f"done by {item.by} at {at}" if item.done else "to do")


def tick(
    ticket_id: str,
    item: str,
    note: Annotated[str, typer.Option(help="What was found or done.")] = "",
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Tick one handling step of the ticket's checklist (consultation, fault, return)."""
    request = pb.TickChecklistItemRequest(ticket_id=ticket_id, item=item, note=note)
    with channel() as opened:
        stub = ticketing_pb2_grpc.TicketingServiceStub(opened)
        response = call(stub.TickChecklistItem, request, key)
    if as_json:
        print_message(response.ticket)
        return
    table = Table(title=f"ticket {ticket_id}", show_header=False)
    checklist_rows(table, response.ticket)
    console.print(table)


def register(ticket_app: typer.Typer) -> None:
    """Adds `ticket tick` to the ticket commands."""
    ticket_app.command("tick")(tick)


@complaint_app.command("step")
def step(
    ticket_id: str,
    which: Annotated[str, typer.Argument(metavar="STEP", help=f"One of {', '.join(STEPS)}.")],
    note: Annotated[
        str, typer.Option(help="listen/apologise: what was said; confirm: the restated problem.")
    ] = "",
    plan: Annotated[str, typer.Option(help="solve: the concrete plan.")] = "",
    option: Annotated[
        list[str] | None, typer.Option(help="solve: an option offered (repeat).")
    ] = None,
    follow_up_at: Annotated[
        str, typer.Option(help="solve: the committed follow-up time (ISO 8601).")
    ] = "",
    outcome: Annotated[str, typer.Option(help="follow_up: the outcome told to the customer.")] = "",
    root_cause: Annotated[str, typer.Option(help="summarise: the root cause.")] = "",
    prevention: Annotated[str, typer.Option(help="summarise: how it is prevented.")] = "",
    shared: Annotated[bool, typer.Option(help="summarise: shared with the team.")] = False,
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Record one step of a complaint, in order; each step needs its own fields."""
    if which.lower() not in STEPS:
        raise typer.BadParameter(f"{which!r}: choose one of {', '.join(STEPS)}")
    request = pb.RecordComplaintStepRequest(
        ticket_id=ticket_id,
        step=types_pb2.ComplaintStep.Value(f"{PREFIX}_{which.upper()}"),
        note=note,
        plan=plan,
        options=option or [],
        follow_up_at=_timestamp(follow_up_at),
        outcome=outcome,
        root_cause=root_cause,
        prevention=prevention,
        shared=shared,
    )
    with channel() as opened:
        stub = ticketing_pb2_grpc.TicketingServiceStub(opened)
        response = call(stub.RecordComplaintStep, request, key)
    if as_json:
        print_message(response.ticket)
        return
    table = Table(title=f"complaint {ticket_id}", show_header=False)
    complaint_rows(table, response.ticket)
    console.print(table)
