"""api keys and owners

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 06:06:21.943974
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_owner"), ["owner"], unique=False)

    with op.batch_alter_table("datasets", schema=None) as batch_op:
        # rows from before tenancy belong to the local owner
        batch_op.add_column(
            sa.Column("owner", sa.String(length=100), nullable=False, server_default="local")
        )
        batch_op.create_index(batch_op.f("ix_datasets_owner"), ["owner"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        # rows from before tenancy belong to the local owner
        batch_op.add_column(
            sa.Column("owner", sa.String(length=100), nullable=False, server_default="local")
        )
        batch_op.create_index(batch_op.f("ix_jobs_owner"), ["owner"], unique=False)

    with op.batch_alter_table("models", schema=None) as batch_op:
        # rows from before tenancy belong to the local owner
        batch_op.add_column(
            sa.Column("owner", sa.String(length=100), nullable=False, server_default="local")
        )
        batch_op.create_index(batch_op.f("ix_models_owner"), ["owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_owner"))
        batch_op.drop_column("owner")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_owner"))
        batch_op.drop_column("owner")

    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_datasets_owner"))
        batch_op.drop_column("owner")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_owner"))

    op.drop_table("api_keys")
