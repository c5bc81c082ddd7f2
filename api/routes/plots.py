"""A job's loss curve, thinned to a bounded number of points: ``GET /jobs/<id>/loss.png``
for reports and ``GET /jobs/<id>/curve`` for the dashboard's chart.

A job may record up to BACKPROP_MAX_EPOCHS (a million) epochs, far more than a
chart has pixels. Past ``points``, the epochs are cut into equal buckets and the
database answers, for each bucket, the epoch of its lowest loss and the epoch of
its highest (min-max decimation, as the M4 aggregation of time-series charts
does): every point is an epoch that was recorded, with its own loss and
validation loss, and a spike in one epoch still shows. The work and memory are
those of ``points`` values whatever the length of the job.
"""

from __future__ import annotations

import io
import math
from typing import Any

from flask import Blueprint, Response
from pydantic import Field
from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session as OrmSession

from store import Epoch, JobKind, Session
from store import queries as q

from ..decorators import query, responds
from ..schemas import Out
from ..schemas import Query as QueryModel
from .rows import mine

bp = Blueprint("plots", __name__)

# Points of loss.png's curves: two per bucket past this many epochs.
PNG_POINTS = 2000
MAX_POINTS = 10_000


class CurveQuery(QueryModel):
    points: int = Field(
        default=2000,
        ge=2,
        le=MAX_POINTS,
        description="Most points of each series; past as many epochs, each bucket of epochs "
        "gives the epochs of its lowest and highest loss.",
    )


class Curve(Out):
    """A job's loss curve: ``loss[i]`` and ``val_loss[i]`` were recorded at ``epochs[i]``.

    With ``bucket`` 1 these are every recorded epoch. Otherwise each bucket of
    ``bucket`` epochs gives the epoch of its lowest training loss and the epoch of
    its highest (one point when they are the same), in epoch order; the validation
    loss is the one of those epochs. Values that are not finite are null.
    """

    epochs: list[int]
    loss: list[float | None]
    val_loss: list[float | None]
    bucket: int = Field(description="Epochs per bucket (1: not thinned).")
    last_epoch: int = Field(
        description="The last epoch recorded when this was read: a stream of the job's "
        "events sent with this as Last-Event-ID continues the curve."
    )


def loss_curve(session: OrmSession, job_id: int, points: int) -> Curve:
    """The job's curve in at most ``points`` points per series, read in one query."""
    last = session.scalar(select(func.max(Epoch.epoch)).where(Epoch.job_id == job_id)) or 0
    if last <= points:
        rows = session.execute(
            select(Epoch.epoch, Epoch.loss, Epoch.val_loss)
            .where(Epoch.job_id == job_id)
            .order_by(Epoch.epoch)
        ).all()
        return Curve(
            epochs=[row.epoch for row in rows],
            loss=[row.loss for row in rows],
            val_loss=[row.val_loss for row in rows],
            bucket=1,
            last_epoch=last,
        )
    bucket = math.ceil(last / (points // 2))
    # Integer division on both databases (epochs are integers); the numbers are written
    # into the SQL so that the partition is one expression to PostgreSQL.
    index = (Epoch.epoch - literal_column("1")) // literal_column(str(int(bucket)))
    ranked = (
        select(
            Epoch.epoch,
            Epoch.loss,
            Epoch.val_loss,
            func.row_number()
            .over(partition_by=index, order_by=(Epoch.loss.asc().nulls_last(), Epoch.epoch))
            .label("low"),
            func.row_number()
            .over(partition_by=index, order_by=(Epoch.loss.desc().nulls_last(), Epoch.epoch))
            .label("high"),
        )
        .where(Epoch.job_id == job_id)
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.epoch, ranked.c.loss, ranked.c.val_loss)
        .where((ranked.c.low == 1) | (ranked.c.high == 1))
        .order_by(ranked.c.epoch)
    ).all()
    epochs = [row.epoch for row in rows]
    loss = [row.loss for row in rows]
    val_loss = [row.val_loss for row in rows]
    return Curve(epochs=epochs, loss=loss, val_loss=val_loss, bucket=bucket, last_epoch=last)


@bp.get("/jobs/<id:job_id>/curve")
@query(CurveQuery)
@responds(200, Curve, errors=(404,))
def curve(job_id: int, params: CurveQuery) -> Curve:
    """The job's training and validation loss, thinned to at most `points` points."""
    with Session.begin() as session:
        mine(session, "job", job_id, q.get_job, kind=JobKind.TRAINING)
        return loss_curve(session, job_id, params.points)


def _finite(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


@bp.get("/jobs/<id:job_id>/loss.png")
@responds(200, errors=(404,), media="image/png")
def loss_png(job_id: int) -> Response:
    """The training (and validation) loss of the recorded epochs, as a PNG (past 2,000
    epochs, each bucket of epochs drawn by the epochs of its lowest and highest loss)."""
    # Imported here: plotting is rare, and matplotlib adds to every worker's start-up.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with Session.begin() as session:
        job = mine(session, "job", job_id, q.get_job, kind=JobKind.TRAINING)
        data = loss_curve(session, job_id, PNG_POINTS)
        title = f"job {job_id} ({job.status.value})"

    nan = float("nan")
    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.subplots()
    axes.plot(data.epochs, [nan if v is None else v for v in data.loss], label="training loss")
    pairs = zip(data.epochs, data.val_loss, strict=True)
    val: list[tuple[int, Any]] = [(e, v) for e, v in pairs if v is not None]
    if val:
        axes.plot([e for e, _ in val], [v for _, v in val], label="validation loss")
    finite = _finite(data.loss)
    if finite and min(finite) > 0:
        axes.set_yscale("log")
    axes.set_xlabel("epoch" if data.bucket == 1 else f"epoch (lowest and highest of {data.bucket})")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.legend()
    axes.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return Response(buffer.getvalue(), mimetype="image/png")
