"""API keys and tenancy: no key, a wrong key or a revoked key is a 401; another
owner's ids answer exactly as missing ones do, on every endpoint."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from store import Session
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

PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/metrics", "/", "/docs", "/ui/<path:name>"}
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
    }
    ident = idents.get(kind, 0)
    return re.sub(r"<[^>]+>", str(ident), template)


def call(client: FlaskClient, method: str, path: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """A request with a body that is valid wherever one is needed."""
    kwargs = {}
    if path.endswith("/predict"):
        kwargs["json"] = {"inputs": [[0, 1]]}
    elif method == "POST":
        kwargs["json"] = {}
    return client.open(path, method=method, headers=headers or {}, **kwargs)


def test_every_endpoint_but_health_needs_a_key(alice: FlaskClient, alices: dict[str, int]) -> None:
    checked = 0
    for method, template in routes(alice):
        path = url(template, alices)
        for header in ("", "Bearer ", "Bearer bp_not-a-real-key", "Basic dXNlcjpwYXNz"):
            response = call(alice, method, path, {"Authorization": header})
            if template in PUBLIC:
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
