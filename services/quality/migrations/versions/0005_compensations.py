"""Granted compensation per ticket, kind, agent and ticket type (issue 12 item 3). Filled by the
ticket facts projection; rebuild it (`careops projections rebuild quality_tickets`) to count
grants made before this revision.

Revision ID: 0005_compensations
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_compensations"
down_revision = "parked_messages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_compensations",
        sa.Column("compensation_id", sa.String(100), primary_key=True),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_quality_compensations_granted", "quality_compensations", ["granted_at"])


def downgrade() -> None:
    op.drop_index("ix_quality_compensations_granted", "quality_compensations")
    op.drop_table("quality_compensations")
