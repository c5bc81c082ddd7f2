"""Request ids, request logs and Prometheus metrics for the API.

``GET /metrics`` (public, like the health checks; see ``routes/metrics.py``)
reports this process's request counts and latencies and predicted rows. Under
gunicorn, ``backprop api`` sets ``PROMETHEUS_MULTIPROC_DIR``: each worker
process writes its counters there and a scrape, whichever worker answers it,
reports their sum.

Counts of jobs are not public: they tell anyone how busy every owner is. A scrape
that sends an API key also gets :class:`OwnerGauges`, read from the database at
scrape time and counted over that key's owner's jobs alone (what ``GET /jobs``
already shows them).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from store import Epoch, Job, JobStatus, Session

log = logging.getLogger("api.requests")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class OwnerGauges:
    """One owner's jobs by status and epochs recorded, read from the database on scrape."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "backprop_jobs", "The key owner's jobs by status", labels=["status"]
        )
        epochs = GaugeMetricFamily(
            "backprop_epochs_recorded", "Epoch rows of the key owner's jobs in the database"
        )
        with Session.begin() as session:
            counts = dict(
                session.execute(
                    select(Job.status, func.count())
                    .where(Job.owner == self.owner)
                    .group_by(Job.status)
                ).all()
            )
            recorded = session.scalar(
                select(func.count())
                .select_from(Epoch)
                .join(Job, Job.id == Epoch.job_id)
                .where(Job.owner == self.owner)
            )
        for status in JobStatus:
            jobs.add_metric([status.value], float(counts.get(status, 0)))
        epochs.add_metric([], float(recorded or 0))
        yield jobs
        yield epochs


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "backprop_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "backprop_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )
        self.predict_rows = Counter(
            "backprop_predict_rows", "Rows answered by predict", registry=self.registry
        )


def _route() -> str:
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def install(app: Flask, metrics: Metrics) -> None:
    """Request ids and timing before each request; log line and metrics after it."""

    @app.before_request
    def start() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        route = _route()
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        metrics.latency.labels(request.method, route).observe(seconds)
        request_id = g.get("request_id") or uuid.uuid4().hex
        response.headers["X-Request-ID"] = request_id
        extra: dict[str, Any] = {
            "request_id": request_id,
            "method": request.method,
            "route": route,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 2),
        }
        log.info("%s %s %s", request.method, route, response.status_code, extra=extra)
        return response
