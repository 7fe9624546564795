"""Which tickets a principal may work: the data rule beyond the permission table
(docs/permissions.md). An agent acts on tickets assigned to them, or unassigned in their queue.

Pure; `ticketing.application.TicketingApp.authorize` applies it to every command a caller
(the verified principal the gRPC edge passes in) runs on an existing ticket.
"""

from __future__ import annotations

from collections.abc import Iterable

from ticketing.domain.ticket import Ticket

# Roles that work any ticket. A connector (`integration`) relays replies on any ticket of its
# channel, but the table never lets it assign.
ANY_TICKET = frozenset({"senior_agent", "supervisor", "admin", "integration"})
ASSIGNS_ANY = frozenset({"senior_agent", "supervisor", "admin"})
AGENT = "agent"


def in_queue(ticket: Ticket, skills: Iterable[str]) -> bool:
    """Returns whether `ticket` is in the queue of an agent with `skills`: its type is one."""
    return ticket.type.value in set(skills)


def may_act_on_ticket(
    ticket: Ticket, subject: str, roles: Iterable[str], skills: Iterable[str]
) -> bool:
    """Returns whether `subject` (an agent id) holding `roles` may work `ticket` (reply, change
    priority, escalate, hold, resume, resolve, reopen); `skills` are the agent's."""
    held = set(roles)
    if ANY_TICKET & held:
        return True
    if AGENT not in held or not subject:
        return False
    if ticket.assignee_id:
        return ticket.assignee_id == subject
    return in_queue(ticket, skills)


def may_assign(
    ticket: Ticket, subject: str, roles: Iterable[str], skills: Iterable[str], assignee_id: str
) -> bool:
    """Returns whether `subject` holding `roles` may assign `ticket` to `assignee_id`: seniors
    and up assign any ticket; an agent takes an unassigned ticket of their queue themselves."""
    held = set(roles)
    if ASSIGNS_ANY & held:
        return True
    return (
        AGENT in held
        and bool(subject)
        and assignee_id == subject
        and not ticket.assignee_id
        and in_queue(ticket, skills)
    )


# Staff read and write internal notes; a connector (`integration`) relays to customers, so it
# never sees them and cannot write one.
STAFF = frozenset({"agent", "senior_agent", "supervisor", "oncall", "admin"})


def sees_internal(roles: Iterable[str]) -> bool:
    """Returns whether a principal holding `roles` reads (and writes) internal notes."""
    return bool(STAFF & set(roles))
