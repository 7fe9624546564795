"""Survey templates: the scored and yes/no answers of template surveys, for the full-scale
distributions (surveys before templates have none; their CSAT and NPS stay in quality_surveys).

Revision ID: 0006_survey_answers
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_survey_answers"
down_revision = "0005_compensations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_survey_answers",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("question_id", sa.String(40), primary_key=True),
        sa.Column("template_id", sa.String(64), nullable=False),
        sa.Column("template_version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("score", sa.Integer),
        sa.Column("yes", sa.Boolean),
    )
    op.create_index(
        "ix_quality_survey_answers_question",
        "quality_survey_answers",
        ["template_id", "question_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_quality_survey_answers_question", "quality_survey_answers")
    op.drop_table("quality_survey_answers")
