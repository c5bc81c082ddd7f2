"""/sweeps: hyperparameter searches whose trials are training jobs (worker.sweeps)."""

from __future__ import annotations

import logging
import uuid
from contextlib import ExitStack
from typing import Any

from flask import Blueprint
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession

from core import StopReason
from store import JobStatus, Session, Sweep, storage
from store import queries as q
from worker import sweeps as sw
from worker.frames import dataset_frame

from .. import admission
from ..auth import owner
from ..decorators import body, query, responds
from ..errors import ApiError, conflict, invalid, not_found
from ..schemas import (
    JobCreate,
    SweepBest,
    SweepCreate,
    SweepList,
    SweepListQuery,
    SweepOut,
    SweepSummary,
    TrialOut,
)
from ..services import state
from .jobs import enqueue
from .rows import mine, one_page

log = logging.getLogger(__name__)

bp = Blueprint("sweeps", __name__, url_prefix="/sweeps")


def _get_sweep(session: OrmSession, sweep_id: int, *, owner: str) -> Sweep | None:
    statement = select(Sweep).where(Sweep.id == sweep_id, Sweep.owner == owner)
    return session.scalars(statement).one_or_none()


def _trials(session: OrmSession, sweep: Sweep) -> list[TrialOut]:
    jobs = sw.trial_jobs(session, sweep.id)
    models = sw.models_of(session, jobs)
    trials = []
    for job in jobs:
        result = sw.outcome(sweep, job, models.get(job.id))
        trials.append(
            TrialOut(
                number=job.trial_number or 0,
                job_id=job.id,
                status=job.status,
                state=result.state,  # type: ignore[arg-type]
                params=job.params or {},
                value=result.value,
                epochs_completed=job.epochs_completed,
                stop_reason=job.stop_reason,
            )
        )
    return trials


def _best(session: OrmSession, sweep: Sweep, trials: list[TrialOut]) -> SweepBest | None:
    """The trial the sweep marked once it ended; before, the best complete one so far
    (the first of equals, as the study's best_trial)."""
    if JobStatus(sweep.status).finished:
        chosen = [trial for trial in trials if trial.job_id == sweep.best_job_id]
    else:
        complete = [t for t in trials if t.state == "complete" and t.value is not None]
        sign = 1.0 if sweep.direction == "minimize" else -1.0
        chosen = sorted(complete, key=lambda t: (sign * (t.value or 0.0), t.number))[:1]
    if not chosen:
        return None
    trial = chosen[0]
    return SweepBest(
        job_id=trial.job_id,
        model_id=q.model_id_for_job(session, trial.job_id),
        trial_number=trial.number,
        value=trial.value,
        params=trial.params,
    )


def _status(sweep: Sweep, trials: list[TrialOut]) -> JobStatus:
    status = JobStatus(sweep.status)
    if status.finished:
        return status
    started = any(trial.status != JobStatus.QUEUED for trial in trials)
    return JobStatus.RUNNING if started else JobStatus.QUEUED


def _fields(sweep: Sweep) -> dict[str, Any]:
    return {
        "id": sweep.id,
        "dataset_id": sweep.dataset_id,
        "trials_total": sweep.trials,
        "parallel": sweep.parallel,
        "sampler": sweep.sampler,
        "pruner": sweep.pruner,
        "metric": sweep.metric,
        "direction": sweep.direction,
        "search_space": sweep.search_space,
        "created_at": sweep.created_at,
        "finished_at": sweep.finished_at,
        "error": sweep.error,
    }


def sweep_out(session: OrmSession, sweep: Sweep) -> SweepOut:
    trials = _trials(session, sweep)
    return SweepOut(
        **_fields(sweep),
        status=_status(sweep, trials),
        best=_best(session, sweep, trials),
        trials=trials,
    )


def _summary(session: OrmSession, sweep: Sweep) -> SweepSummary:
    out = sweep_out(session, sweep)
    return SweepSummary(**out.model_dump(exclude={"trials"}))


def _admit(session: OrmSession, payload: SweepCreate, staged: ExitStack) -> dict[str, Any]:
    """The sweep row's fields: the base spec admitted as a job's is (and completed),
    the search space checked against it, the sampler, pruner and metric parsed.
    ApiError 422 naming the field at fault."""
    settings = state().settings
    base = JobCreate(
        dataset_id=payload.dataset_id, network=payload.network, training=payload.training
    )
    admitted = admission.admit(session, base, settings, owner(), staged)
    network, training, dataset = admitted.network, admitted.training, admitted.dataset
    task = dataset.task or "regression"
    n_classes = len(dataset.classes or ()) if task == "classification" else None
    trials = payload.trials
    try:
        params = sw.parse_search_space(payload.search_space)
        sampler, sampler_options = sw.parse_sampler(payload.sampler)
        if sampler == "grid":
            if any(param.kind != "choice" for param in params):
                raise sw.SweepError(
                    "sampler", "grid searches choices only: give every path a choice"
                )
            trials = min(trials, sw.check_grid(params))
        epochs = sw.most_epochs(params, training)
        pruner, pruner_options = sw.parse_pruner(payload.pruner, epochs)
        direction = sw.check_metric(
            payload.metric, payload.direction, training, task, pruner, n_classes
        )
        frame = dataset_frame(dataset)
        targets = list(dataset.target_names or ())
        n_layers = len(network.get("layers") or ())
        sw.data_checks(params, n_layers)

        def check(trial_network: dict[str, Any], trial_training: dict[str, Any], path: str) -> None:
            # A trial is a job: what POST /jobs would refuse of it, and a metric its
            # spec could not measure (no validation or test rows), are refused now;
            # against the dataset only for a path that can change the answer there.
            sw.check_metric(
                payload.metric, payload.direction, trial_training, task, pruner, n_classes
            )
            try:
                if not sw.touches_data(path, n_layers):
                    admission.check_spec_alone(trial_network, trial_training, settings)
                    return
                completed = admission.check_spec(
                    frame, targets, task, trial_network, trial_training, settings
                )
            except ApiError as exc:
                raise sw.SweepError(exc.field or "spec", exc.message) from None
            # The base's output layer is the task's: a value that unmakes it would have
            # the trial's last layer taken for a hidden one and another appended.
            if len(completed.get("layers") or ()) != len(trial_network.get("layers") or ()):
                output = (network.get("layers") or [{}])[-1]
                raise sw.SweepError(
                    "network.layers",
                    f"the dataset needs an output layer like {output}; with this value the "
                    "trial's last layer would not be one",
                )

        sw.check_space(params, network, training, check)
    except sw.SweepError as exc:
        raise invalid(exc.field, exc.message) from None
    return {
        "owner": owner(),
        "dataset_id": admitted.dataset.id,
        "network": network,
        "training": training,
        "search_space": payload.search_space,
        "trials": trials,
        "parallel": payload.parallel,
        "sampler": sampler,
        "sampler_options": sampler_options,
        "pruner": pruner,
        "pruner_options": pruner_options,
        "metric": payload.metric,
        "direction": direction,
        "status": JobStatus.QUEUED.value,
        "cancel_requested": False,
    }


@bp.post("")
@body(SweepCreate)
@responds(202, SweepOut, errors=(503,), headers={"Location": "URL of the new sweep"})
def create_sweep(payload: SweepCreate) -> tuple[SweepOut, dict[str, str]]:
    """Start a hyperparameter sweep: its first `parallel` trials are queued as jobs
    (at most 8 within the request; the workers queue the rest within seconds).

    The base spec is admitted once, as `POST /jobs` admits a job (`input_dim`, the
    output layer and the loss completed); each trial is that spec with its
    parameters at their paths. Every choice and both bounds of each range are
    checked against it: a value that makes an invalid spec is a 422 naming
    `search_space["<path>"]`.
    """
    settings = state().settings
    with ExitStack() as staged, Session.begin() as session:
        fields = _admit(session, payload, staged)
        sweep = Sweep(**fields, study_name=f"backprop-sweep-{uuid.uuid4().hex}")
        session.add(sweep)
        session.flush()
        sweep_id = sweep.id
        # The study exists before any trial is drawn from it.
        sw.create_study(settings.database_url, sweep.study_name, sweep.direction)
    # A large `parallel` is filled by the reconciler and the trials' ends, not here.
    sw.advance(sweep_id, settings.database_url, enqueue, most=sw.DRAWS_IN_REQUEST)
    with Session.begin() as session:
        sweep_row = session.get(Sweep, sweep_id)
        assert sweep_row is not None
        out = sweep_out(session, sweep_row)
    return out, {"Location": f"/sweeps/{sweep_id}"}


@bp.get("")
@query(SweepListQuery)
@responds(200, SweepList)
def list_sweeps(params: SweepListQuery) -> SweepList:
    """The caller's sweeps, newest first, without their trials; `next_after` is the
    next page's cursor."""
    with Session.begin() as session:
        statement = (
            select(Sweep)
            .where(Sweep.owner == owner())
            .order_by(Sweep.id.desc())
            .limit(params.limit + 1)
        )
        if params.after is not None:
            statement = statement.where(Sweep.id < params.after)
        rows = list(session.scalars(statement))
        page, next_after = one_page(rows, params.limit, lambda row: _summary(session, row))
    return SweepList(sweeps=page, next_after=next_after)


@bp.get("/<id:sweep_id>")
@responds(200, SweepOut, errors=(404,))
def get_sweep(sweep_id: int) -> SweepOut:
    """A sweep's status, its trials (job, parameters, state, metric) and its best trial."""
    with Session.begin() as session:
        return sweep_out(session, mine(session, "sweep", sweep_id, _get_sweep))


@bp.post("/<id:sweep_id>/cancel")
@responds(202, SweepOut, errors=(404, 409))
def cancel_sweep(sweep_id: int) -> SweepOut:
    """Cancel a sweep: no trial starts after this, queued trials are cancelled at once
    and running ones at their next epoch boundary; the sweep ends `cancelled` once
    they have stopped."""
    settings = state().settings
    with Session.begin() as session:
        if not sw.lock_sweep(session, sweep_id, owner()):
            raise not_found("sweep", sweep_id)
        sweep = mine(session, "sweep", sweep_id, _get_sweep)
        if JobStatus(sweep.status).finished:
            raise conflict(f"sweep {sweep_id} has already finished ({sweep.status})")
        sweep.cancel_requested = True
        cancelled: list[int] = []
        for job in sw.trial_jobs(session, sweep_id):
            if not job.status.finished:
                q.request_cancel(session, job, stop_reason=StopReason.CANCELLED)
                if job.status.finished:
                    cancelled.append(job.id)
    if cancelled:  # a queued trial may hold the checkpoint of a given-back attempt
        storage().discard(*(q.checkpoint_prefix(job_id) for job_id in cancelled))
    try:
        # The cancel is committed: ending the sweep (once its trials have stopped)
        # is advance's, which the reconciler calls again if it fails here.
        sw.advance(sweep_id, settings.database_url, enqueue)
    except Exception:
        log.exception("sweep %s: cancelled; moving it on failed, the reconciler will", sweep_id)
    with Session.begin() as session:
        return sweep_out(session, mine(session, "sweep", sweep_id, _get_sweep))


@bp.delete("/<id:sweep_id>")
@responds(204, errors=(404, 409))
def delete_sweep(sweep_id: int) -> None:
    """Delete a finished sweep with its trial jobs, their epochs, checkpoints and
    models, and its study (409 while it is queued or running: cancel it first; 409
    when a trial's model is a version of a registered model: delete those first).
    A trial job cannot be deleted alone (`DELETE /jobs/<id>` is a 409 naming its
    sweep)."""
    settings = state().settings
    try:
        with Session.begin() as session:
            if not sw.lock_sweep(session, sweep_id, owner()):
                raise not_found("sweep", sweep_id)
            sweep = mine(session, "sweep", sweep_id, _get_sweep)
            study_name = sweep.study_name
            models = [
                model_id
                for job in sw.trial_jobs(session, sweep_id)
                if (model_id := q.model_id_for_job(session, job.id)) is not None
            ]
            try:
                keys = q.delete_sweep(session, sweep)
            except q.InUse as exc:
                raise conflict(str(exc)) from None
    except IntegrityError:
        # a trial's model was registered by a request that committed meanwhile
        raise conflict(
            f"a model of sweep {sweep_id} is registered; delete its versions first"
        ) from None
    for model_id in models:
        state().models.forget(model_id, owner())
    storage().discard(*keys)
    try:
        sw.delete_study(settings.database_url, study_name)
    except Exception:
        # The sweep is gone; a study left over holds nothing anyone can reach.
        log.exception("sweep %s deleted; its study %s was not", sweep_id, study_name)
