"""object storage: datasets, checkpoints and weights move out of their rows

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 21:30:00.000000

The bytes each row held go to the object store named by BACKPROP_STORAGE_URL
(the ``objects`` table itself for ``database://``) and the row keeps the key.
Datasets also change form, from an .npz of columns to an Arrow IPC file.
"""

import io
import json
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The dataset file as of this revision (worker.frames), written out here because a
# revision must keep meaning what it meant when written.
FRAME_META_KEY = b"backprop.frame"
PART_BYTES = 32 * 1024 * 1024


def _arrow_frame(npz_bytes: bytes) -> bytes:
    with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as npz:
        meta = json.loads(str(npz["__meta__"]))
        arrays = [
            pa.array(np.ascontiguousarray(npz[f"values/{i}"])) for i in range(len(meta["columns"]))
        ]
    batch = pa.record_batch(arrays, names=[f"c{i}" for i in range(len(arrays))])
    schema = batch.schema.with_metadata({FRAME_META_KEY: json.dumps(meta["columns"]).encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(batch.replace_schema_metadata(schema.metadata))
    return bytes(sink.getvalue().to_pybytes())


def _put(objects: sa.Table, url: str, key: str, data: bytes) -> None:
    bind = op.get_bind()
    if url.startswith("database://"):
        for part, start in enumerate(range(0, max(len(data), 1), PART_BYTES)):
            chunk = data[start : start + PART_BYTES]
            bind.execute(objects.insert().values(key=key, part=part, data=chunk))
        return
    from store.db import Session
    from store.objects import open_store

    open_store(url, Session.begin).put(key, data)


def _storage_url() -> str:
    from store.settings import load_settings

    return load_settings().storage_url


def upgrade() -> None:
    objects = op.create_table(
        "objects",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("part", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key", "part"),
    )
    for name, column in (
        ("datasets", "data_key"),
        ("checkpoints", "data_key"),
        ("models", "weights_key"),
    ):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column(column, sa.String(200), nullable=True))

    bind = op.get_bind()
    moves: list[tuple[str, str, str, str, Any]] = [
        # table, bytes column, key column, key of a row, conversion
        ("datasets", "data", "data_key", "datasets/{}.arrow", _arrow_frame),
        ("checkpoints", "data", "data_key", "checkpoints/{}/{}.npz", None),
        ("models", "weights", "weights_key", "models/{}.npz", None),
    ]
    url = None
    for table_name, data_column, key_column, pattern, convert in moves:
        id_column = "job_id" if table_name == "checkpoints" else "id"
        table = sa.table(
            table_name, sa.column(id_column), sa.column(data_column), sa.column(key_column)
        )
        for row in bind.execute(sa.select(table)).all():
            url = url or _storage_url()
            row_id, data = row[0], row[1]
            key = pattern.format(row_id, uuid.uuid4().hex)
            _put(objects, url, key, convert(data) if convert else data)
            bind.execute(
                table.update().where(table.c[id_column] == row_id).values({key_column: key})
            )

    for table_name, data_column, key_column, _, _ in moves:
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.alter_column(key_column, existing_type=sa.String(200), nullable=False)
            batch_op.drop_column(data_column)


def downgrade() -> None:
    # The bytes stay in object storage; an older release cannot reach them.
    raise NotImplementedError("0006 moves stored bytes to object storage and cannot be undone")
