"""The agent directory: one aggregate per agent (skills, capacity per channel, availability,
team). Pure: decide_agent(state, command) -> events; evolve_agent(state, event, at) -> state.

Routing (`routing.suggest_agents`) reads an agent as a `routing.Agent` (`AgentProfile.routed`);
the data rule of docs/permissions.md reads its skills (`AgentProfile.skills`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from ticketing.domain.errors import TicketError, require
from ticketing.domain.routing import Agent
from ticketing.domain.values import MAX_ID, MAX_SUBJECT, Channel, TicketType

SENIOR = "senior"
MAX_LANGUAGES = 20
MAX_CAPACITY = 1_000


class Availability(StrEnum):
    """Whether an agent takes new tickets: only online agents are routed to."""

    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class AgentNotFound(TicketError):
    """No agent with that id is in the directory."""


@dataclass(frozen=True)
class ChannelCapacity:
    """How many active tickets of `channel` the agent works at once."""

    channel: Channel
    capacity: int


@dataclass(frozen=True)
class AgentProfile:
    """The agent aggregate's state."""

    agent_id: str
    exists: bool = False
    name: str = ""
    team: str = ""
    channels: tuple[ChannelCapacity, ...] = ()
    ticket_types: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    senior: bool = False
    availability: Availability = Availability.OFFLINE
    updated_at: datetime | None = None

    @property
    def skills(self) -> frozenset[str]:
        """The agent's skills as the data rule and routing read them: ticket types, channels
        and `senior`."""
        skills = set(self.ticket_types) | {item.channel.value for item in self.channels}
        return frozenset(skills | ({SENIOR} if self.senior else set()))

    def routed(self) -> Agent:
        """Returns the agent as routing ranks it (total capacity: the channels' sum)."""
        per_channel = tuple((item.channel.value, item.capacity) for item in self.channels)
        return Agent(
            self.agent_id,
            self.skills,
            sum(capacity for _channel, capacity in per_channel) or 1,
            online=self.availability is Availability.ONLINE,
            channel_capacity=per_channel,
        )


# ----------------------------------------------------------------------------- commands/events


@dataclass(frozen=True)
class PutAgent:
    """Define or replace an agent; `availability` None keeps it (a new agent: offline)."""

    name: str = ""
    team: str = ""
    channels: tuple[ChannelCapacity, ...] = ()
    ticket_types: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    senior: bool = False
    availability: Availability | None = None


@dataclass(frozen=True)
class SetAvailability:
    """Set an agent online, away or offline."""

    availability: Availability | None


@dataclass(frozen=True)
class AgentPut:
    """An agent was defined or replaced."""

    agent_id: str
    name: str
    team: str
    channels: tuple[ChannelCapacity, ...]
    ticket_types: tuple[str, ...]
    languages: tuple[str, ...]
    senior: bool


@dataclass(frozen=True)
class AgentAvailabilityChanged:
    """An agent went online, away or offline."""

    availability: Availability


AgentCommand = PutAgent | SetAvailability
AgentEvent = AgentPut | AgentAvailabilityChanged


def initial_agent(agent_id: str) -> AgentProfile:
    """Returns the state of an agent not in the directory."""
    return AgentProfile(agent_id=agent_id)


def evolve_agent(state: AgentProfile, event: AgentEvent, at: datetime) -> AgentProfile:
    """Returns the agent after one event recorded at `at`."""
    match event:
        case AgentPut():
            return replace(
                state,
                exists=True,
                name=event.name,
                team=event.team,
                channels=event.channels,
                ticket_types=event.ticket_types,
                languages=event.languages,
                senior=event.senior,
                updated_at=at,
            )
        case AgentAvailabilityChanged():
            return replace(state, availability=event.availability, updated_at=at)
    return state


def decide_agent(state: AgentProfile, command: AgentCommand) -> list[AgentEvent]:
    """Returns the events of a directory command (none when nothing changes)."""
    if isinstance(command, PutAgent):
        return _put(state, command)
    if command.availability is None:
        require([("availability", "must be specified (not AVAILABILITY_UNSPECIFIED)")])
    if not state.exists:
        raise AgentNotFound(f"agent {state.agent_id} is not in the directory")
    assert command.availability is not None
    if command.availability is state.availability:
        return []
    return [AgentAvailabilityChanged(command.availability)]


def _put(state: AgentProfile, command: PutAgent) -> list[AgentEvent]:
    require(_violations(state.agent_id, command))
    put = AgentPut(
        agent_id=state.agent_id,
        name=command.name.strip(),
        team=command.team.strip(),
        channels=tuple(sorted(command.channels, key=lambda item: item.channel.value)),
        ticket_types=tuple(sorted(set(command.ticket_types))),
        languages=tuple(sorted({language.strip().lower() for language in command.languages})),
        senior=command.senior,
    )
    current = AgentPut(
        state.agent_id,
        state.name,
        state.team,
        state.channels,
        state.ticket_types,
        state.languages,
        state.senior,
    )
    events: list[AgentEvent] = [] if state.exists and put == current else [put]
    if command.availability is not None and command.availability is not state.availability:
        events.append(AgentAvailabilityChanged(command.availability))
    return events


def _violations(agent_id: str, command: PutAgent) -> list[tuple[str, str]]:
    violations: list[tuple[str, str]] = []
    if not agent_id.strip() or len(agent_id) > MAX_ID:
        violations.append(("agent_id", f"must be 1 to {MAX_ID} characters"))
    for name in ("name", "team"):
        if len(getattr(command, name)) > MAX_SUBJECT:
            violations.append((name, f"must be at most {MAX_SUBJECT} characters"))
    seen: set[Channel] = set()
    for index, item in enumerate(command.channels):
        if item.channel in seen:
            violations.append((f"channels[{index}].channel", "is given twice"))
        seen.add(item.channel)
        if not 1 <= item.capacity <= MAX_CAPACITY:
            violations.append((f"channels[{index}].capacity", f"must be 1 to {MAX_CAPACITY}"))
    known = {member.value for member in TicketType}
    for index, kind in enumerate(command.ticket_types):
        if kind not in known:
            violations.append((f"ticket_types[{index}]", f"must be one of {sorted(known)}"))
    if len(command.languages) > MAX_LANGUAGES:
        violations.append(("languages", f"at most {MAX_LANGUAGES}"))
    for index, language in enumerate(command.languages):
        if not language.strip() or len(language) > 35:
            violations.append((f"languages[{index}]", "must be a language tag (zh, en, ...)"))
    return violations


def put_from_skills(
    skills: frozenset[str], capacity: int, *, availability: Availability = Availability.ONLINE
) -> PutAgent:
    """Returns the PutAgent of a seed agent given as flat skills (types, channels, `senior`)
    and one capacity, which applies to each of its channels."""
    channels = {member.value for member in Channel}
    types = {member.value for member in TicketType}
    return PutAgent(
        channels=tuple(ChannelCapacity(Channel(s), capacity) for s in sorted(skills & channels)),
        ticket_types=tuple(sorted(skills & types)),
        senior=SENIOR in skills,
        availability=availability,
    )
