"""/metrics in Prometheus format, and JSON log lines with request ids and no secrets."""

from __future__ import annotations

import io
import json
import logging
import urllib.request
import uuid
from pathlib import Path

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from store import JobStatus
from store.logs import JsonFormatter
from store.settings import Settings
from tests.service.http import call
from tests.service.processes import ApiProcess

from .api_helpers import (
    SMALL_NET,
    XOR,
    client_for,
    leftover_jobs_cancelled,
    post_dataset,
    post_job,
    train_in_process,
)


def scrape(
    client: FlaskClient, keyed: bool = False
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The values of one scrape: public (no key), or with the client's key if ``keyed``."""
    response = client.get("/metrics", headers={} if keyed else {"Authorization": ""})
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


def test_public_metrics_count_no_jobs(service_settings: Settings) -> None:
    with leftover_jobs_cancelled(client_for(service_settings)) as client:
        dataset = post_dataset(client)
        network = {"input_dim": 2, "layers": [{"units": 2, "activation": "tanh"}, {"units": 1}]}
        job = client.post(
            "/jobs",
            json={"dataset_id": dataset["id"], "network": network, "training": {"epochs": 1}},
        )
        assert job.status_code == 202
        public = scrape(client)
        # Nothing about anyone's jobs, nor the queue shared by every owner's jobs.
        assert not {name for name, _ in public} & {
            "backprop_jobs",
            "backprop_epochs_recorded",
            "backprop_queue_depth",
        }
        assert ("backprop_predict_rows_total", ()) in public


def test_a_scrape_with_a_key_counts_that_owners_jobs_alone(service_settings: Settings) -> None:
    with leftover_jobs_cancelled(client_for(service_settings, owner="mallory")) as other:
        post_job(other, dataset=XOR, network=SMALL_NET, training={"epochs": 1})
        client = client_for(service_settings, owner=f"scraper-{uuid.uuid4().hex[:8]}")
        with leftover_jobs_cancelled(client):
            empty = scrape(client, keyed=True)
            assert all(
                empty[("backprop_jobs", (("status", status.value),))] == 0 for status in JobStatus
            )
            assert empty[("backprop_epochs_recorded", ())] == 0
            queued = post_job(client, dataset=XOR, network=SMALL_NET, training={"epochs": 1})
            done = post_job(client, dataset=XOR, network=SMALL_NET, training={"epochs": 2})
            train_in_process(done["id"])
            values = scrape(client, keyed=True)
            assert values[("backprop_jobs", (("status", "queued"),))] == 1, queued
            assert values[("backprop_jobs", (("status", "succeeded"),))] == 1
            assert values[("backprop_epochs_recorded", ())] == 2
            # Request metrics come as in a public scrape.
            assert ("backprop_predict_rows_total", ()) in values
    wrong = client.get("/metrics", headers={"Authorization": "Bearer bp_not-a-key"})
    assert wrong.status_code == 401


def test_predict_rows_are_counted(service_settings: Settings) -> None:
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
