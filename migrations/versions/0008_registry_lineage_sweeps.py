"""experiments: model lineage, the model registry (versions, aliases) and sweeps

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 03:20:00.000000

Models gain the rest of their lineage (spec hash, seed, service version); models
trained before this revision get their spec hash and seed from their job, and an
unknown service version.
"""

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _spec_sha256(network: Any, training: Any) -> str:
    # store.lineage.spec_sha256 as of this revision, written out here so that the
    # revision keeps meaning what it meant.
    document = json.dumps(
        {"network": network, "training": training},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(document.encode()).hexdigest()


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("network", sa.JSON(), nullable=False),
        sa.Column("training", sa.JSON(), nullable=False),
        sa.Column("search_space", sa.JSON(), nullable=False),
        sa.Column("trials", sa.Integer(), nullable=False),
        sa.Column("parallel", sa.Integer(), nullable=False),
        sa.Column("sampler", sa.String(20), nullable=False),
        sa.Column("pruner", sa.String(20), nullable=False),
        sa.Column("sampler_options", sa.JSON(), nullable=True),
        sa.Column("pruner_options", sa.JSON(), nullable=True),
        sa.Column("metric", sa.String(60), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("study_name", sa.String(200), nullable=False),
        sa.Column("best_job_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sweeps_owner", "sweeps", ["owner"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sweep_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("trial_number", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(
            "fk_jobs_sweep_id_sweeps", "sweeps", ["sweep_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_jobs_sweep_id", ["sweep_id"])

    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spec_sha256", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("seed", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("service_version", sa.String(40), nullable=True))
    models = sa.table(
        "models",
        sa.column("id", sa.Integer()),
        sa.column("job_id", sa.Integer()),
        sa.column("spec_sha256", sa.String()),
        sa.column("seed", sa.BigInteger()),
    )
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.Integer()),
        sa.column("network", sa.JSON()),
        sa.column("training", sa.JSON()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(models.c.id, jobs.c.network, jobs.c.training).join(
            jobs, jobs.c.id == models.c.job_id
        )
    ).all()
    for model_id, network, training in rows:
        # a config without a seed trained with the engine's default, 0
        seed = training.get("seed", 0) if isinstance(training, dict) else None
        bind.execute(
            models.update()
            .where(models.c.id == model_id)
            .values(
                spec_sha256=_spec_sha256(network, training),
                seed=seed if isinstance(seed, int) else None,
            )
        )

    op.create_table(
        "registered_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("last_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner", "name", name="uq_registered_models_owner_name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("registered_model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registered_model_id"], ["registered_models.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("registered_model_id", "version", name="uq_model_versions_version"),
    )
    op.create_index("ix_model_versions_model_id", "model_versions", ["model_id"])
    op.create_table(
        "model_aliases",
        sa.Column("registered_model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registered_model_id"], ["registered_models.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("registered_model_id", "alias"),
    )


def downgrade() -> None:
    op.drop_table("model_aliases")
    op.drop_index("ix_model_versions_model_id", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("registered_models")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("service_version")
        batch_op.drop_column("seed")
        batch_op.drop_column("spec_sha256")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_sweep_id")
        batch_op.drop_constraint("fk_jobs_sweep_id_sweeps", type_="foreignkey")
        batch_op.drop_column("params")
        batch_op.drop_column("trial_number")
        batch_op.drop_column("sweep_id")
    op.drop_index("ix_sweeps_owner", table_name="sweeps")
    op.drop_table("sweeps")
