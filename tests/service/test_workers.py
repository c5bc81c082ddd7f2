"""Many workers add up: each process limits its BLAS threads to its share of the
host's cores, and workers on separate hosts share one queue.

Real worker processes: the thread limit is read from their own log lines (each
reads its pools back with threadpoolctl), and the two "hosts" are two workers with
data folders of their own, on PostgreSQL + Redis with stored bytes in the database.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from store import JobStatus, Session
from store import queries as q
from store.settings import Settings
from tests.service.api_helpers import client_for, store_arrays
from tests.service.conftest import (
    bound,
    create_database,
    delete_redis_keys,
    drop_database,
    environment,
    sqlite_env,
)
from tests.service.processes import GroupProcess, WorkerProcess, wait_for
from worker.app import make_celery
from worker.queue import enqueue_training
from worker.threads import host_cores

NETWORK = {
    "input_dim": 6,
    "layers": [{"units": 16, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
}
TRAINING = {
    "epochs": 300,
    "batch_size": 8,
    "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
    "loss": "binary_crossentropy",
    "validation_split": 0.2,
    "seed": 3,
}


def rows(seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(160, 6))
    return x, (x[:, :3].sum(axis=1) > 0).astype(float).reshape(-1, 1)


def embedded_env(data_dir: Path) -> dict[str, str]:
    """The embedded defaults in ``data_dir``, each worker with its BLAS threads unset."""
    return {
        **sqlite_env(data_dir),
        "BACKPROP_BLAS_THREADS": "",
        "BACKPROP_EPOCH_FLUSH_SECONDS": "0.1",
    }


def submit(settings: Settings, seed: int, epochs: int = 300) -> int:
    x, t = rows(seed)
    with Session.begin() as session:
        data = store_arrays(session, f"rows-{seed}", x, t)
        job_id = q.add_job(session, data, NETWORK, {**TRAINING, "epochs": epochs}).id
    enqueue_training(job_id, make_celery(settings))
    return job_id


def status(job_id: int) -> JobStatus:
    with Session.begin() as session:
        job = q.get_job(session, job_id)
        assert job is not None
        return job.status


def limit_lines(output: str) -> list[str]:
    return re.findall(r"BLAS threads per call .*?pools: [^\"]*", output)


def test_a_worker_limits_its_blas_threads_to_its_share(tmp_path: Path) -> None:
    share = max(1, host_cores() // 2)
    env = embedded_env(tmp_path / "data")
    with bound(env) as settings:
        worker = WorkerProcess(env, tmp_path, concurrency=2)
        try:
            worker.wait_ready()
            job_ids = [submit(settings, seed, epochs=50) for seed in (1, 2)]
            for job_id in job_ids:
                wait_for(lambda job_id=job_id: status(job_id).finished, 60, 0.1, f"job {job_id}")
                assert status(job_id) == JobStatus.SUCCEEDED
        finally:
            worker.stop()
    output = worker.output()
    # Read back in the worker process, in its main thread and in the job threads
    # (OpenMP's limit is per thread).
    assert limit_lines(output) == [
        f"BLAS threads per call {share} (cores // concurrency; {host_cores()} cores, "
        f"concurrency 2); pools: openblas={share}, openmp={share}"
    ], output
    in_jobs = re.findall(r"job thread limited to (\d+) BLAS threads; pools: ([^\"]*)", output)
    assert in_jobs and all(
        found == (str(share), f"openblas={share}, openmp={share}") for found in in_jobs
    ), output


def test_worker_processes_divide_the_cores(tmp_path: Path) -> None:
    """`backprop worker --processes 2`: two Celery processes, each with its share."""
    env = embedded_env(tmp_path / "data")
    share = max(1, host_cores() // 4)
    command = [
        str(Path(sys.executable).parent / "backprop"),
        "worker",
        "--processes",
        "2",
        "--concurrency",
        "2",
    ]
    workers = GroupProcess(command, env, tmp_path / "workers.log")
    try:
        wait_for(lambda: workers.output().count(" ready.") == 2, 30, 0.1, "two ready workers")
    finally:
        workers.stop()
    output = workers.output()
    assert f"2 worker processes x 2 jobs, {share} BLAS thread(s)" in output
    expected = (
        f"BLAS threads per call {share} (BACKPROP_BLAS_THREADS; {host_cores()} cores, "
        f"concurrency 2); pools: openblas={share}, openmp={share}"
    )
    assert limit_lines(output) == [expected, expected], output
    assert workers.process.returncode == 0, output
    assert "SIGTERM; stopping" in output


@pytest.fixture
def two_hosts(tmp_path: Path) -> Iterator[tuple[Settings, list[dict[str, str]]]]:
    """A database, queue and broker prefix of their own; the settings of this process
    (its own data folder) and the environments of two workers with one each."""
    url = create_database("hosts", migrate=True)
    hosts = [environment(url, "hosts", tmp_path / f"host-{name}") for name in ("a", "b")]
    try:
        with bound(environment(url, "hosts", tmp_path / "api")) as settings:
            assert settings.storage_url == "database://"
            yield settings, hosts
    finally:
        delete_redis_keys(hosts[0]["BROKER_PREFIX"])
        drop_database(url)


def test_two_hosts_share_the_queue_without_sharing_disks(
    two_hosts: tuple[Settings, list[dict[str, str]]], tmp_path: Path
) -> None:
    settings, hosts = two_hosts
    workers = [WorkerProcess(env, tmp_path) for env in hosts]
    try:
        for worker in workers:
            worker.wait_ready()
        job_ids = [submit(settings, seed) for seed in range(6)]
        for job_id in job_ids:
            wait_for(lambda job_id=job_id: status(job_id).finished, 60, 0.1, f"job {job_id}")
    finally:
        for worker in workers:
            worker.stop()
    outputs = "\n".join(worker.output() for worker in workers)
    assert [status(job_id) for job_id in job_ids] == [JobStatus.SUCCEEDED] * 6, outputs

    with Session.begin() as session:
        jobs = [q.get_job(session, job_id) for job_id in job_ids]
        digests = {q.get_dataset(session, job.dataset_id).sha256 for job in jobs}  # type: ignore[union-attr,arg-type]
        model_ids = [q.model_id_for_job(session, job_id) for job_id in job_ids]
    # A worker fetches a job's dataset into its own host's cache only once it holds the
    # job's lease: both ran jobs, and between them every dataset reached a host by way
    # of the database, not of the other's disk.
    cached = [
        {
            path.name.split(".")[0]
            for path in (Path(env["BACKPROP_DATA_DIR"]) / "cache").glob("[!.]*")
        }
        for env in hosts
    ]
    assert all(cached), (cached, outputs)
    assert cached[0] | cached[1] == digests
    for folder in [*(Path(env["BACKPROP_DATA_DIR"]) for env in hosts), settings.data_dir]:
        assert not (folder / "objects").exists()

    # Predictions from the models the two hosts trained, served from the database.
    client = client_for(settings, owner="local")
    x, _ = rows(0)
    for model_id in model_ids:
        response = client.post(f"/models/{model_id}/predict", json={"inputs": x[:4].tolist()})
        assert response.status_code == 200, response.json
        assert len(response.json["outputs"]) == 4  # type: ignore[index]
