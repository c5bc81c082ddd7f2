"""The registry and lineage on live processes: models made by a real worker record
their whole lineage, parallel registrations get distinct versions on PostgreSQL, an
alias moved through one API process is used at once by another, and the
`backprop models` and `backprop jobs delete` commands."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import pytest

from store.lineage import spec_sha256
from tests.service.cli_process import BACKPROP, one_line_error
from tests.service.http import call, finished_job
from tests.service.processes import ApiProcess

XOR_JOB: dict[str, Any] = {
    "dataset": {
        "name": "xor",
        "inputs": [[0, 0], [0, 1], [1, 0], [1, 1]],
        "targets": [[0], [1], [1], [0]],
        "feature_names": ["x1", "x2"],
        "target_names": ["y"],
    },
    "network": {
        "input_dim": 2,
        "layers": [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    },
}
ROWS = [[0, 0], [0, 1], [1, 0], [1, 1]]


def train(base: str, key: str, **fields: Any) -> dict[str, Any]:
    """A job run by the live worker to its end: the finished job."""
    status, job = call(base, "POST", "/jobs", fields, key)
    assert status == 202, job
    done = finished_job(base, job["id"], key)
    assert done["status"] == "succeeded", done
    return done  # type: ignore[no-any-return]


def predict(base: str, path: str, key: str) -> tuple[dict[str, str], list[list[float]]]:
    """(headers, outputs) of a predict request."""
    request = urllib.request.Request(
        base + path, data=json.dumps({"inputs": ROWS}).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(response.headers), json.loads(response.read())["outputs"]


@pytest.fixture(scope="module")
def models(live_api: tuple[str, str]) -> dict[str, Any]:
    """Two models trained by the worker: one with a seed, and one started from it."""
    base, key = live_api
    first = train(base, key, **XOR_JOB, training={"epochs": 4, "seed": 7})
    dataset = call(base, "GET", f"/jobs/{first['id']}", key=key)[1]["dataset_id"]
    second = train(
        base, key, dataset_id=dataset, init_from_model=first["model_id"], training={"epochs": 30}
    )
    return {"first": first, "second": second, "dataset": dataset}


def test_every_model_records_its_lineage(live_api: tuple[str, str], models: dict[str, Any]) -> None:
    base, key = live_api
    dataset = call(base, "GET", f"/datasets/{models['dataset']}", key=key)[1]
    expected = {"first": (7, None), "second": (0, models["first"]["model_id"])}
    listed = {m["id"]: m for m in call(base, "GET", "/models?limit=500", key=key)[1]["models"]}
    for which, (seed, parent) in expected.items():
        job = models[which]
        status, model = call(base, "GET", f"/models/{job['model_id']}", key=key)
        assert status == 200, model
        spec = call(base, "GET", f"/jobs/{job['id']}/spec", key=key)[1]
        lineage = model["lineage"]
        assert lineage == {
            "job_id": job["id"],
            "dataset_id": models["dataset"],
            "dataset_sha256": dataset["sha256"],
            "spec_sha256": spec_sha256(spec["network"], spec["training"]),
            "seed": seed,
            "service_version": installed_version("backprop"),
            "init_model_id": parent,
            "sweep_id": None,
            "trial_number": None,
            "best_of_sweep": False,
            "created_at": model["created_at"],
        }, which
        assert listed[job["model_id"]] == model
    # trained alike means the same spec hash; these were not
    first, second = (listed[models[w]["model_id"]]["lineage"] for w in ("first", "second"))
    assert first["spec_sha256"] != second["spec_sha256"]


def test_parallel_registrations_get_distinct_versions(
    live_api: tuple[str, str], models: dict[str, Any]
) -> None:
    base, key = live_api
    model = models["first"]["model_id"]

    def register(_: int) -> tuple[int, Any]:
        body = {"model_id": model}
        return call(base, "POST", "/registered-models/raced/versions", body, key)

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(register, range(24)))
    assert all(status == 201 for status, _ in answers), answers
    assert sorted(answer["version"] for _, answer in answers) == list(range(1, 25))
    detail = call(base, "GET", "/registered-models/raced", key=key)[1]
    assert detail["latest_version"] == 24 and len(detail["versions"]) == 24


@pytest.fixture(scope="module")
def second_api(
    live_api: tuple[str, str], service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Another `backprop api` process on the same database."""
    api = ApiProcess(service_env, tmp_path_factory.mktemp("second-api"))
    try:
        yield api.base
    finally:
        api.stop()


def test_an_alias_moved_through_one_process_is_used_by_another_at_once(
    live_api: tuple[str, str], second_api: str, models: dict[str, Any]
) -> None:
    base, key = live_api
    ids = [models["first"]["model_id"], models["second"]["model_id"]]
    for model in ids:
        assert (
            call(base, "POST", "/registered-models/moving/versions", {"model_id": model}, key)[0]
            == 201
        )
    direct = [predict(base, f"/models/{model}/predict", key)[1] for model in ids]
    assert direct[0] != direct[1]
    for round_ in range(6):
        version = 1 + round_ % 2
        status, _ = call(
            base, "PUT", "/registered-models/moving/aliases/production", {"version": version}, key
        )
        assert status == 200
        # through the other process, with both models already loaded in its cache
        headers, outputs = predict(second_api, "/registered-models/moving@production/predict", key)
        assert headers["X-Model-Version"] == str(version), round_
        assert headers["X-Model-Id"] == str(ids[version - 1])
        assert outputs == direct[version - 1], round_


def backprop(live_api: tuple[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base, key = live_api
    env = {**os.environ, "BACKPROP_URL": base, "BACKPROP_API_KEY": key}
    return subprocess.run(
        [BACKPROP, *args], env=env, capture_output=True, text=True, timeout=60, cwd=Path.cwd()
    )


def test_the_models_commands(live_api: tuple[str, str], models: dict[str, Any]) -> None:
    first, second = models["first"]["model_id"], models["second"]["model_id"]
    listed = backprop(live_api, "models", "list")
    assert listed.returncode == 0, listed.stderr
    assert "spec sha256" in listed.stdout and str(second) in listed.stdout
    as_json = json.loads(backprop(live_api, "models", "list", "--json").stdout)
    assert {first, second} <= {model["id"] for model in as_json}
    shown = json.loads(backprop(live_api, "models", "show", str(first)).stdout)
    assert shown["lineage"]["seed"] == 7

    done = backprop(live_api, "models", "register", "cli-model", str(first))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"model {first} is version 1 of cli-model"
    again = backprop(live_api, "models", "register", "cli-model", str(second), "--json")
    assert json.loads(again.stdout)["version"] == 2
    aliased = backprop(live_api, "models", "alias", "cli-model", "champion", "2")
    assert aliased.returncode == 0 and aliased.stdout.strip() == "cli-model@champion -> version 2"
    versions = backprop(live_api, "models", "versions", "cli-model")
    assert versions.returncode == 0, versions.stderr
    lines = versions.stdout.splitlines()
    assert any("champion" in line and str(second) in line for line in lines), versions.stdout
    detail = json.loads(backprop(live_api, "models", "versions", "cli-model", "--json").stdout)
    assert detail["aliases"] == {"champion": 2}

    assert "422" in one_line_error(backprop(live_api, "models", "register", "bad:name", str(first)))
    assert "alias" in one_line_error(backprop(live_api, "models", "alias", "cli-model", "v1", "1"))
    refused = one_line_error(backprop(live_api, "models", "delete", str(first)))
    assert "409" in refused and "'cli-model'" in refused
    assert "404" in one_line_error(backprop(live_api, "models", "versions", "no-such"))


def test_delete_commands(live_api: tuple[str, str]) -> None:
    base, key = live_api
    job = train(base, key, **XOR_JOB, training={"epochs": 2})
    refused = one_line_error(backprop(live_api, "jobs", "delete", "2000000000"))
    assert "404" in refused
    model = job["model_id"]
    deleted = backprop(live_api, "models", "delete", str(model))
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"deleted model {model}"
    assert call(base, "GET", f"/models/{model}", key=key)[0] == 404
    gone = backprop(live_api, "jobs", "delete", str(job["id"]))
    assert gone.returncode == 0 and gone.stdout.strip() == f"deleted job {job['id']}"
    assert call(base, "GET", f"/jobs/{job['id']}", key=key)[0] == 404
    status, queued = call(base, "POST", "/jobs", {**XOR_JOB, "training": {"epochs": 1000000}}, key)
    assert status == 202
    busy = one_line_error(backprop(live_api, "jobs", "delete", str(queued["id"])))
    assert "cancel it first" in busy
    call(base, "POST", f"/jobs/{queued['id']}/cancel", key=key)
