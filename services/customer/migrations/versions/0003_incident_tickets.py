"""Tickets linked to incidents, so the 360 shows an incident linked by ticket alone.

Revision ID: incident_tickets
"""

import sqlalchemy as sa
from alembic import op

revision = "incident_tickets"
down_revision = "parked_messages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_incident_tickets",
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("summary", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "ticket_id"),
    )
    op.create_index(
        "ix_customer_incident_tickets_ticket", "customer_incident_tickets", ["ticket_id"]
    )


def downgrade() -> None:
    op.drop_table("customer_incident_tickets")
