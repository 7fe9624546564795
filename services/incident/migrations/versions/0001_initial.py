"""Initial incident read models: incidents, pages, timeline, surge tables, checkpoints, timers.

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


def upgrade() -> None:
    create_checkpoint_and_timer_tables()
    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("declared_sequence", sa.BigInteger, nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("level", sa.String(1), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("drill", sa.Boolean, nullable=False),
        sa.Column("risk_index", sa.Float, nullable=False),
        sa.Column("matrix_version", sa.BigInteger, nullable=False),
        sa.Column("surge_key", sa.String(150), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("response_deadline_missed", sa.Boolean, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_incidents_status_level", "incidents", ["status", "level"])
    op.create_table(
        "incident_pages",
        sa.Column("page_id", sa.String(80), primary_key=True),
        sa.Column("incident_id", sa.String(64), nullable=False, index=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(100), nullable=False),
        sa.Column("engagement", sa.String(10), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ack_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("escalated", sa.Boolean, nullable=False),
        sa.Column("closed", sa.Boolean, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_pages_team_waiting",
        "incident_pages",
        ["team_id", "acknowledged_at", "escalated", "closed"],
    )
    op.create_table(
        "incident_timeline",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("sequence", sa.BigInteger, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_table(
        "surge_complaints",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("surge_key", sa.String(150), primary_key=True),
        sa.Column("customer_id", sa.String(100), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_surge_key_time", "surge_complaints", ["surge_key", "opened_at"])
    op.create_table(
        "surge_incidents",
        sa.Column("surge_key", sa.String(150), primary_key=True),
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("open", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "surge_incidents",
        "surge_complaints",
        "incident_timeline",
        "incident_pages",
        "incidents",
    ):
        op.drop_table(table)
    drop_checkpoint_and_timer_tables()
