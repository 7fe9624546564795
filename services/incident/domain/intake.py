"""Alert intake: alerts from the tools teams run (Alertmanager, PagerDuty Events v2 clients,
generic webhooks) grouped into incidents by the integration's rules. Pure: no I/O, no clock.

An alert group (one per integration and group key: Alertmanager's groupKey, PagerDuty's
dedup_key) holds its current episode's incident and the fingerprints firing in it. The first
alert that fires (or the N-th within T, by the rule's `page_after`) opens an episode, whose
incident id is derived from the group and the episode number, so every replica and every retry
names the same incident. When the episode's fingerprints have all resolved (PagerDuty: a
`resolve`) the episode ends and its incident is resolved; a later alert opens the next
episode, unless the group is flapping (re-opened more than N times within T).

The integration rules (policy kind `integrations`, versioned data) say which incident type and
risk factors an alert's labels map to (first match wins, then the default), which alerts are
silenced or fall in a maintenance window (counted, no incident), and the flapping limits.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from incident.domain.matrix import MatrixCell
from incident.domain.risk import RiskFactors
from incident.domain.values import Engagement, Level

MAX_KEY = 255
MAX_ALERTS = 500


class SourceKind(StrEnum):
    """The tool an alert came from."""

    ALERTMANAGER = "alertmanager"
    PAGERDUTY = "pagerduty"
    WEBHOOK = "webhook"


class Action(StrEnum):
    """What an alert asks for."""

    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


class Outcome(StrEnum):
    """What the intake did with one alert (careops_alerts_received_total's outcome label)."""

    OPENED = "opened"
    GROUPED = "grouped"
    DUPLICATE = "duplicate"
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"
    SILENCED = "silenced"
    MAINTENANCE = "maintenance"
    FLAPPING = "flapping"
    REJECTED = "rejected"


# ----------------------------------------------------------------------------- rules (data)


@dataclass(frozen=True)
class Window:
    """A silence or maintenance window: alerts whose labels match every matcher, in
    [starts_at, ends_at), are counted but open no incident."""

    matchers: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime
    comment: str = ""

    def covers(self, labels: Mapping[str, str], at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at and matches(self.matchers, labels)


@dataclass(frozen=True)
class Rule:
    """Labels → incident type (whose response-matrix row says which teams are paged), a team
    engaged besides the row's (at `engagement`), risk factors, a level floor the incident is
    declared at least at; `page_after` alerts within `page_window` before an incident opens
    (1: at once)."""

    type: str
    match: Mapping[str, str] = field(default_factory=dict)
    factors: RiskFactors = RiskFactors()
    level: Level | None = None
    page_after: int = 1
    page_window: timedelta = timedelta(minutes=5)
    team: str = ""
    engagement: Engagement = Engagement.RED

    @property
    def extra_teams(self) -> tuple[MatrixCell, ...]:
        """The rule's team as DeclareIncident's extra team (none without a team)."""
        return (MatrixCell(self.team, self.engagement),) if self.team else ()


@dataclass(frozen=True)
class FieldMapping:
    """A generic webhook's declarative mapping: a JSON path (`$.a.b[0].c`) per field; the
    action's values are mapped through `actions` (e.g. {"firing": "trigger", "ok": "resolve"})."""

    dedup_key: str = "$.dedup_key"
    summary: str = "$.summary"
    action: str = "$.action"
    severity: str = "$.severity"
    group_key: str = ""
    labels: str = ""
    actions: Mapping[str, Action] = field(default_factory=dict)


@dataclass(frozen=True)
class Integration:
    """One integration's rules."""

    integration_id: str
    kind: SourceKind | None = None  # None: any source
    rules: tuple[Rule, ...] = ()
    default: Rule = Rule(type="service_outage")
    silences: tuple[Window, ...] = ()
    maintenance: tuple[Window, ...] = ()
    flap_limit: int = 0  # re-openings within flap_window beyond which a re-fire is suppressed
    flap_window: timedelta = timedelta(hours=1)
    mapping: FieldMapping = FieldMapping()

    def rule_for(self, labels: Mapping[str, str]) -> Rule:
        """The first rule whose matchers all match `labels`, else the default."""
        return next((rule for rule in self.rules if matches(rule.match, labels)), self.default)


@dataclass(frozen=True)
class IntegrationRules:
    """Every integration's rules; `fallback` serves an integration the document does not name."""

    version: str = "integrations-default"
    integrations: Mapping[str, Integration] = field(default_factory=dict)
    fallback: Integration = Integration("*")

    def of(self, integration_id: str) -> Integration:
        found = self.integrations.get(integration_id)
        return found or replace(self.fallback, integration_id=integration_id)


def matches(matchers: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """True when every matcher's label has its value ("*": any value, present)."""
    for name, value in matchers.items():
        if name not in labels or (value != "*" and labels[name] != value):
            return False
    return True


# ----------------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class Alert:
    """One normalised alert."""

    dedup_key: str
    group_key: str
    action: Action
    summary: str = ""
    severity: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None


def validate_alerts(integration_id: str, alerts: Sequence[Alert]) -> list[tuple[str, str]]:
    """Returns the field violations of an intake request."""
    violations: list[tuple[str, str]] = []
    if not integration_id.strip() or len(integration_id) > MAX_KEY:
        violations.append(("integration_id", f"required, at most {MAX_KEY} characters"))
    if not alerts:
        violations.append(("alerts", "at least one alert"))
    if len(alerts) > MAX_ALERTS:
        violations.append(("alerts", f"at most {MAX_ALERTS} alerts per request"))
    for index, alert in enumerate(alerts[:MAX_ALERTS]):
        for name in ("dedup_key", "group_key"):
            value = getattr(alert, name)
            if not value.strip() or len(value) > MAX_KEY:
                violations.append((f"alerts[{index}].{name}", f"required, 1..{MAX_KEY} characters"))
        if len(alert.summary) > 1024:
            violations.append((f"alerts[{index}].summary", "at most 1024 characters"))
    return violations


# ----------------------------------------------------------------------------- the group


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def group_id(integration_id: str, group_key: str) -> str:
    """The alert group's aggregate id: derived from the integration and the group key."""
    return "G-" + _digest(integration_id, group_key)[:32]


def incident_id_of(integration_id: str, group_key: str, episode: int) -> str:
    """The incident of a group's episode: the same on every replica and every retry."""
    return f"ALR-{_digest(integration_id, group_key)[:20]}-{episode}"


@dataclass(frozen=True)
class AlertGroupOpened:
    integration_id: str
    group_key: str
    incident_id: str
    episode: int
    incident_type: str


@dataclass(frozen=True)
class AlertFired:
    fingerprint: str
    summary: str = ""
    severity: str = ""
    incident_id: str = ""


@dataclass(frozen=True)
class AlertCleared:
    fingerprint: str


@dataclass(frozen=True)
class AlertGroupAcknowledged:
    incident_id: str


@dataclass(frozen=True)
class AlertGroupResolved:
    incident_id: str
    reason: str = ""


AlertGroupEvent = (
    AlertGroupOpened | AlertFired | AlertCleared | AlertGroupAcknowledged | AlertGroupResolved
)


@dataclass(frozen=True)
class AlertGroup:
    """One group's state: the open episode's incident ("" when none) and what fires in it."""

    group_id: str
    integration_id: str = ""
    group_key: str = ""
    episode: int = 0
    incident_id: str = ""
    incident_type: str = ""
    acknowledged: bool = False
    firing: frozenset[str] = frozenset()
    pending: tuple[tuple[str, datetime], ...] = ()  # fired below "N within T": (key, at)
    opened_at: tuple[datetime, ...] = ()  # when each episode opened (flapping)
    last_resolved: str = ""  # the incident of the last episode that ended

    @property
    def open(self) -> bool:
        return bool(self.incident_id)


def initial_group(group_id_: str) -> AlertGroup:
    return AlertGroup(group_id=group_id_)


def evolve_group(state: AlertGroup, event: AlertGroupEvent, at: datetime) -> AlertGroup:
    """Applies one alert-group event."""
    if isinstance(event, AlertGroupOpened):
        return replace(
            state,
            integration_id=event.integration_id,
            group_key=event.group_key,
            episode=event.episode,
            incident_id=event.incident_id,
            incident_type=event.incident_type,
            acknowledged=False,
            firing=frozenset(key for key, _ in state.pending),
            pending=(),
            opened_at=(*state.opened_at[-50:], at),
        )
    if isinstance(event, AlertFired):
        if event.incident_id:
            return replace(state, firing=state.firing | {event.fingerprint})
        return replace(state, pending=(*state.pending, (event.fingerprint, at)))
    if isinstance(event, AlertCleared):
        return replace(
            state,
            firing=state.firing - {event.fingerprint},
            pending=tuple(p for p in state.pending if p[0] != event.fingerprint),
        )
    if isinstance(event, AlertGroupAcknowledged):
        return replace(state, acknowledged=True)
    if isinstance(event, AlertGroupResolved):
        return replace(state, incident_id="", firing=frozenset(), last_resolved=event.incident_id)
    return state


@dataclass(frozen=True)
class Decision:
    """The events of one group's alerts, and each alert's outcome in order."""

    events: list[AlertGroupEvent]
    outcomes: list[tuple[Outcome, str]]  # (outcome, incident id)
    state: AlertGroup


def decide_alerts(
    state: AlertGroup,
    integration: Integration,
    source: SourceKind,
    alerts: Sequence[Alert],
    now: datetime,
) -> Decision:
    """Decides one group's alerts, in order, against the group's state. Idempotent: a
    fingerprint already firing, a repeated trigger or an unknown resolve yields no event."""
    events: list[AlertGroupEvent] = []
    outcomes: list[tuple[Outcome, str]] = []
    for alert in alerts:
        new, outcome = _decide_one(state, integration, source, alert, now)
        for event in new:
            state = evolve_group(state, event, now)
        events += new
        outcomes.append((outcome, state.incident_id or state.last_resolved))
    return Decision(events, outcomes, state)


def _decide_one(
    state: AlertGroup, integration: Integration, source: SourceKind, alert: Alert, now: datetime
) -> tuple[list[AlertGroupEvent], Outcome]:
    key = alert.dedup_key
    if alert.action is Action.ACKNOWLEDGE:
        if not state.open or state.acknowledged:
            return [], Outcome.DUPLICATE
        return [AlertGroupAcknowledged(state.incident_id)], Outcome.ACKNOWLEDGED
    if alert.action is Action.RESOLVE:
        return _resolve(state, source, key)
    # trigger
    if key in state.firing or any(p[0] == key for p in state.pending):
        return [], Outcome.DUPLICATE
    if any(window.covers(alert.labels, now) for window in integration.silences):
        return [], Outcome.SILENCED
    if any(window.covers(alert.labels, now) for window in integration.maintenance):
        return [], Outcome.MAINTENANCE
    fired = AlertFired(key, alert.summary[:1024], alert.severity[:64], state.incident_id)
    if state.open:
        return [fired], Outcome.GROUPED
    if integration.flap_limit and _flapping(state, integration, now):
        return [], Outcome.FLAPPING
    rule = integration.rule_for(alert.labels)
    recent = [at for _, at in state.pending if at > now - rule.page_window]
    if len(recent) + 1 < rule.page_after:
        return [fired], Outcome.GROUPED
    episode = state.episode + 1
    opened = AlertGroupOpened(
        integration_id=integration.integration_id,
        group_key=alert.group_key,
        incident_id=incident_id_of(integration.integration_id, alert.group_key, episode),
        episode=episode,
        incident_type=rule.type,
    )
    return [opened, replace(fired, incident_id=opened.incident_id)], Outcome.OPENED


def _resolve(
    state: AlertGroup, source: SourceKind, key: str
) -> tuple[list[AlertGroupEvent], Outcome]:
    pending = any(p[0] == key for p in state.pending)
    if source is SourceKind.PAGERDUTY or (source is SourceKind.WEBHOOK and not state.firing):
        # PagerDuty resolves the incident of the dedup key, whatever fired in it.
        if not state.open:
            return ([AlertCleared(key)], Outcome.RESOLVED) if pending else ([], Outcome.DUPLICATE)
        return [AlertGroupResolved(state.incident_id, "resolved by the source")], Outcome.RESOLVED
    if key not in state.firing:
        return ([AlertCleared(key)], Outcome.RESOLVED) if pending else ([], Outcome.DUPLICATE)
    cleared = AlertCleared(key)
    if state.firing == {key}:
        return [cleared, AlertGroupResolved(state.incident_id, "every alert resolved")], (
            Outcome.RESOLVED
        )
    return [cleared], Outcome.RESOLVED


def _flapping(state: AlertGroup, integration: Integration, now: datetime) -> bool:
    """True when the group already re-opened `flap_limit` times within the window (another
    re-opening would make it more than N)."""
    reopened = [at for at in state.opened_at[1:] if at > now - integration.flap_window]
    return len(reopened) >= integration.flap_limit


def alert_title(summary: str, group_key: str) -> str:
    """The incident's title from the opening alert."""
    title = summary.strip() or f"Alert {group_key}"
    return title[:200]


# ----------------------------------------------------------------------------- generic webhook

_ACTION_WORDS = {"firing": Action.TRIGGER, "resolved": Action.RESOLVE, "ok": Action.RESOLVE}
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def json_path(body: Any, path: str) -> Any:
    """The value at a simple JSON path (`$`, `.name`, `[0]`, `['odd name']`); None if absent."""
    if not path.startswith("$"):
        return None
    value, rest = body, path[1:]
    while rest:
        step = _STEP.match(rest)
        if step is None:
            return None
        name, index, quoted, double = step.groups()
        key = name or quoted or double
        if index is not None:
            if not isinstance(value, list) or int(index) >= len(value):
                return None
            value = value[int(index)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return None
        rest = rest[step.end() :]
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def map_webhook(
    mapping: FieldMapping, body: Any, index: int = 0
) -> tuple[Alert | None, list[tuple[str, str]]]:
    """Maps a generic webhook's JSON body to an alert by the integration's field mapping;
    the violations name the field whose path found nothing usable."""
    where = f"alerts[{index}]"
    dedup_key = _as_text(json_path(body, mapping.dedup_key))
    if not dedup_key:
        return None, [(f"{where}.dedup_key", f"the mapping's {mapping.dedup_key} found nothing")]
    raw_action = _as_text(json_path(body, mapping.action)).strip().lower()
    action = mapping.actions.get(raw_action)
    if action is None:
        known = {a.value: a for a in Action} | _ACTION_WORDS
        action = known.get(raw_action, Action.TRIGGER if not raw_action else None)
    if action is None:
        choices = ", ".join(sorted({*mapping.actions, *(a.value for a in Action)}))
        return None, [(f"{where}.action", f"{raw_action!r} is none of {choices}")]
    group_key = _as_text(json_path(body, mapping.group_key)) if mapping.group_key else ""
    labels_value = json_path(body, mapping.labels) if mapping.labels else None
    labels = (
        {str(k)[:200]: _as_text(v)[:1024] for k, v in list(labels_value.items())[:200]}
        if isinstance(labels_value, dict)
        else {}
    )
    severity = _as_text(json_path(body, mapping.severity))[:64]
    if severity and "severity" not in labels:
        labels["severity"] = severity
    alert = Alert(
        dedup_key=dedup_key[:MAX_KEY],
        group_key=(group_key or dedup_key)[:MAX_KEY],
        action=action,
        summary=_as_text(json_path(body, mapping.summary))[:1024],
        severity=severity,
        labels=labels,
    )
    return alert, []
