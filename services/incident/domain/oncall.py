"""On-call teams: members, contact points, the rotation maths, overrides and escalation chains."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from incident.domain import schedules
from incident.domain.schedules import Layer, OnCall, Override, RotationType, ShiftSwap
from incident.domain.values import ID_PATTERN, ContactKind, Level


@dataclass(frozen=True)
class ContactPoint:
    """Where a member is reached (None: the kind was not specified)."""

    kind: ContactKind | None
    address: str


@dataclass(frozen=True)
class NotificationRule:
    """A member's rule: reach them over `kind` `delay_seconds` after the page unless it was
    acknowledged by then (0: at once)."""

    kind: ContactKind | None
    delay_seconds: int = 0


@dataclass(frozen=True)
class Member:
    """A team member, their contact points and notification rules (none: every contact point
    at once)."""

    member_id: str
    name: str = ""
    contacts: tuple[ContactPoint, ...] = ()
    notification_rules: tuple[NotificationRule, ...] = ()


@dataclass(frozen=True)
class Rotation:
    """Who is on call in turn: shifts of `shift_days` handed off at `handoff_time`."""

    member_ids: tuple[str, ...] = ()
    handoff_time: str = "09:00"
    time_zone: str = "UTC"
    shift_days: int = 7
    start_date: str = "2026-01-05"


@dataclass(frozen=True)
class EscalationStep:
    """Page `target` and wait: oncall, next, manager, member:<id>, schedule:<team_id> (the
    on-call of that team's schedule), team (every member of the team at once) or
    team:<team_id> (every member of that team)."""

    target: str
    wait_seconds: int


@dataclass(frozen=True)
class EscalationPolicy:
    """The escalation chain, run `repeat` times; `policy_id` names one of a team's policies
    (empty: the team's own `escalation`)."""

    steps: tuple[EscalationStep, ...] = ()
    repeat: int = 1
    policy_id: str = ""

    def after(self, step: int, round_: int) -> tuple[int, int] | None:
        """Returns the (step, round) that follows `step` of round `round_`; None when the chain
        is exhausted."""
        step += 1
        if step >= len(self.steps):
            step, round_ = 0, round_ + 1
        return None if round_ >= self.repeat else (step, round_)


@dataclass(frozen=True)
class RoutingRule:
    """Which policy pages a team: for incidents of `levels` (empty: any) paged between
    `from_time` and `until_time` (HH:MM in `time_zone`; both empty: all day; across midnight
    when until <= from). The first matching rule wins. It runs `policy_id` (empty: the team's
    `escalation`), skips the steps numbered in `skip_steps` (0-based) and, with `hold`, does
    not escalate before `until_time`."""

    policy_id: str = ""
    levels: tuple[Level, ...] = ()
    from_time: str = ""
    until_time: str = ""
    time_zone: str = "UTC"
    skip_steps: tuple[int, ...] = ()
    hold: bool = False


DEFAULT_ESCALATION = EscalationPolicy(
    (EscalationStep("oncall", 300), EscalationStep("next", 300), EscalationStep("manager", 300)),
    2,
)


@dataclass(frozen=True)
class Team:
    """An on-call team: members, schedule (layers, or the one-layer `rotation`), overrides,
    escalation and manager. Overrides with an `override_id` and the shift swaps were added at
    runtime (events on the team aggregate); a redefinition keeps them."""

    team_id: str
    name: str = ""
    members: tuple[Member, ...] = ()
    rotation: Rotation | None = None
    overrides: tuple[Override, ...] = ()
    escalation: EscalationPolicy | None = None
    manager_id: str = ""
    policies: tuple[EscalationPolicy, ...] = ()
    routing: tuple[RoutingRule, ...] = ()
    layers: tuple[Layer, ...] = ()
    swaps: tuple[ShiftSwap, ...] = ()
    # Runtime overrides / swaps ever added: they number the next id (never one given before).
    overrides_added: int = 0
    swaps_requested: int = 0

    def member(self, member_id: str) -> Member | None:
        """Returns the member with that id, if any."""
        return next((m for m in self.members if m.member_id == member_id), None)

    def chain(self) -> EscalationPolicy:
        """Returns the team's escalation chain, or the default one."""
        return self.escalation if self.escalation and self.escalation.steps else DEFAULT_ESCALATION

    def on_call(self, at: datetime) -> str:
        """Returns who is on call at `at`: an override, a swap, else the schedule's shift."""
        return self.who(at).member_id

    def who(self, at: datetime) -> OnCall:
        """Returns who is on call at `at` and what decided it (schedules.on_call)."""
        return schedules.on_call(self.schedule(), at, self.overrides, self.swaps)

    def schedule(self) -> tuple[Layer, ...]:
        """Returns the team's layers; a team with only a rotation (or none: every member in
        turn, weekly) is a one-layer schedule."""
        if self.layers:
            return self.layers
        rotation = self.rotation or Rotation()
        return (
            Layer(
                name="rotation",
                member_ids=self._order(),
                rotation_type=RotationType.CUSTOM,
                shift_days=max(rotation.shift_days, 1),
                handoff_time=rotation.handoff_time,
                time_zone=rotation.time_zone or "UTC",
                start_date=rotation.start_date,
            ),
        )

    def definition(self) -> Team:
        """Returns the team without what was added at runtime (overrides with an id, swaps,
        their counts)."""
        static = tuple(o for o in self.overrides if not o.override_id)
        return replace(self, overrides=static, swaps=(), overrides_added=0, swaps_requested=0)

    def resolve(self, target: str, at: datetime) -> str:
        """Returns the member an escalation step targets (falling back to the on-call)."""
        who = self.who(at)
        current = who.member_id
        if target == "next":
            schedule = self.schedule()
            order = schedule[who.layer].member_ids if who.layer >= 0 else schedule[-1].member_ids
            if current in order and len(order) > 1:
                return order[(order.index(current) + 1) % len(order)]
        elif target == "manager" and self.manager_id:
            return self.manager_id
        elif target.startswith("member:") and self.member(target.removeprefix("member:")):
            return target.removeprefix("member:")
        return current

    def _order(self) -> tuple[str, ...]:
        """Returns the rotation order (all members when there is no rotation)."""
        if self.rotation and self.rotation.member_ids:
            return self.rotation.member_ids
        return tuple(m.member_id for m in self.members)

    def contacts_of(self, member_id: str) -> tuple[ContactPoint, ...]:
        """Returns a member's contact points (none for an unknown member)."""
        member = self.member(member_id)
        return member.contacts if member else ()


def validate_team(team: Team) -> list[tuple[str, str]]:
    """Returns field violations of a team definition."""
    violations: list[tuple[str, str]] = []
    if not ID_PATTERN.fullmatch(team.team_id):
        violations.append(("team.team_id", "lower-case letters, digits, '-', '_' (1-64)"))
    ids = [member.member_id for member in team.members]
    if not ids:
        violations.append(("team.members", "a team needs at least one member"))
    if len(set(ids)) != len(ids):
        violations.append(("team.members", "member ids must be unique"))
    for index, member in enumerate(team.members):
        if not member.member_id:
            violations.append((f"team.members[{index}].member_id", "must not be empty"))
        for c_index, contact in enumerate(member.contacts):
            where = f"team.members[{index}].contacts[{c_index}]"
            violations += _validate_contact(contact, where)
    known = set(ids)
    rotation = team.rotation
    if rotation is not None:
        violations += _validate_rotation(rotation, known)
    for index, override in enumerate(team.overrides):
        if override.member_id not in known:
            violations.append((f"team.overrides[{index}].member_id", "not a member of the team"))
        if override.ends_at <= override.starts_at:
            violations.append((f"team.overrides[{index}]", "ends before it starts"))
    for index, layer in enumerate(team.layers):
        violations += schedules.validate_layer(layer, f"team.layers[{index}]", known)
    if team.escalation is not None:
        violations += _validate_escalation(team.escalation, known)
    for index, member in enumerate(team.members):
        violations += _validate_rules(member, f"team.members[{index}].notification_rules")
    violations += _validate_policies(team, known)
    if team.manager_id and team.manager_id not in known:
        violations.append(("team.manager_id", "not a member of the team"))
    return violations


def _validate_contact(contact: ContactPoint, where: str) -> list[tuple[str, str]]:
    """Returns the violations of one contact point."""
    if contact.kind is None:
        return [(f"{where}.kind", "must be specified")]
    if not contact.address:
        return [(f"{where}.address", "must not be empty")]
    if contact.kind in (ContactKind.WEBHOOK, ContactKind.SLACK) and not re.match(
        r"^https?://", contact.address
    ):
        return [(f"{where}.address", "must be an http(s) URL")]
    if contact.kind is ContactKind.EMAIL and not re.fullmatch(r"[^@\s]+@[^@\s]+", contact.address):
        return [(f"{where}.address", "must be an e-mail address")]
    return []


def _validate_rotation(rotation: Rotation, known: set[str]) -> list[tuple[str, str]]:
    """Returns the violations of a rotation."""
    violations = []
    unknown = [m for m in rotation.member_ids if m not in known]
    if unknown:
        violations.append(("team.rotation.member_ids", f"not members: {', '.join(unknown)}"))
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", rotation.handoff_time):
        violations.append(("team.rotation.handoff_time", "must be HH:MM"))
    try:
        ZoneInfo(rotation.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        violations.append(("team.rotation.time_zone", f"unknown time zone {rotation.time_zone!r}"))
    if not 1 <= rotation.shift_days <= schedules.MAX_SHIFT_DAYS:
        violations.append(("team.rotation.shift_days", f"must be 1 .. {schedules.MAX_SHIFT_DAYS}"))
    try:
        date.fromisoformat(rotation.start_date)
    except ValueError:
        violations.append(("team.rotation.start_date", "must be an ISO date"))
    return violations


TARGETS = "oncall, next, manager, team, member:<id>, schedule:<team_id> or team:<team_id>"
MAX_DELAY_SECONDS = 86_400


def _validate_escalation(
    policy: EscalationPolicy, known: set[str], where: str = "team.escalation"
) -> list[tuple[str, str]]:
    """Returns the violations of an escalation chain."""
    violations = []
    if policy.repeat < 1:
        violations.append((f"{where}.repeat", "must be at least 1"))
    for index, step in enumerate(policy.steps):
        target = step.target
        kind, _, name = target.partition(":")
        if not (
            target in ("oncall", "next", "manager", "team")
            or (kind == "member" and name in known)
            or (kind in ("schedule", "team") and ID_PATTERN.fullmatch(name))
        ):
            violations.append((f"{where}.steps[{index}].target", TARGETS))
        if step.wait_seconds < 1:
            violations.append((f"{where}.steps[{index}].wait_seconds", "must be >= 1"))
    return violations


def _validate_rules(member: Member, where: str) -> list[tuple[str, str]]:
    """Returns the violations of a member's notification rules."""
    violations = []
    kinds = {contact.kind for contact in member.contacts}
    seen: set[ContactKind] = set()
    for index, rule in enumerate(member.notification_rules):
        if rule.kind is None:
            violations.append((f"{where}[{index}].kind", "must be specified"))
        elif rule.kind not in kinds:
            violations.append((f"{where}[{index}].kind", "the member has no such contact point"))
        elif rule.kind in seen:
            violations.append((f"{where}[{index}].kind", "one rule per contact kind"))
        else:
            seen.add(rule.kind)
        if not 0 <= rule.delay_seconds <= MAX_DELAY_SECONDS:
            violations.append(
                (f"{where}[{index}].delay_seconds", f"must be 0..{MAX_DELAY_SECONDS}")
            )
    return violations


_HH_MM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def _validate_policies(team: Team, known: set[str]) -> list[tuple[str, str]]:
    """Returns the violations of a team's named policies and routing rules."""
    violations = []
    ids = [policy.policy_id for policy in team.policies]
    for index, policy in enumerate(team.policies):
        where = f"team.policies[{index}]"
        if not ID_PATTERN.fullmatch(policy.policy_id):
            violations.append((f"{where}.policy_id", "lower-case letters, digits, '-', '_'"))
        elif policy.policy_id in ids[:index]:
            violations.append((f"{where}.policy_id", "policy ids must be unique"))
        if not policy.steps:
            violations.append((f"{where}.steps", "a policy needs at least one step"))
        violations += _validate_escalation(policy, known, where)
    steps: dict[str, int] = {}
    for policy in team.policies:
        steps.setdefault(policy.policy_id, len(policy.steps))
    for index, rule in enumerate(team.routing):
        where = f"team.routing[{index}]"
        if rule.policy_id and rule.policy_id not in steps:
            violations.append((f"{where}.policy_id", "not one of the team's policies"))
        if bool(rule.from_time) != bool(rule.until_time):
            violations.append((f"{where}.until_time", "give both from_time and until_time"))
        for name in ("from_time", "until_time"):
            value = getattr(rule, name)
            if value and not _HH_MM.fullmatch(value):
                violations.append((f"{where}.{name}", "must be HH:MM"))
        try:
            ZoneInfo(rule.time_zone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            violations.append((f"{where}.time_zone", f"unknown time zone {rule.time_zone!r}"))
        if any(level is None for level in rule.levels):
            violations.append((f"{where}.levels", "must be specified"))
        if rule.hold and not rule.until_time:
            violations.append((f"{where}.hold", "hold needs a time window (until_time)"))
        count = steps.get(rule.policy_id, 0) if rule.policy_id else len(team.chain().steps)
        skipped = set(rule.skip_steps)
        if count and any(not 0 <= step < count for step in skipped):
            violations.append((f"{where}.skip_steps", f"steps are numbered 0..{count - 1}"))
        elif count and len(skipped) >= count:
            violations.append((f"{where}.skip_steps", "a rule must leave at least one step"))
    return violations
