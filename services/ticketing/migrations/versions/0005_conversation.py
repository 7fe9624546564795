"""The conversation (every text written on a ticket) and the macros.

Revision ID: 0005_conversation
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_conversation"
down_revision = "0004_agents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation",
        sa.Column(
            "entry",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("author", sa.String(20), nullable=False),
        sa.Column("author_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("internal", sa.Boolean, nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("macro_id", sa.String(100), nullable=False),
        sa.Column("macro_version", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_conversation_ticket", "conversation", ["ticket_id", "entry"])
    op.create_index("ix_conversation_customer", "conversation", ["customer_id"])
    op.create_table(
        "macros",
        sa.Column("macro_id", sa.String(64), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("macros")
    op.drop_table("conversation")
