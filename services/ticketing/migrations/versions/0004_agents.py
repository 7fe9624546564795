"""The agent directory read model, and when a ticket joined the routing queue.

Revision ID: 0004_agents
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_agents"
down_revision = "parked_messages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("agent_id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("team", sa.String(200), nullable=False),
        sa.Column("channels", sa.JSON, nullable=False),
        sa.Column("ticket_types", sa.JSON, nullable=False),
        sa.Column("languages", sa.JSON, nullable=False),
        sa.Column("senior", sa.Boolean, nullable=False),
        sa.Column("availability", sa.String(20), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_agents_team", "agents", ["team", "agent_id"])
    # Rows from before: null, read as their created_at.
    op.add_column("tickets", sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("tickets", "queued_at")
    op.drop_index("ix_agents_team", "agents")
    op.drop_table("agents")
