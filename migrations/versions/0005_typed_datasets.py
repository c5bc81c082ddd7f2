"""typed datasets: profiles, tasks, model metrics; stored arrays become typed columns

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 18:45:00.000000
"""

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The stored form of core.frame.Frame as of this revision: an .npz of one array per
# column ("values/<i>") and a JSON "__meta__" with the names, kinds and categories.
# Written out here because a revision must keep meaning what it meant when written.
META_KEY = "__meta__"


def _frame_bytes(columns: list[tuple[str, str, np.ndarray[Any, Any], list[str]]]) -> bytes:
    arrays: dict[str, Any] = {f"values/{i}": c[2] for i, c in enumerate(columns)}
    meta = {
        "n_rows": int(columns[0][2].shape[0]),
        "columns": [{"name": n, "kind": k, "categories": cats} for n, k, _, cats in columns],
    }
    arrays[META_KEY] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _convert(row: Any) -> tuple[bytes, list[str], str]:
    """An array dataset (inputs, targets; one-hot targets with classes) as typed columns."""
    with np.load(io.BytesIO(row.data), allow_pickle=False) as npz:
        if META_KEY in npz.files:
            raise ValueError("already converted")
        inputs, targets = npz["inputs"], npz["targets"]
    names = row.feature_names or [f"x{i}" for i in range(inputs.shape[1])]
    columns: list[tuple[str, str, np.ndarray[Any, Any], list[str]]] = [
        (n, "number", inputs[:, i].astype(np.float64), []) for i, n in enumerate(names)
    ]
    if row.classes:
        target_names = row.target_names or ["y"]
        codes = targets.argmax(axis=1) if targets.shape[1] > 1 else targets[:, 0] >= 0.5
        columns.append((target_names[0], "category", codes.astype(np.int64), list(row.classes)))
        task = "classification"
    else:
        target_names = row.target_names or [f"y{i}" for i in range(targets.shape[1])]
        for i, n in enumerate(target_names):
            columns.append((n, "number", targets[:, i].astype(np.float64), []))
        task = "regression"
    return _frame_bytes(columns), target_names, task


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("task", sa.String(20), nullable=True))
        batch_op.add_column(sa.Column("profile", sa.JSON(), nullable=True))
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("metrics", sa.JSON(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("init_model_id", sa.Integer(), nullable=True))

    datasets = sa.table(
        "datasets",
        sa.column("id", sa.Integer),
        sa.column("feature_names", sa.JSON),
        sa.column("target_names", sa.JSON),
        sa.column("classes", sa.JSON),
        sa.column("task", sa.String),
        sa.column("data", sa.LargeBinary),
    )
    bind = op.get_bind()
    for row in bind.execute(sa.select(datasets)).all():
        try:
            data, target_names, task = _convert(row)
        except ValueError:
            continue
        bind.execute(
            datasets.update()
            .where(datasets.c.id == row.id)
            .values(data=data, target_names=target_names, task=task)
        )


def downgrade() -> None:
    # Typed columns with missing values or text have no array form to go back to.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("init_model_id")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("metrics")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("profile")
        batch_op.drop_column("task")
