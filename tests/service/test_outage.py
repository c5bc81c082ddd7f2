"""Outages against a live API (gunicorn, as `backprop api` runs it).

- PostgreSQL refusing this module's database (``ALLOW_CONNECTIONS false`` and its
  connections terminated; the shared server keeps running): every authenticated
  route answers 503 ``service_unavailable`` with ``Retry-After``, never a 500, and
  names no host, port or statement; once the database is open again the API
  answers normally within seconds (no dead pooled connection is kept).
- The broker (a private ``redis-server`` of this module) killed: a job submitted
  meanwhile is accepted (202, queued, marked as never sent) and a worker's
  reconciler sends it once the broker is back; `/readyz` names the broker.
- The embedded path (SQLite and the filesystem broker) with the database file held
  by another connection's ``BEGIN EXCLUSIVE``: writes answer 503 after the busy
  timeout, not 500; reads go on (WAL); a broker folder gone still takes the job.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker

from store import JobStatus, Session, engine_for
from store import queries as q
from store.settings import Settings
from tests import worked_example
from tests.service.api_helpers import client_for, leftover_jobs_cancelled, post_job
from tests.service.conftest import (
    POSTGRES_ADMIN,
    create_database,
    environment,
    sqlite_env,
)
from tests.service.http import finished_job, free_port
from tests.service.processes import (
    ApiProcess,
    GroupProcess,
    WorkerProcess,
    running_worker,
    wait_for,
)

XOR = {"inputs": [[0, 0], [0, 1], [1, 0], [1, 1]], "targets": [[0], [1], [1], [0]]}
ROWS = {"inputs": XOR["inputs"]}
NET = {"input_dim": 2, "layers": [{"units": 3, "activation": "tanh"}, {"units": 1}]}


def sweep_body(dataset_id: int) -> dict[str, Any]:
    """A sweep of two trials (queued: no worker runs during the outages)."""
    return {
        "dataset_id": dataset_id,
        "network": NET,
        "training": {"epochs": 2, "validation_split": 0.25},
        "search_space": {"training.l2": {"uniform": [0, 0.1]}},
        "trials": 2,
        "pruner": "none",
    }


# Routes that answer without a key: they are not expected to need the database.
PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/metrics"}
# What no error body may show: the database's address, its name, a statement.
SECRETS = ("127.0.0.1", "5432", "SELECT", "INSERT", "[SQL", "psycopg", "backprop_test_")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def send(base: str, method: str, path: str, body: Any = None, key: str | None = None) -> Answer:
    """One request; the body parsed as JSON when it is JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers), error.read()
    media = headers.get("Content-Type", "")
    parsed = json.loads(raw or b"null") if media.startswith("application/json") else raw
    return Answer(status, headers, parsed)


def sessions(url: str) -> sessionmaker[OrmSession]:
    """Sessions on ``url`` for this module alone (the run's own binding is left as is)."""
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


def new_key(url: str, owner: str) -> str:
    with sessions(url).begin() as session:
        return q.create_api_key(session, owner)


def enqueued_at(url: str, job_id: int) -> Any:
    with sessions(url).begin() as session:
        job = q.get_job(session, job_id)
        assert job is not None
        return job.status, job.enqueued_at


class PrivateRedis:
    """A redis-server of this module alone, without persistence: killed, it loses
    every message, as a broker restart without persistence does."""

    def __init__(self, logs: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        self.process = GroupProcess(command, {}, logs / f"redis-{self.port}-{time.time()}.log")
        wait_for(self.answers, 10, 0.05, "the private redis-server")

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.exceptions.ConnectionError:
            return False

    def kill(self) -> None:
        self.process.kill()
        self.process.stop()


@dataclass
class Live:
    base: str
    key: str
    url: str
    env: dict[str, str]
    logs: Path
    redis: PrivateRedis
    ids: dict[str, int]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A database, a redis-server, an API and a trained model of this module's own."""
    logs = tmp_path_factory.mktemp("outage")
    url = create_database("outage")
    broker = PrivateRedis(logs)
    env = environment(url, "outage", logs / "data")
    env["BROKER_URL"] = broker.url
    env["BACKPROP_RECONCILE_SECONDS"] = "0.5"
    key = new_key(url, "outage")
    worker = WorkerProcess(env, logs)  # starts while the API does
    try:
        api = ApiProcess(env, logs)
    except BaseException:
        worker.stop()
        broker.kill()
        raise
    try:
        base = api.base
        dataset = send(base, "POST", "/datasets", {"name": "xor", **XOR}, key).body["id"]
        job = {"dataset_id": dataset, "network": NET, "training": {"epochs": 2}}
        try:
            worker.wait_ready()
            done = send(base, "POST", "/jobs", job, key).body["id"]
            model = finished_job(base, done, key)["model_id"]
            assert model is not None
        finally:
            worker.stop()
        queued = send(base, "POST", "/jobs", job, key).body["id"]
        prediction = send(
            base, "POST", f"/models/{model}/predictions", {"dataset_id": dataset}, key
        )
        sweep = send(base, "POST", "/sweeps", sweep_body(dataset), key)
        assert sweep.status == 202, sweep.body
        registered = send(base, "POST", "/registered-models/xor/versions", {"model_id": model}, key)
        assert registered.status == 201, registered.body
        aliased = send(
            base, "PUT", "/registered-models/xor/aliases/production", {"version": 1}, key
        )
        assert aliased.status == 200, aliased.body
        ids = {
            "name": "xor",
            "alias": "production",
            "version": 1,
            "dataset_id": dataset,
            "job_id": queued,
            "model_id": model,
            "prediction_id": prediction.body["id"],
            "sweep_id": sweep.body["id"],
        }
        yield Live(base, key, url, env, logs, broker, ids)
    finally:
        api.stop()
        broker.kill()
        engine_for(url).dispose()
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@contextmanager
def database_closed(url: str) -> Iterator[None]:
    """This module's database refuses connections and loses those it had, as in a
    stop of the server, which keeps running for everyone else."""
    name = url.rsplit("/", 1)[1]
    engine_for(url).dispose()
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
    try:
        yield
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


def authenticated_routes(base: str) -> list[tuple[str, str]]:
    """(method, path template) of every route that needs a key: the live app's own
    OpenAPI document, generated from its url_map (test_api_health checks they agree)."""
    document = send(base, "GET", "/openapi.json").body
    found = []
    for path, operations in document["paths"].items():
        if path in PUBLIC:
            continue
        found.extend((method.upper(), path) for method in operations)
    return found


# Routes that compute from the body alone: they answer while the database is away
# if the API process knows the key without it.
COMPUTED = {"/trace"}


def request_for(method: str, template: str, ids: dict[str, int]) -> tuple[str, Any]:
    """The path with real ids filled in, and a body the route would accept."""
    path = template
    for name, ident in ids.items():
        path = path.replace(f"{{{name}}}", str(ident))
    assert "{" not in path, template
    body: Any = None
    if template == "/datasets" and method == "POST":
        body = {"name": "during", **XOR}
    elif template == "/jobs" and method == "POST":
        body = {"dataset_id": ids["dataset_id"], "network": NET, "training": {"epochs": 1}}
    elif path.endswith("/predict"):
        body = {"inputs": [[0, 1]]}
    elif path.endswith(("/evaluate", "/predictions")) and method == "POST":
        body = {"dataset_id": ids["dataset_id"]}
    elif template == "/sweeps" and method == "POST":
        body = sweep_body(ids["dataset_id"])
    elif template == "/registered-models/{name}/versions" and method == "POST":
        body = {"model_id": ids["model_id"]}
    elif "/aliases/" in template and method == "PUT":
        body = {"version": ids["version"]}
    elif template == "/trace":
        body = {"network": worked_example.NETWORK, "inputs": [0.05, 0.1], "targets": [0.01, 0.99]}
    elif path.endswith("/trace"):
        body = {"inputs": [0, 1], "targets": [1]}
    return path, body


def assert_unavailable(answer: Answer, what: str, route: object) -> None:
    assert answer.status == 503, (route, answer.status, answer.body)
    assert int(answer.headers["Retry-After"]) > 0, route
    error = answer.body["error"]
    assert error["code"] == "service_unavailable", (route, error)
    assert what in error["message"], (route, error)
    text = json.dumps(answer.body)
    assert not [secret for secret in SECRETS if secret in text], (route, text)


def test_a_closed_database_is_a_503_on_every_route_and_then_answers_again(live: Live) -> None:
    routes = authenticated_routes(live.base)
    assert len(routes) >= 20
    assert send(live.base, "GET", "/datasets", key=live.key).status == 200
    with database_closed(live.url):
        for method, template in routes:
            path, body = request_for(method, template, live.ids)
            answer = send(live.base, method, path, body, live.key)
            if template in COMPUTED and answer.status == 200:
                continue  # the key was still in the API's cache, and nothing else is needed
            assert_unavailable(answer, "database", path)
        # An unknown key is not a 401 either: whether it is known cannot be told.
        stranger = send(live.base, "GET", "/datasets", key="bp_not-known")
        assert_unavailable(stranger, "database", "unknown key")
        keyed = send(live.base, "GET", "/metrics", key=live.key)
        assert_unavailable(keyed, "database", "/metrics with a key")
        assert send(live.base, "GET", "/metrics").status == 200  # public: no database
        assert send(live.base, "GET", "/healthz").status == 200
        ready = send(live.base, "GET", "/readyz")
        assert ready.status == 503 and int(ready.headers["Retry-After"]) > 0
        assert ready.body["error"]["message"] == "not ready; not answering: database"
    opened = time.monotonic()

    # Every gunicorn worker and thread answers again: a dead pooled connection is
    # checked before use and replaced, not handed out again.
    def all_answer() -> bool:
        return all(
            send(live.base, "GET", "/datasets", key=live.key).status == 200 for _ in range(16)
        )

    wait_for(all_answer, 10, 0.1, "the API to answer after the database opened again")
    print(f"answering again {time.monotonic() - opened:.2f} s after the database opened")
    ids = live.ids
    predicted = send(live.base, "POST", f"/models/{ids['model_id']}/predict", ROWS, live.key)
    assert predicted.status == 200 and len(predicted.body["outputs"]) == 4
    for path in (f"/jobs/{ids['job_id']}", f"/datasets/{ids['dataset_id']}", "/predictions"):
        assert send(live.base, "GET", path, key=live.key).status == 200, path
    # Nothing was changed during the outage: the job is still queued, the data still there.
    assert send(live.base, "GET", f"/jobs/{ids['job_id']}", key=live.key).body["status"] == "queued"
    assert send(live.base, "GET", "/readyz").status == 200


def test_a_job_submitted_while_the_broker_is_down_is_sent_once_it_is_back(live: Live) -> None:
    job = {"dataset_id": live.ids["dataset_id"], "network": NET, "training": {"epochs": 1}}
    live.redis.kill()
    try:
        ready = send(live.base, "GET", "/readyz")
        assert ready.status == 503
        assert ready.body["error"]["message"] == "not ready; not answering: broker"
        assert str(live.redis.port) not in json.dumps(ready.body)
        accepted = send(live.base, "POST", "/jobs", job, live.key)
        assert accepted.status == 202, accepted.body
        assert accepted.body["status"] == "queued"
        job_id = accepted.body["id"]
        status, sent = enqueued_at(live.url, job_id)
        assert status == JobStatus.QUEUED and sent is None  # for the reconciler to send
        # What needs no broker goes on.
        model = live.ids["model_id"]
        assert send(live.base, "POST", f"/models/{model}/predict", ROWS, live.key).status == 200
    finally:
        live.redis = PrivateRedis(live.logs, live.redis.port)
    with running_worker(live.env, live.logs):
        finished = finished_job(live.base, job_id, live.key, timeout=30)
    assert finished["status"] == "succeeded", finished
    assert send(live.base, "GET", "/readyz").status == 200


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[str, str, Path, str]]:
    """An API on SQLite and the filesystem broker: (base URL, key, database file, URL)."""
    data = tmp_path / "data"
    path = data / "backprop.db"
    env = sqlite_env(data)
    url = env["DATABASE_URL"]
    key = new_key(url, "embedded")
    engine_for(url).dispose()  # no connection of this process holds the file
    api = ApiProcess(env, tmp_path)
    try:
        yield api.base, key, path, url
    finally:
        api.stop()


def test_a_locked_sqlite_file_is_a_503_not_a_500(
    embedded: tuple[str, str, Path, str],
) -> None:
    base, key, path, url = embedded
    dataset = send(base, "POST", "/datasets", {"name": "xor", **XOR}, key)
    assert dataset.status == 201
    job = {"dataset_id": dataset.body["id"], "network": NET, "training": {"epochs": 1}}
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        # Each write waits out SQLite's busy timeout (10 s): sent side by side.
        writes = [
            ("POST", "/datasets", {"name": "locked", **XOR}),
            ("POST", "/jobs", job),
            ("DELETE", f"/datasets/{dataset.body['id']}", None),
        ]
        with ThreadPoolExecutor(len(writes)) as pool:
            answers = list(pool.map(lambda w: send(base, w[0], w[1], w[2], key), writes))
            # Readers are not blocked by a writer in WAL mode.
            assert send(base, "GET", f"/datasets/{dataset.body['id']}", key=key).status == 200
        for write, answer in zip(writes, answers, strict=True):
            assert_unavailable(answer, "database", write[:2])
    finally:
        locker.rollback()
        locker.close()
    assert send(base, "GET", f"/datasets/{dataset.body['id']}", key=key).status == 200
    # The filesystem broker's folder gone: the job is still accepted, for the reconciler.
    shutil.rmtree(path.parent / "broker")
    accepted = send(base, "POST", "/jobs", job, key)
    assert accepted.status == 202, accepted.body
    status, sent = enqueued_at(url, accepted.body["id"])
    assert status == JobStatus.QUEUED and sent is None
    engine_for(url).dispose()


def test_no_answer_shows_sql_or_parameters(service_settings: Settings) -> None:
    """A job's stored error made from a database exception (as workers stored them)
    is answered with its reason alone: no statement, no bound rows, no DETAIL."""
    with Session.begin() as session:
        try:
            session.execute(
                text("INSERT INTO no_such_table (secret) VALUES (:secret)"),
                {"secret": "row-data-42"},
            )
        except DBAPIError as exc:
            raw = f"{type(exc).__name__}: {exc}"
    assert "[SQL: " in raw and "row-data-42" in raw  # what used to be stored
    client = client_for(service_settings, owner=f"sql-{uuid.uuid4().hex[:8]}")
    with leftover_jobs_cancelled(client):
        job = post_job(client, dataset=XOR, network=NET, training={"epochs": 1})
        with Session.begin() as session:
            row = q.get_job(session, job["id"])
            assert row is not None
            q.finish_job(session, row, JobStatus.FAILED, stop_reason="error", error=raw)
        shown = client.get(f"/jobs/{job['id']}").json["error"]
        listed = client.get("/jobs?status=failed").json["jobs"][0]["error"]
    assert shown == listed == raw.split("\n", 1)[0].split("[SQL: ")[0].rstrip()
    assert "no_such_table" in shown  # the reason stays
    for secret in ("INSERT", "[SQL", "row-data-42", "parameters", "sqlalche.me"):
        assert secret not in shown
