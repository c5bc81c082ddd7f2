"""The Celery app, configured from the same settings as the API.

``celery -A worker.app worker`` starts a worker; the API only sends messages
through :func:`worker.queue.enqueue_training` and never imports the tasks.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from store.settings import Settings, load_settings

TRAIN_TASK = "backprop.train"


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
    app = Celery("backprop", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=settings.queue,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_options(settings),
        worker_hijack_root_logger=False,
    )
    return app


settings = load_settings()
celery_app = make_celery(settings)
# Import the tasks when a worker loads this module (`celery -A worker.app`).
celery_app.conf.imports = ("worker.tasks",)
