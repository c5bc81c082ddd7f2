"""Sending work to the workers: ids only, JSON, after the commit."""

from __future__ import annotations

from celery import Celery

# The name the training task is registered and sent under.
TRAIN_TASK = "backprop.train"


def enqueue_training(job_id: int, app: Celery) -> None:
    """Queue a committed job through ``app``; call only after the transaction commits.

    ``app`` comes from :func:`worker.app.make_celery`, made from the caller's own
    settings, so a message goes where those settings say.
    """
    app.send_task(TRAIN_TASK, args=[job_id])
