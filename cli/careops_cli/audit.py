"""`careops audit`: who did what, when, from the event log through the gateway's
ListAuditEvents (careops_platform.audit answers it)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from careops.gateway.v1 import gateway_pb2 as gw
from careops.gateway.v1 import gateway_pb2_grpc
from careops_eventstore.codec import to_timestamp
from google.protobuf.json_format import MessageToDict
from rich.table import Table

from careops_cli.client import call, channel, console

AGO = re.compile(r"(\d+)([smhd])")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """Returns the instant `value` names: ISO 8601 (naive means UTC) or an age like "2h", "30m",
    "7d" before `now`; BadParameter otherwise."""
    ago = AGO.fullmatch(value.strip())
    if ago:
        delta = timedelta(**{UNITS[ago.group(2)]: int(ago.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: ISO 8601 or an age like 2h, 30m, 7d") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _events(request: gw.ListAuditEventsRequest) -> list[gw.AuditEvent]:
    """Returns every event the request selects, asking again from the last one's time while
    the gateway answers `truncated` (events of that instant already listed are not repeated)."""
    listed: list[gw.AuditEvent] = []
    seen: set[str] = set()
    with channel() as opened:
        stub = gateway_pb2_grpc.GatewayServiceStub(opened)
        while True:
            reply = call(stub.ListAuditEvents, request)
            fresh = [event for event in reply.events if event.event_id not in seen]
            listed.extend(fresh)
            seen.update(event.event_id for event in fresh)
            if not reply.truncated or not fresh:
                return listed
            request.since.CopyFrom(fresh[-1].recorded_at)


def audit_command(
    since: Annotated[str, typer.Option(help="From when: ISO 8601 or an age (2h, 30m, 7d).")],
    actor: Annotated[
        str, typer.Option(help="Who (a principal; also matches '<actor> via <reaction>').")
    ] = "",
    until: Annotated[str, typer.Option(help="Until when (exclusive); default now.")] = "",
    service: Annotated[str, typer.Option(help="ticketing, customer, incident, quality.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Who did what, when: one line per event of the log (time, actor, service, aggregate, type),
    through the gateway (GatewayService.ListAuditEvents, permission audit.read)."""
    request = gw.ListAuditEventsRequest(
        actor=actor, since=to_timestamp(parse_time(since)), service=service
    )
    if until:
        request.until.CopyFrom(to_timestamp(parse_time(until)))
    events = _events(request)
    if as_json:
        for event in events:
            typer.echo(json.dumps(MessageToDict(event)))
        return
    _print_table(events)


def _print_table(events: list[gw.AuditEvent]) -> None:
    table = Table(title=f"{len(events)} events")
    for column in ("time", "actor", "service", "aggregate", "event"):
        table.add_column(column)
    for entry in events:
        recorded = entry.recorded_at.ToDatetime(tzinfo=UTC)
        table.add_row(
            recorded.isoformat(timespec="milliseconds"),
            entry.actor,
            entry.service,
            f"{entry.aggregate_type} {entry.aggregate_id}",
            entry.event_type.rsplit(".", 1)[-1],
        )
    console.print(table)
