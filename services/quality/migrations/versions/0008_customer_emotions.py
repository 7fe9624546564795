"""The emotion of every customer message per channel over time (issue 12 item 4). Filled by the
ticket facts projection from the emotion ticketing records on its events.

Revision ID: 0008_customer_emotions
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_customer_emotions"
down_revision = "0007_complaints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_customer_emotions",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("sequence", sa.BigInteger, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agent_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("emotion", sa.String(20), nullable=False),
    )
    op.create_index("ix_quality_customer_emotions_at", "quality_customer_emotions", ["at"])


def downgrade() -> None:
    op.drop_index("ix_quality_customer_emotions_at", "quality_customer_emotions")
    op.drop_table("quality_customer_emotions")
