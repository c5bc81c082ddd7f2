"""A tiny HTTP client for tests that talk to real server processes."""

from __future__ import annotations

import contextlib
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


def raw(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; (status, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # Refused before the whole request was read: the answer is there all the same.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < int(
            dict(response_headers(answer)).get("content-length", "0")
        ):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), dict(response_headers(answer)), body


def response_headers(answer: bytes) -> list[tuple[str, str]]:
    lines = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    return [(n.strip().lower(), v.strip()) for n, _, v in (line.partition(":") for line in lines)]


def json_error(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert headers["content-type"].startswith("application/json"), (status, body[:200])
    error = json.loads(body)["error"]
    assert set(error) >= {"code", "message"}
    return error  # type: ignore[no-any-return]
