"""Routing: ranks agents for a ticket by skill match and current load."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ticketing.domain.ticket import Ticket
from ticketing.domain.values import Priority, TicketType


@dataclass(frozen=True)
class Agent:
    """An agent who can take tickets: skills are ticket types, channels and `senior`."""

    agent_id: str
    skills: frozenset[str]
    capacity: int = 10


@dataclass(frozen=True)
class Suggestion:
    """One ranked agent with the score's reason."""

    agent_id: str
    score: float
    open_tickets: int
    reason: str


def suggest_agents(
    ticket: Ticket, agents: Sequence[Agent], open_tickets: dict[str, int]
) -> list[Suggestion]:
    """Ranks agents by skill match (type, channel; senior for urgent and complaints) and load.

    Score = matched required skills / required skills − load / capacity; agents at capacity are
    left out. Ties go to the less loaded agent, then by id for a stable order.
    """
    required = {ticket.type.value, ticket.channel.value}
    if ticket.priority is Priority.URGENT or ticket.type is TicketType.COMPLAINT:
        required.add("senior")
    ranked = []
    for agent in agents:
        load = open_tickets.get(agent.agent_id, 0)
        if load >= agent.capacity:
            continue
        matched = required & agent.skills
        score = len(matched) / len(required) - load / agent.capacity
        reason = f"skills {', '.join(sorted(matched)) or 'none'}; {load}/{agent.capacity} open"
        ranked.append(Suggestion(agent.agent_id, round(score, 4), load, reason))
    ranked.sort(key=lambda s: (-s.score, s.open_tickets, s.agent_id))
    return ranked
