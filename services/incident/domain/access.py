"""Who may acknowledge a page: the data rule beyond the permission table (docs/permissions.md).

Pure; `incident.application.authorize_acknowledgement` applies it to every AcknowledgePage a
caller (the verified principal the gRPC edge passes in) sends, at the injected clock's now.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from incident.domain import escalation as esc
from incident.domain.incident import PageState
from incident.domain.oncall import Team

# The roles the permission table grants incident.acknowledge_page; checked again here so the
# rule holds on its own.
ACKNOWLEDGING_ROLES = frozenset({"oncall", "supervisor"})


def escalation_target(page: PageState, team: Team, at: datetime) -> str:
    """Returns the member the team's chain pages if `page` goes unacknowledged ('' when the
    chain is exhausted after it)."""
    targets = escalation_targets(page, team, at)
    return targets[0] if targets else ""


def escalation_targets(page: PageState, team: Team, at: datetime) -> tuple[str, ...]:
    """Returns the members the page's policy pages next within the team (every member for a
    whole-team step); () when the chain is exhausted after it."""
    chain = esc.policy_of(team, page.policy_id)
    following = chain.after(page.step, page.round)
    if following is None:
        return ()
    target = chain.steps[following[0]].target
    return tuple(r.member_id for r in esc.recipients(team, target, at, {}))


def entitled_to_acknowledge(page: PageState, team: Team, at: datetime) -> frozenset[str]:
    """Returns who may acknowledge `page` at `at`: its paged member, that member's escalation
    target, the team's manager (its lead) and the team's current on-call."""
    entitled = {
        page.member_id,
        *escalation_targets(page, team, at),
        team.manager_id,
        team.on_call(at),
    }
    return frozenset(member for member in entitled if member)


def may_acknowledge(
    page: PageState, team: Team, subject: str, roles: Iterable[str], at: datetime
) -> bool:
    """Returns whether the principal `subject` holding `roles` may acknowledge `page` of `team`."""
    if not ACKNOWLEDGING_ROLES & set(roles):
        return False
    return subject in entitled_to_acknowledge(page, team, at)
