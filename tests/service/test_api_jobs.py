"""/jobs: admission against the dataset, status, epochs, cancelling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from store import JobStatus, Session
from store import queries as q
from store.settings import Settings
from tests import worked_example as worked

from .api_helpers import (
    IRIS_LIKE,
    SMALL_NET,
    XOR,
    client_for,
    leftover_jobs_cancelled,
    post_dataset,
    post_job,
    queued_messages,
    train_in_process,
)

IRIS_NET = {
    "input_dim": 4,
    "layers": [{"units": 5, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
}


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> Iterator[FlaskClient]:
    with leftover_jobs_cancelled(client_for(service_settings)) as client:
        yield client


@pytest.fixture(scope="module")
def xor_id(client: FlaskClient) -> int:
    return post_dataset(client)["id"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def iris_id(client: FlaskClient) -> int:
    response = client.post(
        "/datasets?name=iris&target=species", data=IRIS_LIKE, content_type="text/csv"
    )
    return response.json["id"]  # type: ignore[no-any-return]


def test_create_job_queues_it_and_sends_its_id(
    client: FlaskClient, xor_id: int, service_settings: Settings
) -> None:
    before = len(queued_messages(service_settings))
    training = {"epochs": 3, "optimizer": {"name": "sgd", "learning_rate": 0.5}, "seed": 7}
    response = client.post(
        "/jobs", json={"dataset_id": xor_id, "network": SMALL_NET, "training": training}
    )
    assert response.status_code == 202, response.json
    job = response.json
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["dataset_id"] == xor_id
    assert (job["epochs_completed"], job["epochs_total"], job["attempt"]) == (0, 3, 0)
    assert job["model_id"] is None and job["loss"] is None and job["finished_at"] is None
    messages = queued_messages(service_settings)
    assert len(messages) == before + 1
    newest = messages[0]["headers"]
    assert newest["task"] == "backprop.train"
    assert newest["argsrepr"] == f"[{job['id']}]"
    with Session.begin() as session:
        stored = q.get_job(session, job["id"])
        assert stored is not None
        assert stored.training == training  # as given; the worker parses it again
        assert stored.network == SMALL_NET


def test_create_job_with_an_inline_dataset(client: FlaskClient) -> None:
    job = post_job(
        client,
        dataset=worked.JOB["dataset"],
        network=worked.NETWORK,
        training={"epochs": 1, "loss": "squared_error", "batch_size": 1, "train_bias": False},
    )
    dataset = client.get(f"/datasets/{job['dataset_id']}").json
    assert dataset["name"] == "inline"
    assert (dataset["n_samples"], dataset["n_features"], dataset["n_targets"]) == (1, 2, 2)


def test_a_classifier_job_on_a_labelled_csv_dataset(client: FlaskClient, iris_id: int) -> None:
    job = post_job(
        client,
        dataset_id=iris_id,
        network=IRIS_NET,
        training={"epochs": 2, "optimizer": "adam", "normalize": "standardize"},
    )
    assert job["status"] == "queued"


def _job(**fields: Any) -> dict[str, Any]:
    return {"network": SMALL_NET, "training": {"epochs": 2}, **fields}


MISMATCHES = [
    pytest.param(
        "xor",
        {"network": {**SMALL_NET, "input_dim": 3}},
        "network.input_dim",
        id="input_dim-vs-features",
    ),
    pytest.param(
        "iris",
        {
            "network": {
                "input_dim": 4,
                "layers": [{"units": 2, "activation": "softmax"}],
            }
        },
        "network.layers[0].units",
        id="output-units-vs-classes",
    ),
    pytest.param(
        "xor",
        {"training": {"epochs": 2, "loss": "categorical_crossentropy"}},
        "training.loss",
        id="loss-vs-activation",
    ),
    pytest.param(
        "scaled",
        {"training": {"epochs": 2, "loss": "binary_crossentropy"}},
        "dataset_id",
        id="cross-entropy-needs-targets-in-0-1",
    ),
    pytest.param(
        "xor",
        {"training": {"epochs": 2, "validation_split": 0.1}},
        "training.validation_split",
        id="split-leaves-no-validation-rows",
    ),
    pytest.param(
        "xor",
        {"network": {"input_dim": 2, "layers": [{"units": 0}]}},
        "network.layers[0].units",
        id="engine-rejects-network",
    ),
    pytest.param(
        "xor",
        {"network": {"input_dim": 2, "layers": [{"units": 1, "weights": [[1, 2, 3]]}]}},
        "network.layers[0].weights",
        id="engine-rejects-weights-shape",
    ),
    pytest.param(
        "xor",
        {"training": {"epochs": 2, "optimizer": {"name": "adam", "momentun": 0.9}}},
        "training.optimizer.momentun",
        id="engine-rejects-unknown-training-field",
    ),
    pytest.param("xor", {"training": {"batch_size": 4}}, "training.epochs", id="epochs-required"),
    pytest.param("xor", {"training": {"epochs": True}}, "training.epochs", id="bool-is-not-epochs"),
    pytest.param("xor", {"network": [1, 2]}, "network", id="network-not-an-object"),
]


@pytest.mark.parametrize(("dataset", "fields", "field"), MISMATCHES)
def test_job_is_checked_against_the_spec_and_dataset(
    client: FlaskClient,
    xor_id: int,
    iris_id: int,
    dataset: str,
    fields: dict[str, Any],
    field: str,
) -> None:
    ids = {"xor": xor_id, "iris": iris_id}
    if dataset == "scaled":
        ids["scaled"] = post_dataset(client, targets=[[0], [2], [2], [0]])["id"]
    before = client.get("/jobs?limit=1").json["jobs"]
    response = client.post("/jobs", json=_job(dataset_id=ids[dataset], **fields))
    assert response.status_code == 422, response.json
    assert response.json["error"]["field"] == field
    assert client.get("/jobs?limit=1").json["jobs"] == before


def test_inline_dataset_is_not_stored_when_the_job_is_refused(client: FlaskClient) -> None:
    newest = client.get("/datasets?limit=1").json["datasets"]
    refused = _job(dataset=XOR, network={**SMALL_NET, "input_dim": 3})
    response = client.post("/jobs", json=refused)
    assert response.status_code == 422
    assert response.json["error"]["field"] == "network.input_dim"
    assert client.get("/datasets?limit=1").json["datasets"] == newest


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "dataset_id"),
        ({"dataset_id": 1, "dataset": XOR}, "dataset_id"),
        ({"dataset_id": 2147483647}, "dataset_id"),
        ({"dataset": {**XOR, "targets": [1, 2]}}, "dataset.targets"),
        ({"dataset": {"inputs": [[1, 2], [3]], "targets": [1, 2]}}, "dataset.inputs[1]"),
    ],
)
def test_job_dataset_reference(client: FlaskClient, fields: dict[str, Any], field: str) -> None:
    response = client.post("/jobs", json=_job(**fields))
    assert response.status_code == 422, response.json
    assert response.json["error"]["field"] == field


def test_limits(service_settings: Settings) -> None:
    small = client_for(service_settings, max_epochs=10, max_weights=12)
    dataset_id = post_dataset(small)["id"]
    epochs = small.post("/jobs", json=_job(dataset_id=dataset_id, training={"epochs": 11}))
    assert epochs.status_code == 422
    assert epochs.json["error"] == {
        "code": "limit_exceeded",
        "message": "at most 10 epochs (BACKPROP_MAX_EPOCHS), got 11",
        "field": "training.epochs",
    }
    weights = small.post(  # 2-3-1 has 3*3 + 4 = 13 weights and biases
        "/jobs", json=_job(dataset_id=dataset_id)
    )
    assert weights.status_code == 422
    assert weights.json["error"]["field"] == "network"
    assert "BACKPROP_MAX_WEIGHTS" in weights.json["error"]["message"]
    cells = client_for(service_settings, max_dataset_cells=5).post(
        "/jobs", json=_job(dataset_id=dataset_id)
    )
    assert cells.status_code == 422
    assert cells.json["error"]["field"] == "dataset_id"
    assert "BACKPROP_MAX_DATASET_CELLS" in cells.json["error"]["message"]
    slow = client_for(service_settings, max_job_seconds=60).post(
        "/jobs", json=_job(dataset_id=dataset_id, training={"epochs": 5, "time_limit": 61})
    )
    assert slow.status_code == 422
    assert slow.json["error"]["field"] == "training.time_limit"
    assert "BACKPROP_MAX_JOB_SECONDS" in slow.json["error"]["message"]
    # Every refusal left the service answering.
    assert small.get("/healthz").status_code == 200


def test_get_job_and_404(client: FlaskClient, xor_id: int) -> None:
    job = post_job(client, **_job(dataset_id=xor_id))
    assert client.get(f"/jobs/{job['id']}").json == job
    missing = client.get("/jobs/2147483647")
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == "not_found"
    assert client.get("/jobs/0").status_code == 404


def test_list_jobs_by_status_with_a_cursor(client: FlaskClient, xor_id: int) -> None:
    ids = [post_job(client, **_job(dataset_id=xor_id))["id"] for _ in range(3)]
    client.post(f"/jobs/{ids[1]}/cancel")
    page = client.get(f"/jobs?limit=2&after={ids[-1] + 1}").json
    assert [j["id"] for j in page["jobs"]] == [ids[2], ids[1]]
    assert page["next_after"] == ids[1]
    rest = client.get(f"/jobs?limit=1&after={page['next_after']}").json
    assert [j["id"] for j in rest["jobs"]] == [ids[0]]
    cancelled = client.get(f"/jobs?status=cancelled&after={ids[-1] + 1}&limit=500").json["jobs"]
    assert ids[1] in [j["id"] for j in cancelled]
    assert {j["status"] for j in cancelled} == {"cancelled"}
    queued = client.get(f"/jobs?status=queued&after={ids[-1] + 1}&limit=2").json["jobs"]
    assert [j["id"] for j in queued] == [ids[2], ids[0]]


def test_epochs_and_model_of_a_finished_job(client: FlaskClient, xor_id: int) -> None:
    job = post_job(
        client,
        dataset_id=xor_id,
        network=SMALL_NET,
        training={"epochs": 7, "optimizer": {"name": "sgd", "learning_rate": 0.5}},
    )
    model_id = train_in_process(job["id"])
    finished = client.get(f"/jobs/{job['id']}").json
    assert finished["status"] == "succeeded"
    assert finished["model_id"] == model_id
    assert finished["epochs_completed"] == 7
    assert finished["attempt"] == 1
    assert finished["stop_reason"] == "max_epochs"
    assert finished["finished_at"] is not None

    everything = client.get(f"/jobs/{job['id']}/epochs").json
    assert [e["epoch"] for e in everything["epochs"]] == list(range(1, 8))
    assert everything["next_after"] is None
    assert finished["loss"] == everything["epochs"][-1]["loss"]
    first = everything["epochs"][0]
    assert set(first) == {
        "epoch",
        "loss",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "grad_norm",
        "seconds",
    }
    assert first["learning_rate"] == 0.5

    pages, after = [], 0
    while after is not None:
        page = client.get(f"/jobs/{job['id']}/epochs?after={after}&limit=3").json
        pages.append([e["epoch"] for e in page["epochs"]])
        after = page["next_after"]
    assert pages == [[1, 2, 3], [4, 5, 6], [7]]
    assert client.get(f"/jobs/{job['id']}/epochs?after=7").json == {
        "epochs": [],
        "next_after": None,
    }
    assert client.get("/jobs/2147483647/epochs").status_code == 404


def test_cancel_a_queued_job(client: FlaskClient, xor_id: int) -> None:
    job = post_job(client, **_job(dataset_id=xor_id))
    response = client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    assert response.json["status"] == "cancelled"
    assert response.json["stop_reason"] == "cancelled"
    assert response.json["finished_at"] is not None
    assert client.get(f"/jobs/{job['id']}").json["status"] == "cancelled"
    again = client.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert again.json["error"]["code"] == "conflict"


def test_cancel_a_running_job_sets_the_flag(client: FlaskClient, xor_id: int) -> None:
    job = post_job(client, **_job(dataset_id=xor_id))
    with Session.begin() as session:
        assert (
            q.take_lease(session, job["id"], "test", lease_seconds=60, max_attempts=5) is not None
        )
    response = client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    assert response.json["status"] == "running"
    assert response.json["cancel_requested"] is True
    with Session.begin() as session:
        assert q.cancel_requested(session, job["id"])
        stored = q.get_job(session, job["id"])
        assert stored is not None
        q.finish_job(session, stored, JobStatus.CANCELLED, stop_reason="cancelled")


def test_cancel_a_succeeded_job_is_a_conflict(client: FlaskClient, xor_id: int) -> None:
    job = post_job(client, **_job(dataset_id=xor_id))
    train_in_process(job["id"])
    response = client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert "succeeded" in response.json["error"]["message"]
    assert client.post("/jobs/2147483647/cancel").status_code == 404


def test_a_job_the_broker_does_not_take_stays_queued_for_the_reconciler(
    service_settings: Settings,
) -> None:
    unreachable = client_for(service_settings, broker_url="redis://127.0.0.1:1/0")
    response = unreachable.post("/jobs", json=_job(dataset=XOR))
    assert response.status_code == 202, response.json
    assert response.json["status"] == "queued"
    with Session.begin() as session:
        job = q.get_job(session, response.json["id"])
        assert job is not None and job.status == JobStatus.QUEUED
        # Marked as never sent: the reconciler's next sweep sends it (see test_outage).
        assert job.enqueued_at is None
        q.finish_job(session, job, JobStatus.CANCELLED, stop_reason="cancelled")


def test_integers_beyond_float_range_are_a_422(client: FlaskClient, xor_id: int) -> None:
    huge = _job(dataset_id=xor_id, training={"epochs": 1, "optimizer": {"learning_rate": 10**400}})
    response = client.post("/jobs", json=huge)
    assert response.status_code == 422
    assert response.json["error"]["field"] == "training.optimizer.learning_rate"
    weights = {"input_dim": 2, "layers": [{"units": 1, "weights": [[10**400, 0]]}]}
    response = client.post("/jobs", json=_job(dataset_id=xor_id, network=weights))
    assert response.status_code == 422
    assert response.json["error"]["field"] == "network.layers[0].weights[0][0]"


def test_a_last_layer_narrower_or_wider_than_the_targets_gets_an_output_layer(
    client: FlaskClient,
) -> None:
    # Two tanh units before one target column: hidden units, and the regression's
    # identity output (with its loss) comes after them.
    network = {
        "input_dim": 2,
        "layers": [{"units": 3, "activation": "tanh"}, {"units": 2, "activation": "tanh"}],
    }
    job = client.post("/jobs", json=_job(dataset=XOR, network=network))
    assert job.status_code == 202, job.json
    spec = client.get(f"/jobs/{job.json['id']}/spec").json
    assert spec["network"]["layers"][-1] == {"units": 1, "activation": "identity"}
    assert spec["training"]["loss"] == "mse"
