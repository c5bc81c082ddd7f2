"""``GET /metrics``: Prometheus text for scrapers (public, like the health checks).

Without a key: request counts and latencies and predicted rows, which name no
owner. With a key (``Authorization: Bearer <key>``, Prometheus' ``authorization``
scrape setting), also that key's owner's jobs by status and epochs recorded.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ..auth import key_owner
from ..decorators import responds
from ..metrics import OwnerGauges
from ..services import state

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@responds(200, media=CONTENT_TYPE_LATEST.split(";")[0], errors=(401,))
def metrics_text() -> Response:
    """Prometheus metrics of the API's requests; with an API key, also the key's
    owner's jobs by status and epochs recorded (a wrong key is a 401)."""
    metrics = state().metrics
    registry = metrics.registry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # every gunicorn worker's counters, summed
    text = generate_latest(registry)
    if request.headers.get("Authorization"):
        owned = CollectorRegistry()
        owned.register(OwnerGauges(key_owner(state().keys)))
        text += generate_latest(owned)
    return Response(text, mimetype=CONTENT_TYPE_LATEST)
