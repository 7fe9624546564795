"""The incident context's vocabulary: levels, statuses, sources, engagements, contact kinds."""

from __future__ import annotations

import re
from enum import StrEnum

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_TITLE = 200
MAX_TEXT = 20_000


class Level(StrEnum):
    A = "a"
    B = "b"
    C = "c"


class Status(StrEnum):
    DECLARED = "declared"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Source(StrEnum):
    MANUAL = "manual"
    MONITORING = "monitoring"
    TICKET_SURGE = "ticket_surge"


class Engagement(StrEnum):
    RED = "red"
    YELLOW = "yellow"
    GREY = "grey"


class ContactKind(StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"
    EMAIL = "email"


OPEN = frozenset({Status.DECLARED, Status.ACKNOWLEDGED})
HIGHER = {Level.C: Level.B, Level.B: Level.A}
