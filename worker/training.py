"""Running one training job: read it, train it, record its epochs, store its model.

Kept apart from Celery so the same function runs under any task runner.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from core import EpochStats, SpecError, Trainer
from core.train import STOP_REQUESTED
from store import JobStatus, Session
from store import queries as q

log = logging.getLogger(__name__)


class EpochRecorder:
    """Buffers epoch rows and writes them every ``flush_seconds``.

    Each write also reads the job's cancel flag, which the trainer polls
    between epochs through :meth:`should_stop`.
    """

    def __init__(self, job_id: int, flush_seconds: float) -> None:
        self.job_id = job_id
        self.flush_seconds = flush_seconds
        self.pending: list[q.EpochRow] = []
        self.last_flush = time.monotonic()
        self.cancel = False

    def add(self, stats: EpochStats) -> None:
        self.pending.append(
            q.EpochRow(
                stats.epoch,
                stats.loss,
                stats.val_loss,
                stats.val_accuracy,
                stats.learning_rate,
                stats.grad_norm,
                stats.seconds,
            )
        )
        if time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        with Session.begin() as session:
            q.record_epochs(session, self.job_id, self.pending)
            self.cancel = q.cancel_requested(session, self.job_id)
        self.pending = []
        self.last_flush = time.monotonic()

    def should_stop(self) -> bool:
        return self.cancel


def run_job(job_id: int, flush_seconds: float) -> None:
    """Train job ``job_id`` if it is still queued; a no-op otherwise (idempotent)."""
    with Session.begin() as session:
        job = q.start_job(session, job_id)
        if job is None:
            log.info("job %s is not queued; nothing to do", job_id)
            return
        dataset = (
            None
            if job.dataset_id is None
            else q.get_dataset(session, job.dataset_id, with_data=True)
        )
        if dataset is None:
            q.finish_job(session, job, JobStatus.FAILED, error="the job's dataset was deleted")
            return
        network, training = job.network, job.training
        inputs, targets = q.unpack_arrays(dataset.data)
        classes, dataset_id = dataset.classes, dataset.id

    recorder = EpochRecorder(job_id, flush_seconds)
    try:
        trainer = Trainer(network, training, inputs, targets, classes=classes)
        result = trainer.run(on_epoch=recorder.add, should_stop=recorder.should_stop)
    except SpecError as exc:
        _fail(job_id, f"invalid job: {exc}", "invalid")
        return
    except Exception as exc:  # the job must end with a reason whatever went wrong
        log.exception("job %s crashed", job_id)
        _fail(job_id, f"training crashed: {type(exc).__name__}: {exc}", "error")
        return
    recorder.flush()

    with Session.begin() as session:
        job = q.get_job(session, job_id)
        assert job is not None
        if result.stop_reason == STOP_REQUESTED:
            q.finish_job(session, job, JobStatus.CANCELLED, stop_reason="cancelled")
        elif result.model is None:
            q.finish_job(
                session, job, JobStatus.FAILED, stop_reason=result.stop_reason, error=result.message
            )
        else:
            dataset = q.get_dataset(session, dataset_id)
            if dataset is None:
                q.finish_job(session, job, JobStatus.FAILED, error="the job's dataset was deleted")
                return
            summary: dict[str, Any] = {
                "stop_reason": result.stop_reason,
                "message": result.message,
                "epochs_completed": result.epochs_completed,
                "loss": result.last.loss if result.last else None,
                "val_loss": result.last.val_loss if result.last else None,
                "val_accuracy": result.last.val_accuracy if result.last else None,
            }
            q.add_model(
                session, job, dataset, result.model.describe(), summary, result.model.to_bytes()
            )
            q.finish_job(session, job, JobStatus.SUCCEEDED, stop_reason=result.stop_reason)


def _fail(job_id: int, message: str, reason: str) -> None:
    with Session.begin() as session:
        job = q.get_job(session, job_id)
        if job is not None:
            q.finish_job(session, job, JobStatus.FAILED, stop_reason=reason, error=message)
