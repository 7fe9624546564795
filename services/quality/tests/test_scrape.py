"""The /metrics scrape counts the surveys in one grouped query (readmodels.survey_scan) and gives
exactly what the per-window queries give (survey_counts per window, the surveys of the tickets
opened since each window start): every window gauge, the surveys counter and the answer
distributions, on SQLite and PostgreSQL migrated to head, with surveys on the window edges."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from careops_platform.db import migrate
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from quality import readmodels as rm
from quality.metrics import WINDOW_GAUGES, WINDOWS, KpiCollector, window_start

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
NOW = datetime(2026, 3, 9, 12, 40, tzinfo=UTC)
# Channels of the SLA table and one outside it (a channel added later still gets its series).
CHANNELS = ("chat", "email", "phone", "fax")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def engine(read_model_engine: Engine) -> Engine:
    migrate(read_model_engine, MIGRATIONS)
    return read_model_engine


def instants() -> list[datetime]:
    """Submission and opening times: on every window start, just before and after it, and
    spread over ten days before NOW."""
    starts = [window_start(NOW, length) for length in WINDOWS.values()]
    edges = [at + shift for at in starts for shift in (timedelta(0), timedelta(microseconds=-1))]
    return edges + [NOW - timedelta(hours=hours) for hours in (0, 0.5, 3, 20, 30, 100, 170, 240)]


def survey(number: int, submitted_at: datetime, opened_at: datetime | None) -> dict[str, Any]:
    return {
        "ticket_id": f"T-{number}",
        "customer_id": f"C-{number}",
        "agent_id": "agent-li",
        "channel": CHANNELS[number % len(CHANNELS)],
        "type": "fault",
        "priority": "normal",
        "csat": 1 + number % 5,
        "nps": None if number % 7 == 3 else number % 11,
        "comment": "",
        "emotion": "neutral",
        "emotion_score": 0.0,
        "submitted_at": submitted_at,
        "ticket_opened_at": opened_at,
        "follow_up_required": False,
        "follow_up_status": rm.FOLLOW_UP_NONE,
        "note": "",
        "sequence": number,
        "version": 1,
    }


def bucket(hour: datetime, channel: str) -> dict[str, Any]:
    """An hour of tickets, resolved, so that the survey response ratio has a denominator."""
    row: dict[str, Any] = dict.fromkeys(rm.CONTRIBUTIONS, 0.0)
    row.update(hour=hour, channel=channel, priority="normal", opened=40.0, resolved_once=30.0)
    return row


def write(engine: Engine) -> None:
    times = instants()
    opened: list[datetime | None] = [None, *times]
    rows = [
        survey(number, submitted, opened[number % len(opened)])
        for number, submitted in enumerate(t for t in times for _ in range(len(CHANNELS) * 3))
    ]
    hours = sorted({rm.hour_of(at) for at in times})
    with engine.begin() as connection:
        connection.execute(insert(rm.surveys), rows)
        connection.execute(
            insert(rm.ticket_buckets),
            [bucket(hour, channel) for hour, channel in itertools.product(hours, CHANNELS[:3])],
        )


def samples(engine: Engine) -> Samples:
    found: Samples = {}
    for family in KpiCollector(engine, lambda: NOW).collect():
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def expected_windows(session: Session) -> Samples:
    """The window gauges from a survey_counts query and a surveyed count per window."""
    s = rm.surveys
    expected: Samples = {}
    for window, length in WINDOWS.items():
        since = window_start(NOW, length)
        query = (
            select(s.c.channel, func.count())
            .where(s.c.ticket_opened_at >= since)
            .group_by(s.c.channel)
        )
        surveyed = {str(channel): int(n) for channel, n in session.execute(query)}
        tickets = rm.bucket_counts(session=session, since=since, surveyed=surveyed)
        surveys = rm.survey_counts(
            session=session, where=rm.KpiFilter(), period=rm.Period(since), group="channel"
        )
        kpis = {
            key: rm.combine(tickets.get(key), surveys.get(key))
            for key in set(tickets) | set(surveys)
        }
        kpis["all"] = rm.combine(rm.merge(tickets.values()), rm.merge(surveys.values()))
        for channel, kpi in kpis.items():
            for suffix, field, _text in WINDOW_GAUGES:
                labels = (("channel", channel), ("window", window))
                expected[(f"careops_quality_{suffix}", labels)] = getattr(kpi, field)
    return expected


def test_the_survey_figures_of_a_scrape_equal_the_per_window_queries(engine: Engine) -> None:
    write(engine)
    found = samples(engine)
    with Session(engine) as session:
        expected = expected_windows(session)
        by_channel = rm.survey_counts(
            session=session, where=rm.KpiFilter(), period=rm.Period(), group="channel"
        )
        overall = rm.survey_counts(session=session, where=rm.KpiFilter(), period=rm.Period())[""]
    windows = {key: value for key, value in found.items() if ("window", "1h") in key[1]}
    assert len(windows) > len(WINDOW_GAUGES)  # the 1 h window has channels of its own
    assert {key: found[key] for key in expected} == expected
    assert {key for key in found if dict(key[1]).get("window")} == set(expected)
    surveyed = {c: found[("careops_quality_surveys_total", (("channel", c),))] for c in by_channel}
    assert surveyed == {channel: row["surveys"] for channel, row in by_channel.items()}
    for metric, scores in (("csat", range(1, 6)), ("nps", range(11))):
        name = f"careops_quality_{metric}_answers_total"
        counts = [found[(name, (("score", str(score)),))] for score in scores]
        assert counts == [overall[f"{metric}_{score}"] for score in scores]
    assert sum(counts) == overall["nps_responses"] > 0


def test_a_survey_row_counts_like_survey_counts() -> None:
    row = rm.survey_row("chat", [(5, 10, 2), (4, None, 1), (2, 6, 3), (3, 8, 1)])
    assert {name: row[name] for name in ("surveys", "satisfied", "csat_total")} == {
        "surveys": 7,
        "satisfied": 3,
        "csat_total": 23,
    }
    assert (row["nps_responses"], row["promoters"], row["detractors"]) == (6, 2, 3)
    scores = ("csat_5", "csat_2", "csat_1", "nps_10", "nps_6", "nps_8", "nps_0")
    assert [row[name] for name in scores] == [2, 3, 0, 2, 3, 1, 0]
