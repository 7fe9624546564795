"""Routing: ranks agents for a ticket by skill match and current load."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ticketing.domain.ticket import Ticket
from ticketing.domain.values import Priority, TicketType


@dataclass(frozen=True)
class Agent:
    """An agent who can take tickets: skills are ticket types, channels and `senior`."""

    agent_id: str
    skills: frozenset[str]
    capacity: int = 10
    online: bool = True
    # Active tickets allowed per channel; empty: only the total `capacity` limits.
    channel_capacity: tuple[tuple[str, int], ...] = ()

    def spare(self, channel: str, load: int, channel_load: int) -> int:
        """Returns how many more tickets of `channel` the agent can take."""
        spare = self.capacity - load
        if self.channel_capacity:
            spare = min(spare, dict(self.channel_capacity).get(channel, 0) - channel_load)
        return max(spare, 0)

    def can_take(self, ticket: Ticket, spare: int) -> bool:
        """Returns whether routing may give the agent `ticket`: online, its type and channel
        among the skills and spare capacity on that channel. An angry customer's ticket goes to
        a senior agent only: with none free it waits in the queue for one (DOMAIN §4)."""
        fits = {ticket.type.value, ticket.channel.value} <= self.skills
        if ticket.angry_customer:
            fits = fits and "senior" in self.skills
        return self.online and fits and spare > 0


@dataclass(frozen=True)
class Suggestion:
    """One ranked agent with the score's reason."""

    agent_id: str
    score: float
    open_tickets: int
    reason: str


def suggest_agents(
    ticket: Ticket,
    agents: Sequence[Agent],
    open_tickets: Mapping[str, int],
    channel_load: Mapping[str, Mapping[str, int]] | None = None,
) -> list[Suggestion]:
    """Ranks online agents by skill match (type, channel; senior for urgent, complaints and
    angry customers)
    and load. `channel_load` gives each agent's active tickets per channel.

    Score = matched required skills / required skills − load / capacity; agents at capacity
    (in total or on the ticket's channel) or not online are left out. Ties go to the less
    loaded agent, then by id for a stable order. The reason says why: skills matched,
    spare capacity on the channel and load.
    """
    required = {ticket.type.value, ticket.channel.value}
    if (
        ticket.priority is Priority.URGENT
        or ticket.type is TicketType.COMPLAINT
        or ticket.angry_customer
    ):
        required.add("senior")
    ranked = []
    channel = ticket.channel.value
    for agent in agents:
        load = open_tickets.get(agent.agent_id, 0)
        on_channel = (channel_load or {}).get(agent.agent_id, {}).get(channel, 0)
        spare = agent.spare(channel, load, on_channel)
        if not agent.online or spare <= 0:
            continue
        matched = required & agent.skills
        score = len(matched) / len(required) - load / agent.capacity
        missing = ", ".join(sorted(required - agent.skills))
        reason = (
            f"skills {', '.join(sorted(matched)) or 'none'}"
            + (f" (lacks {missing})" if missing else "")
            + f"; spare {spare} on {channel}; {load}/{agent.capacity} open"
        )
        ranked.append(Suggestion(agent.agent_id, round(score, 4), load, reason))
    ranked.sort(key=lambda s: (-s.score, s.open_tickets, s.agent_id))
    return ranked
