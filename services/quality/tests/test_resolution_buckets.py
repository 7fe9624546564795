"""The resolution histogram's buckets fit the SLA targets, and migration 0003 recomputes the
bucket counts of a database written with the old buckets."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import careops_sla
import pytest
from alembic import command
from alembic.config import Config
from prometheus_client import Metric
from sqlalchemy import Engine, insert, inspect, text

from quality.metrics import KpiCollector
from quality.readmodels import RESOLUTION_BUCKETS, tickets

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
# (resolution seconds) of the tickets of chat / normal: nine solved in under a second, one in 2 h.
RESOLUTIONS = (0.2, 0.3, 0.4, 0.5, 0.5, 0.6, 0.7, 0.8, 0.9, 7200.0)


def upgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@pytest.fixture
def engine(read_model_engine: Engine) -> Engine:
    return read_model_engine


def ticket(number: int, resolution: float) -> dict[str, Any]:
    return {
        "ticket_id": f"T-{number}",
        "customer_id": f"C-{number}",
        "channel": "chat",
        "type": "consultation",
        "priority": "normal",
        "tier": "regular",
        "agent_id": "agent-li",
        "opened_at": NOW,
        "first_resolved_at": NOW,
        "resolution_seconds": resolution,
        "resolved": True,
        "closed": False,
        "reopen_count": 0,
        "escalated": False,
        "first_response_breached": False,
        "breaches": 0,
        "handle_seconds": 0.0,
        "version": 1,
    }


def write_with_old_buckets(engine: Engine) -> None:
    """The rows revision 0001's projection wrote: seven cumulative resolution buckets from 900 s."""
    old_bounds = (900, 3600, 14400, 28800, 86400, 259200, 604800)
    with engine.begin() as connection:
        connection.execute(insert(tickets), [ticket(i, r) for i, r in enumerate(RESOLUTIONS)])
        columns = [c["name"] for c in inspect(connection).get_columns("quality_ticket_totals")]
        row: dict[str, Any] = dict.fromkeys(columns, 0.0)
        row.update(channel="chat", priority="normal", opened=10.0, resolved_once=10.0)
        for i, bound in enumerate(old_bounds):
            row[f"resolution_le_{i}"] = float(sum(r <= bound for r in RESOLUTIONS))
        names = ", ".join(row)
        values = ", ".join(f":{name}" for name in row)
        connection.execute(
            text(f"INSERT INTO quality_ticket_totals ({names}) VALUES ({values})"), row
        )


def p90(histogram: Metric, labels: dict[str, str]) -> float:
    """histogram_quantile(0.9, ...) as Prometheus computes it (linear within a bucket)."""
    buckets = sorted(
        (float(s.labels["le"]), s.value)
        for s in histogram.samples
        if s.name.endswith("_bucket") and {k: s.labels[k] for k in labels} == labels
    )
    total = buckets[-1][1]
    rank = 0.9 * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    raise AssertionError("no bucket holds the rank")


def test_every_default_resolution_target_is_a_bucket_edge() -> None:
    policy = careops_sla.default_policy()
    targets = {
        policy.targets_for(channel=channel, priority=priority, tier=tier).resolution
        for channel in careops_sla.CHANNELS
        for priority in careops_sla.PRIORITIES
        for tier in careops_sla.TIERS
    }
    assert {t.total_seconds() for t in targets} <= set(RESOLUTION_BUCKETS)
    assert RESOLUTION_BUCKETS[0] <= 60, "tickets solved at first contact take minutes"


def test_the_migration_recomputes_the_buckets_and_p90_reads_close_to_the_resolutions(
    engine: Engine,
) -> None:
    upgrade(engine, "0002")  # the last revision with the old buckets
    write_with_old_buckets(engine)
    upgrade(engine, "head")
    families = {m.name: m for m in KpiCollector(engine, lambda: NOW).collect()}
    histogram = families["careops_quality_resolution_seconds"]
    labels = {"channel": "chat", "priority": "normal"}
    counts = {
        float(s.labels["le"]): s.value
        for s in histogram.samples
        if s.name.endswith("_bucket") and s.labels["channel"] == "chat"
        if s.labels["priority"] == "normal"
    }
    assert counts[60.0] == 9 and counts[3600.0] == 9 and counts[7200.0] == 10
    assert counts[float("inf")] == 10
    # Nine of ten in under a second: p90 is within the first minute (it was 810 s).
    assert p90(histogram, labels) <= 60
