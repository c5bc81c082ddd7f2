"""Celery tasks. They take ids and re-read everything from the database."""

from __future__ import annotations

from celery.signals import worker_process_init

from store import configure

from .app import TRAIN_TASK, celery_app, settings
from .training import run_job

engine = configure(settings.database_url)


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    # A forked child must not share the parent's pooled connections.
    engine.dispose(close=False)


@celery_app.task(name=TRAIN_TASK)
def train(job_id: int) -> None:
    run_job(job_id, settings.epoch_flush_seconds)
