"""The emotion of a customer's ticket message in the 360 timeline (issue 12, DOMAIN §4).

Revision ID: ticket_emotion
"""

import sqlalchemy as sa
from alembic import op

revision = "ticket_emotion"
down_revision = "incident_tickets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customer_ticket_activity") as batch:
        batch.add_column(sa.Column("emotion", sa.String(20), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("customer_ticket_activity") as batch:
        batch.drop_column("emotion")
