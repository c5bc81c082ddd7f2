"""End to end through the HTTP API with a real Celery worker process, Redis and
PostgreSQL: what a user does, from upload to prediction."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sklearn.datasets import load_iris

from store.settings import Settings
from tests import worked_example as worked
from tests.service.api_helpers import client_for
from tests.service.processes import WorkerProcess, wait_for


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> FlaskClient:
    return client_for(service_settings)


def finished_job(client: FlaskClient, job_id: int, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = client.get(f"/jobs/{job_id}").json
        assert job is not None
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(done, timeout, 0.05, f"job {job_id} to finish")


def all_epochs(client: FlaskClient, job_id: int) -> list[dict[str, Any]]:
    """Every recorded epoch, following the ``next_after`` cursor."""
    epochs: list[dict[str, Any]] = []
    after = 0
    while after is not None:
        page = client.get(f"/jobs/{job_id}/epochs?after={after}").json
        assert page is not None and "epochs" in page, page
        epochs += page["epochs"]
        after = page["next_after"]
    return epochs


def submit(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/jobs", json=body)
    assert response.status_code == 202, response.json
    assert response.headers["Location"] == f"/jobs/{response.json['id']}"
    return response.json  # type: ignore[no-any-return]


def test_worked_example_trains_and_predicts(client: FlaskClient, worker: WorkerProcess) -> None:
    job = submit(
        client,
        worked.job(),
    )
    done = finished_job(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["epochs_completed"] == 1
    assert done["loss"] == pytest.approx(worked.EPOCH_1_LOSS, abs=1e-9)

    epochs = client.get(f"/jobs/{job['id']}/epochs").json
    assert [e["epoch"] for e in epochs["epochs"]] == [1]
    assert epochs["epochs"][0]["loss"] == pytest.approx(worked.EPOCH_1_LOSS, abs=1e-9)

    predicted = client.post(f"/models/{done['model_id']}/predict", json={"inputs": [[0.05, 0.10]]})
    assert predicted.status_code == 200
    out = predicted.json["outputs"][0]
    assert out == pytest.approx(worked.PREDICTION_AFTER_1, abs=1e-8)

    weights = client.get(f"/models/{done['model_id']}/weights").json
    hidden, output = weights["layers"][0]["weights"], weights["layers"][1]["weights"]
    assert [hidden, output] == [
        [pytest.approx(row, abs=1e-8) for row in layer] for layer in worked.WEIGHTS_AFTER_1
    ]


def iris_csv() -> str:
    iris = load_iris()
    buffer = io.StringIO()
    buffer.write(",".join([*iris.feature_names, "species"]) + "\n")
    for row, label in zip(iris.data, iris.target, strict=True):
        buffer.write(",".join(f"{v:g}" for v in row) + f",{iris.target_names[label]}\n")
    return buffer.getvalue()


def test_iris_csv_to_a_classifier_that_names_labels(
    client: FlaskClient, worker: WorkerProcess
) -> None:
    upload = client.post(
        "/datasets?name=iris&target=species", data=iris_csv(), content_type="text/csv"
    )
    assert upload.status_code == 201, upload.json
    dataset = upload.json
    assert (dataset["n_samples"], dataset["n_features"], dataset["n_targets"]) == (150, 4, 1)
    assert dataset["classes"] == ["setosa", "versicolor", "virginica"]

    job = submit(
        client,
        {
            "dataset_id": dataset["id"],
            "network": {
                "input_dim": 4,
                "layers": [
                    {"units": 16, "activation": "relu"},
                    {"units": 3, "activation": "softmax"},
                ],
            },
            "training": {
                "epochs": 150,
                "optimizer": {"name": "adam", "learning_rate": 0.01},
                "normalize": "standardize",
                "validation_split": 0.2,
                "batch_size": 16,
            },
        },
    )
    done = finished_job(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["val_loss"] is not None
    epochs = all_epochs(client, job["id"])
    assert [e["epoch"] for e in epochs] == list(range(1, 151))
    assert epochs[-1]["val_accuracy"] >= 0.9

    flowers = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.9, 3.1, 5.4, 2.1]]
    predicted = client.post(f"/models/{done['model_id']}/predict", json={"inputs": flowers})
    assert predicted.status_code == 200
    assert predicted.json["labels"] == ["setosa", "versicolor", "virginica"]
    model = client.get(f"/models/{done['model_id']}").json
    assert model["dataset_sha256"] == dataset["sha256"]


def test_cancel_a_running_job(client: FlaskClient, worker: WorkerProcess) -> None:
    job = submit(
        client,
        {
            "dataset": {
                "inputs": [[0, 0], [0, 1], [1, 0], [1, 1]],
                "targets": [[0], [1], [1], [0]],
            },
            "network": {
                "input_dim": 2,
                "layers": [{"units": 4, "activation": "tanh"}, {"units": 1}],
            },
            "training": {"epochs": 1_000_000, "batch_size": 1},
        },
    )
    wait_for(
        lambda: client.get(f"/jobs/{job['id']}").json["epochs_completed"] > 10,
        30,
        what="the job to make progress",
    )
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 202
    done = finished_job(client, job["id"])
    assert done["status"] == "cancelled"
    assert done["epochs_completed"] < 1_000_000
    numbers = [e["epoch"] for e in all_epochs(client, job["id"])]
    assert numbers == list(range(1, done["epochs_completed"] + 1))


def test_a_diverging_job_fails_with_its_reason(client: FlaskClient, worker: WorkerProcess) -> None:
    job = submit(
        client,
        {
            "dataset": {
                "inputs": [[1.0, 2.0], [3.0, -1.0], [-2.0, 0.5]],
                "targets": [[10.0], [-4.0], [7.0]],
            },
            "network": {
                "input_dim": 2,
                "layers": [
                    {"units": 8, "activation": "relu"},
                    {"units": 1, "activation": "identity"},
                ],
            },
            "training": {"epochs": 500, "optimizer": {"name": "sgd", "learning_rate": 1e6}},
        },
    )
    done = finished_job(client, job["id"])
    assert done["status"] == "failed"
    assert done["stop_reason"] == "non_finite_loss"
    assert "epoch" in done["error"] and "lower the learning rate" in done["error"].lower()
    assert done["model_id"] is None


def test_jobs_list_pages_newest_first(client: FlaskClient, worker: WorkerProcess) -> None:
    ids = [submit(client, worked.job())["id"] for _ in range(3)]
    for job_id in ids:
        assert finished_job(client, job_id)["status"] == "succeeded"
    first = client.get("/jobs?limit=2&status=succeeded").json
    assert [j["id"] for j in first["jobs"]] == [ids[2], ids[1]]
    second = client.get(f"/jobs?limit=2&status=succeeded&after={first['next_after']}").json
    assert second["jobs"][0]["id"] == ids[0]


def test_worker_log_has_no_errors(worker: WorkerProcess, tmp_path: Path) -> None:
    # Runs last in this module: every job above ended the way the user was told.
    assert "Traceback" not in worker.output()
