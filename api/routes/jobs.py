"""/jobs: submit, list, show, epochs, cancel."""

from __future__ import annotations

import logging
from contextlib import ExitStack

from flask import Blueprint
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession

from core import StopReason
from store import Job, JobKind, JobStatus, Session, storage
from store import queries as q

from .. import admission
from ..auth import owner
from ..decorators import body, query, responds
from ..errors import ApiError, conflict, invalid, public_message
from ..schemas import (
    MAX_ID,
    EpochList,
    EpochQuery,
    JobCreate,
    JobList,
    JobListQuery,
    JobOut,
    JobSpec,
    epoch_out,
)
from ..services import state
from .rows import mine, one_page

log = logging.getLogger(__name__)

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


def job_out(session: OrmSession, job: Job) -> JobOut:
    model_id = q.model_id_for_job(session, job.id) if job.status == JobStatus.SUCCEEDED else None
    error = public_message(job.error) if job.error is not None else None
    return JobOut.model_validate({**_job_fields(job), "model_id": model_id, "error": error})


# Fields of JobOut that are not a job's columns as they are, or only come on request.
_NOT_COLUMNS = ("model_id", "network", "training")


def _job_fields(job: Job) -> dict[str, object]:
    return {name: getattr(job, name) for name in JobOut.model_fields if name not in _NOT_COLUMNS}


@bp.post("")
@body(JobCreate)
@responds(202, JobOut, errors=(503,), headers={"Location": "URL of the new job"})
def create_job(payload: JobCreate) -> tuple[JobOut, dict[str, str]]:
    """Queue a training job on a stored or an inline dataset.

    A broker that is down delays the job rather than refusing it: it is accepted
    (202, queued) and sent once the broker answers again.
    """
    with ExitStack() as staged, Session.begin() as session:
        admitted = admission.admit(session, payload, state().settings, owner(), staged)
        # The completed spec: the worker designs the same job again from it, and finds
        # nothing left to fill in.
        job = q.add_job(
            session,
            admitted.dataset,
            admitted.network,
            admitted.training,
            init_model_id=admitted.init_model_id,
        )
        out = job_out(session, job)
    enqueue(job.id)
    return out, {"Location": f"/jobs/{out.id}"}


def enqueue(job_id: int) -> None:
    """Send the job's message after its commit.

    A broker that does not take it (down, unreachable, its folder gone) does not
    fail the job: the job is committed and stays queued, marked as never sent
    (``enqueued_at`` empty), and the reconciler of every worker sends such a job at
    its next sweep (``BACKPROP_RECONCILE_SECONDS``) once the broker answers again.
    The client still gets its 202: the job is accepted, only later to start.
    """
    try:
        state().broker.enqueue(job_id)
    except Exception as exc:
        log.warning("job %s not sent (%s); the reconciler will send it", job_id, type(exc).__name__)
        try:
            with Session.begin() as session:
                q.mark_not_sent(session, [job_id])
        except Exception:
            # The database went too: the reconciler still sends the job, once it has
            # waited BACKPROP_REQUEUE_SECONDS since its commit.
            log.warning("job %s could not be marked as not sent", job_id)


# The compare view's jobs, with room to spare; more would be a page of the listing.
MAX_IDS = 50


def parse_ids(text: str) -> list[int]:
    """``"3,1,2"`` -> ``[3, 1, 2]``: 1 to ``MAX_IDS`` distinct ids; a 422 naming ``ids``
    otherwise."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and part.isascii() for part in parts):
        raise invalid("ids", "expected job ids separated by commas, e.g. ids=1,2,3")
    ids = [int(part) for part in parts]
    if len(ids) > MAX_IDS:
        raise invalid("ids", f"at most {MAX_IDS} ids, got {len(ids)}")
    if any(not 1 <= ident <= MAX_ID for ident in ids):
        raise invalid("ids", f"an id is a whole number from 1 to {MAX_ID}")
    if len(set(ids)) != len(ids):
        raise invalid("ids", "an id is given twice")
    return ids


@bp.get("")
@query(JobListQuery)
@responds(200, JobList, errors=(404,))
def list_jobs(params: JobListQuery) -> JobList:
    """Jobs, newest first, optionally of one status; `next_after` is the next page's cursor.

    With ``ids=3,1,2``: exactly those jobs, in that order, each with its completed
    ``network`` and ``training`` (for comparing runs; their loss curves are
    ``GET /jobs/<id>/epochs``), and no cursor. Ids that are not the caller's jobs
    are a 404 naming them.
    """
    if params.ids is not None:
        return jobs_by_ids(params)
    with Session.begin() as session:
        rows = q.list_jobs(
            session, owner=owner(), status=params.status, after=params.after, limit=params.limit + 1
        )
        page, next_after = one_page(rows, params.limit, lambda job: job_out(session, job))
    return JobList(jobs=page, next_after=next_after)


def jobs_by_ids(params: JobListQuery) -> JobList:
    if params.status is not None or params.after is not None:
        raise invalid("ids", "ids is not combined with status or after")
    assert params.ids is not None
    ids = parse_ids(params.ids)
    with Session.begin() as session:
        found = q.jobs_by_ids(session, ids, owner=owner())
        missing = [ident for ident in ids if ident not in found]
        if missing:
            named = ", ".join(str(ident) for ident in missing)
            raise ApiError(404, "not_found", f"no job with id {named}", "ids")
        jobs = [
            job_out(session, found[ident]).model_copy(
                update={"network": found[ident].network, "training": found[ident].training}
            )
            for ident in ids
        ]
    return JobList(jobs=jobs, next_after=None)


@bp.get("/<id:job_id>")
@responds(200, JobOut, errors=(404,))
def get_job(job_id: int) -> JobOut:
    """A job's status and progress."""
    with Session.begin() as session:
        return job_out(session, mine(session, "job", job_id, q.get_job, kind=JobKind.TRAINING))


@bp.get("/<id:job_id>/spec")
@responds(200, JobSpec, errors=(404,))
def get_spec(job_id: int) -> JobSpec:
    """The network spec and training config the job trains with: as submitted, with
    `input_dim` (the encoded width), the output layer the task needs and its loss
    filled in where the submission left them out."""
    with Session.begin() as session:
        job = mine(session, "job", job_id, q.get_job, kind=JobKind.TRAINING)
        return JobSpec(network=job.network, training=job.training)


@bp.get("/<id:job_id>/epochs")
@query(EpochQuery)
@responds(200, EpochList, errors=(404,))
def list_epochs(job_id: int, params: EpochQuery) -> EpochList:
    """The job's epochs in order, after epoch `after`."""
    with Session.begin() as session:
        mine(session, "job", job_id, q.get_job, kind=JobKind.TRAINING)
        rows = q.list_epochs(session, job_id, after=params.after, limit=params.limit + 1)
        page, next_after = one_page(rows, params.limit, epoch_out, "epoch")
    return EpochList(epochs=page, next_after=next_after)


@bp.post("/<id:job_id>/cancel")
@responds(202, JobOut, errors=(404, 409))
def cancel_job(job_id: int) -> JobOut:
    """Cancel a job: a queued one at once, a running one at its next epoch boundary."""
    with Session.begin() as session:
        job = mine(session, "job", job_id, q.get_job, for_update=True, kind=JobKind.TRAINING)
        if job.status.finished:
            raise conflict(f"job {job_id} has already finished ({job.status.value})")
        q.request_cancel(session, job, stop_reason=StopReason.CANCELLED)
        out = job_out(session, job)
    if out.status.finished:  # a queued job may hold the checkpoint of a given-back attempt
        storage().discard(q.checkpoint_prefix(job_id))
    return out


@bp.delete("/<id:job_id>")
@responds(204, errors=(404, 409))
def delete_job(job_id: int) -> None:
    """Delete a finished job with its epochs, checkpoint and model (409 while it is
    queued or running: cancel it first; 409 when its model cannot go: a version of a
    registered model points at it, or a queued or running job uses it)."""
    try:
        with Session.begin() as session:
            job = mine(session, "job", job_id, q.get_job, for_update=True, kind=JobKind.TRAINING)
            model_id = q.model_id_for_job(session, job_id)
            try:
                keys = q.delete_training_job(session, job)
            except q.InUse as exc:
                raise conflict(str(exc)) from None
    except IntegrityError:
        # its model was registered by a request that committed meanwhile
        raise conflict(f"job {job_id}'s model is registered; delete its versions first") from None
    if model_id is not None:
        state().models.forget(model_id, owner())
    storage().discard(*keys)
