"""/models: a trained model's description, its weights, and predictions."""

from __future__ import annotations

import io

import numpy as np
from flask import Blueprint, Response, request

from store import Session
from store import queries as q

from ..auth import owner
from ..decorators import NPY, CsvBody, NpyBody, body, responds
from ..errors import invalid, limit_exceeded, not_found
from ..model_cache import Served
from ..schemas import ModelOut, ModelWeights, PredictCsvQuery, PredictOut, PredictRequest
from ..services import state
from ..uploads import csv_rows, instance_rows, npy_rows, rows_of
from .rows import mine

bp = Blueprint("models", __name__, url_prefix="/models")


def _loaded(model_id: int) -> Served:
    served = state().models.get(model_id, owner())
    if served is None:
        raise not_found("model", model_id)
    return served


@bp.get("/<id:model_id>")
@responds(200, ModelOut, errors=(404,))
def get_model(model_id: int) -> ModelOut:
    """Architecture, training summary, provenance, normalization and classes."""
    with Session.begin() as session:
        row = mine(session, "model", model_id, q.get_model)
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
    return ModelWeights.model_validate(_loaded(model_id).model.to_json())


@bp.post("/<id:model_id>/predict")
@body(PredictRequest, csv=PredictCsvQuery, npy=True)
@responds(200, PredictOut, errors=(400, 404))
def predict(model_id: int, payload: PredictRequest | CsvBody | NpyBody) -> PredictOut | Response:
    """Outputs for rows of inputs, normalized as in training; labels for classifiers.

    The rows come as ``{"inputs": [[...]]}``, as ``{"instances": [...]}`` (lists, or
    objects keyed by feature name), as CSV, or as ``.npy`` (``application/x-npy``),
    answered in kind when asked (``Accept: application/x-npy``) for large batches.

    In CSV, a first row of names is a header: a model with feature names takes the
    columns by name (in any order; the training target columns are ignored), one
    without names refuses a header. A first row of numbers is data, in input order.
    ``?header=present|absent`` settles a first row that is not clearly either.
    """
    served = _loaded(model_id)
    model = served.model
    instances = isinstance(payload, PredictRequest) and payload.instances is not None
    if isinstance(payload, NpyBody):
        inputs = npy_rows(payload.array, model.input_dim)
    elif isinstance(payload, CsvBody):
        assert isinstance(payload.params, PredictCsvQuery)
        inputs = csv_rows(payload.text, payload.params.header, model, served.target_names)
    elif (payload.inputs is None) == (payload.instances is None):
        raise invalid("inputs", "send the rows as either inputs or instances")
    elif payload.inputs is not None:
        inputs = rows_of(payload.inputs, model.input_dim)
    else:
        assert payload.instances is not None
        inputs = instance_rows(payload.instances, model, served.target_names)
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
