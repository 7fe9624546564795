"""careops: `up` runs the platform; `ticket …` and `projections …` call it over gRPC, through the
gateway (careops_cli.client)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from careops.common.v1 import admin_pb2, admin_pb2_grpc
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc, types_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.table import Table

from careops_cli.agents import agent_app
from careops_cli.audit import audit_command
from careops_cli.auth import apikey_app, login, token_app
from careops_cli.client import call, channel, console, failure, metadata, print_message, report
from careops_cli.compensation import compensation_rows
from careops_cli.compensation import register as register_compensation
from careops_cli.complaint import checklist_rows, complaint_app, complaint_rows
from careops_cli.complaint import register as register_checklist
from careops_cli.conversation import macro_app, macro_values, print_conversation
from careops_cli.customers import customer_app
from careops_cli.drills import drill_app
from careops_cli.incidents import incident_app, oncall_app
from careops_cli.platform import SERVICES, run_platform
from careops_cli.policy import policy_app
from careops_cli.quality import quality_app
from careops_cli.schedules import register as register_schedules
from careops_cli.surveys import template_app

app = typer.Typer(help="CareOps: customer-service quality platform.", no_args_is_help=True)
ticket_app = typer.Typer(help="Work with tickets (ticketing service).", no_args_is_help=True)
projections_app = typer.Typer(help="Operate read models.", no_args_is_help=True)
app.add_typer(ticket_app, name="ticket")
app.add_typer(projections_app, name="projections")
app.add_typer(incident_app, name="incident")
app.add_typer(oncall_app, name="oncall")
app.add_typer(drill_app, name="drill")
app.add_typer(customer_app, name="customer")
app.add_typer(macro_app, name="macro")
app.add_typer(quality_app)  # survey, kpi, scorecard, followups
app.add_typer(template_app, name="survey-template")  # and `survey answer`
app.add_typer(token_app, name="token")
app.add_typer(apikey_app, name="apikey")
app.add_typer(agent_app, name="agent")
app.add_typer(complaint_app, name="complaint")
app.add_typer(policy_app, name="policy")
app.command("login")(login)
app.command("audit")(audit_command)
register_compensation(ticket_app)  # ticket compensate|approve|reject|compensations
register_checklist(ticket_app)  # ticket tick
register_schedules(oncall_app)  # oncall who|shifts|override|remove-override|swap

JsonOption = Annotated[bool, typer.Option("--json", help="Print the response as JSON.")]
KeyOption = Annotated[
    str, typer.Option("--idempotency-key", help="Make the command safe to retry.")
]


def _enum_value(enum: Any, prefix: str, name: str) -> Any:
    try:
        return enum.Value(f"{prefix}_{name.upper()}")
    except ValueError:
        names = list(enum.DESCRIPTOR.values_by_name)[1:]
        choices = [n.removeprefix(prefix + "_").lower() for n in names]
        raise typer.BadParameter(f"{name!r}: choose one of {', '.join(choices)}") from None


def _enum_name(enum: Any, prefix: str, number: int) -> str:
    return str(enum.Name(number)).removeprefix(prefix + "_").lower()


def _print_ticket(ticket: pb.Ticket, as_json: bool) -> None:
    if as_json:
        print_message(ticket)
        return
    table = Table(title=f"ticket {ticket.ticket_id}", show_header=False)
    table.add_row("status", _enum_name(types_pb2.TicketStatus, "TICKET_STATUS", ticket.status))
    table.add_row("subject", ticket.subject)
    table.add_row("customer", ticket.customer_id)
    table.add_row("channel", _enum_name(types_pb2.Channel, "CHANNEL", ticket.channel))
    table.add_row("type", _enum_name(types_pb2.TicketType, "TICKET_TYPE", ticket.type))
    table.add_row("priority", _enum_name(types_pb2.Priority, "PRIORITY", ticket.priority))
    table.add_row("assignee", ticket.assignee_id or "-")
    for clock in ticket.sla:
        name = _enum_name(types_pb2.SlaClock, "SLA_CLOCK", clock.clock)
        state = (
            "breached"
            if clock.breached
            else "met"
            if clock.met
            else ("running" if clock.running else "paused" if clock.paused else "stopped")
        )
        due = clock.due_at.ToDatetime().isoformat() + "Z" if clock.HasField("due_at") else "-"
        table.add_row(f"sla {name}", f"{state}; due {due}")
    compensation_rows(table, list(ticket.compensations))
    if ticket.emotion:
        flags = [
            name.replace("_", " ")
            for name in ("angry_customer", "detailed_explanation_requested", "survey_invited")
            if getattr(ticket, name)
        ]
        emotion = _enum_name(types_pb2.Emotion, "EMOTION", ticket.emotion)
        table.add_row("emotion", "; ".join([emotion, *flags]))
    complaint_rows(table, ticket)
    checklist_rows(table, ticket)
    table.add_row("version", str(ticket.version))
    console.print(table)


def _ticket_command(method_name: str, request: Message, as_json: bool, key: str) -> None:
    with channel() as opened:
        stub = ticketing_pb2_grpc.TicketingServiceStub(opened)
        response = call(getattr(stub, method_name), request, key)
    _print_ticket(response.ticket, as_json)


@app.command()
def up(
    data_dir: Annotated[
        Path, typer.Option(envvar="CAREOPS_DATA_DIR", help="Where NATS and SQLite keep data.")
    ] = Path("var"),
    nats_port: Annotated[
        int, typer.Option(envvar="CAREOPS_EMBEDDED_NATS_PORT", help="Embedded NATS port.")
    ] = 14222,
) -> None:
    """Run the embedded platform: NATS JetStream plus every service. Ctrl-C stops all."""
    raise typer.Exit(run_platform(data_dir, nats_port=nats_port))


@ticket_app.command("open")
def ticket_open(
    subject: Annotated[str, typer.Option(help="One-line summary.")],
    customer: Annotated[str, typer.Option(help="Customer id (or --email / --phone).")] = "",
    email: Annotated[str, typer.Option(help="E-mail of a known customer.")] = "",
    phone: Annotated[str, typer.Option(help="Phone of a known customer.")] = "",
    channel: Annotated[
        str, typer.Option(help="phone, email, chat, social, app, web, store")
    ] = "web",
    type_: Annotated[
        str, typer.Option("--type", help="consultation, fault, complaint, return")
    ] = "consultation",
    priority: Annotated[str, typer.Option(help="low, normal, high, urgent")] = "normal",
    description: Annotated[str, typer.Option(help="Details.")] = "",
    product: Annotated[str, typer.Option(help="Product it is about.")] = "",
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Open a ticket."""
    request = pb.OpenTicketRequest(
        customer_id=customer,
        contact_email=email,
        contact_phone=phone,
        subject=subject,
        description=description,
        product=product,
        channel=_enum_value(types_pb2.Channel, "CHANNEL", channel),
        type=_enum_value(types_pb2.TicketType, "TICKET_TYPE", type_),
        priority=_enum_value(types_pb2.Priority, "PRIORITY", priority),
    )
    _ticket_command("OpenTicket", request, as_json, key)


@ticket_app.command("show")
def ticket_show(ticket_id: str, as_json: JsonOption = False) -> None:
    """Show one ticket with its SLA clocks and its conversation (--json: the ticket only)."""
    with channel() as opened:
        stub = ticketing_pb2_grpc.TicketingServiceStub(opened)
        response = call(stub.GetTicket, pb.GetTicketRequest(ticket_id=ticket_id))
        _print_ticket(response.ticket, as_json)
        if not as_json:
            print_conversation(stub, ticket_id, response.ticket.version)


@ticket_app.command("list")
def ticket_list(
    status: Annotated[str, typer.Option(help="open, assigned, in_progress, …")] = "",
    assignee: Annotated[str, typer.Option(help="Agent id.")] = "",
    customer: Annotated[str, typer.Option(help="Customer id.")] = "",
    limit: Annotated[int, typer.Option(help="Page size.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List tickets, newest first."""
    request = pb.ListTicketsRequest(
        status=_enum_value(types_pb2.TicketStatus, "TICKET_STATUS", status or "unspecified"),
        assignee_id=assignee,
        customer_id=customer,
        page_size=limit,
    )
    with channel() as opened:
        stub = ticketing_pb2_grpc.TicketingServiceStub(opened)
        response = call(stub.ListTickets, request)
    if as_json:
        print_message(response)
        return
    table = Table("ticket", "status", "priority", "channel", "assignee", "subject", "sla")
    for item in response.tickets:
        table.add_row(
            item.ticket_id,
            _enum_name(types_pb2.TicketStatus, "TICKET_STATUS", item.status),
            _enum_name(types_pb2.Priority, "PRIORITY", item.priority),
            _enum_name(types_pb2.Channel, "CHANNEL", item.channel),
            item.assignee_id or "-",
            item.subject,
            "BREACHED" if item.sla_breached else "ok",
        )
    console.print(table)


@ticket_app.command("reply")
def ticket_reply(
    ticket_id: str,
    body: Annotated[str, typer.Option(help="Message text (not with --macro).")] = "",
    customer: Annotated[bool, typer.Option("--customer", help="Reply as the customer.")] = False,
    author_id: Annotated[str, typer.Option(help="Agent or customer id.")] = "",
    internal: Annotated[
        bool, typer.Option("--internal", help="An internal note: agents only, no first response.")
    ] = False,
    macro: Annotated[str, typer.Option(help="Insert this macro instead of --body.")] = "",
    value: Annotated[
        list[str] | None, typer.Option(help="A macro placeholder, name=value (repeatable).")
    ] = None,
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Add a reply (an agent's first public reply stops the first-response clock)."""
    author = types_pb2.AUTHOR_CUSTOMER if customer else types_pb2.AUTHOR_AGENT
    request = pb.AddReplyRequest(
        ticket_id=ticket_id,
        author=author,
        author_id=author_id,
        body=body,
        visibility=pb.VISIBILITY_INTERNAL if internal else pb.VISIBILITY_PUBLIC,
        macro_id=macro,
        macro_values=macro_values(value or []),
    )
    _ticket_command("AddReply", request, as_json, key)


@ticket_app.command("assign")
def ticket_assign(
    ticket_id: str,
    agent: Annotated[str, typer.Option(help="Agent id; omit to take the suggestion.")] = "",
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Assign a ticket to an agent, or to the best-suited agent by skill and load."""
    _ticket_command(
        "AssignTicket", pb.AssignTicketRequest(ticket_id=ticket_id, agent_id=agent), as_json, key
    )


@ticket_app.command("hold")
def ticket_hold(
    ticket_id: str,
    reason: Annotated[
        str, typer.Option(help="waiting_customer, waiting_third_party, …")
    ] = "waiting_customer",
    note: Annotated[str, typer.Option(help="Why.")] = "",
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Put a ticket on hold (waiting for the customer pauses the SLA clocks)."""
    request = pb.HoldTicketRequest(
        ticket_id=ticket_id,
        reason=_enum_value(types_pb2.HoldReason, "HOLD_REASON", reason),
        note=note,
    )
    _ticket_command("HoldTicket", request, as_json, key)


@ticket_app.command("resume")
def ticket_resume(ticket_id: str, as_json: JsonOption = False, key: KeyOption = "") -> None:
    """Resume a ticket on hold."""
    _ticket_command("ResumeTicket", pb.ResumeTicketRequest(ticket_id=ticket_id), as_json, key)


@ticket_app.command("resolve")
def ticket_resolve(
    ticket_id: str,
    resolution: Annotated[str, typer.Option(help="What solved it.")] = "",
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Resolve a ticket."""
    request = pb.ResolveTicketRequest(ticket_id=ticket_id, resolution=resolution)
    _ticket_command("ResolveTicket", request, as_json, key)


@ticket_app.command("reopen")
def ticket_reopen(
    ticket_id: str, reason: str = "", as_json: JsonOption = False, key: KeyOption = ""
) -> None:
    """Reopen a resolved ticket."""
    _ticket_command(
        "ReopenTicket", pb.ReopenTicketRequest(ticket_id=ticket_id, reason=reason), as_json, key
    )


@ticket_app.command("close")
def ticket_close(
    ticket_id: str, note: str = "", as_json: JsonOption = False, key: KeyOption = ""
) -> None:
    """Close a resolved ticket."""
    _ticket_command(
        "CloseTicket", pb.CloseTicketRequest(ticket_id=ticket_id, note=note), as_json, key
    )


@ticket_app.command("escalate")
def ticket_escalate(
    ticket_id: str,
    reason: Annotated[str, typer.Option(help="Why it needs the next tier.")],
    team: Annotated[str, typer.Option(help="Team to escalate to.")] = "",
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Escalate a ticket to the next tier."""
    request = pb.EscalateTicketRequest(ticket_id=ticket_id, reason=reason, to_team=team)
    _ticket_command("EscalateTicket", request, as_json, key)


@ticket_app.command("priority")
def ticket_priority(
    ticket_id: str,
    priority: Annotated[str, typer.Argument(help="low, normal, high, urgent")],
    reason: str = "",
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Change a ticket's priority (its SLA targets follow)."""
    request = pb.ChangePriorityRequest(
        ticket_id=ticket_id,
        priority=_enum_value(types_pb2.Priority, "PRIORITY", priority),
        reason=reason,
    )
    _ticket_command("ChangePriority", request, as_json, key)


ServiceOption = Annotated[str, typer.Option(help="Service that owns the read model.")]


AllServicesOption = Annotated[
    str, typer.Option("--service", help="Only this service (default: every service).")
]


def _admin_services(service: str) -> list[str]:
    """The services asked: the one named, or every service that has read models."""
    if service:
        return [service]
    return [spec.name for spec in SERVICES if spec.name != "gateway"]


def _list_one(service: str) -> list[admin_pb2.ProjectionStatus] | str:
    """Returns a service's projections and reactions (asked through the gateway), or why it
    could not be asked."""
    with channel() as opened:
        stub = admin_pb2_grpc.ProjectionAdminServiceStub(opened)
        try:
            response = stub.ListProjections(
                admin_pb2.ListProjectionsRequest(), metadata=metadata(backend=service), timeout=10
            )
        except grpc.RpcError as exc:
            return failure(exc)
    return list(response.projections)


@projections_app.command("list")
def projections_list(service: AllServicesOption = "", as_json: JsonOption = False) -> None:
    """Show every projection and reaction of every service: position, lag, stalled, parked."""
    table = Table("service", "kind", "name", "stream", "position", "lag", "stalled", "parked")
    rows: list[dict[str, Any]] = []
    unreachable = False
    for name in _admin_services(service):
        found = _list_one(name)
        if isinstance(found, str):
            unreachable = True
            table.add_row(name, "-", "-", "-", "-", "-", "-", "-")
            report(f"{name}: {found}")
            continue
        for item in found:
            rows.append({"service": name, **MessageToDict(item, preserving_proto_field_name=True)})
            table.add_row(
                name,
                item.kind or "projection",
                item.name,
                item.stream,
                str(item.last_sequence),
                str(item.lag),
                "[red]STALLED[/]" if item.stalled else "no",
                str(item.parked),
            )
    if as_json:
        console.print_json(json.dumps(rows))
    else:
        console.print(table)
    if unreachable:
        raise typer.Exit(1)


@projections_app.command("parked")
def projections_parked(
    service: AllServicesOption = "",
    name: Annotated[str, typer.Option(help="Only this projection or reaction.")] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest first, at most.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List the poison messages projections and reactions skipped (stream and sequence)."""
    table = Table("service", "name", "stream", "sequence", "subject", "type", "reason", "detail")
    rows: list[dict[str, Any]] = []
    for each in _admin_services(service):
        with channel() as opened:
            stub = admin_pb2_grpc.ProjectionAdminServiceStub(opened)
            request = admin_pb2.ListParkedRequest(name=name, limit=limit)
            response = call(stub.ListParked, request, backend=each)
        for item in response.parked:
            rows.append({"service": each, **MessageToDict(item, preserving_proto_field_name=True)})
            table.add_row(
                each,
                item.name,
                item.stream,
                str(item.sequence),
                item.subject,
                item.event_type,
                item.reason,
                item.detail,
            )
    if as_json:
        console.print_json(json.dumps(rows))
    else:
        console.print(table)


@projections_app.command("rebuild")
def projections_rebuild(
    name: str,
    service: ServiceOption = "ticketing",
    wait: Annotated[bool, typer.Option(help="Wait until it has caught up.")] = True,
) -> None:
    """Drop a read model and rebuild it from the log."""
    with channel() as opened:
        stub = admin_pb2_grpc.ProjectionAdminServiceStub(opened)
        request = admin_pb2.RebuildProjectionRequest(name=name, wait=wait)
        response = call(stub.RebuildProjection, request, backend=service)
    status = response.status
    console.print(
        f"rebuilt [bold]{status.name}[/]: at {status.last_sequence} of "
        f"{status.stream_last_sequence} ({status.lag} of its messages to go, "
        f"{status.parked} parked)"
    )
