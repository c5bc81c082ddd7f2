"""The live stream of a job (Server-Sent Events) and its loss curve as a PNG,
with a real worker process training the job."""

from __future__ import annotations

import io
import json
import math
import threading
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from core import StopReason
from store import JobStatus, Session
from store import queries as q
from store.settings import Settings
from tests.service.api_helpers import client_for
from tests.service.processes import WorkerProcess, wait_for

JOB = {
    "dataset": {"inputs": [[0, 0], [0, 1], [1, 0], [1, 1]], "targets": [[0], [1], [1], [0]]},
    "network": {
        "input_dim": 2,
        "layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    },
    "training": {
        "epochs": 3000,
        "batch_size": 4,
        "optimizer": {"name": "sgd", "learning_rate": 0.5},
        "validation_split": 0.25,
    },
}


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> FlaskClient:
    return client_for(service_settings)


def parse(stream: str) -> list[dict[str, Any]]:
    """The events of an SSE body: comments dropped, fields split."""
    events = []
    for block in stream.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "event" in fields:
            fields["data"] = json.loads(fields["data"])
            events.append(fields)
    return events


def epochs_of(events: list[dict[str, Any]]) -> list[int]:
    return [e["epoch"] for ev in events if ev["event"] == "epochs" for e in ev["data"]["epochs"]]


def test_stream_follows_a_training_job_in_order(client: FlaskClient, worker: WorkerProcess) -> None:
    job = client.post("/jobs", json=JOB).json
    response = client.get(f"/jobs/{job['id']}/events")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = parse(response.get_data(as_text=True))  # ends when the job ends

    statuses = [ev["data"]["status"] for ev in events if ev["event"] == "status"]
    assert statuses[-1] == "succeeded"
    assert statuses == sorted(set(statuses), key=statuses.index)  # each change once
    assert epochs_of(events) == list(range(1, 3001))  # in order, no gaps, no repeats
    batches = [ev for ev in events if ev["event"] == "epochs"]
    assert len(batches) > 1  # it streamed while training, not one lump at the end
    assert [int(ev["id"]) for ev in batches] == sorted(int(ev["id"]) for ev in batches)
    first = batches[0]["data"]["epochs"][0]
    assert set(first) >= {"epoch", "loss", "val_loss", "val_accuracy", "learning_rate", "seconds"}


def test_resuming_after_last_event_id(client: FlaskClient, worker: WorkerProcess) -> None:
    job = client.post("/jobs", json={**JOB, "training": {**JOB["training"], "epochs": 400}}).json
    wait_for(lambda: client.get(f"/jobs/{job['id']}").json["status"] == "succeeded", 60)
    resumed = parse(
        client.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": "123"}).get_data(
            as_text=True
        )
    )
    assert epochs_of(resumed) == list(range(124, 401))
    assert resumed[-1]["event"] == "status" and resumed[-1]["data"]["status"] == "succeeded"
    bad = client.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 422 and bad.json["error"]["field"] == "Last-Event-ID"


def test_stream_of_a_waiting_job_ends_after_its_time(service_settings: Settings) -> None:
    # No worker reads this queue: the job stays queued.
    short = client_for(replace(service_settings, sse_seconds=0.6, queue="nobody-listens"))
    job = short.post("/jobs", json=JOB).json
    events = parse(short.get(f"/jobs/{job['id']}/events").get_data(as_text=True))
    assert [ev["data"]["status"] for ev in events] == ["queued"]
    short.post(f"/jobs/{job['id']}/cancel")
    assert short.get("/jobs/2147483647/events").status_code == 404


def test_loss_png(client: FlaskClient, worker: WorkerProcess) -> None:
    job = client.post("/jobs", json={**JOB, "training": {**JOB["training"], "epochs": 200}}).json
    wait_for(lambda: client.get(f"/jobs/{job['id']}").json["status"] == "succeeded", 60)
    response = client.get(f"/jobs/{job['id']}/loss.png")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.data.startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    image = matplotlib.image.imread(io.BytesIO(response.data), format="png")
    assert image.shape[:2] == (400, 700)
    assert np.ptp(image[..., :3]) > 0  # something was drawn
    assert client.get("/jobs/2147483647/loss.png").status_code == 404


def strict_json(text: str) -> Any:
    """``text`` parsed as standard JSON, which has no NaN or Infinity."""

    def refuse(word: str) -> None:
        raise ValueError(f"not standard JSON: {word}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_null_in_every_answer(service_settings: Settings) -> None:
    """A diverging epoch's Infinity and NaN reach clients as null, as standard JSON."""
    nobody = client_for(replace(service_settings, queue="nobody-listens"))
    job = nobody.post("/jobs", json=JOB).json
    diverged = {"epoch": 1, "loss": 2.5, "val_loss": 3.0, "val_accuracy": 0.5}
    diverged |= {"learning_rate": 0.1, "grad_norm": math.inf, "seconds": 0.01}
    with Session.begin() as session:
        q.record_epochs(
            session,
            job["id"],
            [diverged, {**diverged, "epoch": 2, "loss": math.inf, "val_loss": math.nan}],
        )
        row = q.get_job(session, job["id"])
        assert row is not None
        q.finish_job(session, row, JobStatus.FAILED, stop_reason=StopReason.NON_FINITE_LOSS)

    epochs = strict_json(nobody.get(f"/jobs/{job['id']}/epochs").get_data(as_text=True))
    assert [(e["loss"], e["val_loss"], e["grad_norm"]) for e in epochs["epochs"]] == [
        (2.5, 3.0, None),
        (None, None, None),
    ]
    current = strict_json(nobody.get(f"/jobs/{job['id']}").get_data(as_text=True))
    assert (current["loss"], current["val_loss"]) == (None, None)
    listed = strict_json(nobody.get("/jobs?limit=1").get_data(as_text=True))
    assert listed["jobs"][0]["id"] == job["id"] and listed["jobs"][0]["loss"] is None

    stream = nobody.get(f"/jobs/{job['id']}/events").get_data(as_text=True)
    datas = [line[len("data: ") :] for line in stream.splitlines() if line.startswith("data: ")]
    streamed = [strict_json(data) for data in datas]
    assert streamed[0]["epochs"] == epochs["epochs"]
    assert streamed[-1]["status"] == "failed" and streamed[-1]["loss"] is None
    png = nobody.get(f"/jobs/{job['id']}/loss.png")
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "value",
    ["9" * 5000, "2147483648", "99999999999", "\xb2", "-1", "1e3", "\u0663"],
    ids=["5000-digits", "2**31", "11-digits", "byte-0xB2", "negative", "exponent", "arabic-3"],
)
def test_hostile_last_event_ids_answer_422_before_any_stream(
    client: FlaskClient, value: str
) -> None:
    job = client.post("/jobs", json={**JOB, "training": {**JOB["training"], "epochs": 1}}).json
    response = client.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": value})
    assert response.status_code == 422 and response.mimetype == "application/json"
    assert response.json["error"]["field"] == "Last-Event-ID"
    assert len(response.json["error"]["message"]) < 200  # the 5,000 digits are not echoed
    highest = client.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": "2147483647"})
    assert highest.status_code == 200  # the largest epoch number is still one
    highest.close()


def test_streams_per_key_are_capped_with_429(service_settings: Settings) -> None:
    capped = client_for(replace(service_settings, sse_per_key=2, queue="nobody-listens"))
    other = client_for(replace(service_settings, sse_per_key=2, queue="nobody-listens"))
    job = capped.post("/jobs", json=JOB).json
    path = f"/jobs/{job['id']}/events"
    # Responses not read yet are open streams: the view has run, the body has not.
    first, second = capped.get(path, buffered=False), capped.get(path, buffered=False)
    assert (first.status_code, second.status_code) == (200, 200)
    refused = capped.get(path)
    assert refused.status_code == 429 and refused.mimetype == "application/json"
    assert refused.json["error"]["code"] == "too_many_streams"
    assert "BACKPROP_SSE_PER_KEY" in refused.json["error"]["message"]
    assert int(refused.headers["Retry-After"]) > 0
    # Another key has its own count.
    theirs = other.post("/jobs", json=JOB).json
    elsewhere = other.get(f"/jobs/{theirs['id']}/events", buffered=False)
    assert elsewhere.status_code == 200
    elsewhere.close()
    # A stream closed (even one never read) gives its place back.
    first.close()
    again = capped.get(path, buffered=False)
    assert again.status_code == 200
    for response in (second, again):
        response.close()
    capped.post(f"/jobs/{job['id']}/cancel")
    other.post(f"/jobs/{theirs['id']}/cancel")


def test_streams_joining_a_running_job_late_share_its_feed_without_gaps(
    client: FlaskClient, worker: WorkerProcess
) -> None:
    """Streams of one job opened at different moments and from different epochs each get
    every epoch after their own once, in order, from the one poller of the process."""
    job = client.post("/jobs", json={**JOB, "training": {**JOB["training"], "epochs": 4000}}).json
    path = f"/jobs/{job['id']}/events"
    results: dict[str, list[dict[str, Any]]] = {}

    def follow(name: str, last_event_id: str) -> None:
        headers = {"Last-Event-ID": last_event_id}
        results[name] = parse(client.get(path, headers=headers).get_data(as_text=True))

    first = threading.Thread(target=follow, args=("first", "0"))
    first.start()
    wait_for(lambda: client.get(f"/jobs/{job['id']}").json["epochs_completed"] > 300, 60)
    late = [threading.Thread(target=follow, args=(f"from-{n}", str(n))) for n in (0, 50, 250)]
    for thread in late:
        thread.start()
    for thread in (first, *late):
        thread.join(90)
    assert epochs_of(results["first"]) == list(range(1, 4001))
    for n in (0, 50, 250):
        events = results[f"from-{n}"]
        assert epochs_of(events) == list(range(n + 1, 4001))
        statuses = [ev["data"]["status"] for ev in events if ev["event"] == "status"]
        assert statuses == ["running", "succeeded"]


def test_curve_and_loss_png_of_a_long_job_are_thinned(service_settings: Settings) -> None:
    """50,000 epochs read as at most `points` values, keeping a one-epoch spike."""
    nobody = client_for(replace(service_settings, queue="nobody-listens"))
    job = nobody.post("/jobs", json=JOB).json
    n = 50_000
    with Session.begin() as session:  # written by PostgreSQL itself: quicker than 50,000 rows
        session.execute(
            text(
                "INSERT INTO epochs (job_id, epoch, loss, learning_rate, grad_norm, seconds) "
                "SELECT :job, g, CASE WHEN g = 12346 THEN 50.0 ELSE 1.0 / g END, 0.1, 1.0, 0.0 "
                "FROM generate_series(1, :n) AS g"
            ),
            {"job": job["id"], "n": n},
        )
    curve = nobody.get(f"/jobs/{job['id']}/curve?points=1000").json
    assert len(curve["epochs"]) <= 1000 and curve["last_epoch"] == n
    assert curve["bucket"] == 100 and curve["epochs"][0] == 1 and curve["epochs"][-1] == n
    assert curve["epochs"] == sorted(curve["epochs"])
    assert max(curve["loss"]) == 50.0 and min(curve["loss"]) == pytest.approx(1 / n)
    spike = curve["loss"].index(50.0)
    assert curve["epochs"][spike] == 12_346  # the spike, at its own epoch
    # Every point is a recorded epoch with its own loss: no value moved to another epoch.
    assert all(
        loss == pytest.approx(50.0 if epoch == 12_346 else 1.0 / epoch, rel=1e-12)
        for epoch, loss in zip(curve["epochs"], curve["loss"], strict=True)
    )
    assert curve["val_loss"] == [None] * len(curve["epochs"])
    png = nobody.get(f"/jobs/{job['id']}/loss.png")
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
    # A short job's curve is every epoch as recorded.
    short = client_for(replace(service_settings, queue="nobody-listens"), owner="bob")
    small = short.post("/jobs", json=JOB).json
    base = {"val_loss": 0.5, "val_accuracy": None, "learning_rate": 0.1, "grad_norm": 1.0}
    rows = [{"epoch": i, "loss": 1.0 / i, "seconds": 0.0, **base} for i in range(1, 31)]
    with Session.begin() as session:
        q.record_epochs(session, small["id"], rows)
    exact = short.get(f"/jobs/{small['id']}/curve?points=30").json
    assert exact["bucket"] == 1 and exact["epochs"] == list(range(1, 31))
    assert exact["loss"] == [row["loss"] for row in rows] and exact["val_loss"] == [0.5] * 30
    assert short.get(f"/jobs/{small['id']}/curve?points=1").status_code == 422
    assert nobody.get(f"/jobs/{small['id']}/curve").status_code == 404  # another owner's
    for client_, ident in ((nobody, job["id"]), (short, small["id"])):
        client_.post(f"/jobs/{ident}/cancel")
