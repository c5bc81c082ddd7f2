"""``GET /jobs/<id>/loss.png``: the loss curve of a job, for reports."""

from __future__ import annotations

import io

from flask import Blueprint, Response

from store import JobKind, Session
from store import queries as q

from ..decorators import responds
from .rows import mine

bp = Blueprint("plots", __name__)


@bp.get("/jobs/<id:job_id>/loss.png")
@responds(200, errors=(404,), media="image/png")
def loss_png(job_id: int) -> Response:
    """The training (and validation) loss of every recorded epoch, as a PNG."""
    # Imported here: plotting is rare, and matplotlib adds to every worker's start-up.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with Session.begin() as session:
        job = mine(session, "job", job_id, q.get_job, kind=JobKind.TRAINING)
        epochs: list[int] = []
        losses: list[float] = []
        val: list[tuple[int, float]] = []
        after = 0
        while True:
            rows = q.list_epochs(session, job_id, after=after, limit=10_000)
            if not rows:
                break
            for row in rows:
                epochs.append(row.epoch)
                losses.append(row.loss)
                if row.val_loss is not None:
                    val.append((row.epoch, row.val_loss))
            after = rows[-1].epoch
        title = f"job {job_id} ({job.status.value})"

    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.subplots()
    axes.plot(epochs, losses, label="training loss")
    if val:
        axes.plot([e for e, _ in val], [v for _, v in val], label="validation loss")
    if losses and min(losses) > 0:
        axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.legend()
    axes.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return Response(buffer.getvalue(), mimetype="image/png")
