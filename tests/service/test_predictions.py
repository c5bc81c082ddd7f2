"""Batch prediction jobs: queued for a model and a stored dataset, run by the
worker's own attempt, their outputs the same as the predict endpoint's.

The jobs run in this process through ``worker.training.run_job`` (the function a
worker's task calls); the fault scenarios with real worker processes are in
test_prediction_faults.py.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from flask.testing import FlaskClient

from store import JobStatus, Session, storage
from store import queries as q
from store.settings import Settings, load_settings
from worker.training import run_job

from .api_helpers import IRIS_LIKE, client_for, leftover_jobs_cancelled, post_job

IRIS_NET = {"layers": [{"units": 6, "activation": "tanh"}]}
IRIS_TRAINING = {
    "epochs": 60,
    "batch_size": 4,
    "optimizer": {"name": "adam", "learning_rate": 0.05},
    "normalize": "standardize",
    "seed": 1,
}
HOUSES = """rooms,area,district,price
3,70.5,north,210.0
4,95.0,south,260.5
2,48.0,north,150.0
5,120.0,east,330.0
3,,south,205.0
4,88.0,east,251.0
"""


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> Iterator[FlaskClient]:
    with leftover_jobs_cancelled(client_for(service_settings)) as client:
        yield client


def upload(client: FlaskClient, text: str, target: str) -> int:
    response = client.post(f"/datasets?name=t&target={target}", data=text, content_type="text/csv")
    assert response.status_code == 201, response.json
    return int(response.json["id"])  # type: ignore[index]


def train(client: FlaskClient, dataset: int, network: dict, training: dict) -> int:
    job = post_job(client, dataset_id=dataset, network=network, training=training)
    run_job(job["id"], load_settings())
    answer = client.get(f"/jobs/{job['id']}").json
    assert answer is not None and answer["status"] == "succeeded", answer
    return int(answer["model_id"])


@pytest.fixture(scope="module")
def iris(client: FlaskClient) -> dict[str, int]:
    dataset = upload(client, IRIS_LIKE, "species")
    return {"dataset": dataset, "model": train(client, dataset, IRIS_NET, IRIS_TRAINING)}


def run_prediction(client: FlaskClient, model: int, dataset: int) -> dict:
    response = client.post(f"/models/{model}/predictions", json={"dataset_id": dataset})
    assert response.status_code == 202, response.json
    created = response.json
    assert created is not None
    assert response.headers["Location"] == f"/predictions/{created['id']}"
    assert created["status"] == "queued" and created["result"] is None
    run_job(created["id"], load_settings())
    answer = client.get(f"/predictions/{created['id']}").json
    assert answer is not None
    return answer


def test_a_classifier_predicts_every_row_as_the_predict_endpoint_does(
    client: FlaskClient, iris: dict[str, int]
) -> None:
    answer = run_prediction(client, iris["model"], iris["dataset"])
    assert answer["status"] == "succeeded", answer
    assert answer["rows_total"] == answer["rows_done"] == 9
    assert answer["result"] == f"/predictions/{answer['id']}/result"

    parquet = client.get(answer["result"])
    assert parquet.status_code == 200
    assert parquet.mimetype == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(parquet.data))
    direct = client.post(
        f"/models/{iris['model']}/predict", data=IRIS_LIKE, content_type="text/csv"
    ).json
    assert direct is not None
    names = direct["output_names"]
    assert table.column_names == [*names, "label"]
    outputs = np.column_stack([table.column(n).to_numpy() for n in names])
    np.testing.assert_array_equal(outputs, np.asarray(direct["outputs"]))
    assert table.column("label").to_pylist() == direct["labels"]

    csv = client.get(f"{answer['result']}?format=csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    from_csv = pcsv.read_csv(io.BytesIO(csv.data))
    assert from_csv.column("label").to_pylist() == direct["labels"]
    np.testing.assert_allclose(
        np.column_stack([from_csv.column(n).to_numpy() for n in names]),
        outputs,
        rtol=1e-15,
    )


def test_a_regressor_names_its_outputs_by_target_and_imputes_as_in_training(
    client: FlaskClient,
) -> None:
    dataset = upload(client, HOUSES, "price")
    model = train(
        client,
        dataset,
        {"layers": [{"units": 4, "activation": "tanh"}]},
        {"epochs": 30, "batch_size": 2, "seed": 2},
    )
    answer = run_prediction(client, model, dataset)
    assert answer["status"] == "succeeded", answer
    table = pq.read_table(io.BytesIO(client.get(answer["result"]).data))
    assert table.column_names == ["price"]
    direct = client.post(f"/models/{model}/predict", data=HOUSES, content_type="text/csv").json
    assert direct is not None
    np.testing.assert_array_equal(
        table.column("price").to_numpy(), np.asarray(direct["outputs"])[:, 0]
    )


def test_the_result_is_refused_until_the_job_has_succeeded_and_a_queued_job_cancels(
    client: FlaskClient, iris: dict[str, int]
) -> None:
    created = client.post(
        f"/models/{iris['model']}/predictions", json={"dataset_id": iris["dataset"]}
    ).json
    assert created is not None
    early = client.get(f"/predictions/{created['id']}/result")
    assert early.status_code == 409 and "queued" in early.json["error"]["message"]
    cancelled = client.post(f"/predictions/{created['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json["status"] == "cancelled"
    again = client.post(f"/predictions/{created['id']}/cancel")
    assert again.status_code == 409
    # The worker's attempt leaves a cancelled job alone.
    run_job(created["id"], load_settings())
    assert client.get(f"/predictions/{created['id']}").json["status"] == "cancelled"


def test_predictions_and_training_jobs_are_kept_apart(
    client: FlaskClient, iris: dict[str, int]
) -> None:
    answer = run_prediction(client, iris["model"], iris["dataset"])
    assert client.get(f"/jobs/{answer['id']}").status_code == 404
    listed = client.get("/predictions").json
    assert listed is not None and answer["id"] in [p["id"] for p in listed["predictions"]]
    jobs = client.get("/jobs?limit=500").json
    assert jobs is not None and answer["id"] not in [j["id"] for j in jobs["jobs"]]


def test_another_owner_sees_no_prediction(
    service_settings: Settings, client: FlaskClient, iris: dict[str, int]
) -> None:
    answer = run_prediction(client, iris["model"], iris["dataset"])
    other = client_for(service_settings, owner="mallory")
    assert other.get(f"/predictions/{answer['id']}").status_code == 404
    assert other.get(f"/predictions/{answer['id']}/result").status_code == 404
    refused = other.post(
        f"/models/{iris['model']}/predictions", json={"dataset_id": iris["dataset"]}
    )
    assert refused.status_code == 404


def test_a_dataset_without_the_models_columns_is_refused_before_queueing(
    client: FlaskClient, iris: dict[str, int]
) -> None:
    dataset = upload(client, HOUSES, "price")
    response = client.post(f"/models/{iris['model']}/predictions", json={"dataset_id": dataset})
    assert response.status_code == 422
    error = response.json["error"]
    assert error["field"] == "dataset_id" and "sepal_length" in error["message"]
    missing = client.post(f"/models/{iris['model']}/predictions", json={"dataset_id": 99999})
    assert missing.status_code == 422 and missing.json["error"]["field"] == "dataset_id"


def test_the_output_is_one_object_and_goes_with_nothing_else(
    client: FlaskClient, iris: dict[str, int]
) -> None:
    answer = run_prediction(client, iris["model"], iris["dataset"])
    with Session.begin() as session:
        job = q.get_job(session, answer["id"])
        assert job is not None and job.status == JobStatus.SUCCEEDED
        key = job.output_key
    assert storage().objects.keys(f"predictions/{answer['id']}/") == [key]
    # Running the finished job's message again (a duplicate) writes nothing more.
    run_job(answer["id"], load_settings())
    assert storage().objects.keys(f"predictions/{answer['id']}/") == [key]


def test_rows_uploaded_with_the_request_are_predicted_then_discarded(
    client: FlaskClient, iris: dict[str, int]
) -> None:
    rows = "\n".join(line.rsplit(",", 1)[0] for line in IRIS_LIKE.strip().splitlines()) + "\n"
    response = client.post(
        f"/models/{iris['model']}/predictions", data=rows, content_type="text/csv"
    )
    assert response.status_code == 202, response.json
    created = response.json
    assert created is not None and created["dataset_id"] is None and created["rows_total"] == 9
    with Session.begin() as session:
        job = q.get_job(session, created["id"])
        assert job is not None and job.input_key is not None
        uploaded = job.input_key
    assert storage().objects.keys(uploaded) == [uploaded]
    run_job(created["id"], load_settings())
    answer = client.get(f"/predictions/{created['id']}").json
    assert answer is not None and answer["status"] == "succeeded", answer
    table = pq.read_table(io.BytesIO(client.get(answer["result"]).data))
    direct = client.post(f"/models/{iris['model']}/predict", data=rows, content_type="text/csv")
    assert table.column("label").to_pylist() == direct.json["labels"]
    assert storage().objects.keys(uploaded) == []


def test_an_uploaded_body_the_model_cannot_read_is_refused_and_stores_nothing(
    client: FlaskClient, iris: dict[str, int]
) -> None:
    before = storage().objects.keys("prediction-inputs/")
    response = client.post(
        f"/models/{iris['model']}/predictions",
        data="sepal_length,sepal_width\n1,2\n",
        content_type="text/csv",
    )
    assert response.status_code in (400, 422), response.json
    assert "petal_length" in response.json["error"]["message"]
    assert storage().objects.keys("prediction-inputs/") == before


def test_a_dataset_whose_column_kinds_differ_is_refused_before_queueing(
    client: FlaskClient, iris: dict[str, int]
) -> None:
    response = client.post(
        "/datasets?name=t&target=species&categorical=sepal_length",
        data=IRIS_LIKE,
        content_type="text/csv",
    )
    assert response.status_code == 201, response.json
    dataset = response.json["id"]
    response = client.post(f"/models/{iris['model']}/predictions", json={"dataset_id": dataset})
    assert response.status_code == 422
    assert response.json["error"]["field"] == "dataset_id"
    assert (
        "'sepal_length' as number, the dataset holds category" in response.json["error"]["message"]
    )


def test_deleting_a_model_deletes_its_weights_and_every_process_forgets_it(
    service_settings: Settings, client: FlaskClient
) -> None:
    dataset = upload(client, IRIS_LIKE, "species")
    model = train(client, dataset, IRIS_NET, IRIS_TRAINING)
    other_process = client_for(service_settings)  # another app: a cache of its own
    assert (
        other_process.post(
            f"/models/{model}/predict", data=IRIS_LIKE, content_type="text/csv"
        ).status_code
        == 200
    )
    queued = client.post(f"/models/{model}/predictions", json={"dataset_id": dataset}).json
    assert queued is not None
    busy = client.delete(f"/models/{model}")
    assert busy.status_code == 409 and "queued" in busy.json["error"]["message"]
    client.post(f"/predictions/{queued['id']}/cancel")
    with Session.begin() as session:
        row = q.get_model(session, model)
        assert row is not None
        key = row.weights_key
    assert client.delete(f"/models/{model}").status_code == 204
    assert storage().objects.keys(key) == []
    assert client.get(f"/models/{model}").status_code == 404
    gone = other_process.post(f"/models/{model}/predict", data=IRIS_LIKE, content_type="text/csv")
    assert gone.status_code == 404


def test_deleting_a_prediction_deletes_its_outputs_once_it_has_finished(
    client: FlaskClient, iris: dict[str, int]
) -> None:
    queued = client.post(
        f"/models/{iris['model']}/predictions", json={"dataset_id": iris["dataset"]}
    ).json
    assert queued is not None
    assert client.delete(f"/predictions/{queued['id']}").status_code == 409
    client.post(f"/predictions/{queued['id']}/cancel")
    assert client.delete(f"/predictions/{queued['id']}").status_code == 204
    done = run_prediction(client, iris["model"], iris["dataset"])
    assert storage().objects.keys(f"predictions/{done['id']}/") != []
    assert client.delete(f"/predictions/{done['id']}").status_code == 204
    assert storage().objects.keys(f"predictions/{done['id']}/") == []
    assert client.get(f"/predictions/{done['id']}").status_code == 404
