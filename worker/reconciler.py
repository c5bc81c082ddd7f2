"""Finds jobs whose message or worker was lost and sends them again.

Runs as a thread in every worker's main process (started by
:class:`worker.lifecycle.Lifecycle`), so a deployment needs no separate beat
process. Several workers reconciling at once is safe: rows are locked while
they are marked, and a duplicate message cannot start a second attempt.
"""

from __future__ import annotations

import logging
import threading

from celery import Celery

from core import StopReason
from store import Session, storage
from store import queries as q
from store.settings import Settings

from .queue import enqueue_training

log = logging.getLogger(__name__)


def reconcile_once(settings: Settings, app: Celery) -> list[int]:
    """One sweep, sending through ``app``; returns the ids sent again."""
    failed: list[int] = []
    with Session.begin() as session:
        ids = q.jobs_to_requeue(
            session,
            lease_seconds=settings.lease_seconds,
            requeue_seconds=settings.requeue_seconds,
            max_attempts=settings.max_attempts,
            lost_reason=StopReason.WORKER_LOST,
            failed=failed,
        )
    storage().discard(*(q.checkpoint_prefix(job_id) for job_id in failed))
    for job_id in ids:  # after the commit, as with every message
        enqueue_training(job_id, app)
    if ids:
        log.info("reconciler sent jobs again: %s", ids)
    return ids


class Reconciler(threading.Thread):
    def __init__(self, settings: Settings, app: Celery) -> None:
        super().__init__(name="backprop-reconciler", daemon=True)
        self.settings = settings
        self.app = app
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.settings.reconcile_seconds):
            try:
                reconcile_once(self.settings, self.app)
            except Exception:  # a database or broker outage must not end the thread
                log.exception("reconciler sweep failed; will try again")

    def stop(self) -> None:
        self.stopped.set()
