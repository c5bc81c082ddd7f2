"""A tiny HTTP client for tests that talk to real server processes."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def call(
    base: str, method: str, path: str, body: Any = None, key: str | None = None
) -> tuple[int, Any]:
    """(status, parsed JSON body) of one request; connection errors raise OSError."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def answers(base: str) -> bool:
    try:
        return call(base, "GET", "/healthz")[0] == 200
    except OSError:
        return False


def finished_job(base: str, job_id: int, key: str, timeout: float = 60) -> Any:
    """Poll ``GET /jobs/<id>`` until the job ends; returns its last state."""
    from tests.service.processes import wait_for

    def ended() -> Any:
        job = call(base, "GET", f"/jobs/{job_id}", key=key)[1]
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(ended, timeout, 0.1, f"job {job_id} to finish")
