"""KPI definitions of issue 9 (docs/kpis.md): unanswered first-response breaches count against
SLA compliance (a new summed column); FCR leaves out reopened tickets, a reply after the
resolution is no first response, an acknowledgement after it is not in MTTA. The ticket and
incident read models are emptied with their checkpoints, so they are rebuilt from the log under
the new definitions when the service starts.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SUMS = ("quality_ticket_buckets", "quality_ticket_totals")
REBUILT = {
    "quality_tickets": (
        "quality_tickets",
        "quality_sla_timeline",
        "quality_ticket_buckets",
        "quality_ticket_totals",
    ),
    "quality_incidents": ("quality_incidents",),
}


def upgrade() -> None:
    for table in SUMS:
        op.add_column(
            table,
            sa.Column("unanswered_breaches", sa.Float, nullable=False, server_default="0"),
        )
    _rebuild()


def downgrade() -> None:
    for table in SUMS:
        with op.batch_alter_table(table) as batch:  # SQLite rebuilds the table
            batch.drop_column("unanswered_breaches")
    _rebuild()


def _rebuild() -> None:
    checkpoints = sa.table("projection_checkpoints", sa.column("projection", sa.String))
    for projection, tables in REBUILT.items():
        for name in tables:
            op.execute(sa.table(name).delete())
        op.execute(checkpoints.delete().where(checkpoints.c.projection == projection))
