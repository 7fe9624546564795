"""SLA policies as versioned data (issue 13): the version each ticket was opened under, and
timeline values wide enough for a version label (POLICY steps) and a hold reason (PAUSED).

Revision ID: 0010_sla_policy_versions
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_sla_policy_versions"
down_revision = "0009_holds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quality_tickets") as batch:
        batch.add_column(
            sa.Column("sla_policy_version", sa.String(64), nullable=False, server_default="")
        )
    with op.batch_alter_table("quality_sla_timeline") as batch:
        batch.alter_column(
            "value", existing_type=sa.String(20), type_=sa.String(64), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("quality_sla_timeline") as batch:
        batch.alter_column(
            "value", existing_type=sa.String(64), type_=sa.String(20), existing_nullable=False
        )
    with op.batch_alter_table("quality_tickets") as batch:
        batch.drop_column("sla_policy_version")
