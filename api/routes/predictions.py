"""Batch prediction jobs: queue one for a model and a stored dataset, poll it,
download its outputs, cancel it.

They run on the training workers' queue with the same leases, retries and
cancel (``worker/predicting.py``); the outputs are one Parquet file in object
storage.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pyarrow.csv as pcsv  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from flask import Blueprint, Response, send_file
from sqlalchemy.orm import Session as OrmSession

import core
from core import StopReason
from store import Dataset, Job, JobKind, JobStatus, Session, storage
from store import queries as q
from worker import frames

from ..auth import owner
from ..decorators import TableBody, body, query, responds
from ..errors import conflict, invalid, public_message
from ..predict_inputs import table_frame
from ..schemas import (
    PageQuery,
    PredictCsvQuery,
    PredictionCreate,
    PredictionList,
    PredictionOut,
    ResultQuery,
)
from .jobs import enqueue
from .models import served_model
from .rows import mine, one_page

bp = Blueprint("predictions", __name__)


def prediction_out(job: Job) -> PredictionOut:
    done = job.status == JobStatus.SUCCEEDED and job.output_key is not None
    return PredictionOut(
        id=job.id,
        model_id=job.model_id,
        dataset_id=job.dataset_id,
        status=job.status,
        rows_total=job.epochs_total,
        rows_done=job.epochs_completed,
        attempt=job.attempt,
        error=public_message(job.error) if job.error is not None else None,
        stop_reason=job.stop_reason,
        cancel_requested=job.cancel_requested,
        result=f"/predictions/{job.id}/result" if done else None,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def _prediction(session: OrmSession, prediction_id: int, *, for_update: bool = False) -> Job:
    return mine(
        session,
        "prediction",
        prediction_id,
        q.get_job,
        kind=JobKind.PREDICTION,
        for_update=for_update,
    )


@bp.post("/models/<id:model_id>/predictions")
@body(PredictionCreate, csv=PredictCsvQuery, upload=True)
@responds(
    202,
    PredictionOut,
    errors=(404, 409, 503),
    headers={"Location": "URL of the new prediction job"},
)
def create_prediction(
    model_id: int, payload: PredictionCreate | TableBody
) -> tuple[PredictionOut, dict[str, str]]:
    """Queue a batch prediction with the model of every row of a stored dataset
    (`{"dataset_id": N}`), or of a CSV or Parquet body sent with the request (read as
    a predict body is: columns by name, up to `BACKPROP_MAX_UPLOAD_BYTES`).

    The rows must hold the columns the model was trained on (its target columns,
    if any, are ignored). Poll `GET /predictions/<id>`; once it has succeeded,
    `result` is the URL of its outputs: one column per output unit and, for a
    classifier, the `label` of each row, in the rows' order.
    """
    with ExitStack() as staged:
        if isinstance(payload, TableBody):
            served = served_model(model_id)
            frame = table_frame(payload, served.model, served.skipped)
            with tempfile.TemporaryDirectory(prefix="backprop-predict-") as folder:
                path = Path(folder) / f"rows{frames.SUFFIX}"
                frames.write_frame(frame, path)
                key = staged.enter_context(
                    storage().stage("prediction-inputs", frames.SUFFIX, path, move=True)
                )
        with Session.begin() as session:
            model = mine(session, "model", model_id, q.get_model)
            if isinstance(payload, TableBody):
                job = q.add_prediction_job(session, model, input_key=key, n_rows=frame.n_rows)
            elif payload.dataset_id is None:
                raise invalid("dataset_id", "is required (or send the rows as CSV or Parquet)")
            else:
                dataset = q.get_dataset(session, payload.dataset_id, owner=owner())
                if dataset is None:
                    raise invalid("dataset_id", f"no dataset with id {payload.dataset_id}")
                _check_columns(served_model(model_id).model, dataset)
                job = q.add_prediction_job(session, model, dataset)
            out = prediction_out(job)
    enqueue(job.id)
    return out, {"Location": f"/predictions/{out.id}"}


def _check_columns(model: core.Model, dataset: Dataset) -> None:
    """Refuse a dataset without the model's input columns, of their kinds, before
    anything is queued (from the dataset's profile; the worker checks the stored
    columns again)."""
    if model.preprocessor is None:
        return  # a model stored before typed tables: checked by the worker
    held = {c["name"]: c["type"] for c in (dataset.profile or {}).get("columns", [])}
    unnamed = model.feature_names is None
    for name, kind in model.preprocessor.kinds.items():
        if held.get(name, "ignored") == "ignored":
            hint = (
                "; this model was trained on unnamed columns (JSON arrays): send the rows "
                "as a CSV body without a header, in training order"
                if unnamed
                else ""
            )
            raise invalid(
                "dataset_id", f"the dataset lacks the model's input column {name!r}{hint}"
            )
        if held[name] != kind:
            raise invalid(
                "dataset_id", f"the model takes {name!r} as {kind}, the dataset holds {held[name]}"
            )


@bp.get("/predictions")
@query(PageQuery)
@responds(200, PredictionList)
def list_predictions(params: PageQuery) -> PredictionList:
    """Batch prediction jobs, newest first; `next_after` is the next page's cursor."""
    with Session.begin() as session:
        rows = q.list_jobs(
            session,
            owner=owner(),
            after=params.after,
            limit=params.limit + 1,
            kind=JobKind.PREDICTION,
        )
        page, next_after = one_page(rows, params.limit, prediction_out)
    return PredictionList(predictions=page, next_after=next_after)


@bp.get("/predictions/<id:prediction_id>")
@responds(200, PredictionOut, errors=(404,))
def get_prediction(prediction_id: int) -> PredictionOut:
    """A batch prediction job's status and progress."""
    with Session.begin() as session:
        return prediction_out(_prediction(session, prediction_id))


@bp.get("/predictions/<id:prediction_id>/result")
@query(ResultQuery)
@responds(200, errors=(404, 409))
def get_result(prediction_id: int, params: ResultQuery) -> Response:
    """The outputs of a succeeded batch prediction, as Parquet or CSV (409 before)."""
    with Session.begin() as session:
        job = _prediction(session, prediction_id)
        key = job.output_key
        if job.status != JobStatus.SUCCEEDED or key is None:
            raise conflict(
                f"prediction {prediction_id} has no outputs ({job.status.value}); "
                "they are ready once it has succeeded"
            )
    # A local copy by key (each key is written once), for other backends than a folder.
    path = storage().cached(key, hashlib.sha256(key.encode()).hexdigest(), ".parquet")
    name = f"predictions-{prediction_id}"
    if params.format == "parquet":
        return send_file(
            path,
            mimetype="application/vnd.apache.parquet",
            as_attachment=True,
            download_name=f"{name}.parquet",
        )
    buffer = io.BytesIO()
    pcsv.write_csv(pq.read_table(path), buffer)
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@bp.delete("/predictions/<id:prediction_id>")
@responds(204, errors=(404, 409))
def delete_prediction(prediction_id: int) -> None:
    """Delete a finished batch prediction and its outputs (409 while it is queued or
    running: cancel it first)."""
    with Session.begin() as session:
        job = _prediction(session, prediction_id, for_update=True)
        try:
            keys = q.delete_prediction(session, job)
        except q.InUse as exc:
            raise conflict(str(exc)) from None
    storage().discard(*keys)


@bp.post("/predictions/<id:prediction_id>/cancel")
@responds(202, PredictionOut, errors=(404, 409))
def cancel_prediction(prediction_id: int) -> PredictionOut:
    """Cancel a batch prediction: a queued one at once, a running one between blocks of rows."""
    with Session.begin() as session:
        job = _prediction(session, prediction_id, for_update=True)
        if job.status.finished:
            raise conflict(f"prediction {prediction_id} has already finished ({job.status.value})")
        q.request_cancel(session, job, stop_reason=StopReason.CANCELLED)
        out, uploaded = prediction_out(job), job.input_key
    if out.status.finished and uploaded is not None:  # cancelled while queued
        storage().discard(uploaded)
    return out
