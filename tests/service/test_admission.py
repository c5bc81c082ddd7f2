"""Job admission against the engine's fit rules: the 422 a job gets before it is queued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

import core
from api.admission import Plan, check_table
from api.errors import ApiError
from api.schemas import DatasetCsvQuery
from api.uploads import from_csv
from store.settings import Settings

from .api_helpers import client_for, leftover_jobs_cancelled, post_job, train_in_process

CASES = Path(__file__).parents[1] / "core" / "cases"


def plan(network: dict[str, Any], training: dict[str, Any]) -> Plan:
    spec, config = core.parse_network(network), core.parse_training(training)
    return Plan(spec, config, core.resolve_loss(spec, config))


def spam_table() -> Any:
    # Issue case c02: two class labels, "no" and "yes", in a CSV upload.
    text = (CASES / "c02_binary_strings.csv").read_text()
    return from_csv(text, DatasetCsvQuery(name="spam", target="spam"), max_cells=10_000)


def test_two_classes_train_one_sigmoid_unit() -> None:
    table = spam_table()
    assert table.classes == ["no", "yes"] and table.targets.shape == (6, 2)
    one_unit = {"input_dim": 2, "layers": [{"units": 1, "activation": "sigmoid"}]}
    check_table(plan(one_unit, {"epochs": 5, "loss": "binary_crossentropy"}), table)
    two_units = {"input_dim": 2, "layers": [{"units": 2, "activation": "softmax"}]}
    check_table(plan(two_units, {"epochs": 5}), table)


@pytest.mark.parametrize(
    ("layer", "training", "field", "message"),
    [
        (
            {"units": 3, "activation": "sigmoid"},
            {"epochs": 5},
            "network.layers[0].units",
            "is 3 but the dataset has 2 classes: use 2 (or 1 for two classes)",
        ),
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
    layer: dict[str, Any], training: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ApiError) as info:
        check_table(plan({"input_dim": 2, "layers": [layer]}, training), spam_table())
    assert (info.value.status, info.value.field, str(info.value)) == (422, field, message)


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
