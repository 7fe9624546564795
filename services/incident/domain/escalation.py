"""Escalation policies as steps: which policy pages a team (routing by level and time of day),
whom a step pages (a person, a schedule's on-call, a whole team), when it escalates, and each
person's contact plan (which channels, after what delay). Pure; `decide` consumes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from incident.domain.oncall import (
    ContactPoint,
    EscalationPolicy,
    Member,
    RoutingRule,
    Team,
)
from incident.domain.values import ContactKind, Level


@dataclass(frozen=True)
class PlannedContact:
    """One entry of a page's contact plan: reach `contact` `delay_seconds` after the page."""

    contact: ContactPoint
    delay_seconds: int = 0


@dataclass(frozen=True)
class Route:
    """The policy a team is paged by, the steps it skips, and until when it does not escalate."""

    policy: EscalationPolicy
    skip: frozenset[int] = frozenset()
    hold_until: datetime | None = None


@dataclass(frozen=True)
class Recipient:
    """Whom a step pages: a member and their definition (None: unknown to every team)."""

    member_id: str
    member: Member | None


def policy_of(team: Team, policy_id: str) -> EscalationPolicy:
    """Returns the team's policy called `policy_id` (empty or gone: the team's own chain)."""
    if policy_id:
        for policy in team.policies:
            if policy.policy_id == policy_id and policy.steps:
                return policy
    return team.chain()


def _minutes(value: str) -> int:
    hour, minute = (int(part) for part in value.split(":"))
    return hour * 60 + minute


def applies(rule: RoutingRule, level: Level, at: datetime) -> bool:
    """True when `rule` routes an incident of `level` paged at `at`."""
    if rule.levels and level not in rule.levels:
        return False
    if not rule.from_time or not rule.until_time:
        return True
    local = at.astimezone(ZoneInfo(rule.time_zone or "UTC"))
    now, start, end = (
        local.hour * 60 + local.minute,
        _minutes(rule.from_time),
        _minutes(rule.until_time),
    )
    if start < end:
        return start <= now < end
    return now >= start or now < end  # across midnight (or the whole day when start == end)


def window_end(rule: RoutingRule, at: datetime) -> datetime | None:
    """Returns the first `until_time` (in the rule's zone) after `at`; None without a window."""
    if not rule.until_time:
        return None
    zone = ZoneInfo(rule.time_zone or "UTC")
    local = at.astimezone(zone)
    hour, minute = divmod(_minutes(rule.until_time), 60)
    end = datetime.combine(local.date(), time(hour, minute), zone)
    if end <= local:
        end = datetime.combine(local.date() + timedelta(days=1), time(hour, minute), zone)
    return end


def route(team: Team, level: Level, at: datetime) -> Route:
    """Returns how `team` is paged for an incident of `level` at `at`: the first matching
    routing rule's policy, skipped steps and hold; without one, the team's own chain."""
    for rule in team.routing:
        if applies(rule, level, at):
            policy = policy_of(team, rule.policy_id)
            skip = frozenset(s for s in rule.skip_steps if 0 <= s < len(policy.steps))
            if len(skip) >= len(policy.steps):
                skip = frozenset()
            return Route(policy, skip, window_end(rule, at) if rule.hold else None)
    return Route(team.chain())


def continuing(team: Team, policy_id: str, level: Level, at: datetime) -> Route:
    """Returns the route a page's chain continues on at `at`: its own policy (chosen when the
    team was first paged), with the skips and hold of the rule matching now if that rule runs
    the same policy."""
    current = route(team, level, at)
    policy = policy_of(team, policy_id)
    if current.policy == policy:
        return current
    return Route(policy)


def first(chosen: Route) -> tuple[int, int] | None:
    """Returns the (step, round) a route starts at; None when it has no step."""
    if not chosen.policy.steps:
        return None
    if 0 not in chosen.skip:
        return 0, 0
    return following(chosen, 0, 0)


def following(chosen: Route, step: int, round_: int) -> tuple[int, int] | None:
    """Returns the (step, round) after `step` of `round_`, skipping the route's skipped steps;
    None when the chain is exhausted."""
    policy = chosen.policy
    for _ in range(len(policy.steps) + 1):
        after = policy.after(step, round_)
        if after is None:
            return None
        step, round_ = after
        if step not in chosen.skip:
            return after
    return None


def ack_due(chosen: Route, step: int, at: datetime) -> datetime:
    """Returns when a page of `step` escalates: after the step's wait, not before the hold."""
    due = at + timedelta(seconds=chosen.policy.steps[step].wait_seconds)
    if chosen.hold_until is not None and chosen.hold_until > due:
        return chosen.hold_until
    return due


def recipients(
    team: Team, target: str, at: datetime, teams: Mapping[str, Team]
) -> tuple[Recipient, ...]:
    """Returns whom a step's `target` pages at `at`: one member, the on-call of a schedule
    (another team's), or every member of a team at once. An unknown other team falls back to
    the paged team's on-call."""
    kind, _, name = target.partition(":")
    if kind in ("schedule", "team") and name:
        other = team if name == team.team_id else teams.get(name)
        if other is None:
            return _one(team, team.on_call(at))
        if kind == "schedule":
            return _one(other, other.on_call(at))
        return tuple(Recipient(m.member_id, m) for m in other.members)
    if target == "team":
        return tuple(Recipient(m.member_id, m) for m in team.members)
    return _one(team, team.resolve(target, at))


def _one(team: Team, member_id: str) -> tuple[Recipient, ...]:
    return (Recipient(member_id, team.member(member_id)),) if member_id else ()


def contact_plan(member: Member | None) -> tuple[PlannedContact, ...]:
    """Returns a member's contact plan: their notification rules in order (each kind's contact
    points after its delay); without rules, every contact point at once."""
    if member is None:
        return ()
    if not member.notification_rules:
        return tuple(PlannedContact(contact, 0) for contact in member.contacts)
    plan = []
    for rule in member.notification_rules:
        plan += [
            PlannedContact(c, rule.delay_seconds) for c in member.contacts if c.kind == rule.kind
        ]
    return tuple(plan)


def due_now(plan: tuple[PlannedContact, ...], delay_seconds: int) -> tuple[ContactPoint, ...]:
    """Returns the plan's contact points due exactly `delay_seconds` after the page."""
    return tuple(entry.contact for entry in plan if entry.delay_seconds == delay_seconds)


def delays(plan: tuple[PlannedContact, ...]) -> tuple[int, ...]:
    """Returns the plan's distinct later delays (> 0), in order."""
    return tuple(sorted({entry.delay_seconds for entry in plan if entry.delay_seconds > 0}))


def next_after_failure(
    plan: tuple[PlannedContact, ...], kind: ContactKind, issued: frozenset[int]
) -> int | None:
    """Returns the plan's next delay to issue at once because the `kind` channel failed: the
    first later delay not issued yet (None: nothing left to try)."""
    failed = [entry.delay_seconds for entry in plan if entry.contact.kind == kind]
    if not failed:
        return None
    later = [delay for delay in delays(plan) if delay > min(failed) and delay not in issued]
    return min(later) if later else None


def referenced_teams(team: Team) -> tuple[str, ...]:
    """Returns the other teams a team's policies page (schedule:<id>, team:<id>)."""
    policies = (team.chain(), *team.policies)
    named = {
        step.target.partition(":")[2]
        for policy in policies
        for step in policy.steps
        if step.target.partition(":")[0] in ("schedule", "team") and ":" in step.target
    }
    named.discard(team.team_id)
    return tuple(sorted(named))
