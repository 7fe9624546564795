"""Complaint KPIs (issue 12 item 2): one row per complaint ticket. Filled by the ticket facts
projection; rebuild it (`careops projections rebuild quality_tickets`) to count complaints opened
before this revision.

Revision ID: 0007_complaints
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_complaints"
down_revision = "0006_survey_answers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_complaints",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(100), nullable=False),
        sa.Column("agent_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("acknowledge_seconds", sa.Float),
        sa.Column("follow_up_due_at", sa.DateTime(timezone=True)),
        sa.Column("follow_up_on_time", sa.Boolean),
        sa.Column("recomplaint", sa.Boolean, nullable=False),
    )
    op.create_index("ix_quality_complaints_opened", "quality_complaints", ["opened_at"])
    op.create_index(
        "ix_quality_complaints_customer", "quality_complaints", ["customer_id", "opened_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_quality_complaints_customer", "quality_complaints")
    op.drop_index("ix_quality_complaints_opened", "quality_complaints")
    op.drop_table("quality_complaints")
