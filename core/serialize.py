"""Bytes and JSON forms: numeric arrays in an ``.npz`` plus one JSON document.

Nothing here uses pickle: ``np.load(..., allow_pickle=False)`` reads the arrays
and the metadata travels as a JSON string.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

META_KEY = "__meta__"


def pack(arrays: dict[str, np.ndarray[Any, Any]], meta: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    payload: dict[str, Any] = dict(arrays)
    payload[META_KEY] = np.array(json.dumps(meta))
    np.savez(buffer, **payload)
    return buffer.getvalue()


def unpack(data: bytes) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, Any]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files if key != META_KEY}
        meta = json.loads(str(npz[META_KEY]))
    return arrays, meta
