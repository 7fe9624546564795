"""Pure tests of which tickets a principal may work (docs/permissions.md, rule 1)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ticketing import domain as d

UNASSIGNED = d.Ticket("T-1", exists=True, type=d.TicketType.FAULT)
MINE = replace(UNASSIGNED, assignee_id="agent-wang")
THEIRS = replace(UNASSIGNED, assignee_id="agent-li")
FAULTS = ["fault", "phone"]
RETURNS = ["return", "email"]


@pytest.mark.parametrize(
    ("ticket", "roles", "skills", "allowed"),
    [
        (MINE, ["agent"], RETURNS, True),  # assigned to them, whatever their queue
        (UNASSIGNED, ["agent"], FAULTS, True),  # unassigned, in their queue
        (UNASSIGNED, ["agent"], RETURNS, False),  # unassigned, another queue
        (THEIRS, ["agent"], FAULTS, False),  # another agent's ticket
        (THEIRS, ["senior_agent"], [], True),
        (THEIRS, ["supervisor"], [], True),
        (THEIRS, ["admin"], [], True),
        (THEIRS, ["integration"], [], True),
        (THEIRS, ["oncall"], FAULTS, False),
        (MINE, [], FAULTS, False),
    ],
)
def test_may_act_on_ticket(
    ticket: d.Ticket, roles: list[str], skills: list[str], allowed: bool
) -> None:
    assert d.may_act_on_ticket(ticket, "agent-wang", roles, skills) is allowed


def test_an_agent_without_a_subject_acts_on_nothing() -> None:
    assert not d.may_act_on_ticket(UNASSIGNED, "", ["agent"], FAULTS)


@pytest.mark.parametrize(
    ("ticket", "roles", "assignee", "allowed"),
    [
        (UNASSIGNED, ["agent"], "agent-wang", True),  # takes one of their queue
        (UNASSIGNED, ["agent"], "agent-li", False),  # may not hand it to someone else
        (MINE, ["agent"], "agent-li", False),  # reassigning is for seniors
        (THEIRS, ["agent"], "agent-wang", False),  # nor taking another's
        (THEIRS, ["senior_agent"], "agent-wang", True),
        (MINE, ["supervisor"], "agent-li", True),
        (UNASSIGNED, ["integration"], "agent-wang", False),
    ],
)
def test_may_assign(ticket: d.Ticket, roles: list[str], assignee: str, allowed: bool) -> None:
    assert d.may_assign(ticket, "agent-wang", roles, FAULTS, assignee) is allowed


def test_an_agent_may_not_take_an_unassigned_ticket_of_another_queue() -> None:
    assert not d.may_assign(UNASSIGNED, "agent-wang", ["agent"], RETURNS, "agent-wang")
