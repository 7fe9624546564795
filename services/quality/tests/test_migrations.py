"""Migration 0002 (issue 9's KPI definitions) empties the ticket and incident read models and
their checkpoints, so the service rebuilds them from the log under the new definitions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from careops_platform.db import make_engine, migrate
from sqlalchemy import Engine, inspect, text

MIGRATIONS = Path(__file__).parent.parent / "migrations"


def upgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_0002_adds_the_unanswered_breach_sums_and_clears_what_must_be_rebuilt(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'quality.db'}")
    upgrade(engine, "0001")
    with engine.begin() as connection:
        for name in ("quality_tickets", "quality_incidents", "quality_surveys"):
            connection.execute(
                text(
                    "INSERT INTO projection_checkpoints (projection, stream, last_sequence)"
                    " VALUES (:name, 'S', 7)"
                ),
                {"name": name},
            )
        connection.execute(
            text(
                "INSERT INTO quality_incidents (incident_id, level, drill, declared_at)"
                " VALUES ('I-1', 'A', false, :at)"
            ),
            {"at": datetime(2026, 3, 2, tzinfo=UTC)},
        )
    migrate(engine, MIGRATIONS)
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT projection FROM projection_checkpoints")).all()
        assert [name for (name,) in kept] == ["quality_surveys"]  # surveys need no rebuild
        assert connection.execute(text("SELECT count(*) FROM quality_incidents")).scalar() == 0
    for table in ("quality_ticket_buckets", "quality_ticket_totals"):
        columns = {column["name"] for column in inspect(engine).get_columns(table)}
        assert "unanswered_breaches" in columns
    engine.dispose()
