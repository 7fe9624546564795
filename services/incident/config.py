"""Incident's configuration files: on-call teams and the response matrix (pydantic models).

The models check shape and unknown keys and locate every error in its file
(`oncall.yaml: teams.sre.members[0].contacts[1].kind: 'fax' is not one of …`); they become the
domain's Team and MatrixRow values, which the domain validates again when they are put.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import yaml
from careops_platform.config_files import (
    Absent,
    ConfigModel,
    EmptyDict,
    EmptyList,
    FieldError,
    Text,
    load,
    one_of,
    parse_document,
    validate,
)
from pydantic import Field, PlainValidator
from pydantic import model_validator as model_check

from incident import domain as d
from incident.domain import intake

PACKAGE = "incident"
ONCALL_DEFAULT = "oncall_default.yaml"
MATRIX_DEFAULT = "matrix_default.yaml"


# ----------------------------------------------------------------------------- on-call teams


class ContactSpec(ConfigModel):
    """Where a member is reached: `{kind: webhook|slack|pagerduty|email, address: …}`."""

    kind: Annotated[d.ContactKind, one_of(d.ContactKind)]
    address: Text = ""

    def to_domain(self) -> d.ContactPoint:
        """Returns the domain contact point."""
        return d.ContactPoint(self.kind, self.address)


class NotifySpec(ConfigModel):
    """A notification rule: `{kind: email, delay_seconds: 120}` (0: at once)."""

    kind: Annotated[d.ContactKind, one_of(d.ContactKind)]
    delay_seconds: int = 0

    def to_domain(self) -> d.NotificationRule:
        """Returns the domain notification rule."""
        return d.NotificationRule(self.kind, self.delay_seconds)


class MemberSpec(ConfigModel):
    """A team member, their contact points and notification rules (`notify`, in order)."""

    id: Text
    name: Text = ""
    contacts: Annotated[tuple[ContactSpec, ...], EmptyList] = ()
    notify: Annotated[tuple[NotifySpec, ...], EmptyList] = ()

    def to_domain(self) -> d.Member:
        """Returns the domain member."""
        return d.Member(
            self.id,
            self.name,
            tuple(c.to_domain() for c in self.contacts),
            tuple(rule.to_domain() for rule in self.notify),
        )


class RotationSpec(ConfigModel):
    """Who is on call in turn: shifts of `shift_days` handed off at `handoff` local time."""

    members: Annotated[tuple[Text, ...], EmptyList] = ()
    handoff: Text = "09:00"
    time_zone: Text = "UTC"
    shift_days: int = 7
    start_date: Text = "2026-01-05"

    def to_domain(self) -> d.Rotation:
        """Returns the domain rotation."""
        return d.Rotation(
            member_ids=self.members,
            handoff_time=self.handoff,
            time_zone=self.time_zone,
            shift_days=self.shift_days,
            start_date=self.start_date,
        )


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class RestrictionSpec(ConfigModel):
    """A window a layer is on call in: `start`..`end` (HH:MM, layer's zone; an end at or before
    the start runs into the next day) on `days` (mon..sun; none: every day)."""

    days: Annotated[tuple[Weekday, ...], EmptyList] = ()
    start: Text = "00:00"
    end: Text = "00:00"

    def to_domain(self) -> d.Restriction:
        """Returns the domain restriction."""
        weekdays = tuple(WEEKDAYS.index(day) + 1 for day in self.days)
        return d.Restriction(weekdays, self.start, self.end)


class LayerSpec(ConfigModel):
    """One schedule layer: `members` in turn, `rotation` daily / weekly / custom (with
    `shift_days` or `shift_hours`), handed off at `handoff` in `time_zone` from `start_date`."""

    name: Text = ""
    members: Annotated[tuple[Text, ...], EmptyList] = ()
    rotation: Literal["daily", "weekly", "custom"] = "weekly"
    shift_days: int = 0
    shift_hours: int = 0
    handoff: Text = "09:00"
    time_zone: Text = "UTC"
    start_date: Text = "2026-01-05"
    restrictions: Annotated[tuple[RestrictionSpec, ...], EmptyList] = ()

    def to_domain(self) -> d.Layer:
        """Returns the domain layer."""
        return d.Layer(
            name=self.name,
            member_ids=self.members,
            rotation_type=d.RotationType(self.rotation),
            shift_days=self.shift_days,
            shift_hours=self.shift_hours,
            handoff_time=self.handoff,
            time_zone=self.time_zone,
            start_date=self.start_date,
            restrictions=tuple(r.to_domain() for r in self.restrictions),
        )


class StepSpec(ConfigModel):
    """One escalation step: page `target` (oncall, next, manager, member:<id>), then wait."""

    target: Text
    wait_seconds: int


class EscalationSpec(ConfigModel):
    """The escalation chain, run `repeat` times."""

    steps: Annotated[tuple[StepSpec, ...], EmptyList] = ()
    repeat: int = 1

    def to_domain(self, policy_id: str = "") -> d.EscalationPolicy:
        """Returns the domain escalation policy."""
        steps = tuple(d.EscalationStep(s.target, s.wait_seconds) for s in self.steps)
        return d.EscalationPolicy(steps, self.repeat, policy_id)


class RoutingSpec(ConfigModel):
    """A routing rule: `{levels: [c], from: "20:00", until: "08:00", time_zone: …, policy: …,
    skip_steps: [1], hold: true}`."""

    policy: Text = ""
    levels: Annotated[tuple[Annotated[d.Level, one_of(d.Level)], ...], EmptyList] = ()
    from_: Annotated[Text, Field(alias="from")] = ""
    until: Text = ""
    time_zone: Text = "UTC"
    skip_steps: Annotated[tuple[int, ...], EmptyList] = ()
    hold: bool = False

    def to_domain(self) -> d.RoutingRule:
        """Returns the domain routing rule."""
        return d.RoutingRule(
            policy_id=self.policy,
            levels=self.levels,
            from_time=self.from_,
            until_time=self.until,
            time_zone=self.time_zone,
            skip_steps=self.skip_steps,
            hold=self.hold,
        )


class OverrideSpec(ConfigModel):
    """A member on call in place of the rotation from `starts_at` until `ends_at`."""

    member: Text
    starts_at: datetime
    ends_at: datetime

    def to_domain(self) -> d.Override:
        """Returns the domain override."""
        return d.Override(self.member, self.starts_at, self.ends_at)


class TeamSpec(ConfigModel):
    """One on-call team."""

    name: Text | None = None
    manager: Text = ""
    members: Annotated[tuple[MemberSpec, ...], EmptyList] = ()
    rotation: Annotated[RotationSpec | None, Absent] = None
    layers: Annotated[tuple[LayerSpec, ...], EmptyList] = ()
    escalation: Annotated[EscalationSpec | None, Absent] = None
    overrides: Annotated[tuple[OverrideSpec, ...], EmptyList] = ()
    policies: Annotated[dict[str, EscalationSpec], EmptyDict] = {}
    routing: Annotated[tuple[RoutingSpec, ...], EmptyList] = ()

    def to_domain(self, team_id: str) -> d.Team:
        """Returns the domain team called `team_id`."""
        return d.Team(
            team_id=team_id,
            name=team_id if self.name is None else self.name,
            members=tuple(m.to_domain() for m in self.members),
            rotation=self.rotation.to_domain() if self.rotation else None,
            overrides=tuple(o.to_domain() for o in self.overrides),
            escalation=self.escalation.to_domain() if self.escalation else None,
            manager_id=self.manager,
            policies=tuple(spec.to_domain(name) for name, spec in self.policies.items()),
            routing=tuple(rule.to_domain() for rule in self.routing),
            layers=tuple(layer.to_domain() for layer in self.layers),
        )


class OncallFile(ConfigModel):
    """The on-call file: `teams: {team_id: {name, manager, members, rotation, …}}`."""

    teams: Annotated[dict[str, TeamSpec], EmptyDict] = {}

    def to_domain(self) -> list[d.Team]:
        """Returns the domain teams in file order."""
        return [spec.to_domain(team_id) for team_id, spec in self.teams.items()]


def load_teams(path: str | None) -> list[d.Team]:
    """Returns the teams of the on-call YAML `path` (None: the packaged default)."""
    return load(OncallFile, path, package=PACKAGE, default=ONCALL_DEFAULT).to_domain()


# ----------------------------------------------------------------------------- response matrix


class MatrixTypeSpec(ConfigModel):
    """One incident type: its title and each team's engagement (red, yellow, grey)."""

    title: Text = ""
    teams: Annotated[dict[str, Annotated[d.Engagement, one_of(d.Engagement)]], EmptyDict] = {}

    def to_domain(self, incident_type: str) -> d.MatrixRow:
        """Returns the domain matrix row of `incident_type`."""
        cells = tuple(d.MatrixCell(team, level) for team, level in self.teams.items())
        return d.MatrixRow(incident_type, self.title, cells)


class MatrixFile(ConfigModel):
    """The response matrix file: `types: {type: {title, teams: {team: red|yellow|grey}}}`."""

    types: Annotated[dict[str, MatrixTypeSpec], EmptyDict] = {}

    def to_domain(self) -> list[d.MatrixRow]:
        """Returns the domain matrix rows in file order."""
        return [spec.to_domain(name) for name, spec in self.types.items()]


def load_matrix(path: str | None) -> list[d.MatrixRow]:
    """Returns the rows of the response matrix YAML `path` (None: the packaged default)."""
    return load(MatrixFile, path, package=PACKAGE, default=MATRIX_DEFAULT).to_domain()


# ----------------------------------------------------------------------------- risk model


def _weight(value: Any) -> float:
    """Returns a finite number between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a number between 0 and 1, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"must be a number between 0 and 1, got {value!r}") from None
    if not math.isfinite(number) or not 0 <= number <= 1:
        raise ValueError(f"must be a number between 0 and 1, got {value!r}")
    return number


Weight = Annotated[float, PlainValidator(_weight)]


class RiskSpec(ConfigModel):
    """The risk model's version, factor weights and level thresholds."""

    version: Text = d.RiskModel.version
    weights: tuple[Weight, Weight, Weight, Weight] = (0.4, 0.3, 0.2, 0.1)
    thresholds: tuple[Weight, Weight] = (0.7, 0.4)

    @model_check(mode="after")
    def _levels_in_order(self) -> RiskSpec:
        """The weights sum to 1; level A needs at least the index level B needs."""
        _sums_to_one(self.weights, "weights")
        if self.thresholds[0] < self.thresholds[1]:
            raise FieldError("thresholds", "level A's threshold must not be below level B's")
        return self

    def to_domain(self) -> d.RiskModel:
        """Returns the domain risk model."""
        scope, business, timeliness, exposure = self.weights
        return d.RiskModel(
            version=self.version,
            scope_weight=scope,
            business_weight=business,
            timeliness_weight=timeliness,
            exposure_weight=exposure,
            level_a_threshold=self.thresholds[0],
            level_b_threshold=self.thresholds[1],
        )


def risk_model(
    version: str, weights: tuple[float, ...], thresholds: tuple[float, ...]
) -> d.RiskModel:
    """Returns the risk model of the settings' version, weights (scope, business, timeliness,
    exposure) and thresholds (level A, level B); ConfigError naming a bad value otherwise."""
    data = {"version": version, "weights": weights, "thresholds": thresholds}
    return validate(RiskSpec, data, root="risk").to_domain()


WEIGHT_SUM_TOLERANCE = 1e-9
MAX_RESPONSE_MINUTES = 7 * 24 * 60


def _sums_to_one(weights: tuple[float, ...], path: str) -> None:
    """Raises FieldError at `path` unless the weights sum to 1 (the index is then 0..1)."""
    total = math.fsum(weights)
    if abs(total - 1) > WEIGHT_SUM_TOLERANCE:
        raise FieldError(path, f"the four weights must sum to 1, got {total:.10g}")


# ----------------------------------------------------------------------------- risk policy


class RiskPolicyError(ValueError):
    """A risk policy document is invalid; the message starts with the offending key."""


Minutes = Annotated[int, Field(ge=1, le=MAX_RESPONSE_MINUTES, strict=True)]


class RiskWeightsSpec(ConfigModel):
    """The weight of each normalised factor in the risk index; they sum to 1."""

    scope: Weight
    business: Weight
    timeliness: Weight
    exposure: Weight


class LevelThresholdsSpec(ConfigModel):
    """The index from which an incident is level A, and level B (below B: level C)."""

    a: Weight
    b: Weight


class ResponseMinutesSpec(ConfigModel):
    """Minutes to the response deadline per level; a higher level is due no later."""

    a: Minutes = 15
    b: Minutes = 30
    c: Minutes = 60


class RiskPolicyFile(ConfigModel):
    """The risk policy document (kind `risk`, docs/incidents.md "Risk policy")."""

    version: Text
    weights: RiskWeightsSpec
    thresholds: LevelThresholdsSpec
    response_minutes: ResponseMinutesSpec = ResponseMinutesSpec()
    scope_saturation_users: Annotated[int, Field(ge=1, le=10**10, strict=True)] = 100_000
    default_handling_minutes: Annotated[float, Field(gt=0, le=MAX_RESPONSE_MINUTES)] = 60.0

    @model_check(mode="after")
    def _consistent(self) -> RiskPolicyFile:
        w = self.weights
        _sums_to_one((w.scope, w.business, w.timeliness, w.exposure), "weights")
        if self.thresholds.a <= self.thresholds.b:
            raise FieldError(
                ("thresholds", "a"),
                f"must be above level B's threshold {self.thresholds.b}, got {self.thresholds.a}",
            )
        minutes = self.response_minutes
        if not minutes.a <= minutes.b <= minutes.c:
            raise FieldError(
                "response_minutes", "a higher level is due no later: a <= b <= c minutes"
            )
        return self

    def to_domain(self) -> d.RiskModel:
        """Returns the domain risk model."""
        minutes = self.response_minutes
        return d.RiskModel(
            version=self.version,
            scope_weight=self.weights.scope,
            business_weight=self.weights.business,
            timeliness_weight=self.weights.timeliness,
            exposure_weight=self.weights.exposure,
            level_a_threshold=self.thresholds.a,
            level_b_threshold=self.thresholds.b,
            scope_saturation_users=self.scope_saturation_users,
            default_handling_minutes=self.default_handling_minutes,
            response_minutes={d.Level.A: minutes.a, d.Level.B: minutes.b, d.Level.C: minutes.c},
        )


def parse_risk_policy(document: str) -> d.RiskModel:
    """Returns the risk model of a risk policy YAML document; RiskPolicyError locating the
    first bad key (`weights: the four weights must sum to 1, got 0.9`) otherwise."""
    return parse_document(
        RiskPolicyFile,
        document,
        error=RiskPolicyError,
        shape="must be a mapping with version, weights and thresholds",
    ).to_domain()


def risk_document(model: d.RiskModel) -> str:
    """Returns the risk policy YAML document of a risk model (parse_risk_policy's inverse)."""
    data = {
        "version": model.version,
        "weights": {
            "scope": model.scope_weight,
            "business": model.business_weight,
            "timeliness": model.timeliness_weight,
            "exposure": model.exposure_weight,
        },
        "thresholds": {"a": model.level_a_threshold, "b": model.level_b_threshold},
        "response_minutes": {
            level.value: int(minutes) for level, minutes in model.response_minutes.items()
        },
        "scope_saturation_users": model.scope_saturation_users,
        "default_handling_minutes": model.default_handling_minutes,
    }
    return yaml.safe_dump(data, sort_keys=False)


# ----------------------------------------------------------------------------- matrix drafts


class MatrixDraftError(ValueError):
    """A draft response matrix is invalid; the message starts with the offending key."""


def parse_matrix(document: str) -> list[d.MatrixRow]:
    """Returns the rows of a response matrix YAML document (the matrix file's format);
    MatrixDraftError locating the first bad key otherwise."""
    return parse_document(
        MatrixFile,
        document,
        error=MatrixDraftError,
        shape="must be a mapping: types: {type: {title, teams: {team: red}}}",
    ).to_domain()


# ----------------------------------------------------------------------------- integration rules


class IntegrationPolicyError(ValueError):
    """An integrations policy document is invalid; the message starts with the offending key."""


Labels = Annotated[dict[str, Text], EmptyDict]
Positive = Annotated[int, Field(ge=1, le=10_000, strict=True)]
WindowMinutes = Annotated[float, Field(gt=0, le=7 * 24 * 60)]


class FactorsSpec(ConfigModel):
    """The risk factors an alert's incident is declared with."""

    users_affected: Annotated[int, Field(ge=0, le=10**10, strict=True)] = 0
    core_system: Annotated[float, Field(ge=0, le=1)] = 0.0
    elapsed_minutes: Annotated[float, Field(ge=0, le=10**6)] = 0.0
    average_handling_minutes: Annotated[float, Field(ge=0, le=10**6)] = 0.0
    exposure: Annotated[float, Field(ge=0, le=1)] = 0.0

    def to_domain(self) -> d.RiskFactors:
        return d.RiskFactors(**self.model_dump())


def _level(value: Any) -> d.Level | None:
    """A level `a`, `b` or `c` (any case); None when absent."""
    if value is None:
        return None
    try:
        return d.Level(str(value).lower())
    except ValueError:
        raise ValueError(f"{value!r} is not one of a, b, c") from None


class RuleSpec(ConfigModel):
    """`{match: {label: value}, type, factors, level, page_after, page_window_minutes}`; the
    type's response-matrix row names the teams paged."""

    match: Labels = {}
    type: Text
    factors: FactorsSpec = FactorsSpec()
    level: Annotated[d.Level | None, Absent, PlainValidator(_level)] = None
    page_after: Positive = 1
    page_window_minutes: WindowMinutes = 5.0
    team: Text = ""
    engagement: Annotated[d.Engagement, one_of(d.Engagement)] = d.Engagement.RED

    @model_check(mode="after")
    def _team_id(self) -> RuleSpec:
        if self.team and not d.ID_PATTERN.fullmatch(self.team):
            raise FieldError("team", f"a team id like payments, got {self.team!r}")
        return self

    def to_domain(self) -> intake.Rule:
        return intake.Rule(
            type=self.type,
            match=dict(self.match),
            factors=self.factors.to_domain(),
            level=self.level,
            team=self.team,
            engagement=self.engagement,
            page_after=self.page_after,
            page_window=timedelta(minutes=self.page_window_minutes),
        )


class WindowSpec(ConfigModel):
    """A silence or maintenance window: `{matchers: {label: value}, starts_at, ends_at}`."""

    matchers: Labels = {}
    starts_at: datetime
    ends_at: datetime
    comment: Text = ""

    @model_check(mode="after")
    def _ordered(self) -> WindowSpec:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise FieldError("starts_at", "give a time zone (e.g. 2026-12-01T22:00:00Z)")
        if self.ends_at <= self.starts_at:
            raise FieldError("ends_at", "must be after starts_at")
        return self

    def to_domain(self) -> intake.Window:
        return intake.Window(dict(self.matchers), self.starts_at, self.ends_at, self.comment)


class FlappingSpec(ConfigModel):
    """`{max_reopens: N, window_minutes: T}`: a group re-opened N times within T stays shut."""

    max_reopens: Positive
    window_minutes: WindowMinutes = 60.0


class MappingSpec(ConfigModel):
    """A generic webhook's JSON paths (`$.a.b[0]`) and its action values."""

    dedup_key: Text = "$.dedup_key"
    summary: Text = "$.summary"
    action: Text = "$.action"
    severity: Text = "$.severity"
    group_key: Text = ""
    labels: Text = ""
    actions: Annotated[dict[str, Annotated[intake.Action, one_of(intake.Action)]], EmptyDict] = {}

    @model_check(mode="after")
    def _paths(self) -> MappingSpec:
        for name in ("dedup_key", "summary", "action", "severity", "group_key", "labels"):
            path = getattr(self, name)
            if path and not path.startswith("$"):
                raise FieldError(name, f"a JSON path like $.{name}, got {path!r}")
        return self

    def to_domain(self) -> intake.FieldMapping:
        return intake.FieldMapping(
            dedup_key=self.dedup_key,
            summary=self.summary,
            action=self.action,
            severity=self.severity,
            group_key=self.group_key,
            labels=self.labels,
            actions=dict(self.actions),
        )


class IntegrationSpec(ConfigModel):
    """One integration's rules (its id is the subject of its `integration` API key)."""

    kind: Annotated[intake.SourceKind | None, Absent, one_of(intake.SourceKind)] = None
    rules: Annotated[tuple[RuleSpec, ...], EmptyList] = ()
    default: RuleSpec = RuleSpec(type="service_outage")
    silences: Annotated[tuple[WindowSpec, ...], EmptyList] = ()
    maintenance: Annotated[tuple[WindowSpec, ...], EmptyList] = ()
    flapping: FlappingSpec | None = None
    mapping: MappingSpec = MappingSpec()

    def to_domain(self, integration_id: str) -> intake.Integration:
        flapping = self.flapping
        return intake.Integration(
            integration_id=integration_id,
            kind=self.kind,
            rules=tuple(rule.to_domain() for rule in self.rules),
            default=self.default.to_domain(),
            silences=tuple(window.to_domain() for window in self.silences),
            maintenance=tuple(window.to_domain() for window in self.maintenance),
            flap_limit=flapping.max_reopens if flapping else 0,
            flap_window=timedelta(minutes=flapping.window_minutes if flapping else 60),
            mapping=self.mapping.to_domain(),
        )


class IntegrationPolicyFile(ConfigModel):
    """The integrations policy document (kind `integrations`, docs/incidents.md)."""

    version: Text
    default: IntegrationSpec = IntegrationSpec()
    integrations: Annotated[dict[str, IntegrationSpec], EmptyDict] = {}

    def to_domain(self) -> intake.IntegrationRules:
        return intake.IntegrationRules(
            version=self.version,
            integrations={name: spec.to_domain(name) for name, spec in self.integrations.items()},
            fallback=self.default.to_domain("*"),
        )


def parse_integration_policy(document: str) -> intake.IntegrationRules:
    """Returns the integration rules of an integrations policy YAML document;
    IntegrationPolicyError locating the first bad key otherwise."""
    return parse_document(
        IntegrationPolicyFile,
        document,
        error=IntegrationPolicyError,
        shape="must be a mapping with version, default and integrations",
    ).to_domain()


def check_rule_types(rules: intake.IntegrationRules, types: frozenset[str]) -> list[str]:
    """Returns the incident types the rules name that the response matrix does not know."""
    integrations = (rules.fallback, *rules.integrations.values())
    named = {rule.type for i in integrations for rule in (*i.rules, i.default)}
    return sorted(named - types)


def rule_teams(rules: intake.IntegrationRules) -> list[str]:
    """Returns the teams the rules engage (each must exist when the policy is put)."""
    integrations = (rules.fallback, *rules.integrations.values())
    return sorted({rule.team for i in integrations for rule in (*i.rules, i.default) if rule.team})


# The integrations policy seeded at start (revision 1) when none is on the log yet.
INTEGRATIONS_DEFAULT = """\
version: integrations-2026.1
# Any integration the document does not name: every alert opens a service outage.
default:
  rules:
    - match: {severity: critical}
      type: service_outage
      factors: {users_affected: 1000, core_system: 0.8}
  default:
    type: service_outage
    factors: {users_affected: 10, core_system: 0.3}
integrations: {}
"""
