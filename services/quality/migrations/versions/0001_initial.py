"""Initial quality read models: ticket facts, SLA timelines, surveys, incidents, checkpoints,
timers.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from careops_platform.db import (
    create_checkpoint_and_timer_tables,
    drop_checkpoint_and_timer_tables,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
# The summed columns of the KPI buckets (quality.readmodels.CONTRIBUTIONS at this revision).
CONTRIBUTIONS = (
    "opened",
    "resolved_once",
    "backlog",
    "first_contact",
    "first_responses",
    "first_response_total",
    "resolution_total",
    "handle_total",
    "resolved_now",
    "on_time",
    "breaches",
    "escalated",
    "reopened",
)


def upgrade() -> None:
    create_checkpoint_and_timer_tables()
    op.create_table(
        "quality_tickets",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("tier", sa.String(20), nullable=False),
        sa.Column("agent_id", sa.String(100), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("first_response_at", TS),
        sa.Column("first_response_seconds", sa.Float),
        sa.Column("first_response_on_time", sa.Boolean),
        sa.Column("first_resolved_at", TS),
        sa.Column("resolution_seconds", sa.Float),
        sa.Column("first_contact", sa.Boolean),
        sa.Column("resolved", sa.Boolean, nullable=False),
        sa.Column("closed", sa.Boolean, nullable=False),
        sa.Column("reopen_count", sa.Integer, nullable=False),
        sa.Column("escalated", sa.Boolean, nullable=False),
        sa.Column("first_response_breached", sa.Boolean, nullable=False),
        sa.Column("breaches", sa.Integer, nullable=False),
        sa.Column("handle_seconds", sa.Float, nullable=False),
        sa.Column("active_since", TS),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_quality_tickets_opened", "quality_tickets", ["opened_at"])
    op.create_index("ix_quality_tickets_agent", "quality_tickets", ["agent_id", "opened_at"])
    op.create_table(
        "quality_sla_timeline",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("sequence", sa.BigInteger, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("step", sa.String(20), nullable=False),
        sa.Column("value", sa.String(20), nullable=False),
    )
    op.create_table(
        "quality_surveys",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(100), nullable=False),
        sa.Column("agent_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("csat", sa.Integer, nullable=False),
        sa.Column("nps", sa.Integer),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("emotion", sa.String(20), nullable=False),
        sa.Column("emotion_score", sa.Float, nullable=False),
        sa.Column("submitted_at", TS, nullable=False),
        sa.Column("ticket_opened_at", TS),
        sa.Column("follow_up_required", sa.Boolean, nullable=False),
        sa.Column("follow_up_due_at", TS),
        sa.Column("follow_up_status", sa.String(20), nullable=False),
        sa.Column("done_at", TS),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_quality_surveys_submitted", "quality_surveys", ["submitted_at"])
    op.create_index("ix_quality_surveys_ticket_opened", "quality_surveys", ["ticket_opened_at"])
    op.create_index(
        "ix_quality_surveys_follow_up", "quality_surveys", ["follow_up_status", "follow_up_due_at"]
    )
    first_response_le = [f"first_response_le_{i}" for i in range(9)]
    resolution_le = [f"resolution_le_{i}" for i in range(7)]
    op.create_table(
        "quality_ticket_buckets",
        sa.Column("hour", TS, primary_key=True),
        sa.Column("channel", sa.String(20), primary_key=True),
        sa.Column("priority", sa.String(20), primary_key=True),
        *(sa.Column(name, sa.Float, nullable=False) for name in CONTRIBUTIONS),
    )
    op.create_table(
        "quality_ticket_totals",
        sa.Column("channel", sa.String(20), primary_key=True),
        sa.Column("priority", sa.String(20), primary_key=True),
        *(
            sa.Column(name, sa.Float, nullable=False)
            for name in (*CONTRIBUTIONS, *first_response_le, *resolution_le)
        ),
    )
    op.create_table(
        "quality_incidents",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("level", sa.String(1), nullable=False),
        sa.Column("drill", sa.Boolean, nullable=False),
        sa.Column("declared_at", TS, nullable=False),
        sa.Column("acknowledged_at", TS),
        sa.Column("acknowledge_seconds", sa.Float),
        sa.Column("resolved_at", TS),
        sa.Column("resolve_seconds", sa.Float),
    )


def downgrade() -> None:
    for table in (
        "quality_incidents",
        "quality_ticket_totals",
        "quality_ticket_buckets",
        "quality_surveys",
        "quality_sla_timeline",
        "quality_tickets",
    ):
        op.drop_table(table)
    drop_checkpoint_and_timer_tables()
