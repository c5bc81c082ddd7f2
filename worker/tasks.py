"""The Celery task. It takes a job id and re-reads everything from the database."""

from __future__ import annotations

import logging

from celery import Celery

from store.settings import Settings

from .lifecycle import Lifecycle
from .queue import TRAIN_TASK, enqueue_training
from .sweeps import after_job, sender
from .training import run_job
from .transient import Unavailable, retrying

log = logging.getLogger(__name__)


def register_tasks(app: Celery, settings: Settings, lifecycle: Lifecycle) -> None:
    """Register the training task on ``app``; it runs jobs under ``settings``."""

    def send_again(job_id: int) -> None:
        try:
            retrying(
                lambda: enqueue_training(job_id, app),
                patience=settings.lease_seconds,
                what=f"job {job_id}: sending its message again",
                log=log,
            )
        except Unavailable as exc:
            # The reconciler sends it once it sees the message gone from the broker.
            log.error("job %s: its message could not be sent again: %s", job_id, exc)

    @app.task(name=TRAIN_TASK)
    def train(job_id: int) -> None:
        if lifecycle.stopping.is_set():
            # Delivered while this worker stops: do not start it, leave it to the next.
            send_again(job_id)
            return
        try:
            again = run_job(job_id, settings, should_give_back=lifecycle.stopping.is_set)
        except Unavailable as exc:
            # The database stayed away before the job could be leased: whichever worker
            # gets the message next tries again.
            log.warning("job %s: not started: %s; its message is sent again", job_id, exc)
            again = True
        if again:
            # Given back and committed, or handed back after an outage: send it again
            # so the next worker starts it at once.
            send_again(job_id)
            return
        try:
            # A trial that ended moves its sweep on: told to the study, the next trial
            # started. Failing here leaves it to the reconciler's next sweep.
            after_job(job_id, settings.database_url, sender(app))
        except Exception:
            log.exception("job %s: its sweep could not be moved on; the reconciler will", job_id)
