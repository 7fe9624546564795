"""KPI definitions on ticket facts, without a database: what one ticket row contributes and how
the sums become KPIs (the same functions serve GetKpis and the Prometheus gauges)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quality import readmodels as rm
from quality.projections import contribution

OPENED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def row(**changes: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "opened_at": OPENED,
        "channel": "chat",
        "priority": "normal",
        "first_response_at": None,
        "first_response_seconds": None,
        "first_response_on_time": None,
        "first_resolved_at": None,
        "resolution_seconds": None,
        "first_contact": None,
        "resolved": False,
        "reopen_count": 0,
        "escalated": False,
        "first_response_breached": False,
        "breaches": 0,
        "handle_seconds": 0.0,
    }
    return {**facts, **changes}


def test_a_ticket_reopened_after_a_first_contact_resolution_is_not_first_contact() -> None:
    resolved = row(first_resolved_at=OPENED, resolved=True, first_contact=True)
    assert contribution(resolved)["first_contact"] == 1.0
    reopened = {**resolved, "resolved": False, "reopen_count": 1}
    assert contribution(reopened)["first_contact"] == 0.0
    kpis = rm.combine(rm.merge([contribution(resolved), contribution(reopened)]), None)
    assert (kpis.fcr_ratio, kpis.reopen_ratio) == (0.5, 0.5)


def test_a_breached_ticket_never_answered_lowers_sla_compliance() -> None:
    on_time = row(
        first_response_at=OPENED, first_response_seconds=60.0, first_response_on_time=True
    )
    unanswered = row(first_response_breached=True, breaches=1)
    late_answer = row(
        first_response_at=OPENED, first_response_breached=True, first_response_on_time=False
    )
    assert contribution(unanswered)["unanswered_breaches"] == 1.0
    assert contribution(late_answer)["unanswered_breaches"] == 0.0
    sums = rm.merge(contribution(r) for r in (on_time, unanswered, late_answer))
    kpis = rm.combine(sums, None)
    assert (kpis.first_responses, kpis.first_responses_due) == (2, 3)
    assert kpis.sla_compliance_ratio == 1 / 3
