"""/models: a trained model's description, its weights, and predictions."""

from __future__ import annotations

import io

import numpy as np
from flask import Blueprint, Response, request
from sqlalchemy.exc import IntegrityError

import core
from store import Job, Session, TrainedModel, storage
from store import queries as q
from worker.evaluation import evaluate
from worker.frames import dataset_frame

from ..auth import owner
from ..decorators import NPY, NpyBody, TableBody, body, query, responds
from ..errors import conflict, invalid, limit_exceeded, not_found
from ..model_cache import Served
from ..predict_inputs import (
    encoded,
    feature_error,
    input_columns,
    json_frame,
    npy_frame,
    output_names,
    table_frame,
)
from ..schemas import (
    EvaluateCsvQuery,
    EvaluateRequest,
    Metrics,
    ModelList,
    ModelOut,
    ModelWeights,
    PageQuery,
    PredictCsvQuery,
    PredictOut,
    PredictRequest,
)
from ..services import state
from ..tables import ReadOptions, read_records
from .rows import mine, one_page

bp = Blueprint("models", __name__, url_prefix="/models")


def served_model(model_id: int) -> Served:
    """The caller's model, loaded (once per process), or a 404; a 409
    ``model_unavailable`` if its stored weights cannot be loaded."""
    served = state().models.get(model_id, owner())
    if served is None:
        raise not_found("model", model_id)
    return served


def model_out(row: TrainedModel, job: Job, best_job_id: int | None) -> ModelOut:
    """A stored model, with its lineage (``job``: its training job; ``best_job_id``: the
    job of the best trial of the sweep the job is a trial of)."""
    lineage = {
        "job_id": row.job_id,
        "dataset_id": row.dataset_id,
        "dataset_sha256": row.dataset_sha256,
        "spec_sha256": row.spec_sha256,
        "seed": row.seed,
        "service_version": row.service_version,
        "init_model_id": job.init_model_id,
        "sweep_id": job.sweep_id,
        "trial_number": job.trial_number,
        "best_of_sweep": job.sweep_id is not None and best_job_id == job.id,
        "created_at": row.created_at,
    }
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
            "metrics": row.metrics,
            "created_at": row.created_at,
            "lineage": lineage,
        }
    )


@bp.get("")
@query(PageQuery)
@responds(200, ModelList)
def list_models(params: PageQuery) -> ModelList:
    """The caller's models, newest first, with their lineage; `next_after` is the next
    page's cursor."""
    with Session.begin() as session:
        rows = q.list_models(session, owner=owner(), after=params.after, limit=params.limit + 1)
        page, next_after = one_page(rows, params.limit, lambda row: model_out(*row))
    return ModelList(models=page, next_after=next_after)


@bp.delete("/<id:model_id>")
@responds(204, errors=(404, 409))
def delete_model(model_id: int) -> None:
    """Delete a model and its weights; refused while a queued or running job uses it
    (a batch prediction, or a training job that starts from it) and while a version of
    a registered model points at it. Its training job stays, without a model."""
    try:
        with Session.begin() as session:
            model = mine(session, "model", model_id, q.get_model)
            try:
                q.delete_model(session, model)
            except q.InUse as exc:
                raise conflict(str(exc)) from None
    except IntegrityError:
        # registered by a request that committed between the check and the delete
        raise conflict(f"model {model_id} is registered; delete its versions first") from None
    state().models.forget(model_id, owner())
    storage().discard(model.weights_key)


@bp.get("/<id:model_id>")
@responds(200, ModelOut, errors=(404,))
def get_model(model_id: int) -> ModelOut:
    """Architecture, training summary, lineage, normalization and classes."""
    with Session.begin() as session:
        row = mine(session, "model", model_id, q.get_model)
        job = q.get_job(session, row.job_id)
        assert job is not None  # a model goes with its job
        return model_out(row, job, q.best_job_of_sweep(session, job.sweep_id))


@bp.get("/<id:model_id>/weights")
@responds(200, ModelWeights, errors=(404, 409))
def get_weights(model_id: int) -> ModelWeights:
    """The weights and biases, in the network spec format (usable as initial weights)."""
    return ModelWeights.model_validate(served_model(model_id).model.to_json())


@bp.post("/<id:model_id>/predict")
@body(PredictRequest, csv=PredictCsvQuery, npy=True)
@responds(200, PredictOut, errors=(400, 404, 409))
def predict(model_id: int, payload: PredictRequest | TableBody | NpyBody) -> PredictOut | Response:
    """Outputs for rows, preprocessed as in training; labels for classifiers.

    The rows come as ``{"inputs": [[...]]}`` (numbers in input order) or
    ``{"inputs": {"column": [...]}}``, as ``{"instances": [...]}`` (lists, or
    objects keyed by column name with text for categories and null for a
    missing value), as CSV or Parquet, or as ``.npy`` (``application/x-npy``),
    answered in kind when asked (``Accept: application/x-npy``) for large batches.
    The training data itself may be sent: its target columns are ignored. An
    empty batch answers 200 with no rows, in every form.

    In CSV, a first row of names is a header: a model with column names takes the
    columns by name (in any order), one without names refuses a header. A first
    row of numbers is data, in input order. ``?header=present|absent`` settles a
    first row that is not clearly either. Outputs are in the targets' units.
    """
    return predict_with(model_id, payload)


def predict_with(
    model_id: int, payload: PredictRequest | TableBody | NpyBody
) -> PredictOut | Response:
    """The answer of ``POST /models/<model_id>/predict`` to ``payload``: every way of
    naming a model (its id, a registered version, an alias) predicts through this."""
    served = served_model(model_id)
    model = served.model
    if isinstance(payload, NpyBody):
        frame = npy_frame(payload, model)
    elif isinstance(payload, TableBody):
        frame = table_frame(payload, model, served.skipped)
    else:
        frame = json_frame(payload, model, served.skipped)
    # Errors name the rows as the body sent them.
    rows = "instances" if getattr(payload, "instances", None) is not None else "inputs"
    limit = state().settings.max_predict_rows
    if frame.n_rows > limit:
        raise limit_exceeded(
            rows,
            f"at most {limit} rows per request (BACKPROP_MAX_PREDICT_ROWS), got {frame.n_rows}",
        )
    outputs = encoded(model, frame, rows)
    if not np.isfinite(outputs).all():
        row = int(np.argwhere(~np.isfinite(outputs))[0][0])
        raise invalid(f"{rows}[{row}]", "the model's output for this row is not finite")
    state().metrics.predict_rows.inc(len(outputs))
    if isinstance(payload, NpyBody) and NPY in request.accept_mimetypes.values():
        buffer = io.BytesIO()
        np.save(buffer, outputs, allow_pickle=False)
        return Response(buffer.getvalue(), mimetype=NPY)
    labels = model.labels_from_outputs(outputs) if model.is_classifier else None
    values = outputs.astype(np.float64).tolist()
    instances = isinstance(payload, PredictRequest) and payload.instances is not None
    return PredictOut(
        outputs=values,
        labels=labels,
        predictions=values if instances else None,
        output_names=output_names(model, served.target_names),
    )


@bp.post("/<id:model_id>/evaluate")
@body(EvaluateRequest, csv=EvaluateCsvQuery)
@responds(200, Metrics, errors=(400, 404, 409))
def evaluate_model(model_id: int, payload: EvaluateRequest | TableBody) -> Metrics:
    """Score the model on rows with known targets, as held-out rows are scored.

    Send ``{"dataset_id": N}`` (a stored dataset with the model's columns and
    targets), ``{"records": [...]}`` (objects with the target columns), or a CSV
    or Parquet body holding the target columns.
    """
    served = served_model(model_id)
    model = served.model
    targets = list(served.target_names)
    if not targets:
        raise invalid("model", "this model does not know its target columns")
    if isinstance(payload, TableBody):
        frame = table_frame(payload, model, served.skipped, with_targets=True)
    elif payload.dataset_id is not None:
        with Session.begin() as session:
            row = q.get_dataset(session, payload.dataset_id, owner=owner())
            if row is None:
                raise invalid("dataset_id", f"no dataset with id {payload.dataset_id}")
        frame = dataset_frame(row)
    elif payload.records is not None:
        names, kinds = input_columns(model)
        read = read_records(payload.records, ReadOptions(schema=kinds), field="records")
        frame = read.frame
    else:
        raise invalid("dataset_id", "send dataset_id or records")
    for name in targets:
        if name not in frame:
            raise invalid(name, f"the rows need the target column {name!r} to be scored")
    names, _ = input_columns(model)
    for name in names:
        if name not in frame:
            raise feature_error(name, f"missing feature column {name!r}")
    try:
        return Metrics.model_validate(evaluate(model, frame, targets, split="given"))
    except core.SpecError as exc:
        raise invalid(exc.field, exc.message) from None
