"""`careops audit`: who did what, when, read from the event log (careops_platform.audit)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_platform.audit import AuditEntry, audit
from rich.table import Table

from careops_cli.client import console, errors

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


async def _read(
    nats_url: str, since: datetime, until: datetime | None, actor: str, service: str
) -> list[AuditEntry]:
    nc = await connect(nats_url, name="careops-cli-audit")
    try:
        return await audit(
            JetStreamEventStore(nc), since=since, until=until, actor=actor, service=service
        )
    finally:
        await nc.close()


def audit_command(
    since: Annotated[str, typer.Option(help="From when: ISO 8601 or an age (2h, 30m, 7d).")],
    actor: Annotated[
        str, typer.Option(help="Who (a principal; also matches '<actor> via <reaction>').")
    ] = "",
    until: Annotated[str, typer.Option(help="Until when (exclusive); default now.")] = "",
    service: Annotated[str, typer.Option(help="ticketing, customer, incident, quality.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    nats_url: Annotated[
        str, typer.Option(envvar="CAREOPS_NATS_URL", help="The event log (NATS JetStream).")
    ] = "nats://127.0.0.1:14222",
) -> None:
    """Who did what, when: one line per event of the log (time, actor, service, aggregate, type)."""
    end = parse_time(until) if until else None
    try:
        entries = asyncio.run(_read(nats_url, parse_time(since), end, actor, service))
    except ValueError as exc:  # an unknown --service
        raise typer.BadParameter(str(exc)) from None
    except Exception as exc:  # the log unreachable: say so, no traceback
        errors.print(f"[red]cannot read the event log at {nats_url}[/]: {exc}")
        raise typer.Exit(1) from None
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry.as_dict()))
        return
    _print_table(entries)


def _print_table(entries: list[AuditEntry]) -> None:
    table = Table(title=f"{len(entries)} events")
    for column in ("time", "actor", "service", "aggregate", "event"):
        table.add_column(column)
    for entry in entries:
        table.add_row(
            entry.recorded_at.isoformat(timespec="milliseconds"),
            entry.actor,
            entry.service,
            f"{entry.aggregate_type} {entry.aggregate_id}",
            entry.event_type.rsplit(".", 1)[-1],
        )
    console.print(table)
