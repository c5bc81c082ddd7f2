"""docker-compose.yml: valid by the Compose specification, and the exact commands
of its migrate, worker and api services work against the local PostgreSQL and
Redis (no Docker engine runs here)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from store import JobStatus, Session
from store import queries as q
from tests.service.http import answers, call, free_port
from tests.service.processes import ROOT, wait_for
from worker.app import make_celery
from worker.queue import enqueue_training

XOR_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
XOR_TARGETS = np.array([[0], [1], [1], [0]])
COMPOSE = ROOT / "docker-compose.yml"
BIN = Path(sys.executable).parent


def service_command(name: str) -> list[str]:
    command = yaml.safe_load(COMPOSE.read_text())["services"][name]["command"]
    assert isinstance(command, list) and command[0] == "backprop"
    # The image has `backprop` on its PATH; here it is the virtualenv's.
    return [str(BIN / command[0]), *command[1:]]


@pytest.fixture
def run_service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def run(name: str, **extra_env: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            service_command(name),
            env={**os.environ, **service_env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def test_compose_file_follows_the_compose_spec() -> None:
    checker = shutil.which("check-jsonschema", path=str(BIN)) or "check-jsonschema"
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_wires_health_and_order() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(services) >= {"postgres", "redis", "migrate", "api", "worker"}
    for name in ("postgres", "redis", "api"):
        assert "healthcheck" in services[name], name
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_migrate_command(run_service: Any) -> None:
    assert run_service("migrate").wait(60) == 0


def test_worker_command_trains_a_job(run_service: Any, service_settings: Any) -> None:
    worker = run_service("worker")
    with Session.begin() as session:
        dataset = q.add_dataset(session, "xor", XOR_INPUTS, XOR_TARGETS)
        network = {"input_dim": 2, "layers": [{"units": 3, "activation": "tanh"}, {"units": 1}]}
        job_id = q.add_job(session, dataset, network, {"epochs": 20}).id
    enqueue_training(job_id, make_celery(service_settings))

    def status() -> JobStatus | None:
        assert worker.poll() is None, "the worker command exited"
        with Session.begin() as session:
            job = q.get_job(session, job_id)
            assert job is not None
            return job.status if job.status.finished else None

    assert wait_for(status, 60, 0.1, "the job to finish") == JobStatus.SUCCEEDED


def test_api_command_serves(run_service: Any) -> None:
    port = free_port()
    api = run_service("api", BACKPROP_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: api.poll() is not None or answers(base), 30, 0.1, "the API to answer")
    assert api.poll() is None
    assert call(base, "GET", "/readyz") == (
        200,
        {"status": "ok", "checks": {"database": "ok", "broker": "ok"}},
    )
    status, body = call(base, "GET", "/jobs")
    assert status == 401 and body["error"]["code"] == "unauthorized"
