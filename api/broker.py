"""The API's side of the queue: sending job ids and checking the broker is there."""

from __future__ import annotations

from celery import Celery

from store.settings import Settings
from worker.app import make_celery
from worker.queue import enqueue_training


class Broker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Made from the app's settings rather than the environment of the first import.
        self.celery: Celery = make_celery(settings)

    def enqueue(self, job_id: int) -> None:
        enqueue_training(job_id, self.celery)

    def problem(self) -> str | None:
        """Why the broker cannot take messages now, or None when it can.

        The reason names the folder or the error, for the server's log only: it may
        hold paths, hosts and ports, which public answers must not show.
        """
        if self.settings.broker_is_filesystem:
            folder = self.settings.broker_folder
            return None if folder.is_dir() else f"broker folder {folder} does not exist"
        try:
            with self.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        except Exception as exc:  # any failure means not ready; the message says which
            return f"broker unreachable: {type(exc).__name__}: {exc}"
        return None
