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
from store import JobKind, JobStatus, Session, storage
from store import queries as q
from store.settings import Settings

from .attempt import Attempt, worker_name
from .evaluation import evaluate
from .frames import dataset_frame, uploaded_frame
from .predicting import run_prediction

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
    """End the job as failed with the error that crashed it; False (not given back)."""
    log.exception("job %s: %s crashed", run.job_id, what, extra={"job_id": run.job_id})
    run.finish(
        JobStatus.FAILED,
        stop_reason=StopReason.ERROR,
        error=f"{what} crashed: {type(exc).__name__}: {exc}",
    )
    return False


def run_job(
    job_id: int, settings: Settings, should_give_back: Callable[[], bool] = lambda: False
) -> bool:
    """Run (or resume) job ``job_id`` if it is ours to run; a no-op otherwise.

    ``should_give_back`` is polled between epochs; once it returns True the job
    is checkpointed and queued again. Returns True when the job was given back:
    the caller must then send its message again (the queue state is committed).
    """
    with Session.begin() as session:
        attempt = q.take_lease(
            session,
            job_id,
            worker_name(),
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
        )
        if attempt is None:
            log.info(
                "job %s is not ours to run (finished, cancelled or leased)",
                job_id,
                extra={"job_id": job_id},
            )
            return False
        job = q.get_job(session, job_id)
        assert job is not None
        dataset = None if job.dataset_id is None else q.get_dataset(session, job.dataset_id)
        if job.kind == JobKind.PREDICTION:
            model_row = None if job.model_id is None else q.get_model(session, job.model_id)
            model_key = None if model_row is None else model_row.weights_key
            target_names = [] if model_row is None else model_row.spec.get("target_names") or []
            if dataset is not None and not target_names:
                target_names = list(dataset.target_names or ())
    run = Attempt(job_id, attempt, settings, should_give_back)
    if job.kind == JobKind.PREDICTION:
        if (dataset is None and job.input_key is None) or model_key is None:
            gone = "model" if model_key is None else "dataset"
            run.finish(JobStatus.FAILED, error=f"the job's {gone} was deleted")
            return False
        try:
            if dataset is not None:
                rows = dataset_frame(dataset)
            else:
                assert job.input_key is not None
                rows = uploaded_frame(job.input_key)
            return run_prediction(run, storage().read(model_key), rows, target_names, job.input_key)
        except Exception as exc:  # the job must end with a reason whatever went wrong
            return _crashed(run, "prediction", exc)
    with Session.begin() as session:
        checkpoint = q.get_checkpoint(session, job_id)
        saved_key = None if checkpoint is None else checkpoint.data_key
        network, training = job.network, job.training
        start_key: str | None = None
        if job.init_model_id is not None:
            start_row = q.get_model(session, job.init_model_id)
            start_key = None if start_row is None else start_row.weights_key
        if dataset is not None:
            target_names, feature_names, task = (
                list(dataset.target_names or ()),
                dataset.feature_names,
                dataset.task or "regression",
            )
            profile_columns = (dataset.profile or {}).get("columns", [])
            ignored = [c["name"] for c in profile_columns if c.get("type") == "ignored"]

    if dataset is None:
        run.finish(JobStatus.FAILED, error="the job's dataset was deleted")
        return False
    if job.init_model_id is not None and start_key is None:
        run.finish(JobStatus.FAILED, error="the model the job starts from was deleted")
        return False
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
        run.finish(JobStatus.FAILED, stop_reason=StopReason.INVALID, error=f"invalid job: {exc}")
        return False
    except Exception as exc:  # the job must end with a reason whatever went wrong
        return _crashed(run, "training", exc)

    if run.given_back:
        return True
    if run.lost:
        return False
    if result.stop_reason == StopReason.STOP_REQUESTED:
        run.finish(JobStatus.CANCELLED, stop_reason=StopReason.CANCELLED)
    elif result.model is None:
        run.finish(JobStatus.FAILED, stop_reason=result.stop_reason, error=result.message)
    else:
        # The model's own epoch: under early stopping the best one, not the last.
        kept = result.kept
        summary = {
            "stop_reason": result.stop_reason,
            "message": result.message,
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
                log.exception("job %s: scoring the held-out rows failed", job_id)
                run.finish(
                    JobStatus.FAILED,
                    stop_reason=StopReason.ERROR,
                    error=f"scoring the held-out rows failed: {type(exc).__name__}: {exc}",
                )
                return False
        # The model keeps its dataset's target columns, which predict ignores in a CSV of
        # the training data, so that they outlive the dataset.
        # ... and the columns its upload ignored (ids, names, a saved row index), which a
        # slice of the training file still holds.
        spec = {**trained.describe(), "target_names": target_names, "ignored_columns": ignored}
        model = (spec, summary, trained.to_bytes(), metrics)
        run.finish(JobStatus.SUCCEEDED, stop_reason=result.stop_reason, model=model)
    return False
