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

from .queue import enqueue_training, messages_held
from .sweeps import advance_all, sender
from .transient import describe, is_transient

log = logging.getLogger(__name__)


def reconcile_once(settings: Settings, app: Celery, missing: set[int] | None = None) -> list[int]:
    """One sweep, sending through ``app``; returns the ids sent again.

    A queued job is sent again only when its message is gone from the broker, read
    before the jobs are (a job sent after that reading is younger than the requeue
    period), and, given the set ``missing`` kept from sweep to sweep, was gone at
    the previous sweep too (see ``store.queries.jobs_to_requeue``).
    """
    failed: list[int] = []
    held = messages_held(settings, delivered_within=settings.requeue_seconds)
    with Session.begin() as session:
        ids = q.jobs_to_requeue(
            session,
            lease_seconds=settings.lease_seconds,
            requeue_seconds=settings.requeue_seconds,
            max_attempts=settings.max_attempts,
            lost_reason=StopReason.WORKER_LOST,
            failed=failed,
            held=held,
            missing=missing,
        )
    storage().discard(*(q.checkpoint_prefix(job_id) for job_id in failed))
    unsent: list[int] = []
    for job_id in ids:  # after the commit, as with every message
        try:
            enqueue_training(job_id, app)
        except Exception as exc:
            if not is_transient(exc):
                raise
            unsent.append(job_id)
    if unsent:
        # Not a requeue period's wait for messages the broker never took.
        log.warning("reconciler could not send jobs %s: broker unavailable", unsent)
        with Session.begin() as session:
            q.mark_not_sent(session, unsent)
    sent = [job_id for job_id in ids if job_id not in unsent]
    if sent:
        log.info("reconciler sent jobs again: %s", sent)
    try:
        # Sweeps whose trial ended on a worker killed before it moved the sweep on.
        advance_all(settings.database_url, sender(app))
    except Exception as exc:  # the jobs above were sent: report them all the same
        if not is_transient(exc):
            raise
        log.warning("reconciler could not move sweeps on: %s; will try again", describe(exc))
    return sent


class Reconciler(threading.Thread):
    def __init__(self, settings: Settings, app: Celery) -> None:
        super().__init__(name="backprop-reconciler", daemon=True)
        self.settings = settings
        self.app = app
        self.stopped = threading.Event()
        # queued jobs whose message the last sweep did not find in the broker
        self.missing: set[int] = set()

    def run(self) -> None:
        while not self.stopped.wait(self.settings.reconcile_seconds):
            try:
                reconcile_once(self.settings, self.app, self.missing)
            except Exception as exc:  # a database or broker outage must not end the thread
                if is_transient(exc):
                    log.warning("reconciler sweep failed: %s; will try again", describe(exc))
                else:
                    log.exception("reconciler sweep failed; will try again")

    def stop(self) -> None:
        self.stopped.set()
