"""Customer-profile's projection of quality's surveys (SurveySubmitted, read as the published
view) into the customer's satisfaction history, on real SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from careops_eventstore.codec import EnvelopeContext
from careops_eventstore.model import RecordedBatch
from careops_eventstore.projection import apply_batch
from careops_platform.db import migrate
from careops_published import quality as qa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from customer import readmodels
from customer.projections import QUALITY_CODEC, SurveyFactsProjection

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
STREAM = "CAREOPS_QUALITY"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SURVEY = qa.SurveySubmitted(
    ticket_id="T-1",
    customer_id="C-1",
    agent_id="agent-li",
    channel="chat",
    ticket_type="consultation",
    priority="normal",
    csat=2,
    nps=3,
    has_nps=True,
    emotion="angry",
    emotion_score=-0.8,
    submitted_at=T0,
    follow_up_required=True,
    follow_up_due_at=T0 + timedelta(days=1),
    ticket_opened_at=T0 - timedelta(hours=2),
    template_id="default",
    template_version=1,
)


def message(sequence: int, survey: qa.SurveySubmitted) -> RecordedBatch:
    context = EnvelopeContext(survey.ticket_id, "survey", uuid.uuid4().hex, T0)
    subject = f"careops.quality.survey.{survey.ticket_id}"
    return RecordedBatch(STREAM, subject, sequence, QUALITY_CODEC.encode([survey], context))


def test_the_history_is_newest_first_one_per_ticket_and_anonymous_surveys_are_left_out(
    read_model_engine: Engine,
) -> None:
    migrate(read_model_engine, MIGRATIONS)
    later = T0 + timedelta(days=3)
    log = [
        message(1, SURVEY),
        message(2, replace(SURVEY, ticket_id="T-2", csat=5, has_nps=False, emotion=None)),
        message(3, replace(SURVEY, ticket_id="T-3", customer_id="")),  # an anonymous ticket's
        message(4, replace(SURVEY, csat=4, submitted_at=later)),  # T-1 answered again
    ]
    outcome = apply_batch(
        read_model_engine, SurveyFactsProjection(), QUALITY_CODEC, STREAM, log, [1, 2, 3, 4]
    )
    assert outcome.applied == 4
    with Session(read_model_engine) as session:
        history = readmodels.survey_history(session=session, customer_id="C-1", limit=10)
        assert readmodels.survey_history(session=session, customer_id="", limit=10) == []
    assert history == [
        readmodels.SurveyRow("T-1", 4, 3, "angry", "chat", later),
        readmodels.SurveyRow("T-2", 5, None, "", "chat", T0),
    ]
