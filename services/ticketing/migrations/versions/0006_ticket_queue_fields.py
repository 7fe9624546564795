"""The ticket list carries what a queue needs: the SLA clocks, their nearest due time (indexed
for the SLA-due order) and the count of compensations awaiting a decision (indexed).

Rows written before this revision get their clocks with the ticket's next event that moves a
clock; replaying the `tickets` projection fills them all.

Revision ID: 0006_ticket_queue_fields
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_ticket_queue_fields"
down_revision = "0005_conversation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("sla", sa.JSON, nullable=True))
    op.add_column("tickets", sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "tickets",
        sa.Column("pending_compensations", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_tickets_sla_due", "tickets", ["sla_due_at", "opened_sequence"])
    op.create_index(
        "ix_tickets_pending_compensations",
        "tickets",
        ["pending_compensations", "opened_sequence"],
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_pending_compensations", table_name="tickets")
    op.drop_index("ix_tickets_sla_due", table_name="tickets")
    op.drop_column("tickets", "pending_compensations")
    op.drop_column("tickets", "sla_due_at")
    op.drop_column("tickets", "sla")
