"""Sending work to the workers: ids only, JSON, after the commit."""

from __future__ import annotations

from celery import Celery

from .app import TRAIN_TASK, celery_app


def enqueue_training(job_id: int, app: Celery | None = None) -> None:
    """Queue a committed job; call only after the transaction that created it commits.

    ``app`` is the Celery app to send through, by default the one configured from
    the environment when this module was imported.
    """
    (app or celery_app).send_task(TRAIN_TASK, args=[job_id])
