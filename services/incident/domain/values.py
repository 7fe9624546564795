"""The incident context's vocabulary: levels, statuses, sources, engagements, contact kinds."""

from __future__ import annotations

import re
from enum import StrEnum

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_TITLE = 200
MAX_TEXT = 20_000


class Level(StrEnum):
    """Incident level: A (whole platform) .. C (one channel)."""

    A = "a"
    B = "b"
    C = "c"


class Status(StrEnum):
    """Where an incident is in its lifecycle."""

    DECLARED = "declared"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Source(StrEnum):
    """Who declared an incident."""

    MANUAL = "manual"
    MONITORING = "monitoring"
    TICKET_SURGE = "ticket_surge"


class Engagement(StrEnum):
    """A team's part: red leads and is paged, yellow supports, grey is informed."""

    RED = "red"
    YELLOW = "yellow"
    GREY = "grey"


class ContactKind(StrEnum):
    """How a member is notified."""

    WEBHOOK = "webhook"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"
    EMAIL = "email"


OPEN = frozenset({Status.DECLARED, Status.ACKNOWLEDGED})
HIGHER = {Level.C: Level.B, Level.B: Level.A}
