"""The Celery task. It takes a job id and re-reads everything from the database."""

from __future__ import annotations

from celery import Celery

from store.settings import Settings

from .lifecycle import Lifecycle
from .queue import TRAIN_TASK, enqueue_training
from .training import run_job


def register_tasks(app: Celery, settings: Settings, lifecycle: Lifecycle) -> None:
    """Register the training task on ``app``; it runs jobs under ``settings``."""

    @app.task(name=TRAIN_TASK)
    def train(job_id: int) -> None:
        if lifecycle.stopping.is_set():
            # Delivered while this worker stops: do not start it, leave it to the next.
            enqueue_training(job_id, app)
            return
        if run_job(job_id, settings, should_give_back=lifecycle.stopping.is_set):
            # Given back and committed: send it again so the next worker starts it at once.
            enqueue_training(job_id, app)
