"""`careops ticket compensate|approve|reject|compensations`: compensation within the caller's limit
per ticket (the gateway's verified role sets it); above it a supervisor approves or rejects."""

from __future__ import annotations

from typing import Annotated

import typer
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc, types_pb2
from google.protobuf.message import Message
from rich.table import Table

from careops_cli.client import call, channel, console, print_message

KINDS = [
    name.removeprefix("COMPENSATION_KIND_").lower()
    for name in types_pb2.CompensationKind.DESCRIPTOR.values_by_name
][1:]
STATUSES = [
    name.removeprefix("COMPENSATION_STATUS_").lower()
    for name in types_pb2.CompensationStatus.DESCRIPTOR.values_by_name
][1:]

JsonOption = Annotated[bool, typer.Option("--json", help="Print the response as JSON.")]
KeyOption = Annotated[
    str, typer.Option("--idempotency-key", help="Make the command safe to retry.")
]


def _choice(value: str, choices: list[str], prefix: str) -> int:
    """Returns the proto enum number of a lower-case choice; BadParameter otherwise."""
    if value.lower() not in choices:
        raise typer.BadParameter(f"{value!r}: choose one of {', '.join(choices)}")
    return int(getattr(types_pb2, f"{prefix}_{value.upper()}"))


def _name(enum: type, prefix: str, number: int) -> str:
    return str(enum.Name(number)).removeprefix(prefix + "_").lower()  # type: ignore[attr-defined]


def compensation_rows(table: Table, compensations: list[pb.Compensation]) -> None:
    """Adds one row per compensation to a ticket's table (used by `ticket show`)."""
    for item in compensations:
        status = _name(types_pb2.CompensationStatus, "COMPENSATION_STATUS", item.status)
        kind = _name(types_pb2.CompensationKind, "COMPENSATION_KIND", item.kind)
        decided = f" by {item.decided_by}" if item.decided_by else ""
        table.add_row(
            f"compensation {item.compensation_id}",
            f"{kind} {item.amount} {item.currency}: {status}{decided} "
            f"(asked by {item.requested_by or '-'})",
        )


def print_compensations(compensations: list[pb.Compensation]) -> None:
    """Prints compensations as a table."""
    table = Table(
        "compensation", "kind", "amount", "status", "requested by", "decided by", "reason"
    )
    for item in compensations:
        table.add_row(
            item.compensation_id,
            _name(types_pb2.CompensationKind, "COMPENSATION_KIND", item.kind),
            f"{item.amount} {item.currency}",
            _name(types_pb2.CompensationStatus, "COMPENSATION_STATUS", item.status),
            item.requested_by or "-",
            item.decided_by or "-",
            item.decision_reason or item.reason,
        )
    console.print(table)


def _run(method: str, request: Message, as_json: bool, key: str) -> None:
    with channel() as opened:
        stub = ticketing_pb2_grpc.TicketingServiceStub(opened)
        response = call(getattr(stub, method), request, key)
    if as_json:
        print_message(response)
        return
    print_compensations([response.compensation])


def compensate(
    ticket_id: str,
    amount: Annotated[str, typer.Option(help="Amount in major units, e.g. 2500 or 19.90.")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code, e.g. CNY.")],
    reason: Annotated[str, typer.Option(help="Why the customer is compensated.")],
    kind: Annotated[str, typer.Option(help=f"One of {', '.join(KINDS)}.")] = "refund",
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Grant compensation; above your limit per ticket it waits for a supervisor's approval."""
    request = pb.GrantCompensationRequest(
        ticket_id=ticket_id,
        kind=_choice(kind, KINDS, "COMPENSATION_KIND"),  # type: ignore[arg-type]
        amount=amount,
        currency=currency,
        reason=reason,
    )
    _run("GrantCompensation", request, as_json, key)


def approve(
    ticket_id: str,
    compensation_id: str,
    reason: Annotated[str, typer.Option(help="Why it is approved.")] = "",
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Approve a pending compensation (your own limit must cover the ticket's total)."""
    request = pb.ApproveCompensationRequest(
        ticket_id=ticket_id, compensation_id=compensation_id, reason=reason
    )
    _run("ApproveCompensation", request, as_json, key)


def reject(
    ticket_id: str,
    compensation_id: str,
    reason: Annotated[str, typer.Option(help="Why it is rejected (required).")],
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Reject a pending compensation, with a reason."""
    request = pb.RejectCompensationRequest(
        ticket_id=ticket_id, compensation_id=compensation_id, reason=reason
    )
    _run("RejectCompensation", request, as_json, key)


def compensations(
    ticket_id: str,
    status: Annotated[str, typer.Option(help=f"Only {', '.join(STATUSES)}.")] = "",
    as_json: JsonOption = False,
) -> None:
    """List a ticket's compensations."""
    number = _choice(status, STATUSES, "COMPENSATION_STATUS") if status else 0
    with channel() as opened:
        stub = ticketing_pb2_grpc.TicketingServiceStub(opened)
        response = call(
            stub.ListCompensations,
            pb.ListCompensationsRequest(ticket_id=ticket_id, status=number),  # type: ignore[arg-type]
        )
    if as_json:
        print_message(response)
        return
    print_compensations(list(response.compensations))


def register(ticket_app: typer.Typer) -> None:
    """Adds the compensation commands to `careops ticket`."""
    ticket_app.command("compensate")(compensate)
    ticket_app.command("approve")(approve)
    ticket_app.command("reject")(reject)
    ticket_app.command("compensations")(compensations)
