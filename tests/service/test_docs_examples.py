"""Every example that /docs shows, sent to a live service (API process, worker,
PostgreSQL, Redis): each must succeed, and answer in the shape of the answer the
document gives, if it gives one.

The examples are read from /openapi.json, which is all /docs renders; the requests
are built the way api/static/ui/docs.js builds its curl commands. Path ids in the
examples (1) are replaced by ids this test made, since the database is shared
with other tests.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.service.http import call, finished_job
from tests.service.processes import wait_for

JSON = "application/json"


@dataclass(frozen=True)
class Example:
    operation: str
    method: str
    url: str
    content_type: str | None
    body: Any


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    data: bytes


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def examples(
    method: str, path: str, operation: dict[str, Any], ids: dict[str, int]
) -> list[Example]:
    """The operation's example requests (as docs.js renders them), with ``ids`` for path ids."""
    content = operation.get("requestBody", {}).get("content")
    bodies = (
        [(kind, media["example"]) for kind, media in content.items() if "example" in media]
        if content
        else [(None, None)]
    )
    requests = []
    for kind, body in bodies:
        if isinstance(body, dict):
            # Ids in a JSON body are this test's too (a prediction's dataset_id).
            body = {k: ids[k] if k in ids and k.endswith("_id") else v for k, v in body.items()}
        url, query = path, []
        for parameter in operation.get("parameters", []):
            if "example" not in parameter:
                continue
            name = parameter["name"]
            if parameter["in"] == "path":
                url = url.replace(f"{{{name}}}", str(ids.get(name, parameter["example"])))
            elif parameter.get("x-body-media-type") in (None, kind):
                query.append(f"{name}={parameter['example']}")
        if query:
            url += "?" + "&".join(query)
        requests.append(Example(operation["operationId"], method.upper(), url, kind, body))
    return requests


def send(base: str, key: str, example: Example) -> Answer:
    data = None
    if example.content_type == JSON:
        data = json.dumps(example.body).encode()
    elif example.content_type is not None:
        data = str(example.body).encode()
    request = urllib.request.Request(base + example.url, data=data, method=example.method)
    request.add_header("Authorization", f"Bearer {key}")
    if example.content_type is not None:
        request.add_header("Content-Type", example.content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Answer(response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers["Content-Type"], error.read())


def shape_problems(example: Any, actual: Any, where: str = "$") -> list[str]:
    """Where ``actual`` differs in shape from ``example``: keys, list nesting, JSON types.

    A null on either side matches anything, since optional fields are null in one
    answer and set in another.
    """
    if example is None or actual is None:
        return []
    if isinstance(example, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        problems = []
        if set(example) != set(actual):
            problems.append(f"{where}: keys {sorted(example)} != {sorted(actual)}")
        for name in example.keys() & actual.keys():
            problems += shape_problems(example[name], actual[name], f"{where}.{name}")
        return problems
    if isinstance(example, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {actual!r}"]
        if example and actual:
            return shape_problems(example[0], actual[0], f"{where}[0]")
        return []
    number = (int, float)
    if isinstance(example, number) and not isinstance(example, bool):
        ok = isinstance(actual, number) and not isinstance(actual, bool)
    else:
        ok = type(actual) is type(example)
    return [] if ok else [f"{where}: expected {type(example).__name__}, got {actual!r}"]


def success_example(operation: dict[str, Any]) -> tuple[str, Any] | None:
    """(status, example answer) of the operation's success response, if it has an example."""
    for status, response in operation["responses"].items():
        if status.startswith("2"):
            media = response.get("content", {}).get(JSON, {})
            if "example" in media:
                return status, media["example"]
    return None


@pytest.fixture(scope="module")
def service(live_api: tuple[str, str]) -> Iterator[dict[str, Any]]:
    """The live service, its document, and ids for the examples' path ids."""
    base, key = live_api
    status, document = call(base, "GET", "/openapi.json")
    assert status == 200
    create_job = document["paths"]["/jobs"]["post"]["requestBody"]["content"][JSON]["example"]
    create_dataset = document["paths"]["/datasets"]["post"]["requestBody"]["content"][JSON]
    # The documented job, trained by the real worker: its job, dataset and model.
    status, job = call(base, "POST", "/jobs", create_job, key)
    assert status == 202, job
    done = finished_job(base, job["id"], key)
    assert done["status"] == "succeeded", done
    # A model of its own for the delete example.
    status, other = call(base, "POST", "/jobs", create_job, key)
    assert status == 202, other
    spare_model = finished_job(base, other["id"], key)["model_id"]
    # Batch predictions of its dataset with its model, finished: one for the result
    # example, one for the delete example.
    predict = {"dataset_id": done["dataset_id"]}
    finished_predictions = []
    for _ in range(2):
        path = f"/models/{done['model_id']}/predictions"
        status, prediction = call(base, "POST", path, predict, key)
        assert status == 202, prediction
        url = f"/predictions/{prediction['id']}"
        wait_for(
            lambda url=url: call(base, "GET", url, None, key)[1]["status"] == "succeeded",
            60,
            0.05,
            "the batch prediction",
        )
        finished_predictions.append(prediction["id"])
    # A dataset of its own for the delete example, and a job long enough to cancel; a
    # second long job keeps the one worker busy after that cancel, so that a batch
    # prediction queued behind it is still there to cancel.
    status, spare = call(base, "POST", "/datasets", create_dataset["example"], key)
    assert status == 201, spare
    long = {**create_job, "training": {**create_job["training"], "epochs": 1_000_000}}
    status, running = call(base, "POST", "/jobs", long, key)
    assert status == 202, running
    status, blocker = call(base, "POST", "/jobs", long, key)
    assert status == 202, blocker
    status, queued = call(base, "POST", f"/models/{done['model_id']}/predictions", predict, key)
    assert status == 202, queued
    # The registered model of the examples, with two versions of the documented model
    # (the delete example takes the second) and the alias the examples name; and a
    # registered model of its own for the delete example.
    for name in ("xor", "xor", "spare-xor"):
        body = {"model_id": done["model_id"]}
        status, version = call(base, "POST", f"/registered-models/{name}/versions", body, key)
        assert status == 201, version
    for alias in ("production", "retired"):
        path = f"/registered-models/xor/aliases/{alias}"
        assert call(base, "PUT", path, {"version": 1}, key)[0] == 200
    # A finished job of its own for the delete example: cancelled as soon as it is sent.
    status, doomed = call(base, "POST", "/jobs", long, key)
    assert status == 202, doomed
    call(base, "POST", f"/jobs/{doomed['id']}/cancel", None, key)
    assert finished_job(base, doomed["id"], key)["status"] == "cancelled"
    # Sweeps on its dataset, their trials queued behind the long jobs: one to show, one
    # for the cancel example, one cancelled now (so ended) for the delete example.
    create_sweep = document["paths"]["/sweeps"]["post"]["requestBody"]["content"][JSON]["example"]
    sweeps = []
    for _ in range(3):
        status, sweep = call(base, "POST", "/sweeps", {**create_sweep, **predict}, key)
        assert status == 202, sweep
        sweeps.append(sweep["id"])
    status, ended_sweep = call(base, "POST", f"/sweeps/{sweeps[2]}/cancel", None, key)
    assert status == 202 and ended_sweep["status"] == "cancelled", ended_sweep
    ids = {
        "sweep_id": sweeps[0],
        "job_id": done["id"],
        "dataset_id": done["dataset_id"],
        "model_id": done["model_id"],
        "prediction_id": finished_predictions[0],
    }
    yield {
        "base": base,
        "key": key,
        "document": document,
        "ids": ids,
        "overrides": {
            "datasets_delete_dataset": {"dataset_id": spare["id"]},
            "jobs_cancel_job": {"job_id": running["id"]},
            "predictions_cancel_prediction": {"prediction_id": queued["id"]},
            "predictions_delete_prediction": {"prediction_id": finished_predictions[1]},
            "models_delete_model": {"model_id": spare_model},
            "registry_delete_registered": {"name": "spare-xor"},
            "registry_delete_version": {"version": 2},
            "registry_delete_alias": {"alias": "retired"},
            "jobs_delete_job": {"job_id": doomed["id"]},
            "sweeps_cancel_sweep": {"sweep_id": sweeps[1]},
            "sweeps_delete_sweep": {"sweep_id": sweeps[2]},
        },
    }
    # No sweep goes on starting trials for the next modules' workers.
    for listed in call(base, "GET", "/sweeps", None, key)[1]["sweeps"]:
        call(base, "POST", f"/sweeps/{listed['id']}/cancel", None, key)
    for path in (f"/jobs/{blocker['id']}/cancel", f"/predictions/{queued['id']}/cancel"):
        call(base, "POST", path, None, key)


def test_every_body_and_every_needed_parameter_has_an_example(service: dict[str, Any]) -> None:
    missing = []
    for method, path, operation in operations(service["document"]):
        for kind, media in operation.get("requestBody", {}).get("content", {}).items():
            if media.get("schema", {}).get("format") != "binary" and "example" not in media:
                missing.append(f"{method} {path}: {kind} body")
        for parameter in operation.get("parameters", []):
            needed = parameter["required"] or (
                "x-body-media-type" in parameter and "default" not in parameter["schema"]
            )
            if needed and "example" not in parameter:
                missing.append(f"{method} {path}: parameter {parameter['name']}")
    assert missing == []


def test_every_example_succeeds_against_a_live_service(service: dict[str, Any]) -> None:
    failures, sent = [], 0
    for method, path, operation in operations(service["document"]):
        ids = {**service["ids"], **service["overrides"].get(operation["operationId"], {})}
        documented = success_example(operation)
        for example in examples(method, path, operation, ids):
            answer = send(service["base"], service["key"], example)
            sent += 1
            where = f"{example.method} {example.url} ({example.content_type or 'no body'})"
            if not 200 <= answer.status < 300:
                failures.append(f"{where}: {answer.status} {answer.data[:300]!r}")
                continue
            if documented is not None:
                status, shape = documented
                if str(answer.status) != status:
                    failures.append(f"{where}: answered {answer.status}, documented {status}")
                actual = json.loads(answer.data)
                failures += [f"{where}: {p}" for p in shape_problems(shape, actual)]
    assert failures == [], "\n".join(failures)
    # Every operation, and both bodies of the six that take JSON or CSV.
    assert sent == len(operations(service["document"])) + 6


def test_the_documented_model_predicts_xor(service: dict[str, Any]) -> None:
    # The predict examples send (0, 1) and (1, 1): XOR is 1 and 0.
    operation = service["document"]["paths"]["/models/{model_id}/predict"]["post"]
    for example in examples("post", "/models/{model_id}/predict", operation, service["ids"]):
        answer = json.loads(send(service["base"], service["key"], example).data)
        first, second = (row[0] for row in answer["outputs"])
        assert first > 0.5 > second, (example.content_type, answer)


def test_shape_problems_are_found() -> None:
    documented = {"outputs": [[0.9]], "labels": None}
    assert shape_problems(documented, {"outputs": [[1]], "labels": ["a"]}) == []
    assert shape_problems(documented, {"outputs": [0.9], "labels": None}) == [
        "$.outputs[0]: expected a list, got 0.9"
    ]
    assert shape_problems(documented, {"outputs": [[0.9]]}) == [
        "$: keys ['labels', 'outputs'] != ['outputs']"
    ]
    assert shape_problems({"n": 1}, {"n": True}) == ["$.n: expected int, got True"]
