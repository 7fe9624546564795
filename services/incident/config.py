"""Incident's configuration files: on-call teams and the response matrix (pydantic models).

The models check shape and unknown keys and locate every error in its file
(`oncall.yaml: teams.sre.members[0].contacts[1].kind: 'fax' is not one of …`); they become the
domain's Team and MatrixRow values, which the domain validates again when they are put.
"""

from __future__ import annotations

import math
from datetime import datetime
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
    validate,
)
from pydantic import Field, PlainValidator
from pydantic import model_validator as model_check

from incident import domain as d

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


class MemberSpec(ConfigModel):
    """A team member and their contact points."""

    id: Text
    name: Text = ""
    contacts: Annotated[tuple[ContactSpec, ...], EmptyList] = ()

    def to_domain(self) -> d.Member:
        """Returns the domain member."""
        return d.Member(self.id, self.name, tuple(c.to_domain() for c in self.contacts))


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

    def to_domain(self) -> d.EscalationPolicy:
        """Returns the domain escalation policy."""
        steps = tuple(d.EscalationStep(s.target, s.wait_seconds) for s in self.steps)
        return d.EscalationPolicy(steps, self.repeat)


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
    try:
        data = yaml.safe_load(document)
    except yaml.YAMLError as exc:
        raise RiskPolicyError(f"not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RiskPolicyError("must be a mapping with version, weights and thresholds")
    return validate(RiskPolicyFile, data, error=RiskPolicyError).to_domain()


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
    try:
        data = yaml.safe_load(document)
    except yaml.YAMLError as exc:
        raise MatrixDraftError(f"not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise MatrixDraftError("must be a mapping: types: {type: {title, teams: {team: red}}}")
    return validate(MatrixFile, data, error=MatrixDraftError).to_domain()
