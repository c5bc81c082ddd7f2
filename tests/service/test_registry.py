"""The model registry (registered models, versions, aliases, predictions through
them), lineage on models, GET /models, DELETE /jobs/<id> and GET /jobs?ids=, in
process on PostgreSQL.

Live processes (two API processes sharing one database, parallel registrations,
the CLI) are in test_registry_live.py.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from flask.testing import FlaskClient

import core
from store import Job, Session, Sweep, storage
from store import queries as q
from store.lineage import DEFAULT_SEED, service_version, spec_sha256
from store.objects import ObjectMissing
from store.settings import Settings

from .api_helpers import (
    SMALL_NET,
    client_for,
    leftover_jobs_cancelled,
    post_dataset,
    post_job,
    train_in_process,
)

ROWS = [[0, 0], [0, 1], [1, 0], [1, 1]]


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> Iterator[FlaskClient]:
    with leftover_jobs_cancelled(client_for(service_settings, owner="registrar")) as client:
        yield client


@pytest.fixture(scope="module")
def other(service_settings: Settings) -> Iterator[FlaskClient]:
    with leftover_jobs_cancelled(client_for(service_settings, owner="stranger")) as client:
        yield client


@pytest.fixture(scope="module")
def dataset(client: FlaskClient) -> int:
    return int(post_dataset(client, name="registry-xor")["id"])


def trained(client: FlaskClient, dataset: int, seed: int = 0, epochs: int = 5) -> int:
    """A model of the XOR dataset, trained in this process."""
    job = post_job(
        client,
        dataset_id=dataset,
        network=SMALL_NET,
        training={"epochs": epochs, "seed": seed},
    )
    return train_in_process(job["id"])


@pytest.fixture(scope="module")
def two_models(client: FlaskClient, dataset: int) -> tuple[int, int]:
    """Two models whose outputs differ (other seeds, other epochs)."""
    return trained(client, dataset, seed=1, epochs=3), trained(client, dataset, seed=2, epochs=40)


def outputs(client: FlaskClient, path: str) -> list[list[float]]:
    answer = client.post(path, json={"inputs": ROWS})
    assert answer.status_code == 200, answer.json
    return answer.json["outputs"]  # type: ignore[no-any-return]


def register(client: FlaskClient, name: str, model: int, **fields: object) -> dict[str, object]:
    answer = client.post(f"/registered-models/{name}/versions", json={"model_id": model, **fields})
    assert answer.status_code == 201, answer.json
    return answer.json  # type: ignore[no-any-return]


# --- lineage and GET /models --------------------------------------------------------


def test_lineage_of_a_trial_of_a_sweep(client: FlaskClient, dataset: int) -> None:
    """A model trained by a sweep's trial names the sweep and the trial (the other ways
    a model is made are tested over HTTP in test_registry_live.py)."""
    job = post_job(client, dataset_id=dataset, network=SMALL_NET, training={"epochs": 2})
    with Session.begin() as session:
        row = session.get(Job, job["id"])
        assert row is not None
        sweep = Sweep(
            owner=row.owner,
            dataset_id=dataset,
            status="succeeded",
            network=row.network,
            training=row.training,
            search_space={},
            trials=1,
            parallel=1,
            sampler="random",
            pruner="none",
            metric="val_loss",
            direction="minimize",
            study_name="lineage-test",
        )
        session.add(sweep)
        session.flush()
        row.sweep_id, row.trial_number = sweep.id, 0
        sweep_id, network, training = sweep.id, row.network, row.training
    model = client.get(f"/models/{train_in_process(job['id'])}").json
    lineage = model["lineage"]
    assert lineage["sweep_id"] == sweep_id and lineage["trial_number"] == 0
    assert lineage["spec_sha256"] == spec_sha256(network, training)
    assert lineage["seed"] == 0 and lineage["service_version"] == service_version()
    assert lineage["job_id"] == job["id"] and lineage["init_model_id"] is None

    # A trial's job is not deleted alone, while its sweep runs or after: its sweep is.
    refused = client.delete(f"/jobs/{job['id']}")
    assert refused.status_code == 409 and f"sweep {sweep_id}" in refused.json["error"]["message"]
    assert client.delete(f"/sweeps/{sweep_id}").status_code == 204
    assert client.get(f"/jobs/{job['id']}").status_code == 404


def test_models_are_listed_newest_first_by_pages(client: FlaskClient, dataset: int) -> None:
    made = [trained(client, dataset, seed=seed, epochs=1) for seed in (10, 11, 12)]
    first = client.get("/models?limit=2").json
    assert [model["id"] for model in first["models"]] == [made[2], made[1]]
    assert first["next_after"] == made[1]
    second = client.get(f"/models?limit=2&after={first['next_after']}").json
    assert second["models"][0]["id"] == made[0]
    listed = second["models"][0]
    assert listed == client.get(f"/models/{made[0]}").json  # the same fields as GET /models/<id>
    assert listed["lineage"]["job_id"] == listed["job_id"]
    assert client.get("/models?limit=0").status_code == 422


def test_another_owner_sees_none_of_the_models(
    client: FlaskClient, other: FlaskClient, two_models: tuple[int, int]
) -> None:
    theirs = {model["id"] for model in other.get("/models?limit=500").json["models"]}
    assert not theirs & set(two_models)


# --- GET /jobs?ids= -------------------------------------------------------------------


def test_jobs_by_ids_in_the_order_given_with_their_specs(
    client: FlaskClient, other: FlaskClient, dataset: int
) -> None:
    jobs = [
        post_job(client, dataset_id=dataset, network=SMALL_NET, training={"epochs": n})
        for n in (1, 2, 3)
    ]
    ids = [jobs[2]["id"], jobs[0]["id"], jobs[1]["id"]]
    answer = client.get(f"/jobs?ids={','.join(map(str, ids))}")
    assert answer.status_code == 200, answer.json
    got = answer.json["jobs"]
    assert [job["id"] for job in got] == ids and answer.json["next_after"] is None
    assert [job["training"]["epochs"] for job in got] == [3, 1, 2]
    for job in got:
        spec = client.get(f"/jobs/{job['id']}/spec").json
        assert job["network"] == spec["network"] and job["training"] == spec["training"]
    # the plain listing does not carry specs
    assert "network" not in client.get("/jobs?limit=1").json["jobs"][0]

    mine, theirs = jobs[0]["id"], post_dataset(other, name="not-yours")
    strangers = post_job(other, dataset_id=theirs["id"], network=SMALL_NET, training={"epochs": 1})
    missing = client.get(f"/jobs?ids={mine},{strangers['id']},2000000000")
    assert missing.status_code == 404
    error = missing.json["error"]
    assert error["field"] == "ids"
    assert (
        f"{strangers['id']}, 2000000000" in error["message"] and str(mine) not in error["message"]
    )


@pytest.mark.parametrize(
    "ids",
    ["", "1,,2", "a", "1;2", "-1", "0", "1.5", "1,1", "99999999999", ",".join(["7"] * 51)],
)
def test_malformed_ids_are_refused(client: FlaskClient, ids: str) -> None:
    answer = client.get(f"/jobs?ids={ids}")
    assert answer.status_code == 422, (ids, answer.json)
    assert answer.json["error"]["field"] == "ids"


def test_more_than_fifty_ids_are_refused(client: FlaskClient) -> None:
    answer = client.get(f"/jobs?ids={','.join(str(n) for n in range(1, 52))}")
    assert answer.status_code == 422 and answer.json["error"]["field"] == "ids"
    assert "at most 50" in answer.json["error"]["message"]
    assert client.get("/jobs?ids=1&status=queued").json["error"]["field"] == "ids"


# --- DELETE /jobs/<id> ------------------------------------------------------------------


def test_delete_a_finished_job_with_its_epochs_and_model(client: FlaskClient, dataset: int) -> None:
    model = trained(client, dataset, seed=3)
    job = client.get(f"/models/{model}").json["job_id"]
    with Session.begin() as session:
        weights = q.get_model(session, model).weights_key  # type: ignore[union-attr]
    assert outputs(client, f"/models/{model}/predict")  # loaded in this app's cache
    assert client.delete(f"/jobs/{job}").status_code == 204
    assert client.get(f"/jobs/{job}").status_code == 404
    assert client.get(f"/models/{model}").status_code == 404
    assert client.post(f"/models/{model}/predict", json={"inputs": ROWS}).status_code == 404
    with Session.begin() as session:
        assert q.list_epochs(session, job) == []
    with pytest.raises(ObjectMissing):
        storage().read(weights)
    assert client.delete(f"/jobs/{job}").status_code == 404


def test_a_queued_job_is_not_deleted(client: FlaskClient, dataset: int) -> None:
    job = post_job(client, dataset_id=dataset, network=SMALL_NET, training={"epochs": 1})
    answer = client.delete(f"/jobs/{job['id']}")
    assert answer.status_code == 409
    assert "cancel it first" in answer.json["error"]["message"]
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 202
    assert client.delete(f"/jobs/{job['id']}").status_code == 204


def test_a_job_whose_model_is_registered_is_not_deleted(client: FlaskClient, dataset: int) -> None:
    model = trained(client, dataset, seed=4)
    job = client.get(f"/models/{model}").json["job_id"]
    register(client, "kept-by-registry", model)
    answer = client.delete(f"/jobs/{job}")
    assert answer.status_code == 409
    assert "'kept-by-registry'" in answer.json["error"]["message"]
    refused = client.delete(f"/models/{model}")
    assert refused.status_code == 409
    message = refused.json["error"]["message"]
    assert "version 1 of registered model 'kept-by-registry'" in message
    assert client.get(f"/models/{model}").status_code == 200
    # once the version is gone, both can go
    assert client.delete("/registered-models/kept-by-registry/versions/1").status_code == 204
    assert client.delete(f"/jobs/{job}").status_code == 204


def test_another_owners_job_is_not_deleted(
    client: FlaskClient, other: FlaskClient, two_models: tuple[int, int]
) -> None:
    job = client.get(f"/models/{two_models[0]}").json["job_id"]
    assert other.delete(f"/jobs/{job}").status_code == 404
    assert client.get(f"/jobs/{job}").status_code == 200


# --- the registry -------------------------------------------------------------------------


def test_versions_are_numbered_and_listed(client: FlaskClient, two_models: tuple[int, int]) -> None:
    first = register(client, "numbered", two_models[0], description="the first")
    assert first["version"] == 1 and first["name"] == "numbered"
    assert first["model_id"] == two_models[0] and first["description"] == "the first"
    second = client.post("/registered-models/numbered/versions", json={"model_id": two_models[1]})
    assert second.status_code == 201
    assert second.headers["Location"] == "/registered-models/numbered/versions/2"
    assert second.json["version"] == 2
    detail = client.get("/registered-models/numbered").json
    assert detail["latest_version"] == 2 and detail["aliases"] == {}
    assert [(v["version"], v["model_id"]) for v in detail["versions"]] == [
        (2, two_models[1]),
        (1, two_models[0]),
    ]
    one = client.get("/registered-models/numbered/versions/1").json
    assert one["model_id"] == two_models[0] and one["aliases"] == []
    listed = client.get("/registered-models?limit=500").json["registered_models"]
    assert "numbered" in [entry["name"] for entry in listed]
    assert client.get("/registered-models/numbered/versions/3").status_code == 404
    assert client.get("/registered-models/never-made").status_code == 404


@pytest.mark.parametrize("name", ["-dash", ".dot", "has space", "a" * 201, "ünï", "a:b", "_x"])
def test_bad_names_are_refused(client: FlaskClient, two_models: tuple[int, int], name: str) -> None:
    answer = client.post(f"/registered-models/{name}/versions", json={"model_id": two_models[0]})
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["field"] == "name"


def test_good_names(client: FlaskClient, two_models: tuple[int, int]) -> None:
    for name in ["A", "9lives", "churn_model.v2-final", "x" * 200]:
        assert register(client, name, two_models[0])["name"] == name


def test_only_the_callers_models_are_registered(
    client: FlaskClient, other: FlaskClient, two_models: tuple[int, int]
) -> None:
    answer = other.post("/registered-models/stolen/versions", json={"model_id": two_models[0]})
    assert answer.status_code == 404 and answer.json["error"]["message"].startswith("no model")
    assert other.get("/registered-models/stolen").status_code == 404
    missing = client.post("/registered-models/x/versions", json={"model_id": 2_000_000_000})
    assert missing.status_code == 404
    assert client.post("/registered-models/x/versions", json={}).json["error"]["field"] == (
        "model_id"
    )


def test_another_owners_registered_models_are_missing(
    client: FlaskClient, other: FlaskClient, two_models: tuple[int, int]
) -> None:
    register(client, "private", two_models[0])
    put = client.put("/registered-models/private/aliases/prod", json={"version": 1})
    assert put.status_code == 200
    for method, path in [
        ("GET", "/registered-models/private"),
        ("GET", "/registered-models/private/versions/1"),
        ("GET", "/registered-models/private@prod"),
        ("DELETE", "/registered-models/private/versions/1"),
        ("DELETE", "/registered-models/private/aliases/prod"),
        ("DELETE", "/registered-models/private"),
    ]:
        assert other.open(path, method=method).status_code == 404, path
    put = other.put("/registered-models/private/aliases/prod", json={"version": 1})
    assert put.status_code == 404
    for path in ["/registered-models/private@prod", "/registered-models/private/versions/1"]:
        assert other.post(f"{path}/predict", json={"inputs": ROWS}).status_code == 404
    names = [e["name"] for e in other.get("/registered-models").json["registered_models"]]
    assert "private" not in names
    # The same name is free for them: names are per owner.
    theirs = post_dataset(other, name="theirs")
    job = post_job(other, dataset_id=theirs["id"], network=SMALL_NET, training={"epochs": 1})
    assert register(other, "private", train_in_process(job["id"]))["version"] == 1
    assert client.get("/registered-models/private").json["latest_version"] == 1
    assert client.get("/registered-models/private@prod").json["model_id"] == two_models[0]


def test_aliases_point_at_versions(client: FlaskClient, two_models: tuple[int, int]) -> None:
    register(client, "aliased", two_models[0])
    register(client, "aliased", two_models[1])
    answer = client.put("/registered-models/aliased/aliases/production", json={"version": 1})
    assert answer.status_code == 200, answer.json
    assert answer.json["aliases"] == {"production": 1}
    assert client.get("/registered-models/aliased@production").json["version"] == 1
    assert client.get("/registered-models/aliased/versions/1").json["aliases"] == ["production"]
    client.put("/registered-models/aliased/aliases/production", json={"version": 2})
    client.put("/registered-models/aliased/aliases/staging", json={"version": 2})
    version = client.get("/registered-models/aliased@production").json
    assert version["version"] == 2 and version["model_id"] == two_models[1]
    assert version["aliases"] == ["production", "staging"]
    latest = client.get("/registered-models/aliased@latest").json
    assert latest["version"] == 2
    assert client.get("/registered-models/aliased@v1").json["model_id"] == two_models[0]
    assert client.get("/registered-models/aliased@nope").status_code == 404
    missing = client.put("/registered-models/aliased/aliases/x", json={"version": 3})
    assert missing.status_code == 404 and "no version 3" in missing.json["error"]["message"]
    assert client.delete("/registered-models/aliased/aliases/staging").status_code == 204
    assert client.delete("/registered-models/aliased/aliases/staging").status_code == 404
    assert client.get("/registered-models/aliased").json["aliases"] == {"production": 2}


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v1", "V12", "a.b", "a" * 101, "sp ace"])
def test_bad_aliases_are_refused(
    client: FlaskClient, two_models: tuple[int, int], alias: str
) -> None:
    register(client, "strict", two_models[0])
    answer = client.put(f"/registered-models/strict/aliases/{alias}", json={"version": 1})
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["field"] == "alias"


def test_deleting_a_version_deletes_its_aliases_and_its_number_is_not_reused(
    client: FlaskClient, two_models: tuple[int, int]
) -> None:
    register(client, "pruned", two_models[0])
    register(client, "pruned", two_models[1])
    client.put("/registered-models/pruned/aliases/champion", json={"version": 2})
    client.put("/registered-models/pruned/aliases/old", json={"version": 1})
    assert client.delete("/registered-models/pruned/versions/2").status_code == 204
    detail = client.get("/registered-models/pruned").json
    assert detail["aliases"] == {"old": 1} and detail["latest_version"] == 1
    assert client.get("/registered-models/pruned@champion").status_code == 404
    predict = client.post("/registered-models/pruned/versions/2/predict", json={"inputs": ROWS})
    assert predict.status_code == 404
    # the model itself stays
    assert client.get(f"/models/{two_models[1]}").status_code == 200
    assert register(client, "pruned", two_models[1])["version"] == 3
    assert client.delete("/registered-models/pruned/versions/2").status_code == 404


def test_deleting_a_registered_model_keeps_its_models(
    client: FlaskClient, two_models: tuple[int, int]
) -> None:
    register(client, "short-lived", two_models[0])
    client.put("/registered-models/short-lived/aliases/a", json={"version": 1})
    assert client.delete("/registered-models/short-lived").status_code == 204
    assert client.get("/registered-models/short-lived").status_code == 404
    assert client.delete("/registered-models/short-lived").status_code == 404
    assert client.get(f"/models/{two_models[0]}").status_code == 200
    assert register(client, "short-lived", two_models[0])["version"] == 1  # a new one


def test_predict_through_the_registry_answers_as_the_model(
    client: FlaskClient, two_models: tuple[int, int]
) -> None:
    register(client, "served", two_models[0])
    register(client, "served", two_models[1])
    client.put("/registered-models/served/aliases/production", json={"version": 2})
    direct = client.post(f"/models/{two_models[1]}/predict", json={"inputs": ROWS})
    for path in [
        "/registered-models/served@production/predict",
        "/registered-models/served/versions/2/predict",
        "/registered-models/served@latest/predict",
    ]:
        answer = client.post(path, json={"inputs": ROWS})
        assert answer.status_code == 200, (path, answer.json)
        assert answer.json == direct.json, path
        assert answer.headers["X-Model-Id"] == str(two_models[1])
        assert answer.headers["X-Model-Version"] == "2"
    first = client.post("/registered-models/served/versions/1/predict", json={"inputs": ROWS})
    assert first.headers["X-Model-Version"] == "1" and first.json != direct.json
    assert first.json == client.post(f"/models/{two_models[0]}/predict", json={"inputs": ROWS}).json

    # the other bodies, as /models/<id>/predict takes them
    instances = client.post(
        "/registered-models/served@production/predict", json={"instances": ROWS}
    )
    assert instances.json["predictions"] == direct.json["outputs"]
    csv = client.post(
        "/registered-models/served@production/predict?header=absent",
        data="0,0\n0,1\n1,0\n1,1\n",
        content_type="text/csv",
    )
    assert csv.status_code == 200, csv.json
    assert csv.json["outputs"] == direct.json["outputs"]
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(ROWS, dtype=np.float64), allow_pickle=False)
    npy = client.post(
        "/registered-models/served@production/predict",
        data=buffer.getvalue(),
        content_type="application/x-npy",
        headers={"Accept": "application/x-npy"},
    )
    assert npy.status_code == 200 and npy.mimetype == "application/x-npy"
    assert npy.headers["X-Model-Version"] == "2"
    np.testing.assert_array_equal(
        np.load(io.BytesIO(npy.data), allow_pickle=False), np.asarray(direct.json["outputs"])
    )
    # errors are the predict view's own
    bad = client.post("/registered-models/served@production/predict", json={"inputs": [[1]]})
    assert bad.status_code == direct_bad_status(client, two_models[1])
    assert client.post("/registered-models/served@nope/predict", json={"inputs": ROWS}).json[
        "error"
    ]["message"] == ("registered model 'served' has no alias 'nope'")


def direct_bad_status(client: FlaskClient, model: int) -> int:
    return client.post(f"/models/{model}/predict", json={"inputs": [[1]]}).status_code


def test_the_stores_default_seed_is_the_engines() -> None:
    assert core.parse_training({"epochs": 1}).seed == DEFAULT_SEED


@pytest.mark.parametrize("bad", ["peng%00", "a" * 300, "%C3%BC"])
def test_names_and_aliases_that_cannot_exist_are_missing(
    client: FlaskClient, two_models: tuple[int, int], bad: str
) -> None:
    # PostgreSQL refuses a NUL in text outright: such a name must be a 404 before any query.
    register(client, "nul-probe", two_models[0])
    client.put("/registered-models/nul-probe/aliases/prod", json={"version": 1})
    for method, path in [
        ("GET", f"/registered-models/{bad}"),
        ("DELETE", f"/registered-models/{bad}"),
        ("GET", f"/registered-models/{bad}/versions/1"),
        ("DELETE", f"/registered-models/{bad}/versions/1"),
        ("GET", f"/registered-models/{bad}@prod"),
        ("GET", f"/registered-models/nul-probe@{bad}"),
        ("DELETE", f"/registered-models/nul-probe/aliases/{bad}"),
        ("POST", f"/registered-models/{bad}@prod/predict"),
        ("POST", f"/registered-models/nul-probe@{bad}/predict"),
        ("POST", f"/registered-models/{bad}/versions/1/predict"),
    ]:
        body = {"inputs": [[0, 1]]} if path.endswith("/predict") else None
        answer = client.open(path, method=method, json=body)
        assert answer.status_code == 404, (method, path, answer.json)
        assert answer.json["error"]["code"] == "not_found"
    answer = client.put(f"/registered-models/nul-probe/aliases/{bad}", json={"version": 1})
    assert answer.status_code == 422 and answer.json["error"]["field"] == "alias", answer.json
    answer = client.put(f"/registered-models/{bad}/aliases/prod", json={"version": 1})
    assert answer.status_code == 404, answer.json
    assert client.get("/registered-models/nul-probe@prod").status_code == 200
