"""API keys and tenancy: no key, a wrong key or a revoked key is a 401; another
owner's ids answer exactly as missing ones do, on every endpoint, whether or not
their model's stored weights can be loaded; no owner evicts another's cached models."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from api.model_cache import ModelCache
from store import Session, storage
from store import queries as q
from store.settings import Settings

from .api_helpers import (
    SMALL_NET,
    client_for,
    leftover_jobs_cancelled,
    post_dataset,
    post_job,
    train_in_process,
)

PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/", "/docs", "/ui/<path:name>"}
# Public, but a key sent to it is checked: its owner's job counts come with a good one.
KEYED_IF_SENT = {"/metrics"}
MISSING = 2_000_000_000


@pytest.fixture(scope="module")
def alice(service_settings: Settings) -> Iterator[FlaskClient]:
    with leftover_jobs_cancelled(client_for(service_settings, owner="alice")) as client:
        yield client


@pytest.fixture(scope="module")
def bob(service_settings: Settings) -> Iterator[FlaskClient]:
    with leftover_jobs_cancelled(client_for(service_settings, owner="bob")) as client:
        yield client


@pytest.fixture(scope="module")
def alices(alice: FlaskClient) -> dict[str, int]:
    """Alice's dataset, a queued job, a finished job with its model, and a queued batch
    prediction with that model."""
    dataset = post_dataset(alice, name="alice-only")
    queued = post_job(alice, dataset_id=dataset["id"], network=SMALL_NET, training={"epochs": 3})
    done = post_job(alice, dataset_id=dataset["id"], network=SMALL_NET, training={"epochs": 3})
    model = train_in_process(done["id"])
    prediction = alice.post(f"/models/{model}/predictions", json={"dataset_id": dataset["id"]})
    assert prediction.status_code == 202, prediction.json
    return {
        "dataset": dataset["id"],
        "job": queued["id"],
        "done": done["id"],
        "model": model,
        "prediction": prediction.json["id"],
    }


# one sample for a model of two inputs and one output
TRACE_BODY = {"inputs": [0, 1], "targets": [1]}


def routes(client: FlaskClient) -> list[tuple[str, str]]:
    """(method, URL template) of every route the app has."""
    found = []
    for rule in client.application.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule))
    return found


def url(template: str, ids: dict[str, int]) -> str:
    """Fill a route's id with the id of the matching resource."""
    kind = template.split("/")[1]
    idents = {
        "datasets": ids["dataset"],
        "jobs": ids["job"],
        "models": ids["model"],
        "predictions": ids["prediction"],
        # a name, an alias and a version alike (test_registry.py tries another owner's)
        "registered-models": 1,
        # another owner's sweep is a 404: tests/service/test_sweeps.py
        "sweeps": ids.get("sweep", 1),
    }
    ident = idents.get(kind, 0)
    return re.sub(r"<[^>]+>", str(ident), template)


def call(client: FlaskClient, method: str, path: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """A request with a body that is valid wherever one is needed."""
    kwargs = {}
    if path.endswith("/predict"):
        kwargs["json"] = {"inputs": [[0, 1]]}
    elif path.endswith("/trace"):
        kwargs["json"] = TRACE_BODY
    elif method == "POST":
        kwargs["json"] = {}
    return client.open(path, method=method, headers=headers or {}, **kwargs)


def test_every_endpoint_but_health_needs_a_key(alice: FlaskClient, alices: dict[str, int]) -> None:
    checked = 0
    for method, template in routes(alice):
        path = url(template, alices)
        for header in ("", "Bearer ", "Bearer bp_not-a-real-key", "Basic dXNlcjpwYXNz"):
            response = call(alice, method, path, {"Authorization": header})
            if template in PUBLIC or (template in KEYED_IF_SENT and not header):
                # answered without a key: a page, a probe, or a missing asset's 404
                assert response.status_code in (200, 404, 503), (method, path)
                assert response.status_code != 401
                continue
            assert response.status_code == 401, (method, path, header, response.json)
            assert response.json["error"]["code"] == "unauthorized"
            assert response.headers["WWW-Authenticate"] == "Bearer"
            checked += 1
    assert checked >= 4 * 10  # every protected route was tried


def test_another_owners_ids_are_missing_ids(
    alice: FlaskClient, bob: FlaskClient, alices: dict[str, int]
) -> None:
    missing = {"dataset": MISSING, "job": MISSING, "model": MISSING, "prediction": MISSING}
    compared = 0
    for method, template in routes(bob):
        kinds = ("datasets", "jobs", "models", "predictions")
        if template.split("/")[1] not in kinds or "<" not in template:
            continue
        theirs = call(bob, method, url(template, alices))
        absent = call(bob, method, url(template, missing))
        assert theirs.status_code == absent.status_code == 404, (method, template)
        assert theirs.json["error"]["code"] == absent.json["error"]["code"]
        assert theirs.json["error"]["message"].replace(
            str(alices[template.split("/")[1][:-1]]), "N"
        ) == (absent.json["error"]["message"].replace(str(MISSING), "N"))
        compared += 1
    assert compared >= 8
    # The owner still sees everything: nothing above touched alice's rows.
    assert alice.get(f"/datasets/{alices['dataset']}").status_code == 200
    assert alice.get(f"/jobs/{alices['job']}").json["status"] == "queued"
    assert alice.get(f"/models/{alices['model']}").status_code == 200
    assert alice.get(f"/predictions/{alices['prediction']}").json["status"] != "cancelled"


def test_lists_show_only_the_owners_rows(
    alice: FlaskClient, bob: FlaskClient, alices: dict[str, int]
) -> None:
    bobs = post_dataset(bob, name="bob-only")
    alice_datasets = {d["id"] for d in alice.get("/datasets?limit=200").json["datasets"]}
    bob_datasets = {d["id"] for d in bob.get("/datasets?limit=200").json["datasets"]}
    assert alices["dataset"] in alice_datasets and alices["dataset"] not in bob_datasets
    assert bobs["id"] in bob_datasets and bobs["id"] not in alice_datasets
    bob_jobs = {j["id"] for j in bob.get("/jobs?limit=200").json["jobs"]}
    assert alices["job"] not in bob_jobs and alices["done"] not in bob_jobs


def test_a_job_cannot_use_another_owners_dataset(bob: FlaskClient, alices: dict[str, int]) -> None:
    theirs = bob.post(
        "/jobs",
        json={"dataset_id": alices["dataset"], "network": SMALL_NET, "training": {"epochs": 1}},
    )
    absent = bob.post(
        "/jobs", json={"dataset_id": MISSING, "network": SMALL_NET, "training": {"epochs": 1}}
    )
    assert theirs.status_code == absent.status_code == 422
    assert theirs.json["error"]["field"] == absent.json["error"]["field"] == "dataset_id"


def test_a_revoked_key_stops_working(service_settings: Settings) -> None:
    from api import create_app

    with Session.begin() as session:
        key = q.create_api_key(session, "carol")
    client = create_app(service_settings).test_client()
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/datasets", headers=headers).status_code == 200
    with Session.begin() as session:
        assert q.revoke_api_key(session, key) == 1
    fresh = create_app(service_settings).test_client()  # no cached owner
    assert fresh.get("/datasets", headers=headers).status_code == 401
    with Session.begin() as session:
        stored = [k for k in q.list_api_keys(session) if k.owner == "carol"]
    assert stored and all(k.key_hash != key and key not in k.prefix for k in stored)


def trained_model(client: FlaskClient, dataset_id: int) -> int:
    job = post_job(client, dataset_id=dataset_id, network=SMALL_NET, training={"epochs": 1})
    return train_in_process(job["id"])


@pytest.fixture(scope="module")
def broken(alice: FlaskClient, alices: dict[str, int]) -> dict[str, int]:
    """Two of alice's models that cannot be loaded: one whose stored weights object
    was deleted, one whose stored bytes are not a model."""
    models = {
        "missing weights": trained_model(alice, alices["dataset"]),
        "corrupt weights": trained_model(alice, alices["dataset"]),
    }
    with Session.begin() as session:
        gone = q.get_model(session, models["missing weights"])
        bad = q.get_model(session, models["corrupt weights"])
        assert gone is not None and bad is not None
    storage().objects.delete_prefix(gone.weights_key)
    storage().objects.put(bad.weights_key, b"not a model at all")
    return models


def model_call(client: FlaskClient, method: str, path: str, dataset_id: int):  # type: ignore[no-untyped-def]
    """A request to a model route with a body its owner would get an answer to."""
    if path.endswith("/predict"):
        return client.post(path, json={"inputs": [[0, 1]]})
    if path.endswith("/trace"):
        return client.post(path, json=TRACE_BODY)
    if path.endswith("/evaluate") or path.endswith("/predictions"):
        return client.post(path, json={"dataset_id": dataset_id})
    return client.open(path, method=method)


@pytest.mark.parametrize("which", ["missing weights", "corrupt weights"])
def test_another_owners_unloadable_model_is_a_missing_one(
    alice: FlaskClient,
    bob: FlaskClient,
    alices: dict[str, int],
    broken: dict[str, int],
    which: str,
) -> None:
    model = broken[which]
    compared = 0
    for method, template in routes(bob):
        if not template.startswith("/models/<"):
            continue
        theirs = model_call(bob, method, re.sub(r"<[^>]+>", str(model), template), MISSING)
        absent = model_call(bob, method, re.sub(r"<[^>]+>", str(MISSING), template), MISSING)
        assert theirs.status_code == absent.status_code == 404, (method, template, theirs.json)
        assert theirs.json["error"]["code"] == absent.json["error"]["code"] == "not_found"
        assert theirs.json["error"]["message"].replace(str(model), "N") == (
            absent.json["error"]["message"].replace(str(MISSING), "N")
        )
        compared += 1
    assert compared >= 6  # show, delete, weights, predict, evaluate, batch predictions
    # Bob's delete above touched nothing of alice's.
    assert alice.get(f"/models/{model}").status_code == 200


@pytest.mark.parametrize("which", ["missing weights", "corrupt weights"])
def test_the_owners_unloadable_model_is_a_clear_409(
    alice: FlaskClient, alices: dict[str, int], broken: dict[str, int], which: str
) -> None:
    model = broken[which]
    reason = "are missing" if which == "missing weights" else "cannot be read"
    for path in ("weights", "predict", "evaluate", "predictions", "trace", "export"):
        method = "GET" if path in ("weights", "export") else "POST"
        response = model_call(alice, method, f"/models/{model}/{path}", alices["dataset"])
        assert response.status_code == 409, (path, response.json)
        error = response.json["error"]
        assert error["code"] == "model_unavailable"
        assert f"model {model} cannot be used" in error["message"] and reason in error["message"]
    # Starting a job from it says the same, instead of failing inside the worker.
    response = alice.post(
        "/jobs",
        json={
            "dataset_id": alices["dataset"],
            "network": SMALL_NET,
            "training": {"epochs": 1},
            "init_from_model": model,
        },
    )
    assert response.status_code == 409 and response.json["error"]["code"] == "model_unavailable"
    # What does not need the weights still works.
    assert alice.get(f"/models/{model}").status_code == 200


def test_an_owner_deletes_an_unloadable_model(alice: FlaskClient, alices: dict[str, int]) -> None:
    model = trained_model(alice, alices["dataset"])
    with Session.begin() as session:
        row = q.get_model(session, model)
        assert row is not None
    storage().objects.put(row.weights_key, b"garbage")
    assert alice.delete(f"/models/{model}").status_code == 204
    assert alice.get(f"/models/{model}/weights").status_code == 404


def test_one_owner_cannot_evict_anothers_cached_models(
    alice: FlaskClient, bob: FlaskClient, alices: dict[str, int]
) -> None:
    bobs = trained_model(bob, post_dataset(bob, name="bob-cache")["id"])
    alices_models = [alices["model"]] + [trained_model(alice, alices["dataset"]) for _ in range(2)]
    cache = ModelCache(per_owner=2)
    assert cache.get(bobs, "bob") is not None
    for model in alices_models:  # more than alice's share
        assert cache.get(model, "alice") is not None
    assert cache.loaded("bob") == [bobs]
    assert cache.loaded("alice") == alices_models[1:]
    # Another owner's id is never loaded, whoever asks, nor does asking evict anything.
    assert cache.get(bobs, "alice") is None
    assert cache.get(alices_models[0], "bob") is None
    assert cache.loaded("bob") == [bobs] and cache.loaded("alice") == alices_models[1:]
