"""/models: a trained model's description, its weights, and predictions."""

from __future__ import annotations

import io

import numpy as np
from flask import Blueprint, Response, request

import core
from store import Session
from store import queries as q

from .auth import owner
from .contract import NPY, NpyBody, body, responds
from .errors import invalid, limit_exceeded, not_found
from .schemas import ModelOut, ModelWeights, PredictOut, PredictRequest
from .state import state
from .tables import Array

bp = Blueprint("models", __name__, url_prefix="/models")


def _loaded(model_id: int) -> core.Model:
    model = state().models.get(model_id, owner())
    if model is None:
        raise not_found("model", model_id)
    return model


@bp.get("/<id:model_id>")
@responds(200, ModelOut, errors=(404,))
def get_model(model_id: int) -> ModelOut:
    """Architecture, training summary, provenance, normalization and classes."""
    with Session.begin() as session:
        row = q.get_model(session, model_id, owner=owner())
        if row is None:
            raise not_found("model", model_id)
        return ModelOut.model_validate(
            {
                "id": row.id,
                "job_id": row.job_id,
                "dataset_id": row.dataset_id,
                "dataset_sha256": row.dataset_sha256,
                "spec": row.spec,
                "summary": row.summary,
                "normalization": row.spec.get("normalization"),
                "classes": row.spec.get("classes"),
                "created_at": row.created_at,
            }
        )


@bp.get("/<id:model_id>/weights")
@responds(200, ModelWeights, errors=(404,))
def get_weights(model_id: int) -> ModelWeights:
    """The weights and biases, in the network spec format (usable as initial weights)."""
    return ModelWeights.model_validate(_loaded(model_id).to_json())


@bp.post("/<id:model_id>/predict")
@body(PredictRequest, npy=True)
@responds(200, PredictOut, errors=(404,))
def predict(model_id: int, payload: PredictRequest | NpyBody) -> PredictOut | Response:
    """Outputs for rows of inputs, normalized as in training; labels for classifiers.

    A ``.npy`` body (``Content-Type: application/x-npy``) is answered with the
    outputs as ``.npy`` when the request accepts it, for large batches.
    """
    rows = len(payload.array) if isinstance(payload, NpyBody) else len(payload.inputs)
    limit = state().settings.max_predict_rows
    if rows > limit:
        raise limit_exceeded(
            "inputs",
            f"at most {limit} rows per request (BACKPROP_MAX_PREDICT_ROWS), got {rows}",
        )
    model = _loaded(model_id)
    if isinstance(payload, NpyBody):
        inputs = _npy_rows(payload.array, model.input_dim)
    else:
        inputs = _rows_of(payload.inputs, model.input_dim)
    outputs = model.predict(inputs)
    if not np.isfinite(outputs).all():
        row = int(np.argwhere(~np.isfinite(outputs))[0][0])
        raise invalid(f"inputs[{row}]", "the model's output for this row is not finite")
    if isinstance(payload, NpyBody) and NPY in request.accept_mimetypes.values():
        state().metrics.predict_rows.inc(len(outputs))
        buffer = io.BytesIO()
        np.save(buffer, outputs, allow_pickle=False)
        return Response(buffer.getvalue(), mimetype=NPY)
    state().metrics.predict_rows.inc(len(outputs))
    labels = model.labels_from_outputs(outputs) if model.is_classifier else None
    return PredictOut(outputs=outputs.astype(np.float64).tolist(), labels=labels)


def _npy_rows(array: Array, width: int) -> Array:
    if array.ndim != 2 or array.shape[1] != width or array.dtype.kind not in "fiu":
        raise invalid(
            "inputs",
            f"expected a 2-D numeric array with {width} columns, "
            f"got shape {array.shape} of {array.dtype}",
        )
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        raise invalid(f"inputs[{row}]", "must be finite (no NaN or Infinity)")
    return array


def _rows_of(rows: list[list[float]], width: int) -> Array:
    for index, row in enumerate(rows):
        if len(row) != width:
            raise invalid(
                f"inputs[{index}]", f"the model takes {width} inputs per row, got {len(row)}"
            )
    return np.array(rows, dtype=np.float64)
