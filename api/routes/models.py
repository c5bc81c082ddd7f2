"""/models: a trained model's description, its weights, and predictions."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
from flask import Blueprint, Response, request

import core
from store import Session
from store import queries as q

from ..auth import owner
from ..decorators import NPY, CsvBody, NpyBody, body, responds
from ..errors import ApiError, invalid, limit_exceeded, not_found
from ..schemas import ModelOut, ModelWeights, PredictCsvQuery, PredictOut, PredictRequest
from ..services import state
from ..uploads import Array

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
@body(PredictRequest, csv=PredictCsvQuery, npy=True)
@responds(200, PredictOut, errors=(400, 404))
def predict(model_id: int, payload: PredictRequest | CsvBody | NpyBody) -> PredictOut | Response:
    """Outputs for rows of inputs, normalized as in training; labels for classifiers.

    The rows come as ``{"inputs": [[...]]}``, as ``{"instances": [...]}`` (lists, or
    objects keyed by feature name), as a CSV body with a header of feature names,
    or as ``.npy`` (``application/x-npy``), answered in kind when asked
    (``Accept: application/x-npy``) for large batches.
    """
    model = _loaded(model_id)
    instances = isinstance(payload, PredictRequest) and payload.instances is not None
    if isinstance(payload, NpyBody):
        inputs = _npy_rows(payload.array, model.input_dim)
    elif isinstance(payload, CsvBody):
        inputs = _csv_rows(payload.text, model)
    elif (payload.inputs is None) == (payload.instances is None):
        raise invalid("inputs", "send the rows as either inputs or instances")
    elif payload.inputs is not None:
        inputs = _rows_of(payload.inputs, model.input_dim)
    else:
        assert payload.instances is not None
        inputs = _instances(payload.instances, model)
    limit = state().settings.max_predict_rows
    if len(inputs) > limit:
        raise limit_exceeded(
            "inputs",
            f"at most {limit} rows per request (BACKPROP_MAX_PREDICT_ROWS), got {len(inputs)}",
        )
    outputs = model.predict(inputs)
    if not np.isfinite(outputs).all():
        row = int(np.argwhere(~np.isfinite(outputs))[0][0])
        raise invalid(f"inputs[{row}]", "the model's output for this row is not finite")
    state().metrics.predict_rows.inc(len(outputs))
    if isinstance(payload, NpyBody) and NPY in request.accept_mimetypes.values():
        buffer = io.BytesIO()
        np.save(buffer, outputs, allow_pickle=False)
        return Response(buffer.getvalue(), mimetype=NPY)
    labels = model.labels_from_outputs(outputs) if model.is_classifier else None
    values = outputs.astype(np.float64).tolist()
    return PredictOut(outputs=values, labels=labels, predictions=values if instances else None)


def feature_error(field: str, message: str) -> ApiError:
    # A 400, as clients of TensorFlow Serving and Vertex AI expect for a row that
    # does not match the model's named features.
    return ApiError(400, "feature_mismatch", message, field)


def _instances(instances: list[list[float] | dict[str, float]], model: core.Model) -> Array:
    rows = []
    for index, instance in enumerate(instances):
        if isinstance(instance, list):
            rows.append(instance)
            continue
        names = model.feature_names
        if names is None:
            raise invalid(
                f"instances[{index}]",
                "this model's dataset had no column names; send each instance as a list",
            )
        for name in names:
            if name not in instance:
                raise feature_error(f"instances[{index}].{name}", "missing feature")
        for name in instance:
            if name not in names:
                raise feature_error(
                    f"instances[{index}].{name}",
                    f"unknown feature; the model takes {', '.join(names)}",
                )
        rows.append([instance[name] for name in names])
    return _rows_of(rows, model.input_dim, "instances")


def _csv_rows(text: str, model: core.Model) -> Array:
    table = [row for row in csv.reader(io.StringIO(text)) if row]
    if not table:
        raise invalid("body", "the CSV body is empty; expected a header row")
    header = [name.strip() for name in table[0]]
    names = model.feature_names
    if names is not None:
        for name in names:
            if name not in header:
                raise feature_error(name, "missing feature column")
        for name in header:
            if name not in names:
                raise feature_error(name, f"unknown column; the model takes {', '.join(names)}")
        order = [header.index(name) for name in names]
    elif len(header) != model.input_dim:
        raise invalid("body", f"the model takes {model.input_dim} columns, got {len(header)}")
    else:
        order = list(range(len(header)))
    rows = []
    for number, row in enumerate(table[1:], start=1):
        if len(row) != len(header):
            raise invalid(f"row {number}", f"expected {len(header)} values, got {len(row)}")
        try:
            values = [float(row[i]) for i in order]
        except ValueError:
            raise invalid(f"row {number}", "every value must be a number") from None
        if not all(math.isfinite(v) for v in values):
            raise invalid(f"row {number}", "must be finite (no NaN or Infinity)")
        rows.append(values)
    if not rows:
        raise invalid("body", "the CSV body has a header but no rows")
    return np.array(rows, dtype=np.float64)


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


def _rows_of(rows: list[list[float]], width: int, field: str = "inputs") -> Array:
    for index, row in enumerate(rows):
        if len(row) != width:
            raise invalid(
                f"{field}[{index}]", f"the model takes {width} inputs per row, got {len(row)}"
            )
    return np.array(rows, dtype=np.float64)
