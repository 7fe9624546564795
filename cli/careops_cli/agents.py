"""`careops agent …`: the agent directory (skills, capacity, availability) and why routing
suggests an agent for a ticket."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from rich.table import Table

from careops_cli.client import call, channel, console, print_message

agent_app = typer.Typer(help="The agent directory and routing.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the response as JSON.")]
KeyOption = Annotated[
    str, typer.Option("--idempotency-key", help="Make the command safe to retry.")
]


def _value(enum: Any, prefix: str, name: str) -> Any:
    try:
        return enum.Value(f"{prefix}_{name.upper()}")
    except ValueError:
        names = list(enum.DESCRIPTOR.values_by_name)[1:]
        choices = [n.removeprefix(prefix + "_").lower() for n in names]
        raise typer.BadParameter(f"{name!r}: choose one of {', '.join(choices)}") from None


def _name(enum: Any, prefix: str, number: int) -> str:
    return str(enum.Name(number)).removeprefix(prefix + "_").lower()


def _availability(name: str) -> t.Availability.ValueType:
    """Returns the availability named (empty: UNSPECIFIED)."""
    if not name:
        return t.AVAILABILITY_UNSPECIFIED
    return _value(t.Availability, "AVAILABILITY", name)  # type: ignore[no-any-return]


def _capacities(items: list[str]) -> list[t.ChannelCapacity]:
    """Parses `chat=3` items into channel capacities."""
    capacities = []
    for item in items:
        channel_name, _, count = item.partition("=")
        if not count.isdigit():
            raise typer.BadParameter(f"{item!r}: give CHANNEL=CAPACITY, e.g. chat=3")
        capacities.append(
            t.ChannelCapacity(
                channel=_value(t.Channel, "CHANNEL", channel_name), capacity=int(count)
            )
        )
    return capacities


def _row(agent: pb.Agent) -> list[str]:
    return [
        agent.agent_id,
        agent.team or "-",
        _name(t.Availability, "AVAILABILITY", agent.availability),
        ", ".join(f"{_name(t.Channel, 'CHANNEL', c.channel)}={c.capacity}" for c in agent.channels),
        ", ".join(agent.ticket_types) + (" + senior" if agent.senior else ""),
        ", ".join(agent.languages) or "-",
        str(agent.open_tickets),
    ]


def _show(agents: list[pb.Agent]) -> None:
    table = Table("agent", "team", "availability", "capacity", "skills", "languages", "open")
    for agent in agents:
        table.add_row(*_row(agent))
    console.print(table)


def _stub(opened: Any) -> ticketing_pb2_grpc.TicketingServiceStub:
    return ticketing_pb2_grpc.TicketingServiceStub(opened)


@agent_app.command("put")
def put(
    agent_id: str,
    capacity: Annotated[
        list[str], typer.Option("--capacity", help="CHANNEL=N active tickets (repeat).")
    ],
    ticket_type: Annotated[
        list[str] | None, typer.Option("--type", help="A ticket type handled (repeat).")
    ] = None,
    language: Annotated[
        list[str] | None, typer.Option("--language", help="A language tag (repeat).")
    ] = None,
    senior: Annotated[bool, typer.Option("--senior", help="Takes urgent and complaints.")] = False,
    name: str = "",
    team: str = "",
    availability: Annotated[
        str, typer.Option(help="online, away or offline; empty: unchanged (new: offline).")
    ] = "",
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Define or replace an agent (supervisors)."""
    request = pb.PutAgentRequest(
        agent_id=agent_id,
        name=name,
        team=team,
        channels=_capacities(capacity),
        ticket_types=ticket_type or [],
        languages=language or [],
        senior=senior,
        availability=_availability(availability),
    )
    with channel() as opened:
        response = call(_stub(opened).PutAgent, request, key)
    print_message(response.agent) if as_json else _show([response.agent])


@agent_app.command("show")
def show(agent_id: str, as_json: JsonOption = False) -> None:
    """Show one agent: skills, capacity, availability and open tickets."""
    with channel() as opened:
        response = call(_stub(opened).GetAgent, pb.GetAgentRequest(agent_id=agent_id))
    print_message(response.agent) if as_json else _show([response.agent])


@agent_app.command("list")
def list_agents(
    team: str = "",
    availability: Annotated[str, typer.Option(help="online, away or offline.")] = "",
    as_json: JsonOption = False,
) -> None:
    """List the directory's agents."""
    request = pb.ListAgentsRequest(
        team=team,
        availability=_availability(availability),
    )
    with channel() as opened:
        response = call(_stub(opened).ListAgents, request)
    print_message(response) if as_json else _show(list(response.agents))


@agent_app.command("availability")
def set_availability(
    availability: Annotated[str, typer.Argument(help="online, away or offline.")],
    agent: Annotated[str, typer.Option(help="Agent id; omit for yourself.")] = "",
    as_json: JsonOption = False,
    key: KeyOption = "",
) -> None:
    """Go online, away or offline (offline hands back the tickets you have not started)."""
    request = pb.SetAvailabilityRequest(
        agent_id=agent, availability=_value(t.Availability, "AVAILABILITY", availability)
    )
    with channel() as opened:
        response = call(_stub(opened).SetAvailability, request, key)
    print_message(response.agent) if as_json else _show([response.agent])


@agent_app.command("suggest")
def suggest(ticket_id: str, as_json: JsonOption = False) -> None:
    """Rank the agents for a ticket and say why: skills matched, spare capacity, load."""
    with channel() as opened:
        response = call(
            _stub(opened).SuggestAssignee, pb.SuggestAssigneeRequest(ticket_id=ticket_id)
        )
    if as_json:
        print_message(response)
        return
    table = Table("agent", "score", "open", "why")
    for item in response.suggestions:
        table.add_row(item.agent_id, f"{item.score:.2f}", str(item.open_tickets), item.reason)
    console.print(table if response.suggestions else "no agent online with spare capacity")
