"""Ticketing's projection of customer-profile events: tiers and contact hashes.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_directory",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("tier", sa.String(20), nullable=False),
        sa.Column("email_hash", sa.String(64), nullable=True, index=True),
        sa.Column("phone_hash", sa.String(64), nullable=True, index=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
