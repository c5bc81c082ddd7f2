"""The worker's entry module: ``celery -A worker.make_celery worker``.

The only module that builds anything when imported: the settings from the
environment and the Celery app made from them. Import it nowhere else.
"""

from __future__ import annotations

from typing import Any

from celery.signals import setup_logging

from store.logs import configure_logging
from store.settings import load_settings

from .app import make_celery

settings = load_settings()
celery_app = make_celery(settings)


@setup_logging.connect
def _service_logging(**_: Any) -> None:
    # Connected, this replaces Celery's own logging set-up with the service's format.
    configure_logging(settings.log_format)
