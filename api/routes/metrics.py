"""``GET /metrics``: Prometheus text for scrapers (public, like the health checks)."""

from __future__ import annotations

import os

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ..decorators import responds
from ..services import state

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@responds(200, media=CONTENT_TYPE_LATEST.split(";")[0])
def metrics_text() -> Response:
    """Prometheus metrics of this process and of the service's jobs and queue."""
    metrics = state().metrics
    registry = metrics.registry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # every gunicorn worker's counters, summed
        registry.register(metrics.gauges)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
