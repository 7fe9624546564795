"""Customer notices: how customer-profile's notices about an incident went (CustomerNotified).

Revision ID: customer_notices
"""

import sqlalchemy as sa
from alembic import op

revision = "customer_notices"
down_revision = "status_page"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_notices",
        sa.Column("notification_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("delivered", sa.Boolean, nullable=False),
    )
    op.create_index("ix_customer_notices_incident", "customer_notices", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_customer_notices_incident", "customer_notices")
    op.drop_table("customer_notices")
