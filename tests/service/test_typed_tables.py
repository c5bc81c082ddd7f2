"""The table inputs users reported, through HTTP, each with its right value: class codes,
semicolons with decimal commas, tabs, Windows-1252, multilabel targets, unseen
categories, held-out metrics, the resolved spec, warm starts and raw-record predicts."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from flask.testing import FlaskClient

from store.settings import Settings

from .api_helpers import (
    client_for,
    leftover_jobs_cancelled,
    post_job,
    stored_frame,
    stored_model,
    train_in_process,
)


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> Iterator[FlaskClient]:
    with leftover_jobs_cancelled(client_for(service_settings)) as client:
        yield client


def upload(client: FlaskClient, query: str, body: str | bytes, kind: str = "text/csv") -> Any:
    response = client.post(f"/datasets?name=t&{query}", data=body, content_type=kind)
    assert response.status_code == 201, response.json
    return response.json


HIDDEN = {"layers": [{"units": 8, "activation": "tanh"}]}


def test_numeric_class_codes_with_task_classification_train_a_three_class_softmax(
    client: FlaskClient,
) -> None:
    rows = [(x, 1 if x < 3 else 2 if x < 6 else 3) for x in range(9)]
    text = "x,grade\n" + "".join(f"{x},{c}\n" for x, c in rows)
    as_numbers = upload(client, "target=grade", text)
    assert as_numbers["task"] == "regression" and as_numbers["classes"] is None
    dataset = upload(client, "target=grade&task=classification", text)
    assert dataset["task"] == "classification" and dataset["classes"] == ["1", "2", "3"]
    job = post_job(client, dataset_id=dataset["id"], network=HIDDEN, training={"epochs": 5})
    spec = client.get(f"/jobs/{job['id']}/spec").json
    assert spec["network"]["layers"][-1] == {"units": 3, "activation": "softmax"}
    assert spec["training"]["loss"] == "categorical_crossentropy"
    model_id = train_in_process(job["id"])
    answer = client.post(f"/models/{model_id}/predict", json={"instances": [{"x": 1}]}).json
    assert answer["output_names"] == ["1", "2", "3"] and answer["labels"][0] in ("1", "2", "3")


def test_a_semicolon_file_with_decimal_commas_loads_the_right_numbers(client: FlaskClient) -> None:
    text = "größe;gewicht;klasse\n1,5;70,25;a\n2,0;80;b\n-0,5;1e3;a\n"
    dataset = upload(client, "target=klasse&decimal=,", text.encode())
    frame = stored_frame(dataset["id"])
    assert frame["größe"].values.tolist() == [1.5, 2.0, -0.5]
    assert frame["gewicht"].values.tolist() == [70.25, 80.0, 1000.0]
    # Without decimal=, the comma cells are refused with the hint, not read as text.
    refused = client.post("/datasets?name=t&target=klasse", data=text, content_type="text/csv")
    assert refused.status_code == 422
    assert "decimal=," in refused.json["error"]["message"]


def test_a_tab_separated_file_loads(client: FlaskClient) -> None:
    text = "a\tb\ty\n1.5\t2\tno\n3\t4.25\tyes\n"
    for kind in ("text/tab-separated-values", "text/csv"):
        dataset = upload(client, "target=y", text, kind)
        frame = stored_frame(dataset["id"])
        assert frame["a"].values.tolist() == [1.5, 3.0] and frame["b"].values.tolist() == [2, 4.25]
        assert dataset["classes"] == ["no", "yes"]


def test_a_windows_1252_file_loads_when_declared(client: FlaskClient) -> None:
    body = "city;temp;rain\nZürich;1,5;ja\nMálaga;20,5;nein\nKöln;3;ja\n".encode("windows-1252")
    undeclared = client.post(
        "/datasets?name=t&target=rain&decimal=,", data=body, content_type="text/csv"
    )
    assert undeclared.status_code == 422
    assert undeclared.json["error"]["message"].startswith("line 2, column 1: ")
    dataset = upload(client, "target=rain&decimal=,", body, "text/csv; charset=windows-1252")
    frame = stored_frame(dataset["id"])
    assert frame["city"].labels() == ["Zürich", "Málaga", "Köln"]
    assert frame["temp"].values.tolist() == [1.5, 20.5, 3.0]


def test_multilabel_targets_get_one_indicator_list_per_row(client: FlaskClient) -> None:
    text = "a,b,first input,second input\n0,0,0,0\n0,1,0,1\n1,0,1,0\n1,1,1,1\n"
    dataset = upload(client, "target=first input,second input", text)
    assert dataset["task"] == "multilabel"
    job = post_job(
        client,
        dataset_id=dataset["id"],
        network={"layers": [{"units": 4, "activation": "tanh"}]},
        training={
            "epochs": 300,
            "batch_size": "full",
            "optimizer": {"name": "adam", "learning_rate": 0.1},
            "stop_when_all_correct": True,
        },
    )
    spec = client.get(f"/jobs/{job['id']}/spec").json
    assert spec["network"]["layers"][-1] == {"units": 2, "activation": "sigmoid"}
    assert spec["training"]["loss"] == "binary_crossentropy"
    model_id = train_in_process(job["id"])
    rows = [[0, 0], [0, 1], [1, 0], [1, 1]]
    answer = client.post(f"/models/{model_id}/predict", json={"inputs": rows}).json
    assert answer["labels"] == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert answer["output_names"] == ["first input", "second input"]
    # all correct means every label of every row (subset accuracy), as it stopped on
    job_body = client.get(f"/jobs/{job['id']}").json
    assert job_body["stop_reason"] == "all_correct"


def test_validation_accuracy_of_multilabel_rows_is_subset_accuracy(client: FlaskClient) -> None:
    # Rows whose two labels are right count; one label right of two does not.
    from core.losses import count_correct

    outputs = np.array([[0.9, 0.1], [0.9, 0.9], [0.2, 0.2]])
    targets = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    assert count_correct(outputs, targets, multilabel=True) == 2
    assert count_correct(outputs, targets) == 3  # argmax would count the wrong row


PENGUINS_LIKE = (
    "island,mass,species\n"
    + "Biscoe,4.5,Gentoo\nBiscoe,4.7,Gentoo\nBiscoe,5.0,Gentoo\nBiscoe,4.9,Gentoo\n"
    + "Dream,3.7,Chinstrap\nDream,3.8,Chinstrap\nDream,3.6,Chinstrap\nDream,,Chinstrap\n"
)


@pytest.mark.parametrize("unknown", ["ignore", "error"])
def test_an_unseen_category_encodes_as_zeros_or_is_a_400(client: FlaskClient, unknown: str) -> None:
    dataset = upload(client, "target=species", PENGUINS_LIKE)
    job = post_job(
        client,
        dataset_id=dataset["id"],
        network=HIDDEN,
        training={"epochs": 20, "normalize": "standardize", "preprocess": {"unknown": unknown}},
    )
    model_id = train_in_process(job["id"])
    url = f"/models/{model_id}/predict"
    unseen = client.post(url, json={"instances": [{"island": "Torgersen", "mass": 4.0}]})
    if unknown == "error":
        assert unseen.status_code == 400
        assert unseen.json["error"]["field"] == "island"
        assert "'Torgersen'" in unseen.json["error"]["message"]
        return
    assert unseen.status_code == 200, unseen.json
    model = stored_model(model_id)
    assert model.preprocessor is not None
    names = model.preprocessor.output_names
    encoded = model.preprocessor.transform(
        stored_frame(dataset["id"]).take([0]).select(["island", "mass"])
    )
    zeros = np.array(encoded, copy=True)
    zeros[0, [names.index("island=Biscoe"), names.index("island=Dream")]] = 0.0
    zeros[0, names.index("mass")] = (4.0 - model.preprocessor.normalizer.shift[0]) / (
        model.preprocessor.normalizer.scale[0]
    )
    expected = model.network.feedforward(zeros)
    np.testing.assert_allclose(unseen.json["outputs"], expected, rtol=1e-12)
    # A missing mass is imputed with the training rows' median.
    gap = client.post(url, json={"instances": [{"island": "Dream", "mass": None}]})
    assert gap.status_code == 200, gap.json


def test_held_out_metrics_are_stored_on_the_model(client: FlaskClient) -> None:
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).frame
    iris["target"] = iris["target"].map(dict(enumerate(["setosa", "versicolor", "virginica"])))
    dataset = upload(client, "target=target", iris.to_csv(index=False))
    job = post_job(
        client,
        dataset_id=dataset["id"],
        network={"layers": [{"units": 16, "activation": "relu"}]},
        training={
            "epochs": 100,
            "optimizer": "adam",
            "normalize": "standardize",
            "test_split": 0.2,
        },
    )
    model = client.get(f"/models/{train_in_process(job['id'])}").json
    metrics = model["metrics"]
    assert metrics["task"] == "classification" and metrics["n_samples"] == 30
    assert metrics["split"] == "test"
    # stratified: ten of each class held out
    assert [row["support"] for row in metrics["per_class"]] == [10, 10, 10]
    assert sum(map(sum, metrics["confusion_matrix"]["matrix"])) == 30
    assert metrics["accuracy"] > 0.8
    assert metrics["roc_auc"] is None  # three classes


def test_predict_and_evaluate_on_raw_records_csv_and_parquet(client: FlaskClient) -> None:
    dataset = upload(client, "target=species", PENGUINS_LIKE)
    job = post_job(client, dataset_id=dataset["id"], network=HIDDEN, training={"epochs": 30})
    model_id = train_in_process(job["id"])
    url = f"/models/{model_id}/predict"
    records = [{"island": "Biscoe", "mass": 4.6}, {"island": "Dream", "mass": None}]
    by_records = client.post(url, json={"instances": records, "signature_name": "serving_default"})
    assert by_records.status_code == 200, by_records.json
    by_columns = client.post(
        url, json={"inputs": {"island": ["Biscoe", "Dream"], "mass": [4.6, None]}}
    )
    assert by_columns.json["outputs"] == by_records.json["outputs"]
    by_csv = client.post(url, data="mass,island\n4.6,Biscoe\n,Dream\n", content_type="text/csv")
    assert by_csv.json["outputs"] == by_records.json["outputs"]
    table = pa.table({"island": ["Biscoe", "Dream"], "mass": [4.6, None]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    by_parquet = client.post(
        url, data=buffer.getvalue(), content_type="application/vnd.apache.parquet"
    )
    assert by_parquet.status_code == 200, by_parquet.json
    assert by_parquet.json["outputs"] == by_records.json["outputs"]
    # The training CSV itself predicts: its target column is ignored.
    training = client.post(url, data=PENGUINS_LIKE, content_type="text/csv")
    assert training.status_code == 200 and len(training.json["outputs"]) == 8
    scored = client.post(
        f"/models/{model_id}/evaluate", data=PENGUINS_LIKE, content_type="text/csv"
    )
    assert scored.status_code == 200, scored.json
    assert scored.json["n_samples"] == 8 and scored.json["split"] == "given"
    by_id = client.post(f"/models/{model_id}/evaluate", json={"dataset_id": dataset["id"]})
    assert by_id.json == scored.json


def test_a_job_starts_from_a_trained_model(client: FlaskClient) -> None:
    dataset = upload(client, "target=species", PENGUINS_LIKE)
    first = post_job(client, dataset_id=dataset["id"], network=HIDDEN, training={"epochs": 10})
    first_model = train_in_process(first["id"])
    warm = post_job(
        client, dataset_id=dataset["id"], init_from_model=first_model, training={"epochs": 1}
    )
    spec = client.get(f"/jobs/{warm['id']}/spec").json
    weights = client.get(f"/models/{first_model}/weights").json
    assert spec["network"]["layers"][0]["weights"] == weights["layers"][0]["weights"]
    second = stored_model(train_in_process(warm["id"]))
    assert second.preprocessor is not None
    assert second.preprocessor.to_json() == stored_model(first_model).preprocessor.to_json()  # type: ignore[union-attr]
    # The weights document is a network spec as it is.
    again = post_job(client, dataset_id=dataset["id"], network=weights, training={"epochs": 1})
    assert again["status"] == "queued"
    missing = client.post(
        "/jobs",
        json={
            "dataset_id": dataset["id"],
            "init_from_model": 2147483647,
            "training": {"epochs": 1},
        },
    )
    assert missing.status_code == 422 and missing.json["error"]["field"] == "init_from_model"


# --- found by trying the service as a user -----------------------------------------


def test_evaluate_refuses_multilabel_targets_that_are_not_0_or_1(client: FlaskClient) -> None:
    text = "a,b,first,second\n0,0,0,0\n0,1,0,1\n1,0,1,0\n1,1,1,1\n"
    dataset = upload(client, "target=first,second", text)
    job = post_job(client, dataset_id=dataset["id"], network=HIDDEN, training={"epochs": 2})
    model_id = train_in_process(job["id"])
    for cell in ("2", "0.5", "yes"):
        body = f"a,b,first,second\n0,0,0,{cell}\n"
        scored = client.post(f"/models/{model_id}/evaluate", data=body, content_type="text/csv")
        assert scored.status_code == 422, scored.json
        assert scored.json["error"]["field"] == "second"


def test_a_category_only_in_the_test_rows_is_scored_as_zeros(client: FlaskClient) -> None:
    rows = [("a" if i % 2 else "b", i % 7, i % 2) for i in range(59)] + [("solo", 3, 1)]
    text = "c,x,y\n" + "".join(f"{c},{x},{y}\n" for c, x, y in rows)
    dataset = upload(client, "target=y&task=classification", text)
    for seed in range(4):
        job = post_job(
            client,
            dataset_id=dataset["id"],
            network=HIDDEN,
            training={
                "epochs": 3,
                "seed": seed,
                "test_split": 0.5,
                "preprocess": {"unknown": "error"},
            },
        )
        model = client.get(f"/models/{train_in_process(job['id'])}").json
        assert model["metrics"]["n_samples"] == 30


def test_the_weights_document_keeps_its_preprocessing(client: FlaskClient) -> None:
    dataset = upload(client, "target=species", PENGUINS_LIKE)
    training = {"epochs": 20, "normalize": "standardize"}
    first = train_in_process(
        post_job(client, dataset_id=dataset["id"], network=HIDDEN, training=training)["id"]
    )
    weights = client.get(f"/models/{first}/weights").json
    # A learning rate of zero keeps the weights: the same model must come back.
    frozen = {"epochs": 1, "optimizer": {"name": "sgd", "learning_rate": 1e-300}}
    again = train_in_process(
        post_job(client, dataset_id=dataset["id"], network=weights, training=frozen)["id"]
    )
    records = [{"island": "Biscoe", "mass": 4.6}, {"island": "Dream", "mass": 3.2}]
    answers = [
        client.post(f"/models/{m}/predict", json={"instances": records}).json
        for m in (first, again)
    ]
    np.testing.assert_allclose(answers[0]["outputs"], answers[1]["outputs"], rtol=1e-9)
    # The document of a model trained on arrays carries a normalization a table job
    # cannot apply: refused rather than dropped.
    arrays = {"inputs": [[0, 0], [0, 1], [1, 0], [1, 1]], "targets": [0, 1, 1, 0]}
    xor = client.post("/datasets", json={"name": "xor", **arrays}).json
    document = {**weights, "preprocess": None, "normalization": {"method": "standardize"}}
    refused = client.post(
        "/jobs", json={"dataset_id": xor["id"], "network": document, "training": frozen}
    )
    assert refused.status_code == 422
    assert refused.json["error"]["field"] == "network.normalization"


def test_numeric_category_codes_match_by_value(client: FlaskClient) -> None:
    text = "code,x,y\n" + "".join(f"{c}.0,{i % 3},{c % 2}\n" for i, c in enumerate([1, 2, 3] * 8))
    dataset = upload(client, "target=y&categorical=code", text)
    job = post_job(client, dataset_id=dataset["id"], network=HIDDEN, training={"epochs": 5})
    url = f"/models/{train_in_process(job['id'])}/predict"
    written = [{"code": "2.0", "x": 0}]
    expected = client.post(url, json={"instances": written}).json["outputs"]
    for code in (2, 2.0, "2"):
        answer = client.post(url, json={"instances": [{"code": code, "x": 0}]}).json
        assert answer["outputs"] == expected, code
    unseen = client.post(url, json={"instances": [{"code": 4, "x": 0}]}).json["outputs"]
    assert unseen != expected


def test_columns_named_by_numbers_are_a_header(client: FlaskClient) -> None:
    text = "2019,2020,y\n" + "".join(f"{i},{2 * i % 5},{i % 3}\n" for i in range(12))
    dataset = upload(client, "target=y", text)
    job = post_job(client, dataset_id=dataset["id"], network=HIDDEN, training={"epochs": 5})
    url = f"/models/{train_in_process(job['id'])}/predict"
    swapped = client.post(url, data="2020,2019\n1,0\n", content_type="text/csv").json
    assert len(swapped["outputs"]) == 1
    assert swapped == client.post(url, json={"inputs": [[0, 1]]}).json


def test_columns_ignored_at_upload_are_skipped_at_predict(client: FlaskClient) -> None:
    names = [f"passenger {i}" for i in range(30)]
    text = ",name,age,sex,survived\n" + "".join(
        f"{i},{names[i]},{20 + i},{'male' if i % 2 else 'female'},{i % 3 == 0}\n" for i in range(30)
    )
    dataset = upload(client, "target=survived&ignore=age", text)
    kinds = {c["name"]: c["type"] for c in dataset["profile"]["columns"]}
    assert kinds == {
        "": "ignored",
        "name": "ignored",
        "age": "ignored",
        "sex": "category",
        "survived": "category",
    }
    job = post_job(client, dataset_id=dataset["id"], network=HIDDEN, training={"epochs": 5})
    url = f"/models/{train_in_process(job['id'])}/predict"
    lines = text.splitlines()
    some = "\n".join([lines[0], lines[3], lines[4]]) + "\n"
    answer = client.post(url, data=some, content_type="text/csv")
    assert answer.status_code == 200, answer.json
    assert len(answer.json["outputs"]) == 2
    record = {"name": "x", "age": 3, "sex": "male", "survived": True}
    assert client.post(url, json={"instances": [record]}).status_code == 200


def test_a_feature_that_counts_up_is_kept(client: FlaskClient) -> None:
    text = "step,y\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(30))
    dataset = upload(client, "target=y", text)
    assert dataset["feature_names"] == ["step"]


def test_a_relu_layer_as_wide_as_the_classes_is_hidden(client: FlaskClient) -> None:
    dataset = upload(client, "target=species", PENGUINS_LIKE + "Torgersen,3.9,Adelie\n")
    job = post_job(
        client,
        dataset_id=dataset["id"],
        network={"layers": [{"units": 3, "activation": "relu"}]},
        training={"epochs": 2},
    )
    spec = client.get(f"/jobs/{job['id']}/spec").json
    assert spec["network"]["layers"][-1] == {"units": 3, "activation": "softmax"}


def test_a_bounded_output_cannot_fit_large_targets(client: FlaskClient) -> None:
    text = "x,price\n" + "".join(f"{i},{100000 + 5000 * i}\n" for i in range(10))
    dataset = upload(client, "target=price", text)
    refused = client.post(
        "/jobs",
        json={
            "dataset_id": dataset["id"],
            "network": {"layers": [{"units": 1, "activation": "tanh"}]},
            "training": {"epochs": 2},
        },
    )
    assert refused.status_code == 422
    assert refused.json["error"]["field"] == "dataset_id"
    assert "tanh output reaches only [-1, 1]" in refused.json["error"]["message"]


def test_class_codes_are_ordered_by_value(client: FlaskClient) -> None:
    text = "x,grade\n" + "".join(f"{i},{[1, 2, 10][i % 3]}\n" for i in range(9))
    dataset = upload(client, "target=grade&task=classification", text)
    assert dataset["classes"] == ["1", "2", "10"]
    job = post_job(client, dataset_id=dataset["id"], network=HIDDEN, training={"epochs": 2})
    answer = client.post(
        f"/models/{train_in_process(job['id'])}/predict", json={"inputs": [[1]]}
    ).json
    assert answer["output_names"] == ["1", "2", "10"]
