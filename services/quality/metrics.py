"""Quality's Prometheus view: live KPIs computed from the read models at each scrape."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from careops_emotion import Emotion
from careops_sla import CHANNELS, PRIORITIES
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from quality import domain as d
from quality.readmodels import (
    FIRST_RESPONSE_BUCKETS,
    FIRST_RESPONSE_LE,
    HOLD_REASONS,
    PAUSE_CLOCKS,
    RESOLUTION_BUCKETS,
    RESOLUTION_LE,
    KpiFilter,
    Period,
    SurveyScan,
    compensation_by_kind,
    complaint_kpis,
    emotion_counts,
    hour_of,
    overdue_follow_ups,
    pause_totals,
    survey_scan,
    ticket_totals,
    totals,
    unacknowledged_age,
    window_kpis,
    yes_no_counts,
)
from quality.survey_templates import DEFAULT, DEFAULT_TEMPLATE

log = logging.getLogger(__name__)

COMPENSATION_KINDS = ("refund", "discount", "replacement", "gift")  # ticketing's kinds
DEFAULT_CURRENCY = "CNY"
DEFAULT_YES_NO = tuple(
    q.question_id for q in DEFAULT.version(1).questions if q.kind is d.QuestionKind.YES_NO
)

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
# (metric suffix, Kpis field, help): one gauge per window and channel ("all" = every channel).
WINDOW_LABELS = ["window", "channel"]
WINDOW_GAUGES = (
    ("csat_ratio", "csat_satisfied_ratio", "Share of CSAT answers 4-5"),
    ("csat_score", "csat_mean", "Mean CSAT (1-5)"),
    ("nps_score", "nps", "Net promoter score (-100..100)"),
    ("fcr_ratio", "fcr_ratio", "First-contact resolution share of resolved tickets"),
    (
        "sla_compliance_ratio",
        "sla_compliance_ratio",
        "First responses on time / first responses due (answered or breached unanswered)",
    ),
    ("escalation_ratio", "escalation_ratio", "Escalated tickets / opened tickets"),
    ("reopen_ratio", "reopen_ratio", "Reopened tickets / resolved tickets"),
    ("survey_response_ratio", "survey_response_ratio", "Surveyed / resolved tickets"),
    ("balanced_score", "quality_score", "Balanced quality score (0-100)"),
)


class KpiCollector(Collector):
    """Live KPIs computed from the read models at scrape time, so a scrape always agrees with
    GetKpis and survives restarts: rolling-window gauges, all-time counters and histograms."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            with Session(self._engine) as session:
                families = self._families(session, self._clock())
        except SQLAlchemyError:
            log.warning("cannot compute KPI metrics", exc_info=True)
            return
        yield from families

    def _families(self, session: Session, now: datetime) -> list[Metric]:
        gauges = {
            suffix: GaugeMetricFamily(
                f"careops_quality_{suffix}", f"{text} in a rolling window.", labels=WINDOW_LABELS
            )
            for suffix, _field, text in WINDOW_GAUGES
        }
        starts = {window: window_start(now, length) for window, length in WINDOWS.items()}
        scan = survey_scan(session=session, starts=list(starts.values()))
        for window, since in starts.items():
            for channel, kpi in window_kpis(session=session, since=since, scan=scan).items():
                for suffix, field_name, _text in WINDOW_GAUGES:
                    gauges[suffix].add_metric([window, channel], getattr(kpi, field_name))
        labels = ["channel", "priority"]
        opened = CounterMetricFamily(
            "careops_quality_tickets_opened", "Tickets opened.", labels=labels
        )
        resolved = CounterMetricFamily(
            "careops_quality_tickets_resolved", "Tickets resolved at least once.", labels=labels
        )
        breaches = CounterMetricFamily(
            "careops_quality_sla_breaches", "SLA breaches (both clocks).", labels=labels
        )
        backlog = GaugeMetricFamily(
            "careops_quality_backlog_tickets", "Tickets not resolved or closed.", labels=labels
        )
        first_response = HistogramMetricFamily(
            "careops_quality_first_response_seconds",
            "Time from opening to the first agent reply.",
            labels=labels,
        )
        resolution = HistogramMetricFamily(
            "careops_quality_resolution_seconds",
            "Time from opening to the first resolution.",
            labels=labels,
        )
        for row in _with_zeros(totals(session=session)):
            key = [row.channel, row.priority]
            opened.add_metric(key, row.opened)
            resolved.add_metric(key, row.resolved_once)
            breaches.add_metric(key, row.breaches)
            backlog.add_metric(key, row.backlog)
            first_response.add_metric(
                key,
                _buckets(row, FIRST_RESPONSE_LE, FIRST_RESPONSE_BUCKETS, row.first_responses),
                sum_value=row.first_response_total,
            )
            resolution.add_metric(
                key,
                _buckets(row, RESOLUTION_LE, RESOLUTION_BUCKETS, row.resolved_once),
                sum_value=row.resolution_total,
            )
        surveyed = CounterMetricFamily(
            "careops_quality_surveys", "Surveys submitted.", labels=["channel"]
        )
        counts = {channel: row["surveys"] for channel, row in scan.submitted(None).items()}
        for channel in sorted(set(CHANNELS) | set(counts)):
            surveyed.add_metric([channel], counts.get(channel, 0))
        overdue = GaugeMetricFamily(
            "careops_quality_overdue_follow_ups",
            "Negative-feedback follow-ups past their due time and not done.",
            value=overdue_follow_ups(session=session),
        )
        unacknowledged = GaugeMetricFamily(
            "careops_quality_unacknowledged_incident_age_seconds",
            "Age of the oldest open, unacknowledged, non-drill incident per level.",
            labels=["level"],
        )
        ages = unacknowledged_age(session=session, now=now)
        for level in d.INCIDENT_LEVELS:
            unacknowledged.add_metric([level], ages.get(level, 0.0))
        compensations, compensation_amount = _compensation_families(session)
        complaint = _complaint_family(session)
        return [
            complaint,
            *_pause_families(session),
            *gauges.values(),
            compensations,
            compensation_amount,
            _emotion_family(session),
            *_distributions(session, scan),
            opened,
            resolved,
            breaches,
            backlog,
            surveyed,
            overdue,
            unacknowledged,
            first_response,
            resolution,
        ]


def _pause_families(session: Session) -> list[Metric]:
    """All-time holds, paused business time per clock and pauses right before a breach, by hold
    reason (no agent label: unbounded); every reason has its series from the start."""
    held = CounterMetricFamily(
        "careops_quality_holds", "Tickets put on hold, by hold reason.", labels=["reason"]
    )
    paused = CounterMetricFamily(
        "careops_quality_sla_paused_seconds",
        "Business time holds paused an SLA clock (counted when the hold ends).",
        labels=["reason", "clock"],
    )
    before = CounterMetricFamily(
        "careops_quality_sla_pauses_before_breach",
        "Holds that paused an SLA clock right before its breach (docs/kpis.md Pauses).",
        labels=["reason"],
    )
    found = {sums.reason: sums for sums in pause_totals(session=session)}
    for reason in [*HOLD_REASONS, *sorted(set(found) - set(HOLD_REASONS))]:
        sums = found.get(reason, d.PauseSums("", reason))
        held.add_metric([reason], sums.holds)
        for clock in PAUSE_CLOCKS:
            paused.add_metric([reason, clock], getattr(sums, f"{clock}_paused_seconds"))
        before.add_metric([reason], sums.pauses_before_breach)
    return [held, paused, before]


def _emotion_family(session: Session) -> Metric:
    """All-time customer messages by channel and emotion; every pair has a series from the start."""
    family = CounterMetricFamily(
        "careops_quality_customer_emotions",
        "Customer messages by the emotion ticketing recorded on them.",
        labels=["channel", "emotion"],
    )
    found = {
        (item.channel, item.emotion): item.count
        for item in emotion_counts(session=session, where=KpiFilter(), period=Period())
    }
    channels = sorted(set(CHANNELS) | {channel for channel, _ in found})
    for channel, emotion in itertools.product(channels, (e.value for e in Emotion)):
        family.add_metric([channel, emotion], found.get((channel, emotion), 0))
    return family


def _complaint_family(session: Session) -> Metric:
    """All-time complaint KPIs, one gauge per KPI (definitions in docs/kpis.md)."""
    kpis = complaint_kpis(session=session, where=KpiFilter(), period=Period())
    family = GaugeMetricFamily(
        "careops_quality_complaints",
        "Complaint KPIs (all time): complaints, acknowledged, mean_acknowledge_seconds, "
        "follow_ups_due, follow_ups_on_time, follow_up_on_time_ratio, recomplaints, "
        "recomplaint_ratio.",
        labels=["kpi"],
    )
    for name, value in asdict(kpis).items():
        family.add_metric([name], float(value))
    return family


def _compensation_families(session: Session) -> tuple[Metric, Metric]:
    """All-time granted compensation by kind and currency (no agent label: unbounded). Every
    kind has a series in each currency granted so far, and in CNY before any grant."""
    labels = ["kind", "currency"]
    count = CounterMetricFamily(
        "careops_quality_compensations", "Compensation granted (direct or approved).", labels=labels
    )
    amount = CounterMetricFamily(
        "careops_quality_compensation_amount",
        "Sum of compensation granted, in major units of the currency.",
        labels=labels,
    )
    found = {(total.key, total.currency): total for total in compensation_by_kind(session=session)}
    currencies = sorted({currency for _kind, currency in found} or {DEFAULT_CURRENCY})
    for kind, currency in itertools.product(COMPENSATION_KINDS, currencies):
        total = found.get((kind, currency))
        count.add_metric([kind, currency], total.count if total else 0)
        amount.add_metric([kind, currency], total.amount_cents / 100 if total else 0.0)
    return count, amount


def _distributions(session: Session, scan: SurveyScan) -> list[Metric]:
    """All-time answers per score (every score of the scale present from the start) and per
    yes/no question of a template (the default template's from the start)."""
    row = scan.overall()
    families: list[Metric] = []
    for metric, scores, text in (
        ("csat", d.CSAT_SCORES, "CSAT answers (1-5) by score."),
        ("nps", d.NPS_SCORES, "NPS answers (0-10) by score."),
    ):
        family = CounterMetricFamily(f"careops_quality_{metric}_answers", text, labels=["score"])
        for score in scores:
            family.add_metric([str(score)], row.get(f"{metric}_{score}") or 0)
        families.append(family)
    yes_no = CounterMetricFamily(
        "careops_quality_yes_no_answers",
        "Answers to yes/no survey questions by template, question and answer.",
        labels=["template", "question", "answer"],
    )
    counts = {
        (c.template_id, c.question_id): c
        for c in yes_no_counts(session=session, where=KpiFilter(), period=Period())
    }
    for question in DEFAULT_YES_NO:
        counts.setdefault((DEFAULT_TEMPLATE, question), d.YesNoCount(DEFAULT_TEMPLATE, question))
    for (template, question), count in sorted(counts.items()):
        yes_no.add_metric([template, question, "yes"], count.yes)
        yes_no.add_metric([template, question, "no"], count.no)
    families.append(yes_no)
    return families


def _with_zeros(rows: Sequence[Any]) -> list[Any]:
    """Adds a row of zeros for every channel x priority without tickets yet: each series is
    present from the start, so an alert's increase() counts the first burst."""
    found = {(row.channel, row.priority): row for row in rows}
    zero = {column.name: 0.0 for column in ticket_totals.columns}
    for channel, priority in itertools.product(CHANNELS, PRIORITIES):
        found.setdefault(
            (channel, priority),
            SimpleNamespace(**{**zero, "channel": channel, "priority": priority}),
        )
    return [found[key] for key in sorted(found)]


def _buckets(
    row: Any, names: Sequence[str], bounds: Sequence[float], count: float
) -> list[tuple[str, float]]:
    points = [(f"{bound:g}", getattr(row, name)) for name, bound in zip(names, bounds, strict=True)]
    return [*points, ("+Inf", count)]


def window_start(now: datetime, length: timedelta) -> datetime:
    """Rolling windows start at a whole UTC hour: the one `length` before now."""
    return hour_of(now - length)
