"""/healthz, /readyz and /openapi.json."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from api import create_app
from store import connect
from store.settings import Settings

from .api_helpers import client_for


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> FlaskClient:
    return client_for(service_settings)


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_with_postgres_and_redis(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def assert_names_no_address(body: dict, *names: str) -> None:  # type: ignore[type-arg]
    """A public not-ready answer names the failing dependencies, and nothing else:
    no host, port, folder or exception text."""
    error = body["error"]
    assert error["code"] == "not_ready"
    assert error["message"] == f"not ready; not answering: {', '.join(names)}"


def test_readyz_without_a_broker(service_settings: Settings) -> None:
    # Port 1 on the loopback: nothing listens there, so the connection is refused at once.
    client = client_for(service_settings, broker_url="redis://127.0.0.1:1/0")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert_names_no_address(response.json, "broker")
    assert "127.0.0.1" not in response.get_data(as_text=True)
    assert client.get("/healthz").status_code == 200


def test_readyz_with_the_filesystem_broker(service_settings: Settings, tmp_path: Path) -> None:
    client = client_for(service_settings, broker_url="filesystem://", data_dir=tmp_path)
    assert client.get("/readyz").status_code == 200
    shutil.rmtree(tmp_path / "broker")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert_names_no_address(response.json, "broker")
    assert str(tmp_path) not in response.get_data(as_text=True)


def test_readyz_without_a_database_names_it_without_its_address(
    service_settings: Settings,
) -> None:
    # A database URL nothing answers on: the connection is refused at once.
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:1/nowhere"
    client = create_app(replace(service_settings, database_url=unreachable)).test_client()
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert_names_no_address(response.json, "database")
        text = response.get_data(as_text=True)
        assert "127.0.0.1" not in text and "nowhere" not in text and ":1" not in text
    finally:
        connect(service_settings)  # the app bound this process's store to its own URL


def test_openapi_is_valid_and_lists_every_route(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json
    validate(document)
    assert document["openapi"].startswith("3.1")

    app = client.application
    expected = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("ui."):
            continue  # the dashboard's pages are not API operations
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            expected.add((path, method.lower()))
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == expected
    assert {
        ("/datasets", "post"),
        ("/datasets", "get"),
        ("/datasets/{dataset_id}", "get"),
        ("/datasets/{dataset_id}", "delete"),
        ("/jobs", "post"),
        ("/jobs", "get"),
        ("/jobs/{job_id}", "get"),
        ("/jobs/{job_id}/epochs", "get"),
        ("/jobs/{job_id}/cancel", "post"),
        ("/models/{model_id}", "get"),
        ("/models/{model_id}/weights", "get"),
        ("/models/{model_id}/predict", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/openapi.json", "get"),
    } <= documented


def test_openapi_describes_bodies_responses_and_errors(client: FlaskClient) -> None:
    document = client.get("/openapi.json").json
    schemas = document["components"]["schemas"]
    create_job = document["paths"]["/jobs"]["post"]
    body = create_job["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    job_create = schemas[body.rsplit("/", 1)[1]]
    assert {"dataset_id", "dataset", "network", "training"} <= set(job_create["properties"])
    assert "Network" in schemas and "Training" in schemas
    assert schemas["Training"]["required"] == ["epochs"]
    assert "202" in create_job["responses"] and "422" in create_job["responses"]
    assert "Location" in create_job["responses"]["202"]["headers"]

    datasets = document["paths"]["/datasets"]["post"]
    assert set(datasets["requestBody"]["content"]) == {
        "application/json",
        "text/csv",
        "application/vnd.apache.parquet",
    }
    assert {p["name"] for p in datasets["parameters"]} == {
        "name",
        "target",
        "task",
        "categorical",
        "ignore",
        "delimiter",
        "decimal",
    }

    error_ref = document["paths"]["/jobs/{job_id}"]["get"]["responses"]["404"]["content"][
        "application/json"
    ]["schema"]["$ref"]
    error = schemas[error_ref.rsplit("/", 1)[1]]
    assert error["required"] == ["error"]
    list_jobs = document["paths"]["/jobs"]["get"]
    assert {p["name"] for p in list_jobs["parameters"]} == {"limit", "after", "status", "ids"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "500" in operation["responses"], (path, method)
