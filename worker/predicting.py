"""Batch prediction: every row of a stored dataset through a trained model, the
outputs (and labels) written to object storage as one Parquet file.

A prediction job runs on the same queue, leases, retries and cancel as a
training job. It keeps no checkpoint: predicting is deterministic and cheap
next to training, so an attempt that takes over starts again from the first
row, and only the attempt that still holds the lease when it finishes records
its file -- the output is complete and written once, whatever was killed.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from core import Model, SpecError, StopReason
from core.frame import Frame
from core.losses import class_index
from store import JobStatus, storage

from .attempt import Attempt

log = logging.getLogger(__name__)

# Rows predicted at a time: big enough that the network's matrix products run
# near the machine's rate, small enough that a cancel is seen within a moment.
BLOCK_ROWS = 65536
# The label column of a classifier's output file.
LABEL = "label"


class PredictionFailed(Exception):
    """Rows the model cannot predict; the message says which and why."""


def output_columns(model: Model, target_names: list[str]) -> list[str]:
    """Names of the output file's value columns, one per output unit."""
    names = model.output_names(target_names)
    units = model.network.output_dim
    if names is None or len(set(names)) != units or LABEL in names:
        return [f"output_{k}" for k in range(units)]
    return names


def _inputs(model: Model, frame: Frame, features: list[str]) -> Any:
    """What ``model.predict`` takes for these rows: the frame itself for a model with
    preprocessing, else its feature columns stacked (a model of bare arrays)."""
    if model.preprocessor is not None:
        return frame
    x = np.column_stack([frame[name].values for name in features])
    if np.isnan(x).any():
        row = int(np.argwhere(np.isnan(x))[0][0])
        raise PredictionFailed(
            f"row {row}: missing value; this model was trained before missing values were imputed"
        )
    return x


def check_inputs(model: Model, frame: Frame, features: list[str]) -> str | None:
    """Why ``model`` cannot predict the rows of ``frame``, or None when it can."""
    if model.preprocessor is not None:
        for name, kind in model.preprocessor.kinds.items():
            if name not in frame:
                return f"the model takes the {kind} column {name!r}, which the dataset lacks"
            if frame[name].kind != kind:
                return f"the model takes {name!r} as {kind}, the dataset holds {frame[name].kind}"
        return None
    if len(features) != model.input_dim:
        return f"the model takes {model.input_dim} inputs, the dataset has {len(features)}"
    return None


def predict_rows(
    model: Model, frame: Frame, features: list[str], on_rows: Any = None, stop: Any = None
) -> np.ndarray[Any, Any] | None:
    """The model's outputs for every row (rows x outputs, in the targets' units), in
    blocks; ``on_rows(done)`` after each block, ``stop()`` before each (None is
    returned when it says to stop). Raises :class:`PredictionFailed`."""
    n = frame.n_rows
    outputs = np.empty((n, model.network.output_dim), dtype=np.float64)
    for start in range(0, n, BLOCK_ROWS):
        if stop is not None and stop():
            return None
        rows = slice(start, min(start + BLOCK_ROWS, n))
        try:
            block = model.predict(_inputs(model, frame.take(rows), features))
        except SpecError as exc:
            raise PredictionFailed(f"rows {rows.start}-{rows.stop - 1}: {exc}") from None
        bad = ~np.isfinite(block)
        if bad.any():
            row = rows.start + int(np.argwhere(bad)[0][0])
            raise PredictionFailed(f"row {row}: the model's output is not finite")
        outputs[rows] = block
        if on_rows is not None:
            on_rows(rows.stop)
    return outputs


def output_table(model: Model, outputs: np.ndarray[Any, Any], names: list[str]) -> Any:
    """The output file's table: one float64 column per output unit and, for a
    classifier, the ``label`` each row gets (multilabel: 0/1 per label)."""
    columns = {name: pa.array(outputs[:, k]) for k, name in enumerate(names)}
    target = model.target
    if target is not None and target.task == "multilabel":
        for k, name in enumerate(names):
            columns[f"{name}_{LABEL}"] = pa.array((outputs[:, k] >= 0.5).astype(np.int8))
    elif model.is_classifier:
        classes = target.classes if target is not None else model.classes
        index = class_index(outputs)
        if classes is None:
            columns[LABEL] = pa.array(index.astype(np.int64))
        else:
            columns[LABEL] = pa.DictionaryArray.from_arrays(
                pa.array(index.astype(np.int32)), pa.array(list(classes))
            )
    return pa.table(columns)


def run_prediction(
    run: Attempt,
    model_bytes: bytes,
    frame: Frame,
    target_names: list[str],
    input_key: str | None = None,
) -> bool:
    """Predict every row of ``frame`` (a stored dataset, or the rows uploaded with the
    request and stored under ``input_key``, discarded once the job has ended) and
    record the output file, under ``run``'s lease. Returns True when the job was
    given back, also after an outage of the database (see ``worker.training.run_job``)."""
    ended = _predict(run, model_bytes, frame, target_names)
    if run.unreachable:
        return run.hand_back()
    if ended and input_key is not None:
        storage().discard(input_key)
    return not ended and run.given_back


def _predict(run: Attempt, model_bytes: bytes, frame: Frame, target_names: list[str]) -> bool:
    """Whether the job ended here (finished, failed or cancelled, and recorded)."""
    model = Model.from_bytes(model_bytes)
    features = [name for name in frame.names if name not in set(target_names)]
    why = check_inputs(model, frame, features)
    if why is not None:
        return run.finish(JobStatus.FAILED, stop_reason=StopReason.INVALID, error=why)
    try:
        with run.beating():
            outputs = predict_rows(model, frame, features, run.on_rows, run.should_stop)
    except PredictionFailed as exc:
        return run.finish(JobStatus.FAILED, stop_reason=StopReason.INVALID, error=str(exc))
    if run.given_back or run.lost or run.unreachable:
        return False
    if outputs is None:  # cancelled
        return run.finish(JobStatus.CANCELLED, stop_reason=StopReason.CANCELLED)
    table = output_table(model, outputs, output_columns(model, target_names))
    with tempfile.TemporaryDirectory(prefix="backprop-predictions-") as folder:
        path = Path(folder) / "predictions.parquet"
        pq.write_table(table, path)
        return run.finish(JobStatus.SUCCEEDED, output=path)
