"""Resolution histogram buckets that fit the SLA targets: 17 bounds from 1 minute (were 7 from
15 minutes, so a sub-second resolution read as p90 = 810 s). The cumulative bucket counts of
the all-time totals are recomputed from the ticket facts, which hold every resolution time.

Revision ID: 0003_resolution_buckets
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_resolution_buckets"
down_revision = "0002"
branch_labels = None
depends_on = None

# quality.readmodels.RESOLUTION_BUCKETS before and at this revision.
OLD_BOUNDS = (900, 3600, 14400, 28800, 86400, 259200, 604800)
BOUNDS = (60, 300, 900, 1800) + tuple(
    hours * 3600 for hours in (1, 2, 3, 4, 6, 8, 12, 18, 24, 36, 54, 72, 168)
)


def _recompute(bounds: tuple[int, ...]) -> None:
    """Sets each cumulative bucket count to the tickets resolved within its bound."""
    for i, bound in enumerate(bounds):
        op.execute(
            f"UPDATE quality_ticket_totals SET resolution_le_{i} = ("
            "SELECT count(*) FROM quality_tickets t"
            " WHERE t.channel = quality_ticket_totals.channel"
            " AND t.priority = quality_ticket_totals.priority"
            f" AND t.resolution_seconds IS NOT NULL AND t.resolution_seconds <= {bound})"
        )


def upgrade() -> None:
    with op.batch_alter_table("quality_ticket_totals") as batch:
        for i in range(len(OLD_BOUNDS), len(BOUNDS)):
            batch.add_column(
                sa.Column(f"resolution_le_{i}", sa.Float, nullable=False, server_default="0")
            )
    _recompute(BOUNDS)


def downgrade() -> None:
    with op.batch_alter_table("quality_ticket_totals") as batch:
        for i in range(len(OLD_BOUNDS), len(BOUNDS)):
            batch.drop_column(f"resolution_le_{i}")
    _recompute(OLD_BOUNDS)
