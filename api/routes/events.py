"""``GET /jobs/<id>/events``: a job's epochs and status changes as Server-Sent Events.

Each ``epochs`` event carries the epochs recorded since the last one and has the
last epoch's number as its id, so a client that reconnects with
``Last-Event-ID`` misses nothing and sees nothing twice. A ``status`` event
follows every status change. The stream ends once the job has finished and
its last epochs are sent, or after ``BACKPROP_SSE_SECONDS`` (the browser's
EventSource then reconnects on its own), so it never holds a server thread for
long. The database is polled with a short session each time, never held open
across a sleep.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from flask import Blueprint, Response, request, stream_with_context

from store import JobKind, Session
from store import queries as q

from ..auth import owner
from ..decorators import responds
from ..errors import invalid
from ..schemas import EpochsEvent, epoch_out
from ..services import state
from .jobs import job_out
from .rows import mine

bp = Blueprint("events", __name__)

POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 10.0
PAGE = 1000


def _event(kind: str, data: object, ident: int | None = None) -> str:
    head = f"id: {ident}\n" if ident is not None else ""
    # allow_nan=False: a NaN that slipped past the schemas fails here rather than
    # reaching a client as JSON it cannot parse.
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"{head}event: {kind}\ndata: {text}\n\n"


def _last_event_id() -> int:
    raw = request.headers.get("Last-Event-ID", "0").strip() or "0"
    if not raw.isdigit():
        raise invalid("Last-Event-ID", f"expected the number of an epoch, got {raw!r}")
    return int(raw)


@bp.get("/jobs/<id:job_id>/events")
@responds(200, errors=(404, 422), media="text/event-stream")
def job_events(job_id: int) -> Response:
    """Live epochs and status changes of a job (text/event-stream)."""
    after = _last_event_id()
    who = owner()
    with Session.begin() as session:
        mine(session, "job", job_id, q.get_job, kind=JobKind.TRAINING)
    limit = state().settings.sse_seconds

    def stream() -> Iterator[str]:
        nonlocal after
        deadline = time.monotonic() + limit
        last_sent = time.monotonic()
        status = None
        yield "retry: 1000\n\n"
        while True:
            with Session.begin() as session:
                job = q.get_job(session, job_id, owner=who)
                if job is None:  # deleted meanwhile
                    return
                rows = q.list_epochs(session, job_id, after=after, limit=PAGE)
                epochs = EpochsEvent(epochs=[epoch_out(row) for row in rows])
                current = job_out(session, job).model_dump(mode="json")
            if epochs.epochs:
                after = epochs.epochs[-1].epoch
                yield _event("epochs", epochs.model_dump(mode="json"), after)
                last_sent = time.monotonic()
                if len(epochs.epochs) == PAGE:
                    continue  # more are waiting
            if current["status"] != status:
                status = current["status"]
                yield _event("status", current, after)
                last_sent = time.monotonic()
            # A finished job's epochs were all written with its final status.
            if current["finished_at"] is not None or time.monotonic() > deadline:
                return
            if time.monotonic() - last_sent > HEARTBEAT_SECONDS:
                yield ": heartbeat\n\n"
                last_sent = time.monotonic()
            time.sleep(POLL_SECONDS)

    return Response(
        stream_with_context(stream()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
