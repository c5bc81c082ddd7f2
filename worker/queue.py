"""Sending work to the workers: ids only, JSON, after the commit."""

from __future__ import annotations

from .app import TRAIN_TASK, celery_app


def enqueue_training(job_id: int) -> None:
    """Queue a committed job; call only after the transaction that created it commits."""
    celery_app.send_task(TRAIN_TASK, args=[job_id])
