"""Drills: the drills read model (scheduled drills, their status and latest run).

Revision ID: drills
"""

import sqlalchemy as sa
from alembic import op

revision = "drills"
down_revision = "parked_messages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drills",
        sa.Column("drill_id", sa.String(64), primary_key=True),
        sa.Column("scheduled_sequence", sa.BigInteger, nullable=False, unique=True),
        sa.Column("scenario_id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("recurrence", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True)),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("last_incident_id", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_drills_status", "drills", ["status"])


def downgrade() -> None:
    op.drop_index("ix_drills_status", "drills")
    op.drop_table("drills")
