"""prediction jobs: a job's kind, the model it predicts with, its uploaded rows and its output

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 21:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(20), nullable=False, server_default="training")
        )
        batch_op.add_column(sa.Column("model_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("output_key", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("input_key", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("input_key")
        batch_op.drop_column("output_key")
        batch_op.drop_column("model_id")
        batch_op.drop_column("kind")
