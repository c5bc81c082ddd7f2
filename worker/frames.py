"""Datasets on disk: a :class:`core.frame.Frame` as an Arrow IPC file, read back
memory-mapped.

The file holds one record batch, so every column is one contiguous buffer that
NumPy views in place: a worker opens a million-row dataset without reading it,
and the pages it touches are shared with the page cache. Number columns keep
their dtype (float32 or float64) with NaN for missing values (not Arrow nulls,
which would force a copy); category columns are int64 codes, their categories
in the file's metadata.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]

from core.frame import Column, Frame
from store import Dataset
from store.objects import storage

META_KEY = b"backprop.frame"
SUFFIX = ".arrow"


def write_frame(frame: Frame, path: Path) -> None:
    """Write ``frame`` to ``path`` as an uncompressed Arrow IPC file."""
    meta = [{"name": c.name, "kind": c.kind, "categories": list(c.categories)} for c in frame]
    arrays = [pa.array(np.ascontiguousarray(c.values)) for c in frame]
    names = [f"c{i}" for i in range(len(arrays))]  # the real names may repeat Arrow's rules
    batch = pa.record_batch(arrays, names=names)
    schema = batch.schema.with_metadata({META_KEY: json.dumps(meta).encode()})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(batch.replace_schema_metadata(schema.metadata))


def read_frame(path: Path) -> Frame:
    """The frame in ``path``, its columns read-only views of the mapped file."""
    source = pa.memory_map(str(path), "r")
    reader = pa.ipc.open_file(source)
    meta = json.loads(reader.schema.metadata[META_KEY])
    if reader.num_record_batches == 1:
        batch: Any = reader.get_batch(0)
        columns = [batch.column(i) for i in range(batch.num_columns)]
    else:  # an empty frame is written as no batch at all by some writers
        table = reader.read_all()
        columns = [table.column(i).combine_chunks() for i in range(table.num_columns)]
    return Frame(
        [
            Column(m["name"], m["kind"], _values(array), tuple(m["categories"]))
            for m, array in zip(meta, columns, strict=True)
        ]
    )


def _values(array: Any) -> np.ndarray[Any, Any]:
    if array.null_count == 0:
        return np.asarray(array.to_numpy(zero_copy_only=True))
    return np.asarray(array.to_numpy(zero_copy_only=False))


def uploaded_frame(key: str) -> Frame:
    """Rows stored under ``key`` with a batch prediction request (each key is written
    once, so the key itself names its contents for the cache)."""
    # Named by the key's digest, as Storage.discard(key) forgets it.
    digest = hashlib.sha256(key.encode()).hexdigest()
    return read_frame(storage().cached(key, digest, SUFFIX))


def dataset_frame(dataset: Dataset) -> Frame:
    """The stored columns of ``dataset``, memory-mapped from this host's copy
    (fetched once per content digest)."""
    return read_frame(storage().cached(dataset.data_key, dataset.sha256, SUFFIX))
