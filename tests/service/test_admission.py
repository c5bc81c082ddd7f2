"""Job admission against the engine's fit rules: the 422 a job gets before it is queued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from store.settings import Settings

from .api_helpers import client_for, leftover_jobs_cancelled, post_job, train_in_process

CASES = Path(__file__).parents[1] / "core" / "cases"


def spam_dataset(client: FlaskClient) -> int:
    # Issue case c02: two class labels, "no" and "yes", in a CSV upload.
    text = (CASES / "c02_binary_strings.csv").read_text()
    response = client.post("/datasets?name=spam&target=spam", data=text, content_type="text/csv")
    assert response.status_code == 201, response.json
    return int(response.json["id"])


def test_two_classes_train_one_sigmoid_unit_or_two_softmax_units(client: FlaskClient) -> None:
    dataset_id = spam_dataset(client)
    one_unit = {"input_dim": 2, "layers": [{"units": 1, "activation": "sigmoid"}]}
    job = post_job(client, dataset_id=dataset_id, network=one_unit, training={"epochs": 5})
    spec = client.get(f"/jobs/{job['id']}/spec").json
    assert spec["network"]["layers"] == [{"units": 1, "activation": "sigmoid"}]
    two_units = {"input_dim": 2, "layers": [{"units": 2, "activation": "softmax"}]}
    job = post_job(client, dataset_id=dataset_id, network=two_units, training={"epochs": 5})
    assert client.get(f"/jobs/{job['id']}/spec").json["network"]["layers"] == two_units["layers"]


def test_hidden_layers_only_get_the_output_layer_the_task_needs(client: FlaskClient) -> None:
    dataset_id = spam_dataset(client)
    hidden = {"layers": [{"units": 3, "activation": "relu"}]}
    job = post_job(client, dataset_id=dataset_id, network=hidden, training={"epochs": 5})
    spec = client.get(f"/jobs/{job['id']}/spec").json
    assert spec["network"] == {
        "input_dim": 2,
        "layers": [{"units": 3, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
    }
    assert spec["training"]["loss"] == "binary_crossentropy"


@pytest.mark.parametrize(
    ("layer", "training", "field", "message"),
    [
        (
            {"units": 1, "activation": "softmax"},
            {"epochs": 5},
            "network.layers[0].units",
            "a softmax over one unit is always 1: use 2 or more units, or sigmoid",
        ),
        (
            {"units": 2, "activation": "softmax"},
            {"epochs": 5, "validation_split": 0.05},
            "training.validation_split",
            "0.05 of 6 samples leaves no validation or no training samples",
        ),
    ],
)
def test_refusals_name_the_field(
    client: FlaskClient, layer: dict[str, Any], training: dict[str, Any], field: str, message: str
) -> None:
    response = client.post(
        "/jobs",
        json={
            "dataset_id": spam_dataset(client),
            "network": {"input_dim": 2, "layers": [layer]},
            "training": training,
        },
    )
    assert response.status_code == 422, response.json
    assert (response.json["error"]["field"], response.json["error"]["message"]) == (field, message)


def test_the_openapi_names_are_the_engine_registries() -> None:
    from api.schemas import Layer, Optimizer, Training
    from core.activations import ACTIVATIONS
    from core.losses import LOSSES
    from core.optimizers import OPTIMIZERS

    def enum(schema: dict[str, Any]) -> list[str]:
        return next(s["enum"] for s in schema.get("anyOf", [schema]) if "enum" in s)

    assert enum(Layer.model_json_schema()["properties"]["activation"]) == list(ACTIVATIONS)
    assert enum(Training.model_json_schema()["properties"]["loss"]) == list(LOSSES)
    assert enum(Training.model_json_schema()["properties"]["optimizer"]) == list(OPTIMIZERS)
    assert enum(Optimizer.model_json_schema()["properties"]["name"]) == list(OPTIMIZERS)


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> Iterator[FlaskClient]:
    with leftover_jobs_cancelled(client_for(service_settings)) as client:
        yield client


def test_c02_through_the_api_answers_class_names(client: FlaskClient) -> None:
    text = (CASES / "c02_binary_strings.csv").read_text()
    response = client.post("/datasets?name=spam&target=spam", data=text, content_type="text/csv")
    assert response.status_code == 201, response.json
    assert response.json["classes"] == ["no", "yes"]
    job = post_job(
        client,
        dataset_id=response.json["id"],
        network={"input_dim": 2, "layers": [{"units": 1, "activation": "sigmoid"}]},
        training={
            "epochs": 500,
            "loss": "binary_crossentropy",
            "batch_size": "full",
            "optimizer": {"name": "adam", "learning_rate": 0.05},
        },
    )
    model_id = train_in_process(job["id"])
    rows = [[0.1, 0.2], [0.2, 0.1], [0.9, 0.8], [0.8, 0.9], [0.15, 0.25], [0.85, 0.75]]
    predicted = client.post(f"/models/{model_id}/predict", json={"inputs": rows}).json
    assert [len(row) for row in predicted["outputs"]] == [1] * 6
    assert predicted["labels"] == ["no", "no", "yes", "yes", "no", "yes"]
