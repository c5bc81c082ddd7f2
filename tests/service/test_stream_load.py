"""200 open event streams against a live API (`backprop api`: gunicorn with its gevent
workers, PostgreSQL, Redis, a real worker training one of the jobs watched): ordinary
requests still answer, the per-key cap answers 429, and the requests gunicorn refuses
itself (414, 431, a malformed request line) and hostile Last-Event-IDs answer JSON.

Latencies are printed, not asserted (bench/streams.py measures them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import Session
from store import queries as q
from tests import worked_example as worked
from tests.service.conftest import cancel_unfinished
from tests.service.http import call, finished_job, json_error, raw, response_headers
from tests.service.processes import ApiProcess, running_worker, wait_for
from tests.service.stream_swarm import Client, Swarm, slow_job, summary, timed

# Two hundred open streams load both cores: alone, so neighbours neither slow it nor time out.
pytestmark = pytest.mark.serial

OWNER = "streams"
PER_KEY = 20
KEYS = 10  # x 20 streams = 200, each key at its cap and none past it
RUNNING_PER_KEY, QUEUED_PER_KEY = 15, 5


@pytest.fixture(scope="module")
def service(
    service_env: dict[str, str], service_settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    logs = tmp_path_factory.mktemp("stream-load")
    env = {**service_env, "BACKPROP_SSE_PER_KEY": str(PER_KEY), "BACKPROP_SSE_SECONDS": "120"}
    with running_worker(service_env, logs):
        api = ApiProcess(env, logs)
        try:
            with Session.begin() as session:
                keys = [q.create_api_key(session, OWNER) for _ in range(KEYS + 1)]
            yield {"base": api.base, "port": api.port, "keys": keys, "log": logs}
        finally:
            cancel_unfinished(OWNER)
            api.stop()


def test_200_open_streams_leave_the_api_answering(service: dict[str, Any]) -> None:
    base, port, keys = service["base"], service["port"], service["keys"]
    model_job = call(base, "POST", "/jobs", worked.job(1), keys[0])[1]
    model_id = finished_job(base, model_job["id"], keys[0])["model_id"]
    running = call(base, "POST", "/jobs", slow_job(), keys[0])[1]["id"]
    wait_for(
        lambda: call(base, "GET", f"/jobs/{running}", key=keys[0])[1]["status"] == "running",
        30,
        0.1,
        "the long job to run",
    )
    queued = call(base, "POST", "/jobs", slow_job(), keys[0])[1]["id"]  # behind it

    swarm = Swarm(port)
    try:
        on_running = [
            swarm.open(f"/jobs/{running}/events", key)
            for key in keys[:KEYS]
            for _ in range(RUNNING_PER_KEY)
        ]
        on_queued = [
            swarm.open(f"/jobs/{queued}/events", key)
            for key in keys[:KEYS]
            for _ in range(QUEUED_PER_KEY)
        ]
        everyone = on_running + on_queued
        assert len(everyone) == 200
        swarm.wait_answered(everyone, 30)
        assert [s.status for s in everyone] == [200] * 200
        # Every stream on the running job is fed its epochs; those on the queued one wait.
        wait_for(lambda: all(s.epochs_events > 0 for s in on_running), 30, 0.1, "epochs")
        wait_for(lambda: all(s.status_events == 1 for s in on_queued), 10, 0.1, "statuses")

        client = Client(port)
        healthz = timed(lambda: _ok(client.call("GET", "/healthz")), 50)
        predictor = Client(port, keys[KEYS])
        row = json.dumps({"inputs": worked.INPUTS}).encode()
        predict = timed(lambda: _ok(predictor.call("POST", f"/models/{model_id}/predict", row)), 50)
        print(f"\nwith 200 open streams: /healthz {summary(healthz)}")
        print(f"with 200 open streams: single-row predict {summary(predict)}")

        # One key past its cap: 2 processes x 20 streams hold at most 40, so of 41 at
        # least one is refused, in JSON, with Retry-After.
        extra = [swarm.open(f"/jobs/{queued}/events", keys[KEYS]) for _ in range(2 * PER_KEY + 1)]
        swarm.wait_answered(extra, 30)
        statuses = [s.status for s in extra]
        assert set(statuses) <= {200, 429} and statuses.count(429) >= 1, statuses
        refused = next(s for s in extra if s.status == 429)
        wait_for(lambda: refused.closed or b"}}" in refused.head, 10, 0.05, "the 429 body")
        head, _, body = refused.head.partition(b"\r\n\r\n")
        headers = dict(response_headers(refused.head))
        assert int(headers["retry-after"]) > 0
        chunk = body.split(b"\r\n")[1] if headers.get("transfer-encoding") == "chunked" else body
        assert json_error(429, headers, chunk)["code"] == "too_many_streams"
        swarm.close(extra)

        # The first 200 are all still open and being fed.
        before = sum(s.received for s in on_running)
        wait_for(lambda: sum(s.received for s in on_running) > before, 10, 0.1, "more epochs")
        assert not any(s.closed for s in everyone)
        assert _ok(client.call("GET", "/healthz")) == b'{"status":"ok"}\n'
    finally:
        swarm.close()
        for job in (running, queued):
            call(base, "POST", f"/jobs/{job}/cancel", key=keys[0])


def _ok(answer: tuple[int, bytes]) -> bytes:
    status, body = answer
    assert status == 200, (status, body[:300])
    return body


@pytest.mark.parametrize(
    "value",
    [b"\xb2", b"9" * 5000, b"2147483648", b"-5"],
    ids=["byte-0xB2", "5000-digits", "2**31", "negative"],
)
def test_hostile_last_event_id_answers_422_json(service: dict[str, Any], value: bytes) -> None:
    base, port, key = service["base"], service["port"], service["keys"][0]
    job = call(base, "POST", "/jobs", worked.job(1), key)[1]["id"]
    finished_job(base, job, key)
    request = (
        (
            f"GET /jobs/{job}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            "Last-Event-ID: "
        ).encode()
        + value
        + b"\r\n\r\n"
    )
    status, headers, body = raw(port, request)
    assert status == 422
    assert json_error(status, headers, body)["field"] == "Last-Event-ID"


def test_requests_gunicorn_refuses_answer_json(service: dict[str, Any]) -> None:
    port, key = service["port"], service["keys"][0]
    long_url = f"GET /jobs?x={'a' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    status, headers, body = raw(port, long_url)
    assert status == 414 and json_error(status, headers, body)["code"] == "uri_too_long"

    huge_key = f"GET /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {'k' * 1_000_000}\r\n\r\n"
    status, headers, body = raw(port, huge_key.encode())
    assert status == 431 and json_error(status, headers, body)["code"] == "header_fields_too_large"

    many = "".join(f"X-Header-{i}: {i}\r\n" for i in range(150))
    status, headers, body = raw(port, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    assert status == 431 and json_error(status, headers, body)["code"] == "header_fields_too_large"

    status, headers, body = raw(port, b"NONSENSE\r\n\r\n")
    assert status == 400 and json_error(status, headers, body)["code"] == "bad_request"

    # Just under the limits, the app answers (here: its own 401 for a key it does not know).
    near = f"GET /jobs?x={'a' * 8000} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}x\r\n\r\n"
    status, headers, body = raw(port, near.encode())
    assert status == 401 and json_error(status, headers, body)["code"] == "unauthorized"
    assert call(service["base"], "GET", "/healthz")[0] == 200
    log = "".join(path.read_text(errors="replace") for path in Path(service["log"]).glob("api-*"))
    assert "Traceback" not in log


def test_embedded_backend_holds_200_streams(tmp_path: Path) -> None:
    """SQLite and the filesystem broker (`backprop up`'s defaults) under the same server:
    200 streams on queued jobs (no worker), and /healthz answers while they are open."""
    # Empty is the default: nothing of this run's PostgreSQL and Redis settings.
    env = {name: "" for name in ("DATABASE_URL", "BROKER_URL", "BROKER_PREFIX")}
    env |= {"BACKPROP_STORAGE_URL": "", "BACKPROP_QUEUE": "", "BACKPROP_SSE_PER_KEY": "200"}
    env |= {"BACKPROP_DATA_DIR": str(tmp_path / "data"), "BACKPROP_SSE_SECONDS": "120"}
    backprop = str(Path(sys.executable).parent / "backprop")
    run_env = {**os.environ, **env}
    subprocess.run([backprop, "db", "upgrade"], env=run_env, check=True, capture_output=True)
    key = subprocess.run(
        [backprop, "keys", "create", "--owner", "embedded"],
        env=run_env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    api = ApiProcess(env, tmp_path)
    swarm = Swarm(api.port)
    try:
        jobs = [call(api.base, "POST", "/jobs", worked.job(5), key)[1]["id"] for _ in range(2)]
        streams = [swarm.open(f"/jobs/{jobs[i % 2]}/events", key) for i in range(200)]
        swarm.wait_answered(streams, 30)
        assert [s.status for s in streams] == [200] * 200
        wait_for(lambda: all(s.status_events == 1 for s in streams), 10, 0.1, "statuses")
        client = Client(api.port)
        healthz = timed(lambda: _ok(client.call("GET", "/healthz")), 50)
        print(f"\nembedded, with 200 open streams: /healthz {summary(healthz)}")
        # A job cancelled while watched ends its streams with its final status.
        call(api.base, "POST", f"/jobs/{jobs[0]}/cancel", key=key)
        ended = streams[0::2]
        wait_for(lambda: all(s.closed or b"0\r\n\r\n" in s.head[-7:] for s in ended), 15, 0.1)
        assert all(s.status_events == 2 for s in ended)
        open_ones = streams[1::2]
        assert not any(s.closed for s in open_ones)
        # A graceful stop (SIGTERM) ends the open streams at once rather than waiting
        # out their BACKPROP_SSE_SECONDS (120 s here; gunicorn would wait 30 s).
        os.killpg(api.process.pid, signal.SIGTERM)
        wait_for(lambda: all(s.closed for s in open_ones), 10, 0.1, "the streams to end")
    finally:
        swarm.close()
        api.stop()
