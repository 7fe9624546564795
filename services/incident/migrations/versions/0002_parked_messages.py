"""Parked messages: poison a projection or reaction skipped, for operators to list.

Revision ID: parked_messages
"""

import sqlalchemy as sa
from alembic import op

revision = "parked_messages"
down_revision = "0001"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "parked_messages",
        sa.Column("id", ROW_ID, primary_key=True),
        sa.Column("consumer", sa.String(100), nullable=False, index=True),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("subject", sa.String(255), nullable=False, server_default=""),
        sa.Column("event_type", sa.String(200), nullable=False, server_default=""),
        sa.Column("reason", sa.String(30), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("parked_messages")
