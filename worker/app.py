"""The Celery app factory, configured from the same settings as the API.

``make_celery(settings)`` builds an app with the training task and the worker's
lifecycle attached; nothing is built when this module is imported. Workers start
from the thin entry module: ``celery -A worker.make_celery worker``. The API
builds its own app from its settings and only sends messages through it.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from store.settings import Settings

from .lifecycle import Lifecycle
from .tasks import register_tasks


def broker_options(settings: Settings) -> dict[str, Any]:
    if settings.broker_is_filesystem:
        folder = settings.broker_folder
        folder.mkdir(parents=True, exist_ok=True)
        # One folder for both directions: producers and consumers share the queue.
        return {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            # kombu would otherwise create ./control in whatever directory it runs from
            "control_folder": str(folder / "control"),
            "polling_interval": 0.1,
        }
    if settings.broker_prefix:
        return {"global_keyprefix": settings.broker_prefix}
    return {}


def make_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings``: broker, queue, the training task and, when
    a worker runs it, the worker's lifecycle (see :mod:`worker.lifecycle`)."""
    app = Celery("backprop", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=settings.queue,
        worker_prefetch_multiplier=1,
        # Acknowledged when the task returns, so that a worker holds only the messages
        # of the jobs it runs and never reserves one more while it trains: every other
        # queued job's message stays in the broker, where the reconciler looks for it
        # before sending it again (worker/queue.py). A job's message delivered twice
        # (a worker lost mid-job) starts no second attempt: the lease is held.
        task_acks_late=True,
        # Tasks run in threads of the worker's main process, where Celery's stop
        # signal handler runs: a running job sees the stop at its next epoch and
        # gives itself back (a prefork child is never told; the warm shutdown
        # would wait for the whole job).
        worker_pool="threads",
        # The filesystem broker's worker waits for its timer thread when it stops;
        # the thread sleeps up to this long (default 1 s) between checks.
        worker_timer_precision=0.1,
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_options(settings),
        # kombu's filesystem transport, with a wait that ends when the worker stops.
        **(
            {"broker_transport": "worker.filesystem:Transport"}
            if settings.broker_is_filesystem
            else {}
        ),
        worker_hijack_root_logger=False,
    )
    lifecycle = Lifecycle(settings, app)
    app.steps["worker"].add(lifecycle.bootstep())
    register_tasks(app, settings, lifecycle)
    return app
