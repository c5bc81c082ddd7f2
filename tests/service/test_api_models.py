"""/models: description, weights, predictions (normalization, labels, limits)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import core
from store.settings import Settings
from tests.core.test_training import CANCER_NETWORK, CANCER_TRAINING

from .api_helpers import (
    IRIS_LIKE,
    SMALL_NET,
    client_for,
    leftover_jobs_cancelled,
    post_dataset,
    post_job,
    stored_model,
    train_in_process,
)
from .processes import ROOT

IRIS_NET = {
    "input_dim": 4,
    "layers": [{"units": 6, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
}
IRIS_TRAINING = {
    "epochs": 300,
    "optimizer": {"name": "adam", "learning_rate": 0.05},
    "normalize": "standardize",
    "batch_size": "full",
}
# Small files from issue reports (the cases list), copied so CI needs nothing beside the clone.
CASES = ROOT / "tests" / "data" / "cases"


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> Iterator[FlaskClient]:
    with leftover_jobs_cancelled(client_for(service_settings)) as client:
        yield client


def _iris_classifier(client: FlaskClient, name: str, text: str) -> dict[str, int]:
    """A softmax classifier trained on standardized inputs of an iris CSV (target `species`)."""
    response = client.post(
        f"/datasets?name={name}&target=species", data=text, content_type="text/csv"
    )
    assert response.status_code == 201, response.json
    dataset = response.json["id"]
    job = post_job(client, dataset_id=dataset, network=IRIS_NET, training=IRIS_TRAINING)
    return {"model": train_in_process(job["id"]), "job": job["id"], "dataset": dataset}


@pytest.fixture(scope="module")
def iris_model(client: FlaskClient) -> dict[str, int]:
    return _iris_classifier(client, "iris", IRIS_LIKE)


@pytest.fixture(scope="module")
def regressor_id(client: FlaskClient) -> int:
    dataset = post_dataset(client, targets=[[0.1], [0.9], [0.9], [0.1]])
    job = post_job(client, dataset_id=dataset["id"], network=SMALL_NET, training={"epochs": 5})
    return train_in_process(job["id"])


def test_get_model(client: FlaskClient, iris_model: dict[str, int]) -> None:
    response = client.get(f"/models/{iris_model['model']}")
    assert response.status_code == 200
    body = response.json
    dataset = client.get(f"/datasets/{iris_model['dataset']}").json
    assert body["id"] == iris_model["model"]
    assert body["job_id"] == iris_model["job"]
    assert body["dataset_id"] == iris_model["dataset"]
    assert body["dataset_sha256"] == dataset["sha256"]
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert body["normalization"]["method"] == "standardize"
    assert len(body["normalization"]["shift"]) == 4
    assert body["spec"]["loss"] == "categorical_crossentropy"
    assert [layer["units"] for layer in body["spec"]["layers"]] == [6, 3]
    assert body["summary"]["epochs_completed"] == 300
    assert client.get("/models/2147483647").status_code == 404


def test_an_early_stopped_model_reports_its_own_epoch(client: FlaskClient) -> None:
    """The summary's losses are the epoch whose weights the model holds (the best
    validation loss), not the last epoch's, when the epochs run out first."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    dataset = post_dataset(
        client, inputs=x.tolist(), targets=[["benign", "malignant"][label] for label in y]
    )
    job = post_job(
        client, dataset_id=dataset["id"], network=CANCER_NETWORK, training=CANCER_TRAINING
    )
    model = client.get(f"/models/{train_in_process(job['id'])}").json
    epochs = client.get(f"/jobs/{job['id']}/epochs?limit=100").json["epochs"]
    val_losses = [epoch["val_loss"] for epoch in epochs]
    best = val_losses.index(min(val_losses))
    assert len(epochs) == 60 and best + 1 < 60 and val_losses[-1] > 1.2 * val_losses[best]
    summary = model["summary"]
    assert summary["stop_reason"] == "max_epochs" and summary["epochs_completed"] == 60
    assert summary["epoch"] == best + 1
    assert summary["val_loss"] == val_losses[best]
    assert summary["val_accuracy"] == epochs[best]["val_accuracy"]
    assert summary["loss"] == epochs[best]["loss"]


def test_weights_are_the_stored_model(client: FlaskClient, iris_model: dict[str, int]) -> None:
    response = client.get(f"/models/{iris_model['model']}/weights")
    assert response.status_code == 200
    weights = response.json
    assert weights == stored_model(iris_model["model"]).to_json()
    assert len(weights["layers"][0]["weights"]) == 6
    assert len(weights["layers"][0]["weights"][0]) == 4
    # The format round-trips through the engine.
    assert core.Model.from_json(weights).classes == weights["classes"]
    assert client.get("/models/2147483647/weights").status_code == 404


def test_predict_a_classifier_applies_the_normalization(
    client: FlaskClient, iris_model: dict[str, int]
) -> None:
    rows = [[5.0, 3.4, 1.5, 0.2], [6.5, 3.0, 4.6, 1.4], [7.0, 3.1, 6.0, 2.2]]
    response = client.post(f"/models/{iris_model['model']}/predict", json={"inputs": rows})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["labels"] == ["setosa", "versicolor", "virginica"]
    outputs = np.array(body["outputs"])
    assert outputs.shape == (3, 3)
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0)

    model = stored_model(iris_model["model"])
    assert model.preprocessor is not None and model.preprocessor.normalizer is not None
    normalizer = model.preprocessor.normalizer
    x = np.array(rows)
    normalized = (x - normalizer.shift) / normalizer.scale
    np.testing.assert_allclose(outputs, model.network.feedforward(normalized), rtol=1e-12)
    assert not np.allclose(outputs, model.network.feedforward(x))


def test_predict_a_regressor_has_no_labels(client: FlaskClient, regressor_id: int) -> None:
    response = client.post(f"/models/{regressor_id}/predict", json={"inputs": [[0, 1], [1, 1]]})
    assert response.status_code == 200
    assert set(response.json) == {"outputs", "output_names"}
    assert response.json["output_names"] == ["y"]
    expected = stored_model(regressor_id).predict(np.array([[0, 1], [1, 1]]))
    np.testing.assert_allclose(response.json["outputs"], expected, rtol=1e-12)


def test_predict_row_limit(service_settings: Settings, regressor_id: int) -> None:
    small = client_for(service_settings, max_predict_rows=2)
    ok = small.post(f"/models/{regressor_id}/predict", json={"inputs": [[0, 1], [1, 1]]})
    assert ok.status_code == 200
    response = small.post(f"/models/{regressor_id}/predict", json={"inputs": [[0, 1]] * 3})
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "limit_exceeded"
    assert error["field"] == "inputs"
    assert "BACKPROP_MAX_PREDICT_ROWS" in error["message"]


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ([[0, 1, 2]], "inputs[0]"),
        ([[0, 1], [1]], "inputs[1]"),
        ([[0, "1"]], "inputs[0][1]"),
    ],
)
def test_predict_input_shape(
    client: FlaskClient, regressor_id: int, inputs: list[list[object]], field: str
) -> None:
    response = client.post(f"/models/{regressor_id}/predict", json={"inputs": inputs})
    assert response.status_code == 422
    assert response.json["error"]["field"] == field


def test_predict_unknown_model(client: FlaskClient) -> None:
    response = client.post("/models/2147483647/predict", json={"inputs": [[0, 1]]})
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_models_are_loaded_once(service_settings: Settings, regressor_id: int) -> None:
    from api.services import KEY

    fresh = client_for(service_settings)
    cache = fresh.application.extensions[KEY].models
    assert len(cache) == 0
    for _ in range(3):
        fresh.post(f"/models/{regressor_id}/predict", json={"inputs": [[0, 1]]})
    assert len(cache) == 1
    assert cache.get(regressor_id, "alice") is cache.get(regressor_id, "alice")


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_predict_with_npy_bodies(client: FlaskClient, iris_model: dict[str, int]) -> None:
    rows = np.array([[5.0, 3.4, 1.5, 0.2], [6.5, 3.0, 4.6, 1.4]])
    url = f"/models/{iris_model['model']}/predict"
    expected = client.post(url, json={"inputs": rows.tolist()}).json

    as_npy = client.post(
        url,
        data=_npy(rows),
        content_type="application/x-npy",
        headers={"Accept": "application/x-npy"},
    )
    assert as_npy.status_code == 200
    assert as_npy.mimetype == "application/x-npy"
    outputs = np.load(io.BytesIO(as_npy.data), allow_pickle=False)
    np.testing.assert_array_equal(outputs, np.array(expected["outputs"]))

    # Without asking for .npy back, the answer is the usual JSON with labels.
    as_json = client.post(url, data=_npy(rows), content_type="application/x-npy")
    assert as_json.json == expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not an array", "body"),
        (_npy(np.zeros((2, 3))), "inputs"),
        (_npy(np.array([["a", "b", "c", "d"]])), "inputs"),
        (_npy(np.array([[1.0, np.nan, 0.0, 0.0]])), "inputs[0]"),
    ],
)
def test_predict_rejects_bad_npy_bodies(
    client: FlaskClient, iris_model: dict[str, int], body: bytes, field: str | None
) -> None:
    response = client.post(
        f"/models/{iris_model['model']}/predict", data=body, content_type="application/x-npy"
    )
    assert 400 <= response.status_code < 500
    assert response.json["error"].get("field") == field


def test_predict_instances_as_lists_and_objects(
    client: FlaskClient, iris_model: dict[str, int]
) -> None:
    url = f"/models/{iris_model['model']}/predict"
    rows = [[5, 3.4, 1.5, 0.2], [7, 3.1, 6, 2.2]]  # integers widen to floats
    expected = client.post(url, json={"inputs": rows}).json
    as_lists = client.post(url, json={"instances": rows}).json
    assert as_lists["outputs"] == as_lists["predictions"] == expected["outputs"]
    assert as_lists["labels"] == expected["labels"] == ["setosa", "virginica"]
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    # Objects may list the features in any order.
    objects = [dict(reversed(list(zip(names, row, strict=True)))) for row in rows]
    assert client.post(url, json={"instances": objects}).json["outputs"] == expected["outputs"]


@pytest.mark.parametrize(
    ("instance", "field"),
    [
        ({"sepal_length": 5, "sepal_width": 3, "petal_length": 1}, "instances[0].petal_width"),
        (
            {"sepal_length": 5, "sepal_width": 3, "petal_length": 1, "petal_width": 0, "color": 1},
            "instances[0].color",
        ),
        ([5, 3, 1], "instances[0]"),
    ],
)
def test_predict_instances_name_the_missing_or_extra_feature(
    client: FlaskClient, iris_model: dict[str, int], instance: object, field: str
) -> None:
    response = client.post(f"/models/{iris_model['model']}/predict", json={"instances": [instance]})
    assert response.status_code == (422 if isinstance(instance, list) else 400)
    assert response.json["error"]["field"] == field


def test_predict_a_csv_body(client: FlaskClient, iris_model: dict[str, int]) -> None:
    url = f"/models/{iris_model['model']}/predict"
    expected = client.post(url, json={"inputs": [[5.0, 3.4, 1.5, 0.2]]}).json
    # Columns in another order than training: matched by name.
    text = "petal_width,petal_length,sepal_width,sepal_length\n0.2,1.5,3.4,5\n"
    answer = client.post(url, data=text, content_type="text/csv")
    assert answer.status_code == 200, answer.json
    assert answer.json == expected
    missing = client.post(url, data="sepal_length,sepal_width\n1,2\n", content_type="text/csv")
    assert missing.status_code == 400 and missing.json["error"]["field"] == "petal_length"
    extra = client.post(
        url,
        data="sepal_length,sepal_width,petal_length,petal_width,x\n1,2,3,4,5\n",
        content_type="text/csv",
    )
    assert extra.status_code == 400 and extra.json["error"]["field"] == "x"


def test_predict_needs_exactly_one_of_inputs_and_instances(
    client: FlaskClient, iris_model: dict[str, int]
) -> None:
    url = f"/models/{iris_model['model']}/predict"
    both = client.post(url, json={"inputs": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]})
    neither = client.post(url, json={})
    for response in (both, neither):
        assert response.status_code == 422 and response.json["error"]["field"] == "inputs"


# --- CSV bodies: the first row is a header only when it names columns ------------


@pytest.fixture(scope="module")
def iris12_model(client: FlaskClient) -> int:
    """The classifier trained on the cases' iris12.csv."""
    return _iris_classifier(client, "iris12", (CASES / "iris12.csv").read_text())["model"]


def _predict_csv(client: FlaskClient, model_id: int, text: str, query: str = "") -> TestResponse:
    return client.post(f"/models/{model_id}/predict{query}", data=text, content_type="text/csv")


def test_a_headerless_csv_keeps_its_first_row(client: FlaskClient, regressor_id: int) -> None:
    # c03: a model trained from JSON has no feature names; all three rows are data.
    text = (CASES / "c03_headerless.csv").read_text()
    assert text == "1,1\n0,1\n2,2\n"
    answer = _predict_csv(client, regressor_id, text)
    assert answer.status_code == 200, answer.json
    expected = client.post(
        f"/models/{regressor_id}/predict", json={"inputs": [[1, 1], [0, 1], [2, 2]]}
    ).json
    assert len(answer.json["outputs"]) == 3
    assert answer.json == expected


def test_a_header_on_a_model_without_names_is_refused(
    client: FlaskClient, regressor_id: int
) -> None:
    # The model was trained from JSON without names: it cannot tell `a,b` from `b,a`,
    # so taking the columns in order could answer for swapped inputs.
    for text in ("foo,bar\n0.05,0.1\n", "bar,foo\n0.1,0.05\n"):
        answer = _predict_csv(client, regressor_id, text)
        assert answer.status_code == 400
        assert answer.json["error"] == {
            "code": "feature_mismatch",
            "message": "line 1 is a header, but this model's dataset had no column names, so "
            "its columns cannot be matched by name; send rows of numbers in the model's input "
            "order without a header, or pass ?header=absent if the first row is data",
            "field": "header",
        }
    told = _predict_csv(client, regressor_id, "1,2\n0,1\n", "?header=present")
    assert told.status_code == 400 and told.json["error"]["field"] == "header"


@pytest.fixture(scope="module")
def numbered_model(client: FlaskClient) -> int:
    """A model whose two features are named "1" and "2"."""
    dataset = post_dataset(client, targets=[[0.1], [0.9], [0.9], [0.1]], feature_names=["1", "2"])
    job = post_job(client, dataset_id=dataset["id"], network=SMALL_NET, training={"epochs": 5})
    return train_in_process(job["id"])


def test_the_header_query_flag_overrides_the_guess(
    client: FlaskClient, regressor_id: int, numbered_model: int
) -> None:
    # Columns named by numbers: with header=present the first row is their names,
    # here in the other order.
    present = _predict_csv(client, numbered_model, "2,1\n0,1\n2,2\n", "?header=present")
    assert present.status_code == 200, present.json
    url = f"/models/{numbered_model}/predict"
    assert present.json == client.post(url, json={"inputs": [[1, 0], [2, 2]]}).json
    url = f"/models/{regressor_id}/predict"
    absent = _predict_csv(client, regressor_id, "1,2\n0,1\n", "?header=absent")
    assert absent.json == client.post(url, json={"inputs": [[1, 2], [0, 1]]}).json
    names = _predict_csv(client, regressor_id, "a,b\n0,1\n", "?header=absent")
    assert names.status_code == 422
    assert names.json["error"]["message"] == "line 1, column 1: expected a number, got 'a'"


def test_a_first_row_that_mixes_numbers_and_names_is_refused(
    client: FlaskClient, regressor_id: int
) -> None:
    answer = _predict_csv(client, regressor_id, "1,b\n0,1\n")
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "header"
    assert "line 1" in answer.json["error"]["message"]
    assert "header=present" in answer.json["error"]["message"]


def test_a_headerless_csv_on_a_model_with_names(client: FlaskClient, iris12_model: int) -> None:
    # Rows of numbers only: data in the model's input order, none dropped.
    text = "6.4,3.2,4.5,1.5\n5.1,3.5,1.4,0.2\n"
    answer = _predict_csv(client, iris12_model, text)
    assert answer.status_code == 200, answer.json
    rows = [[6.4, 3.2, 4.5, 1.5], [5.1, 3.5, 1.4, 0.2]]
    expected = client.post(f"/models/{iris12_model}/predict", json={"inputs": rows})
    assert answer.json == expected.json
    assert answer.json["labels"] == ["versicolor", "setosa"]
    narrow = _predict_csv(client, iris12_model, "6.4,3.2,4.5\n")
    assert narrow.status_code == 422
    assert narrow.json["error"] == {
        "code": "validation_error",
        "message": "line 1: expected 4 values, got 3",
        "field": "body",
    }


def test_the_training_csv_with_its_target_column_predicts(
    client: FlaskClient, iris12_model: int
) -> None:
    # c16: the target column of the training data is ignored, wherever it stands.
    answer = _predict_csv(client, iris12_model, (CASES / "c16_with_target.csv").read_text())
    assert answer.status_code == 200, answer.json
    row = [6.4, 3.2, 4.5, 1.5]
    expected = client.post(f"/models/{iris12_model}/predict", json={"inputs": [row]})
    assert answer.json == expected.json
    assert answer.json["labels"] == ["versicolor"]
    first = _predict_csv(
        client,
        iris12_model,
        "species,sepal_length,sepal_width,petal_length,petal_width\nsetosa,6.4,3.2,4.5,1.5\n",
    )
    assert first.json == expected.json


def test_the_target_column_is_known_after_its_dataset_is_deleted(
    client: FlaskClient, service_settings: Settings
) -> None:
    trained = _iris_classifier(client, "iris12-deleted", (CASES / "iris12.csv").read_text())
    assert client.delete(f"/datasets/{trained['dataset']}").status_code == 204
    assert client.get(f"/models/{trained['model']}").json["spec"]["target_names"] == ["species"]
    fresh = client_for(service_settings)  # an app whose model cache has never seen it
    answer = _predict_csv(fresh, trained["model"], (CASES / "c16_with_target.csv").read_text())
    assert answer.status_code == 200, answer.json
    assert answer.json["labels"] == ["versicolor"]


def test_another_extra_column_is_refused_by_name(client: FlaskClient, iris12_model: int) -> None:
    answer = _predict_csv(client, iris12_model, (CASES / "c16_extra_column.csv").read_text())
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "feature_mismatch"
    assert answer.json["error"] == {
        "code": "feature_mismatch",
        "message": "line 1: unknown column 'id'; the model takes "
        "sepal_length, sepal_width, petal_length, petal_width",
        "field": "id",
    }


def test_a_bad_cell_is_named_by_line_and_column(client: FlaskClient, iris12_model: int) -> None:
    text = "petal_width,petal_length,sepal_width,sepal_length\n0.2,1.4,3.5,5.1\n1.5,x,3.2,6.4\n"
    answer = _predict_csv(client, iris12_model, text)
    assert answer.status_code == 422
    assert answer.json["error"] == {
        "code": "validation_error",
        "message": "line 3, column 2: expected a number, got 'x'",
        "field": "petal_length",
    }
    twice = _predict_csv(
        client,
        iris12_model,
        "sepal_length,sepal_length,sepal_width,petal_length,petal_width\n1,1,2,3,4\n",
    )
    assert twice.status_code == 422 and twice.json["error"]["field"] == "sepal_length"


def test_an_instance_may_carry_its_target(client: FlaskClient, iris12_model: int) -> None:
    # As in CSV: a record of the training data, label included, predicts.
    url = f"/models/{iris12_model}/predict"
    flower = {"sepal_length": 6.4, "sepal_width": 3.2, "petal_length": 4.5, "petal_width": 1.5}
    answer = client.post(url, json={"instances": [{**flower, "species": "setosa"}]})
    assert answer.status_code == 200, answer.json
    assert answer.json["labels"] == ["versicolor"]
    assert answer.json == client.post(url, json={"instances": [flower]}).json
    other = client.post(url, json={"instances": [{**flower, "id": 7}]})
    assert other.status_code == 400 and other.json["error"]["field"] == "instances[0].id"
    word = client.post(url, json={"instances": [{**flower, "sepal_length": "long"}]})
    assert word.status_code == 422
    assert word.json["error"] == {
        "code": "validation_error",
        "message": "expected a number, got 'long'",
        "field": "instances[0].sepal_length",
    }


# --- CSV rows: each one answered or refused, never dropped -----------------------

IRIS_HEADER = "sepal_length,sepal_width,petal_length,petal_width"


@pytest.mark.parametrize(
    ("text", "message", "field"),
    [
        (
            f"{IRIS_HEADER}\n6.4,3.2,4.5,1.5\n \t \n5.1,3.5,1.4,0.2",
            "line 3: expected 4 values, got 1",
            "body",
        ),
        (
            "6.4,3.2,4.5,1.5,\n5.1,3.5,1.4,0.2",
            "line 1: expected 4 values, got 5",
            "body",
        ),
        (
            "6.4,3.2,4.5,1.5\n5.1,3.5,1_4,0.2",
            "line 2, column 3: expected a plain decimal number (digits, a point, an exponent), "
            "got '1_4'",
            "petal_length",
        ),
        (
            # Not a header with a name `1_0`: a first row of data with a mistyped number.
            "6.4,1_0,4.5,1.5\n5.1,3.5,1.4,0.2",
            "line 1, column 2: expected a plain decimal number (digits, a point, an exponent), "
            "got '1_0'",
            "sepal_width",
        ),
        (
            "6.4,3.2,4.5,1.5\n5.1,infinity,1.4,0.2",
            "line 2, column 2: must be finite, got 'infinity'",
            "sepal_width",
        ),
        (
            f"{IRIS_HEADER},sepal_length\n1,2,3,4,5",
            "line 1: the column name 'sepal_length' appears twice",
            "sepal_length",
        ),
    ],
)
def test_a_csv_row_with_missing_or_malformed_cells_is_refused(
    client: FlaskClient, iris12_model: int, text: str, message: str, field: str
) -> None:
    answer = _predict_csv(client, iris12_model, text)
    assert answer.status_code == 422
    assert answer.json["error"] == {"code": "validation_error", "message": message, "field": field}


def test_a_csv_with_cr_line_ends_predicts_every_row(client: FlaskClient, iris12_model: int) -> None:
    text = f"{IRIS_HEADER}\r6.4,3.2,4.5,1.5\r\r5.1,3.5,1.4,0.2\r"
    answer = _predict_csv(client, iris12_model, text)
    assert answer.status_code == 200, answer.json
    assert answer.json["labels"] == ["versicolor", "setosa"]


def test_an_empty_batch_answers_no_rows_in_every_form(
    client: FlaskClient, iris_model: dict[str, int]
) -> None:
    url = f"/models/{iris_model['model']}/predict"
    header = "sepal_length,sepal_width,petal_length,petal_width\n"
    answers = [
        client.post(url, json={"inputs": []}),
        client.post(url, json={"instances": []}),
        client.post(url, data=_npy(np.zeros((0, 4))), content_type="application/x-npy"),
        client.post(url, data=header, content_type="text/csv"),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.json
        assert answer.json["outputs"] == [] and answer.json["labels"] == []


def test_gaps_in_predict_rows_are_imputed_as_in_training(
    client: FlaskClient, iris12_model: int
) -> None:
    url = f"/models/{iris12_model}/predict"
    model = stored_model(iris12_model)
    assert model.preprocessor is not None
    fill = model.preprocessor.to_json()["columns"][2]["fill"]  # petal_length's median
    text = f"{IRIS_HEADER}\n6.4,3.2,4.5,1.5\n5.1,3.5,,0.2\n5.1,3.5,NA,0.2\n"
    answer = _predict_csv(client, iris12_model, text)
    assert answer.status_code == 200, answer.json
    filled = [[6.4, 3.2, 4.5, 1.5], [5.1, 3.5, fill, 0.2], [5.1, 3.5, fill, 0.2]]
    assert answer.json == client.post(url, json={"inputs": filled}).json
