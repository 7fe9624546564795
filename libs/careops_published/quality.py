"""Quality's published events (careops.quality.v1), as other contexts read them.

Withheld: the survey comment and the answers (open-text answers are free text the customer
wrote; the CSAT and NPS answers are `csat` and `nps`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WITHHELD: dict[str, tuple[str, ...]] = {"SurveySubmitted": ("comment", "answers", "sealed")}


@dataclass(frozen=True)
class SurveySubmitted:
    ticket_id: str
    customer_id: str
    agent_id: str
    channel: str
    ticket_type: str
    priority: str
    csat: int
    nps: int
    has_nps: bool
    emotion: str | None
    emotion_score: float
    submitted_at: datetime | None
    follow_up_required: bool
    follow_up_due_at: datetime | None
    ticket_opened_at: datetime | None
    # The template version answered; empty id (surveys before templates): "default", 1.
    template_id: str
    template_version: int
