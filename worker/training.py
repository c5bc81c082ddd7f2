"""Running one attempt at a job: training here, batch prediction in
:mod:`worker.predicting`, the lease and writes in :mod:`worker.attempt`.

An attempt at a training job resumes from the job's checkpoint if an earlier
attempt left one. Kept apart from Celery so the same function runs under any
task runner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from core import Model, SpecError, StopReason
from core.tabular import design
from store import Dataset, Job, JobKind, JobStatus, Session, storage
from store import queries as q
from store.settings import Settings

from .attempt import Attempt, worker_name
from .evaluation import evaluate
from .frames import dataset_frame, uploaded_frame
from .predicting import run_prediction
from .sweeps import judge_for
from .transient import Unavailable, describe, is_transient, retrying

log = logging.getLogger(__name__)


def within_limit(training: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The job's training config with its time limit capped by the service's."""
    asked = training.get("time_limit")
    if (
        isinstance(asked, int | float)
        and not isinstance(asked, bool)
        and asked <= settings.max_job_seconds
    ):
        return training
    return {**training, "time_limit": settings.max_job_seconds}


def _crashed(run: Attempt, what: str, exc: Exception) -> bool:
    """End the job as failed with the error that crashed it, told in one short line;
    an outage of the database or storage is not the job's: the job is handed back
    (counting as an attempt unless it was retried for a lease period already: an
    error that comes back every time ends the job once it is out of attempts).
    Returns whether the caller must send the job's message again."""
    outage = isinstance(exc, Unavailable)
    if is_transient(exc) and (outage or not run.last_chance):
        log.warning(
            "job %s: %s stopped by an outage: %s",
            run.job_id,
            what,
            describe(exc),
            extra={"job_id": run.job_id},
        )
        # No checkpoint of a trainer stopped by an exception: the next attempt resumes
        # from the last one stored.
        run.trainer = None
        return run.hand_back(counted=not outage)
    log.exception("job %s: %s crashed", run.job_id, what, extra={"job_id": run.job_id})
    return run.conclude(
        JobStatus.FAILED, stop_reason=StopReason.ERROR, error=f"{what} crashed: {describe(exc)}"
    )


def run_job(
    job_id: int, settings: Settings, should_give_back: Callable[[], bool] = lambda: False
) -> bool:
    """Run (or resume) job ``job_id`` if it is ours to run; a no-op otherwise.

    ``should_give_back`` is polled between epochs; once it returns True the job
    is checkpointed and queued again. Returns True when the job was given back
    (also after an outage of the database, see :meth:`Attempt.hand_back`): the
    caller must then send its message again (the queue state is committed).
    Raises :class:`worker.transient.Unavailable` when the database stayed away for
    a lease period before the job could be leased: send the message again too.
    """

    def lease() -> tuple[int, Job, Dataset | None, str | None, list[str]] | None:
        model_key: str | None = None
        target_names: list[str] = []
        with Session.begin() as session:
            attempt = q.take_lease(
                session,
                job_id,
                worker_name(),
                lease_seconds=settings.lease_seconds,
                max_attempts=settings.max_attempts,
            )
            if attempt is None:
                return None
            job = q.get_job(session, job_id)
            assert job is not None
            dataset = None if job.dataset_id is None else q.get_dataset(session, job.dataset_id)
            if job.kind == JobKind.PREDICTION:
                model_row = None if job.model_id is None else q.get_model(session, job.model_id)
                model_key = None if model_row is None else model_row.weights_key
                target_names = [] if model_row is None else model_row.spec.get("target_names") or []
                if dataset is not None and not target_names:
                    target_names = list(dataset.target_names or ())
        return attempt, job, dataset, model_key, target_names

    leased = retrying(
        lease, patience=settings.lease_seconds, what=f"job {job_id}: taking its lease", log=log
    )
    if leased is None:
        log.info(
            "job %s is not ours to run (finished, cancelled or leased)",
            job_id,
            extra={"job_id": job_id},
        )
        return False
    attempt, job, dataset, model_key, target_names = leased
    run = Attempt(job_id, attempt, settings, should_give_back)
    run.last_chance = job.counted_attempts >= settings.max_attempts
    if job.kind == JobKind.PREDICTION:
        if (dataset is None and job.input_key is None) or model_key is None:
            gone = "model" if model_key is None else "dataset"
            return run.conclude(JobStatus.FAILED, error=f"the job's {gone} was deleted")
        try:
            if dataset is not None:
                rows = dataset_frame(dataset)
            else:
                assert job.input_key is not None
                rows = uploaded_frame(job.input_key)
            return run_prediction(run, storage().read(model_key), rows, target_names, job.input_key)
        except Exception as exc:  # the job must end with a reason whatever went wrong
            return _crashed(run, "prediction", exc)

    def stored_keys() -> tuple[str | None, str | None]:
        """The keys of the job's checkpoint and of the model it starts from."""
        with Session.begin() as session:
            checkpoint = q.get_checkpoint(session, job_id)
            start_key: str | None = None
            if job.init_model_id is not None:
                start_row = q.get_model(session, job.init_model_id)
                start_key = None if start_row is None else start_row.weights_key
        return None if checkpoint is None else checkpoint.data_key, start_key

    try:
        saved_key, start_key = retrying(
            stored_keys, patience=settings.lease_seconds, what=f"job {job_id}: reading", log=log
        )
    except Unavailable as exc:
        return _crashed(run, "reading the job", exc)
    network, training = job.network, job.training
    run.judge = judge_for(job, settings.database_url)
    if dataset is None:
        return run.conclude(JobStatus.FAILED, error="the job's dataset was deleted")
    target_names, feature_names, task = (
        list(dataset.target_names or ()),
        dataset.feature_names,
        dataset.task or "regression",
    )
    profile_columns = (dataset.profile or {}).get("columns", [])
    ignored = [c["name"] for c in profile_columns if c.get("type") == "ignored"]
    if job.init_model_id is not None and start_key is None:
        return run.conclude(JobStatus.FAILED, error="the model the job starts from was deleted")
    try:
        saved = None if saved_key is None else storage().read(saved_key)
        start = None if start_key is None else storage().read(start_key)
        frame = dataset_frame(dataset)
        features = [name for name in frame.names if name not in target_names]
        plan = design(
            frame,
            features,
            target_names,
            task,
            network,
            within_limit(training, settings),
            start=None if start is None else Model.from_bytes(start),
        )
        if saved is not None:
            log.info(
                "job %s: attempt %s resumes from its checkpoint",
                job_id,
                attempt,
                extra={"job_id": job_id},
            )
            trainer = plan.resume(saved, frame)
        else:
            trainer = plan.trainer(frame)
        # The trainer holds its rows encoded; the mapped table leaves this process's
        # memory for the epochs, and is mapped again only if held-out rows need it.
        del frame
        result = run.train(trainer)
    except SpecError as exc:
        return run.conclude(
            JobStatus.FAILED, stop_reason=StopReason.INVALID, error=f"invalid job: {exc}"
        )
    except Exception as exc:  # the job must end with a reason whatever went wrong
        return _crashed(run, "training", exc)

    if run.given_back:
        return True
    if run.lost:
        return False
    if run.unreachable:
        return run.hand_back()
    # A trial its sweep's pruner stopped keeps its epochs and its model, as any run
    # that stopped by one of its rules does; a cancel that came meanwhile wins.
    pruned = result.stop_reason == StopReason.STOP_REQUESTED and run.pruned and not run.cancel
    stop_reason = StopReason.PRUNED if pruned else result.stop_reason
    if result.stop_reason == StopReason.STOP_REQUESTED and not pruned:
        return run.conclude(JobStatus.CANCELLED, stop_reason=StopReason.CANCELLED)
    elif result.model is None:
        return run.conclude(JobStatus.FAILED, stop_reason=result.stop_reason, error=result.message)
    else:
        # The model's own epoch: under early stopping the best one, not the last.
        kept = result.kept
        summary = {
            "stop_reason": stop_reason,
            "message": (
                f"pruned by its sweep's pruner after epoch {result.epochs_completed}"
                if pruned
                else result.message
            ),
            "epochs_completed": result.epochs_completed,
            "epoch": kept.epoch if kept else None,
            "loss": kept.loss if kept else None,
            "val_loss": kept.val_loss if kept else None,
            "val_accuracy": kept.val_accuracy if kept else None,
        }
        trained = plan.model(result.model)
        # Unnamed columns (a JSON dataset of bare arrays) stay unnamed for clients.
        trained.feature_names = feature_names
        metrics = None
        if len(plan.test_rows):
            try:
                held_out = dataset_frame(dataset).take(plan.test_rows)
                metrics = evaluate(trained, held_out, target_names, split="test")
            except Exception as exc:  # the job ends with its reason, once, not a lost worker
                if is_transient(exc):  # the dataset's storage is away: not the job's fault
                    return _crashed(run, "scoring the held-out rows", exc)
                log.exception("job %s: scoring the held-out rows failed", job_id)
                return run.conclude(
                    JobStatus.FAILED,
                    stop_reason=StopReason.ERROR,
                    error=f"scoring the held-out rows failed: {describe(exc)}",
                )
        # The model keeps its dataset's target columns, which predict ignores in a CSV of
        # the training data, so that they outlive the dataset.
        # ... and the columns its upload ignored (ids, names, a saved row index), which a
        # slice of the training file still holds.
        spec = {**trained.describe(), "target_names": target_names, "ignored_columns": ignored}
        model = (spec, summary, trained.to_bytes(), metrics)
        return run.conclude(JobStatus.SUCCEEDED, stop_reason=stop_reason, model=model)
