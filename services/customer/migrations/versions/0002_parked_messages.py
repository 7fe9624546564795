"""Parked messages: poison a projection or reaction skipped, for operators to list.

Revision ID: parked_messages
"""

from careops_platform.db import create_parked_messages_table, drop_parked_messages_table

revision = "parked_messages"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_parked_messages_table()


def downgrade() -> None:
    drop_parked_messages_table()
