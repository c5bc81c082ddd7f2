"""Shared pieces of the API tests: an in-process client, datasets, a trained model.

The API is created inside :func:`client_for` from the settings of the
``service_settings`` fixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
import redis
from flask.testing import FlaskClient

import core
from api.uploads import from_arrays, store
from core.frame import Frame
from store import LOCAL_OWNER, Dataset, JobStatus, Session, storage
from store import queries as q
from store.settings import Settings, load_settings
from worker.frames import dataset_frame
from worker.training import run_job


def store_arrays(
    session: Any,
    name: str,
    inputs: Any,
    targets: Any,
    *,
    feature_names: list[str] | None = None,
    target_names: list[str] | None = None,
    owner: str = LOCAL_OWNER,
) -> Dataset:
    """Store arrays as the API stores a JSON dataset of ``inputs`` and ``targets``."""
    targets = targets.tolist() if isinstance(targets, np.ndarray) else targets
    inputs = inputs.tolist() if isinstance(inputs, np.ndarray) else inputs
    upload = from_arrays(inputs, targets, feature_names, target_names, max_cells=10**9)
    with ExitStack() as staged:
        dataset = store(session, name, upload, owner, staged)
        staged.pop_all()  # kept whether or not the caller's transaction commits
    return dataset


def stored_frame(dataset_id: int) -> Frame:
    """A stored dataset's table."""
    with Session.begin() as session:
        dataset = q.get_dataset(session, dataset_id)
        assert dataset is not None
    return dataset_frame(dataset)


IRIS_LIKE = """sepal_length,sepal_width,petal_length,petal_width,species
5.1,3.5,1.4,0.2,setosa
4.9,3.0,1.4,0.2,setosa
4.7,3.2,1.3,0.2,setosa
7.0,3.2,4.7,1.4,versicolor
6.4,3.2,4.5,1.5,versicolor
6.9,3.1,4.9,1.5,versicolor
6.3,3.3,6.0,2.5,virginica
5.8,2.7,5.1,1.9,virginica
7.1,3.0,5.9,2.1,virginica
"""

XOR = {"inputs": [[0, 0], [0, 1], [1, 0], [1, 1]], "targets": [[0], [1], [1], [0]]}

SMALL_NET = {
    "input_dim": 2,
    "layers": [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
}


def new_key(owner: str) -> str:
    with Session.begin() as session:
        return q.create_api_key(session, owner)


def client_for(settings: Settings, owner: str = "alice", **overrides: Any) -> FlaskClient:
    """An in-process client that sends a fresh API key of ``owner`` with every request."""
    from api import create_app

    client = create_app(replace(settings, **overrides)).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {new_key(owner)}"
    return client


@contextmanager
def leftover_jobs_cancelled(client: FlaskClient) -> Iterator[FlaskClient]:
    """Cancel the jobs a test module left queued, so that a worker started by later
    tests of the same run skips their messages instead of training them."""
    newest = client.get("/jobs?limit=1").json["jobs"]  # type: ignore[index]
    since = newest[0]["id"] if newest else 0
    yield client
    queued = client.get("/jobs?status=queued&limit=500").json["jobs"]  # type: ignore[index]
    for job in queued:
        if job["id"] > since:
            client.post(f"/jobs/{job['id']}/cancel")
    # Batch predictions share the ids and the queue.
    for prediction in client.get("/predictions?limit=500").json["predictions"]:  # type: ignore[index]
        if prediction["id"] > since and prediction["status"] == "queued":
            client.post(f"/predictions/{prediction['id']}/cancel")


def post_dataset(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "xor", **XOR, **fields}
    response = client.post("/datasets", json=body)
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[return-value]


def post_job(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/jobs", json=fields)
    assert response.status_code == 202, response.json
    return response.json  # type: ignore[return-value]


def queued_messages(settings: Settings) -> list[dict[str, Any]]:
    """The Celery messages waiting in this run's Redis queue, newest first."""
    client = redis.Redis.from_url(settings.broker_url)
    raw = client.lrange(f"{settings.broker_prefix}{settings.queue}", 0, -1)
    return [json.loads(item) for item in raw]


def train_in_process(job_id: int) -> int:
    """Run the worker's own attempt at ``job_id`` in this process (no Celery, no broker);
    return the model id."""
    run_job(job_id, load_settings())
    with Session.begin() as session:
        job = q.get_job(session, job_id)
        assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.error
        model_id = q.model_id_for_job(session, job_id)
    assert model_id is not None
    return model_id


def stored_model(model_id: int) -> core.Model:
    with Session.begin() as session:
        row = q.get_model(session, model_id)
        assert row is not None
    return core.Model.from_bytes(storage().read(row.weights_key))


def as_array(rows: Any) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64)
