"""Celery tasks. They take ids and re-read everything from the database."""

from __future__ import annotations

from typing import Any

from celery.signals import setup_logging, worker_process_init, worker_ready, worker_shutdown

from store import configure
from store.logs import configure_logging

from .app import TRAIN_TASK, celery_app, settings
from .reconciler import Reconciler
from .training import run_job

engine = configure(settings.database_url)
reconciler = Reconciler(settings)


@setup_logging.connect
def _logging(**_: Any) -> None:
    # Connected, this replaces Celery's own logging set-up with the service's format.
    configure_logging(settings.log_format)


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    # A forked child must not share the parent's pooled connections.
    engine.dispose(close=False)


@worker_ready.connect
def _start_reconciler(**_: Any) -> None:
    reconciler.start()


@worker_shutdown.connect
def _stop_reconciler(**_: Any) -> None:
    reconciler.stop()


@celery_app.task(name=TRAIN_TASK)
def train(job_id: int) -> None:
    run_job(job_id, settings)
