"""/metrics in Prometheus format, and JSON log lines with request ids and no secrets."""

from __future__ import annotations

import io
import json
import logging
import urllib.request
from pathlib import Path

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from store import Job, Session
from store.logs import JsonFormatter
from store.settings import Settings
from tests.service.http import call
from tests.service.processes import ApiProcess

from .api_helpers import XOR, client_for, leftover_jobs_cancelled, post_dataset


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    values = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def requests_of(values: dict, route: str, status: str) -> float:  # type: ignore[type-arg]
    key = (
        "backprop_http_requests_total",
        (("method", "GET"), ("route", route), ("status", status)),
    )
    return values.get(key, 0.0)


def test_metrics_count_requests_by_route(service_settings: Settings) -> None:
    client = client_for(service_settings)
    before = scrape(client)
    for _ in range(7):
        assert client.get("/datasets").status_code == 200
    for _ in range(3):
        assert client.get("/datasets/2147483647").status_code == 404
    after = scrape(client)
    assert requests_of(after, "/datasets", "200") - requests_of(before, "/datasets", "200") == 7
    missing = "/datasets/<id:dataset_id>"
    assert requests_of(after, missing, "404") - requests_of(before, missing, "404") == 3
    latency = ("backprop_http_request_seconds_count", (("method", "GET"), ("route", "/datasets")))
    assert after[latency] >= 7


def test_metrics_report_jobs_queue_and_predictions(service_settings: Settings) -> None:
    with leftover_jobs_cancelled(client_for(service_settings)) as client:
        dataset = post_dataset(client)
        network = {"input_dim": 2, "layers": [{"units": 2, "activation": "tanh"}, {"units": 1}]}
        client.post(
            "/jobs",
            json={"dataset_id": dataset["id"], "network": network, "training": {"epochs": 1}},
        )
        values = scrape(client)
        with Session.begin() as session:
            counts = dict(
                session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
            )
        for status in ("queued", "running", "succeeded", "failed", "cancelled"):
            assert values[("backprop_jobs", (("status", status),))] == counts.get(status, 0)
        assert ("backprop_queue_depth", ()) in values
        assert ("backprop_epochs_recorded", ()) in values


def test_predict_rows_are_counted(service_settings: Settings) -> None:
    from .api_helpers import post_job, train_in_process

    with leftover_jobs_cancelled(client_for(service_settings)) as client:
        dataset = post_dataset(client)
        network = {"input_dim": 2, "layers": [{"units": 2, "activation": "tanh"}, {"units": 1}]}
        job = post_job(client, dataset_id=dataset["id"], network=network, training={"epochs": 2})
        model_id = train_in_process(job["id"])
        before = scrape(client).get(("backprop_predict_rows_total", ()), 0.0)
        client.post(f"/models/{model_id}/predict", json={"inputs": XOR["inputs"]})
        after = scrape(client)[("backprop_predict_rows_total", ())]
        assert after - before == len(XOR["inputs"])


def test_log_lines_are_json_with_request_ids_and_no_keys(service_settings: Settings) -> None:
    client = client_for(service_settings)
    key = client.environ_base["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger()
    logger.addHandler(handler)
    try:
        given = client.get("/datasets", headers={"X-Request-ID": "trace-42"})
        made = client.get("/jobs/2147483647")
    finally:
        logger.removeHandler(handler)
    assert given.headers["X-Request-ID"] == "trace-42"
    generated = made.headers["X-Request-ID"]
    assert len(generated) == 32
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    requests = [line for line in lines if line["logger"] == "api.requests"]
    assert {line["request_id"] for line in requests} >= {"trace-42", generated}
    for line in requests:
        assert set(line) >= {"time", "level", "message", "method", "route", "status", "duration_ms"}
    assert key not in stream.getvalue()
    # An id that is not a short token is replaced, not echoed into logs and headers.
    odd = client.get("/datasets", headers={"X-Request-ID": "x" * 65})
    assert odd.headers["X-Request-ID"] != "x" * 65 and len(odd.headers["X-Request-ID"]) == 32


def test_gunicorn_workers_share_their_counts(service_env: dict[str, str], tmp_path: Path) -> None:
    api = ApiProcess(service_env, tmp_path)  # two gunicorn workers, as `backprop api` runs

    def healthz_count() -> float:
        text = urllib.request.urlopen(f"{api.base}/metrics").read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "backprop_http_requests_total" and sample.labels == {
                    "method": "GET",
                    "route": "/healthz",
                    "status": "200",
                }:
                    return sample.value
        return 0.0

    try:
        before = healthz_count()
        for _ in range(40):
            assert call(api.base, "GET", "/healthz")[0] == 200
        # Whichever worker answers a scrape, it reports both workers' requests.
        assert [healthz_count() - before for _ in range(6)] == [40.0] * 6
    finally:
        api.stop()
