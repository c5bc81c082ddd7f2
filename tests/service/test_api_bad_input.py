"""Malformed requests of every kind: each a 4xx in the one error shape, none a 500,
and none of them disturbs what is already stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from store.settings import Settings

from .api_helpers import (
    IRIS_LIKE,
    SMALL_NET,
    XOR,
    client_for,
    leftover_jobs_cancelled,
    post_dataset,
    post_job,
)

MAX_BODY = 20_000
JOB = {"network": SMALL_NET, "training": {"epochs": 2}}


@dataclass(frozen=True)
class Case:
    method: str
    url: str
    status: int
    field: str | None = None
    json: Any = None
    data: str | bytes | None = None
    content_type: str | None = None


def raw(document: str) -> dict[str, Any]:
    return {"data": document, "content_type": "application/json"}


def dataset(**fields: Any) -> dict[str, Any]:
    return {"name": "d", **XOR, **fields}


def csv(url: str, text: str | bytes, status: int, field: str | None) -> Case:
    return Case("POST", url, status, field, data=text, content_type="text/csv")


CASES = {
    # --- the body is not JSON, or not the right kind of body
    "malformed-json": Case("POST", "/datasets", 400, **raw('{"name": "x", "inputs": ')),
    "empty-json-body": Case("POST", "/datasets", 400, **raw("")),
    "trailing-garbage": Case("POST", "/jobs", 400, **raw('{"dataset_id": 1} x')),
    "deeply-nested": Case("POST", "/jobs", 400, **raw("[" * 9_000 + "]" * 9_000)),
    "text-plain": Case("POST", "/datasets", 415, data="name=x", content_type="text/plain"),
    "no-content-type": Case("POST", "/models/{model}/predict", 415, data='{"inputs": [[1, 2]]}'),
    "csv-to-jobs": Case("POST", "/jobs", 415, data="a,b\n1,2\n", content_type="text/csv"),
    "form-post": Case("POST", "/jobs", 415, data="a=1", content_type="multipart/form-data"),
    "oversize-body": Case("POST", "/datasets", 413, json=dataset(name="x" * (MAX_BODY + 1))),
    "top-level-array": Case("POST", "/datasets", 422, None, json=[1, 2]),
    # --- missing fields, wrong types, unknown fields
    "missing-name": Case("POST", "/datasets", 422, "name", json=XOR),
    "missing-inputs": Case("POST", "/datasets", 422, "inputs", json={"name": "d", "targets": [1]}),
    "inputs-a-string": Case("POST", "/datasets", 422, "inputs", json=dataset(inputs="1,2")),
    "name-a-number": Case("POST", "/datasets", 422, "name", json=dataset(name=5)),
    "name-too-long": Case("POST", "/datasets", 422, "name", json=dataset(name="n" * 201)),
    "name-with-nul": Case("POST", "/datasets", 422, "name", json=dataset(name="a\x00b")),
    "csv-name-with-nul": csv("/datasets?name=a%00b&target=y", "x,y\n1,2\n", 422, "name"),
    "unknown-field": Case("POST", "/datasets", 422, "colour", json=dataset(colour="red")),
    "bool-for-number": Case(
        "POST",
        "/datasets",
        422,
        "inputs[0][1]",
        json=dataset(inputs=[[0, True]] + XOR["inputs"][1:]),
    ),
    "string-for-number": Case(
        "POST",
        "/datasets",
        422,
        "inputs[1][0]",
        json=dataset(inputs=[[0, 0], ["1", 0], [1, 0], [1, 1]]),
    ),
    "feature-names-length": Case(
        "POST", "/datasets", 422, "feature_names", json=dataset(feature_names=["a"])
    ),
    # --- arrays: shape and values
    "ragged-inputs": Case(
        "POST", "/datasets", 422, "inputs[2]", json=dataset(inputs=[[0, 0], [0, 1], [1], [1, 1]])
    ),
    "ragged-targets": Case(
        "POST", "/datasets", 422, "targets[1]", json=dataset(targets=[[0], [1, 1], [1], [0]])
    ),
    "empty-inputs": Case("POST", "/datasets", 422, "inputs", json=dataset(inputs=[])),
    "empty-row": Case("POST", "/datasets", 422, "inputs[0]", json=dataset(inputs=[[]])),
    "too-few-targets": Case("POST", "/datasets", 422, "targets", json=dataset(targets=[1, 0])),
    "mixed-labels": Case(
        "POST", "/datasets", 422, "targets[1]", json=dataset(targets=["a", 1, "b", "a"])
    ),
    "one-class": Case("POST", "/datasets", 422, "targets", json=dataset(targets=["a"] * 4)),
    "three-dimensional": Case(
        "POST", "/datasets", 422, "inputs[0][0]", json=dataset(inputs=[[[0]], [[1]], [[1]], [[0]]])
    ),
    "nan-literal": Case(
        "POST",
        "/datasets",
        422,
        "inputs[0][0]",
        **raw('{"name": "d", "inputs": [[NaN, 0]], "targets": [1]}'),
    ),
    "infinity-literal": Case(
        "POST",
        "/datasets",
        422,
        "targets[0][0]",
        **raw('{"name": "d", "inputs": [[0, 0]], "targets": [[Infinity]]}'),
    ),
    "overflowing-number": Case(
        "POST", "/models/{model}/predict", 422, "inputs[0][1]", **raw('{"inputs": [[0, -1e999]]}')
    ),
    # --- CSV uploads
    "csv-without-target": csv("/datasets?name=c", IRIS_LIKE, 422, "target"),
    "csv-without-name": csv("/datasets?target=species", IRIS_LIKE, 422, "name"),
    "csv-unknown-target": csv("/datasets?name=c&target=colour", IRIS_LIKE, 422, "target"),
    "csv-unknown-parameter": csv("/datasets?name=c&target=species&x=1", IRIS_LIKE, 422, "x"),
    "csv-text-feature": csv("/datasets?name=c&target=y", "x1,x2,y\n1,2,3\n4,five,6\n", 422, "x2"),
    "csv-word-among-numbers": csv("/datasets?name=c&target=y", "x,y\n1,2\n2,3\noops,3\n", 422, "x"),
    "csv-ragged-row": csv("/datasets?name=c&target=y", "x1,x2,y\n1,2,3\n4,6\n", 422, "body"),
    "csv-empty": csv("/datasets?name=c&target=y", "", 422, "body"),
    "csv-header-only": csv("/datasets?name=c&target=y", "x,y\n", 422, "body"),
    "csv-labels-in-two-targets": csv(
        "/datasets?name=c&target=y,z", "x,y,z\n1,a,2\n3,b,4\n", 422, "y"
    ),
    "csv-not-utf8": csv("/datasets?name=c&target=y", b"x,y\n\xff\xfe,1\n", 422, "x"),
    # --- jobs
    "network-not-object": Case("POST", "/jobs", 422, "network", json={**JOB, "network": "2-3-1"}),
    "missing-training": Case("POST", "/jobs", 422, "training", json={"network": SMALL_NET}),
    "dataset-id-string": Case("POST", "/jobs", 422, "dataset_id", json={**JOB, "dataset_id": "1"}),
    "dataset-id-bool": Case("POST", "/jobs", 422, "dataset_id", json={**JOB, "dataset_id": True}),
    "dataset-id-float": Case("POST", "/jobs", 422, "dataset_id", json={**JOB, "dataset_id": 1.0}),
    "dataset-id-huge": Case("POST", "/jobs", 422, "dataset_id", json={**JOB, "dataset_id": 10**30}),
    "units-bool": Case(
        "POST",
        "/jobs",
        422,
        "network.layers[0].units",
        json={
            **JOB,
            "dataset_id": 1,
            "network": {"input_dim": 2, "layers": [{"units": True}]},
        },
    ),
    "epochs-zero": Case(
        "POST", "/jobs", 422, "training.epochs", json={**JOB, "training": {"epochs": 0}}
    ),
    "nan-learning-rate": Case(
        "POST",
        "/jobs",
        422,
        "training.optimizer.learning_rate",
        **raw(
            '{"dataset_id": 1, "network": {"input_dim": 2, "layers": [{"units": 1}]}, '
            '"training": {"epochs": 1, "optimizer": {"learning_rate": NaN}}}'
        ),
    ),
    "nan-initial-weight": Case(
        "POST",
        "/jobs",
        422,
        "network.layers[0].weights[0][1]",
        **raw(
            '{"dataset_id": 1, "network": {"input_dim": 2, "layers": [{"units": 1, '
            '"weights": [[0.5, NaN]]}]}, "training": {"epochs": 1}}'
        ),
    ),
    "inline-dataset-unknown-field": Case(
        "POST", "/jobs", 422, "dataset.extra", json={**JOB, "dataset": {**XOR, "extra": 1}}
    ),
    # --- query strings
    "limit-not-a-number": Case("GET", "/jobs?limit=abc", 422, "limit"),
    "limit-zero": Case("GET", "/datasets?limit=0", 422, "limit"),
    "limit-too-large": Case("GET", "/datasets?limit=100000", 422, "limit"),
    "after-negative": Case("GET", "/jobs?after=-1", 422, "after"),
    "unknown-status": Case("GET", "/jobs?status=done", 422, "status"),
    "unknown-parameter": Case("GET", "/jobs?page=2", 422, "page"),
    "epochs-after-text": Case("GET", "/jobs/{job}/epochs?after=first", 422, "after"),
    # --- ids, routes and methods
    "job-id-text": Case("GET", "/jobs/abc", 404),
    "job-id-too-big": Case("GET", "/jobs/99999999999", 404),
    "dataset-id-zero": Case("GET", "/datasets/0", 404),
    "dataset-id-negative": Case("DELETE", "/datasets/-1", 404),
    "unknown-model": Case("POST", "/models/2147483647/predict", 404, json={"inputs": [[1, 2]]}),
    "unknown-model-weights": Case("GET", "/models/2147483646/weights", 404),
    "unknown-route": Case("GET", "/nowhere", 404),
    # Paths with a GET rule and a DELETE rule: still a 404, not a 405 for the other method.
    "model-id-zero": Case("GET", "/models/0", 404),
    "job-id-zero-delete": Case("DELETE", "/jobs/0", 404),
    "model-id-too-big": Case("GET", "/models/99999999999", 404),
    "wrong-method": Case("PUT", "/datasets", 405),
    "wrong-method-on-a-job": Case("PUT", "/jobs/{job}", 405),
    "post-to-healthz": Case("POST", "/healthz", 405),
    "cancel-finished-job": Case("POST", "/jobs/{job}/cancel", 409),
    # --- predict
    "predict-wrong-width": Case(
        "POST", "/models/{model}/predict", 422, "inputs[0]", json={"inputs": [[1, 2, 3]]}
    ),
    "predict-missing-inputs": Case("POST", "/models/{model}/predict", 422, "inputs", json={}),
    "predict-extra-field": Case(
        "POST", "/models/{model}/predict", 422, "outputs", json={"inputs": [[1, 2]], "outputs": []}
    ),
    "predict-flat-row": Case(
        "POST", "/models/{model}/predict", 422, "inputs[0]", json={"inputs": [1, 2]}
    ),
    "predict-instance-true": Case(
        "POST", "/models/{model}/predict", 422, "instances[0]", json={"instances": [{"x": True}]}
    ),
    # --- predict with a CSV body (the model takes 2 unnamed inputs)
    "predict-csv-empty": csv("/models/{model}/predict", "\n\n", 422, "body"),
    "predict-csv-header-mixes-numbers-and-names": csv(
        "/models/{model}/predict", "1,b\n0,1\n", 422, "header"
    ),
    # An unnamed model cannot match a header's names to its inputs.
    "predict-csv-header-on-unnamed-model": csv(
        "/models/{model}/predict", "a,b\n1,2\n", 400, "header"
    ),
    "predict-csv-present-on-unnamed-model": csv(
        "/models/{model}/predict?header=present", "1,2\n1,2\n", 400, "header"
    ),
    "predict-csv-underscore-number": csv("/models/{model}/predict", "1,1\n1_0,1\n", 422, "x0"),
    "predict-csv-ragged-row": csv("/models/{model}/predict", "1,1\n0\n", 422, "body"),
    "predict-csv-text-cell": csv("/models/{model}/predict", "1,1\n0,one\n", 422, "x1"),
    "predict-csv-infinite-cell": csv("/models/{model}/predict", "1,1\n0,inf\n", 422, "x1"),
    "predict-csv-header-absent-but-names": csv(
        "/models/{model}/predict?header=absent", "a,b\n1,1\n", 422, "x0"
    ),
    "predict-csv-unknown-header-rule": csv(
        "/models/{model}/predict?header=maybe", "1,1\n", 422, "header"
    ),
    "predict-csv-unknown-parameter": csv("/models/{model}/predict?sep=;", "1,1\n", 422, "sep"),
}


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> Iterator[FlaskClient]:
    with leftover_jobs_cancelled(client_for(service_settings, max_body_bytes=MAX_BODY)) as client:
        yield client


@pytest.fixture(scope="module")
def stored(client: FlaskClient) -> dict[str, Any]:
    """A dataset, a cancelled job on it and a trained model, made before the bad requests."""
    from .api_helpers import train_in_process

    data = post_dataset(client)
    job = post_job(client, dataset_id=data["id"], **JOB)
    client.post(f"/jobs/{job['id']}/cancel")
    trained = post_job(client, dataset_id=data["id"], **JOB)
    model = train_in_process(trained["id"])
    return {"dataset": data, "job": job["id"], "model": model}


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_request(client: FlaskClient, stored: dict[str, Any], case: Case) -> None:
    ids = {"dataset": stored["dataset"]["id"], "job": stored["job"], "model": stored["model"]}
    kwargs: dict[str, Any] = {}
    # Cases write dataset 1 for "a dataset of the caller's": this run's may have another
    # id (other test files in the same process store datasets first).
    mine = stored["dataset"]["id"]
    if case.json is not None:
        same = isinstance(case.json, dict) and type(case.json.get("dataset_id")) is int
        same = same and case.json["dataset_id"] == 1
        kwargs["json"] = {**case.json, "dataset_id": mine} if same else case.json
    if case.data is not None:
        data = case.data
        if isinstance(data, str):
            data = data.replace('{"dataset_id": 1,', f'{{"dataset_id": {mine},')
        kwargs["data"] = data
    if case.content_type is not None:
        kwargs["content_type"] = case.content_type
    response = client.open(case.url.format(**ids), method=case.method, **kwargs)

    assert response.status_code == case.status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data())
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"code", "message", "field"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert error.get("field") == case.field


def test_nothing_stored_was_lost(client: FlaskClient, stored: dict[str, Any]) -> None:
    # Runs after the table (pytest keeps file order): the service is alive and intact.
    assert client.get("/healthz").status_code == 200
    dataset = client.get(f"/datasets/{stored['dataset']['id']}").json
    assert dataset == stored["dataset"]
    predict = client.post(f"/models/{stored['model']}/predict", json={"inputs": [[0, 1]]})
    assert predict.status_code == 200
    assert client.get(f"/jobs/{stored['job']}").json["status"] == "cancelled"
