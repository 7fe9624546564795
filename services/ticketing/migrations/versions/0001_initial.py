"""Initial ticketing read models: tickets, projection checkpoints and timers.

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
        "tickets",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("opened_sequence", sa.BigInteger, nullable=False, unique=True),
        sa.Column("customer_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("assignee_id", sa.String(100), nullable=False),
        sa.Column("escalation_level", sa.Integer, nullable=False),
        sa.Column("reopen_count", sa.Integer, nullable=False),
        sa.Column("sla_breached", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_tickets_status", "tickets", ["status", "opened_sequence"])
    op.create_index("ix_tickets_assignee", "tickets", ["assignee_id", "status"])
    op.create_index("ix_tickets_customer", "tickets", ["customer_id", "opened_sequence"])
    op.create_index("ix_tickets_priority", "tickets", ["priority", "opened_sequence"])
    op.create_index("ix_tickets_channel", "tickets", ["channel", "opened_sequence"])


def downgrade() -> None:
    op.drop_table("tickets")
    drop_checkpoint_and_timer_tables()
