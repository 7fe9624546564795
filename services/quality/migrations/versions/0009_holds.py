"""Pause accountability (issue 13 item 4): one row per hold. Filled by the ticket facts
projection; rebuild it (`careops projections rebuild quality_tickets`) to list the holds set
before this revision (their paused time stays unknown: those events do not carry it).

Revision ID: 0009_holds
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_holds"
down_revision = "0008_customer_emotions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_holds",
        sa.Column("sequence", sa.BigInteger, primary_key=True),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("held_by", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(30), nullable=False),
        sa.Column("pausing", sa.Boolean, nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("ended_by", sa.String(20), nullable=False),
        sa.Column("agent_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("first_response_paused", sa.Boolean, nullable=False),
        sa.Column("first_response_share", sa.Float),
        sa.Column("first_response_before_breach", sa.Boolean, nullable=False),
        sa.Column("first_response_paused_seconds", sa.Float),
        sa.Column("resolution_paused", sa.Boolean, nullable=False),
        sa.Column("resolution_share", sa.Float),
        sa.Column("resolution_before_breach", sa.Boolean, nullable=False),
        sa.Column("resolution_paused_seconds", sa.Float),
    )
    op.create_index("ix_quality_holds_ticket", "quality_holds", ["ticket_id", "sequence"])
    op.create_index("ix_quality_holds_held_by", "quality_holds", ["held_by", "held_at"])
    op.create_index("ix_quality_holds_held_at", "quality_holds", ["held_at"])


def downgrade() -> None:
    for index in (
        "ix_quality_holds_held_at",
        "ix_quality_holds_held_by",
        "ix_quality_holds_ticket",
    ):
        op.drop_index(index, "quality_holds")
    op.drop_table("quality_holds")
