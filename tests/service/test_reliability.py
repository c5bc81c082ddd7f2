"""Jobs survive lost workers, duplicate messages and a broker that forgets.

Real worker processes with short leases, so that a lost worker is noticed within
seconds; every scenario runs on both deployments: the embedded defaults (SQLite
and the filesystem broker) and PostgreSQL + Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError

import core
from store import Epoch, JobStatus, Session, storage
from store import queries as q
from store.settings import Settings
from tests.service.conftest import (
    POSTGRES_ADMIN,
    bound,
    create_database,
    delete_redis_keys,
    drop_database,
    environment,
    sqlite_env,
)
from tests.service.http import call, finished_job
from tests.service.processes import ROOT, ApiProcess, WorkerProcess, wait_for
from worker.app import make_celery
from worker.queue import enqueue_training
from worker.training import run_job

from .api_helpers import store_arrays

LOST = core.StopReason.WORKER_LOST

FAST_RECOVERY = {
    "BACKPROP_LEASE_SECONDS": "2",
    "BACKPROP_CHECKPOINT_SECONDS": "0.3",
    "BACKPROP_REQUEUE_SECONDS": "1",
    "BACKPROP_RECONCILE_SECONDS": "0.3",
    "BACKPROP_EPOCH_FLUSH_SECONDS": "0.1",
}

NETWORK = {
    "input_dim": 6,
    "layers": [{"units": 12, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
}
TRAINING = {
    "epochs": 1500,
    "batch_size": 8,
    "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
    "loss": "binary_crossentropy",
    "validation_split": 0.2,
    "seed": 3,
}


def dataset() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(160, 6))
    t = (x[:, :3].sum(axis=1) > 0).astype(float).reshape(-1, 1)
    return x, t


BACKENDS = ["sqlite-filesystem", "postgres-redis"]


@pytest.fixture(scope="module", params=BACKENDS)
def isolated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], Settings]]:
    """A database, broker and queue of this module's own, with fast recovery."""
    data_dir = tmp_path_factory.mktemp("rel")
    if request.param == "postgres-redis":
        url = create_database("reliability")
        env = environment(url, "reliability", data_dir)
    else:
        env = sqlite_env(data_dir)
        url = env["DATABASE_URL"]
    env.update(FAST_RECOVERY)
    with bound(env) as settings:
        yield env, settings
    if settings.broker_is_filesystem:
        return
    delete_redis_keys(env["BROKER_PREFIX"])
    drop_database(url)


def forget_messages(settings: Settings) -> int:
    """What a broker restart without persistence does: every queued message gone."""
    if settings.broker_is_filesystem:
        messages = list(settings.broker_folder.glob("*.msg"))
        for path in messages:
            path.unlink()
        return len(messages)
    return delete_redis_keys(settings.broker_prefix)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def submit(settings: Settings, network: dict[str, Any], training: dict[str, Any]) -> int:
    x, t = dataset()
    with Session.begin() as session:
        data = store_arrays(session, "synthetic", x, t)
        job_id = q.add_job(session, data, network, training).id
    enqueue_training(job_id, make_celery(settings))
    return job_id


def job_state(job_id: int) -> tuple[JobStatus, int, int]:
    with Session.begin() as session:
        job = q.get_job(session, job_id)
        assert job is not None
        return job.status, job.epochs_completed, job.attempt


def finished(job_id: int) -> bool:
    return job_state(job_id)[0].finished


def epoch_numbers(job_id: int) -> list[int]:
    with Session.begin() as session:
        return list(
            session.scalars(select(Epoch.epoch).where(Epoch.job_id == job_id).order_by(Epoch.epoch))
        )


def trained_weights(job_id: int) -> list[np.ndarray[Any, Any]]:
    with Session.begin() as session:
        model_id = q.model_id_for_job(session, job_id)
        assert model_id is not None
        row = q.get_model(session, model_id)
        assert row is not None
    model = core.Model.from_bytes(storage().read(row.weights_key))
    return model.network.weights + model.network.biases


def uninterrupted_weights() -> list[np.ndarray[Any, Any]]:
    x, t = dataset()
    result = core.train(NETWORK, TRAINING, x, t)
    assert result.model is not None
    return result.model.network.weights + result.model.network.biases


def test_kill_9_mid_job_resumes_exactly(
    isolated: tuple[dict[str, str], Settings], workers: list[WorkerProcess], tmp_path: Path
) -> None:
    env, settings = isolated
    first = WorkerProcess(env, tmp_path)
    workers.append(first)
    first.wait_ready()
    job_id = submit(settings, NETWORK, TRAINING)

    def checkpointed_midway() -> bool:
        with Session.begin() as session:
            checkpoint = q.get_checkpoint(session, job_id)
            return checkpoint is not None and 100 <= checkpoint.epoch < TRAINING["epochs"] - 300

    wait_for(checkpointed_midway, 60, what="a checkpoint in the middle of the job")
    first.kill()
    status, done_before, attempt = job_state(job_id)
    assert status == JobStatus.RUNNING and attempt == 1 and done_before < TRAINING["epochs"]

    second = WorkerProcess(env, tmp_path)
    workers.append(second)
    second.wait_ready()
    wait_for(lambda: finished(job_id), 90, 0.1, "the job to finish on the second worker")

    status, done, attempt = job_state(job_id)
    assert status == JobStatus.SUCCEEDED, second.output()
    assert attempt == 2
    assert epoch_numbers(job_id) == list(range(1, TRAINING["epochs"] + 1))
    for served, reference in zip(trained_weights(job_id), uninterrupted_weights(), strict=True):
        assert np.array_equal(served, reference)
    assert "resumes from its checkpoint" in second.output()


# A network whose checkpoint (weights and momentum, about 4 MB) takes long enough to
# write that a watcher sees the write under way.
WIDE_NETWORK = {
    "input_dim": 6,
    "layers": [
        {"units": 500, "activation": "tanh"},
        {"units": 500, "activation": "tanh"},
        {"units": 1, "activation": "sigmoid"},
    ],
}
WIDE_TRAINING = {
    **TRAINING,
    # Several seconds of training on any machine, so that checkpoints (every second
    # here) are written while it runs.
    "epochs": 150,
    "batch_size": 32,
    "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
}


@contextmanager
def checkpoint_write_open(settings: Settings, job_id: int) -> Iterator[Callable[[], bool]]:
    """A check that is true while a checkpoint of ``job_id`` is being stored and not
    yet in place: a temporary ``.part-*`` file beside the checkpoints (the folder
    backend), an ``INSERT INTO objects`` in a transaction not yet committed (the
    database backend, in this test's own database)."""
    if settings.storage_url.startswith("file://"):
        folder = Path(urlsplit(settings.storage_url).path) / q.checkpoint_prefix(job_id)
        yield lambda: any(folder.glob(".part-*"))
        return
    assert settings.storage_url == "database://"
    database = settings.database_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:

        def open_insert() -> bool:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND state IN ('active', 'idle in transaction')"
                " AND query LIKE 'INSERT INTO objects%%'",
                (database,),
            ).fetchone()
            return row is not None and row[0] > 0

        yield open_insert


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def kill_inside(worker: WorkerProcess, writing: Callable[[], bool], timeout: float = 60) -> None:
    """SIGKILL ``worker`` while ``writing()`` holds, made certain by freezing it first.

    Polling alone could see a write that ends before the kill lands. So the worker is
    frozen (SIGSTOP) the moment the write is seen, and killed only if the write is
    still open once it is frozen -- a frozen process cannot finish it, and a commit
    it had already sent has reached the database 50 ms later. Otherwise it is let go
    (SIGCONT) and the next checkpoint is watched.
    """
    pid = worker.process.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if writing():
            os.killpg(pid, signal.SIGSTOP)
            wait_for(lambda: stopped(pid), 5, 0.001, "the worker to freeze")
            time.sleep(0.05)
            if writing():
                worker.kill()
                return
            os.killpg(pid, signal.SIGCONT)
        time.sleep(0.001)
    raise AssertionError(f"no checkpoint write seen within {timeout} s:\n{worker.output()}")


def test_kill_9_while_writing_a_checkpoint_resumes_exactly(
    isolated: tuple[dict[str, str], Settings], workers: list[WorkerProcess], tmp_path: Path
) -> None:
    env, settings = isolated
    # Fewer checkpoints of this size than the fast recovery's, each one watched.
    env = {**env, "BACKPROP_CHECKPOINT_SECONDS": "1"}
    first = WorkerProcess(env, tmp_path)
    workers.append(first)
    first.wait_ready()
    job_id = submit(settings, WIDE_NETWORK, WIDE_TRAINING)

    def first_checkpoint() -> bool:
        with Session.begin() as session:
            return q.get_checkpoint(session, job_id) is not None

    wait_for(first_checkpoint, 60, what="the job's first checkpoint")
    with checkpoint_write_open(settings, job_id) as writing:
        kill_inside(first, writing)

    status, _, attempt = job_state(job_id)
    with Session.begin() as session:
        checkpoint = q.get_checkpoint(session, job_id)
        assert checkpoint is not None
        kept = checkpoint.data_key
    assert status == JobStatus.RUNNING and attempt == 1
    assert checkpoint.epoch < WIDE_TRAINING["epochs"]  # type: ignore[operator]
    # The half-written checkpoint was never made an object: the previous one is in force.
    assert storage().objects.keys(q.checkpoint_prefix(job_id)) == [kept]

    second = WorkerProcess(env, tmp_path)
    workers.append(second)
    second.wait_ready()
    wait_for(lambda: finished(job_id), 90, 0.1, "the job to finish on the second worker")

    status, _, attempt = job_state(job_id)
    assert status == JobStatus.SUCCEEDED, second.output()
    assert attempt == 2
    assert "resumes from its checkpoint" in second.output()
    assert epoch_numbers(job_id) == list(range(1, WIDE_TRAINING["epochs"] + 1))  # type: ignore[operator]
    x, t = dataset()
    reference = core.train(WIDE_NETWORK, WIDE_TRAINING, x, t).model
    assert reference is not None
    expected = reference.network.weights + reference.network.biases
    for served, wanted in zip(trained_weights(job_id), expected, strict=True):
        assert np.array_equal(served, wanted)
    assert storage().objects.keys(q.checkpoint_prefix(job_id)) == []


def test_duplicate_message_runs_once(
    isolated: tuple[dict[str, str], Settings], workers: list[WorkerProcess], tmp_path: Path
) -> None:
    env, settings = isolated
    worker = WorkerProcess(env, tmp_path, concurrency=2)
    workers.append(worker)
    worker.wait_ready()
    training = {**TRAINING, "epochs": 600}
    job_id = submit(settings, NETWORK, training)
    wait_for(lambda: job_state(job_id)[1] > 0, 30, what="the job to start")
    enqueue_training(job_id, make_celery(settings))  # the same message again
    wait_for(lambda: finished(job_id), 60, 0.1, "the job to finish")

    status, _, attempt = job_state(job_id)
    assert status == JobStatus.SUCCEEDED
    assert attempt == 1  # the duplicate could not take the lease
    assert epoch_numbers(job_id) == list(range(1, 601))
    assert "is not ours to run" in worker.output()


def test_lost_lease_fences_the_old_attempt(isolated: tuple[dict[str, str], Settings]) -> None:
    _, settings = isolated
    x, t = dataset()
    with Session.begin() as session:
        job_id = q.add_job(session, store_arrays(session, "d", x, t), NETWORK, TRAINING).id
    with Session.begin() as session:
        first = q.take_lease(session, job_id, "a", lease_seconds=60, max_attempts=5)
    with Session.begin() as session:
        # A live lease cannot be taken.
        assert q.take_lease(session, job_id, "b", lease_seconds=60, max_attempts=5) is None
    with Session.begin() as session:
        # An expired one can (lease of 0 s: every heartbeat is stale).
        second = q.take_lease(session, job_id, "b", lease_seconds=0, max_attempts=5)
    assert (first, second) == (1, 2)
    with pytest.raises(q.LeaseLost), Session.begin() as session:
        q.renew_lease(session, job_id, 1)
        q.record_epochs(session, job_id, [asdict(core.EpochStats(1, 0.5, None, None, 0.1, 1.0, 0))])
    assert epoch_numbers(job_id) == []  # the fenced transaction wrote nothing
    with Session.begin() as session:
        assert q.renew_lease(session, job_id, 2) is False


def test_jobs_queued_when_the_broker_forgets_still_finish(
    isolated: tuple[dict[str, str], Settings], workers: list[WorkerProcess], tmp_path: Path
) -> None:
    env, settings = isolated
    training = {**TRAINING, "epochs": 50}
    job_ids = [submit(settings, NETWORK, training) for _ in range(3)]
    assert forget_messages(settings) > 0
    worker = WorkerProcess(env, tmp_path)
    workers.append(worker)
    worker.wait_ready()
    for job_id in job_ids:
        wait_for(lambda job_id=job_id: finished(job_id), 60, 0.1, f"job {job_id} to finish")
        assert job_state(job_id)[0] == JobStatus.SUCCEEDED
        assert epoch_numbers(job_id) == list(range(1, 51))


def test_attempts_are_capped(isolated: tuple[dict[str, str], Settings]) -> None:
    _, settings = isolated
    x, t = dataset()
    with Session.begin() as session:
        job_id = q.add_job(session, store_arrays(session, "d", x, t), NETWORK, TRAINING).id
    for _ in range(settings.max_attempts):
        with Session.begin() as session:
            assert q.take_lease(
                session, job_id, "w", lease_seconds=0, max_attempts=settings.max_attempts
            )
    with Session.begin() as session:
        assert (
            q.take_lease(session, job_id, "w", lease_seconds=0, max_attempts=settings.max_attempts)
            is None
        )
        q.jobs_to_requeue(
            session,
            lease_seconds=0,
            requeue_seconds=0,
            max_attempts=settings.max_attempts,
            lost_reason=LOST,
        )
    with Session.begin() as session:
        job = q.get_job(session, job_id)
        assert job is not None and job.status == JobStatus.FAILED
        assert job.error is not None and f"after {settings.max_attempts} attempts" in job.error


def test_the_service_time_limit_ends_a_long_job(
    isolated: tuple[dict[str, str], Settings], workers: list[WorkerProcess], tmp_path: Path
) -> None:
    env, settings = isolated
    worker = WorkerProcess({**env, "BACKPROP_MAX_JOB_SECONDS": "1"}, tmp_path)
    workers.append(worker)
    worker.wait_ready()
    job_id = submit(settings, NETWORK, {**TRAINING, "epochs": 1_000_000})
    wait_for(lambda: finished(job_id), 60, 0.1, "the time limit to stop the job")
    with Session.begin() as session:
        job = q.get_job(session, job_id)
        assert job is not None
        assert (job.status, job.stop_reason) == (JobStatus.SUCCEEDED, "time_limit")
        assert 0 < job.epochs_completed < 1_000_000
        assert q.model_id_for_job(session, job_id) is not None


def test_restarting_the_api_loses_nothing(
    isolated: tuple[dict[str, str], Settings], workers: list[WorkerProcess], tmp_path: Path
) -> None:
    env, _ = isolated
    worker = WorkerProcess(env, tmp_path)
    workers.append(worker)
    with Session.begin() as session:
        key = q.create_api_key(session, "erin")
    api = ApiProcess(env, tmp_path)
    worker.wait_ready()
    x, t = dataset()
    body = {
        "dataset": {"inputs": x.tolist(), "targets": t.tolist()},
        "network": NETWORK,
        "training": {**TRAINING, "epochs": 800},
    }
    status, job = call(api.base, "POST", "/jobs", body, key)
    assert status == 202, job
    wait_for(
        lambda: call(api.base, "GET", f"/jobs/{job['id']}", key=key)[1]["epochs_completed"] > 0,
        30,
    )
    api.kill()  # mid-job, without a chance to clean up
    api = ApiProcess(env, tmp_path)
    try:
        done = finished_job(api.base, job["id"], key)
        assert done["status"] == "succeeded"
        assert epoch_numbers(job["id"]) == list(range(1, 801))
        status, model = call(api.base, "GET", f"/models/{done['model_id']}", key=key)
        assert status == 200 and model["job_id"] == job["id"]
    finally:
        api.stop()


def test_given_back_attempts_do_not_count(isolated: tuple[dict[str, str], Settings]) -> None:
    _, settings = isolated
    cap = settings.max_attempts
    x, t = dataset()
    with Session.begin() as session:
        job_id = q.add_job(session, store_arrays(session, "d", x, t), NETWORK, TRAINING).id
    for attempt in range(1, cap + 3):  # more give-backs than attempts allowed
        with Session.begin() as session:
            assert q.take_lease(session, job_id, "w", lease_seconds=60, max_attempts=cap) == attempt
            q.renew_lease(session, job_id, attempt)
            q.release_lease(session, job_id, attempt)
    with Session.begin() as session:
        job = q.get_job(session, job_id)
        assert job is not None
        assert (job.status, job.lease_owner, job.attempt, job.given_back) == (
            JobStatus.QUEUED,
            None,
            cap + 2,
            cap + 2,
        )
        # A stale attempt cannot give the job back: it no longer holds it.
        assert q.take_lease(session, job_id, "w", lease_seconds=60, max_attempts=cap) == cap + 3
        with pytest.raises(q.LeaseLost):
            q.renew_lease(session, job_id, cap + 2)


def test_a_lost_worker_is_noticed_on_this_backend(
    isolated: tuple[dict[str, str], Settings],
) -> None:
    """The reconciler's sweep compares times read back from the database (on SQLite
    these were naive, and every sweep raised TypeError)."""
    _, settings = isolated
    x, t = dataset()
    with Session.begin() as session:
        job_id = q.add_job(session, store_arrays(session, "d", x, t), NETWORK, TRAINING).id
    with Session.begin() as session:
        assert q.take_lease(session, job_id, "gone", lease_seconds=60, max_attempts=5) == 1
    with Session.begin() as session:
        # The lease (0 s) has expired and the job was last sent before it was leased.
        sent = q.jobs_to_requeue(
            session, lease_seconds=0, requeue_seconds=60, max_attempts=5, lost_reason=LOST
        )
    assert job_id in sent
    with Session.begin() as session:
        job = q.get_job(session, job_id)
        assert job is not None and job.enqueued_at is not None and job.heartbeat_at is not None
        moments = [job.created_at, job.started_at, job.enqueued_at, job.heartbeat_at]
        assert all(m is not None and m.tzinfo is UTC for m in moments), moments
        # A live lease is left alone.
        assert job_id not in q.jobs_to_requeue(
            session, lease_seconds=3600, requeue_seconds=60, max_attempts=5, lost_reason=LOST
        )


def test_datetimes_are_stored_as_utc_instants(isolated: tuple[dict[str, str], Settings]) -> None:
    x, t = dataset()
    noon_in_cairo = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with Session.begin() as session:
        job = q.add_job(session, store_arrays(session, "d", x, t), NETWORK, TRAINING)
        job.finished_at = noon_in_cairo
        job_id = job.id
    with Session.begin() as session:
        job = q.get_job(session, job_id)
        assert job is not None and job.finished_at is not None
        assert job.finished_at == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
        assert job.finished_at.tzinfo is UTC
    with pytest.raises(StatementError, match="naive datetime"), Session.begin() as session:
        job = q.get_job(session, job_id)
        assert job is not None
        job.finished_at = datetime(2026, 1, 1, 12, 0)  # no zone: which noon?
        session.flush()


def test_epoch_rows_are_the_engines_epoch_stats() -> None:
    stats = {field.name for field in fields(core.EpochStats)}
    assert {column.name for column in Epoch.__table__.columns} == stats | {"job_id"}


def test_importing_the_worker_does_no_work(tmp_path: Path) -> None:
    """Only the entry module builds things; the rest can be imported anywhere."""
    code = (
        "import threading, celery._state as s\n"
        "import worker.app, worker.tasks, worker.lifecycle, worker.queue\n"
        "import worker.reconciler, worker.training, api.broker, store.db\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "assert not list(s._get_active_apps()), list(s._get_active_apps())\n"
        "assert not store.db._engines and store.db.Session.kw.get('bind') is None\n"
        "import sys, api\n"
        "assert 'sklearn' not in sys.modules  # the worker's start or an evaluate imports it\n"
    )
    env = {
        **os.environ,
        # Reading the settings would fail on this, and make this folder.
        "BACKPROP_MAX_EPOCHS": "not a number",
        "BACKPROP_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "data").exists()
    # The entry module does read them, and fails on the bad value.
    entry = subprocess.run(
        [sys.executable, "-c", "import worker.make_celery"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert entry.returncode != 0 and "not a number" in entry.stderr


def polls_until(count: int, then: Any = None) -> Any:
    """A ``should_give_back`` that answers True from its ``count``-th call on,
    calling ``then`` once at that moment."""
    calls = 0

    def poll() -> bool:
        nonlocal calls
        calls += 1
        if calls == count and then is not None:
            then()
        return calls >= count

    return poll


def test_a_job_given_back_resumes_exactly(isolated: tuple[dict[str, str], Settings]) -> None:
    _, settings = isolated
    training = {**TRAINING, "epochs": 300}
    x, t = dataset()
    with Session.begin() as session:
        job_id = q.add_job(session, store_arrays(session, "d", x, t), NETWORK, training).id

    # Polled before each epoch: the 101st poll comes after epoch 100.
    assert run_job(job_id, settings, should_give_back=polls_until(101)) is True
    with Session.begin() as session:
        job = q.get_job(session, job_id)
        checkpoint = q.get_checkpoint(session, job_id)
        assert job is not None and checkpoint is not None
        assert (job.status, job.lease_owner, job.attempt, job.given_back) == (
            JobStatus.QUEUED,
            None,
            1,
            1,
        )
        assert (checkpoint.epoch, job.epochs_completed) == (100, 100)

    assert run_job(job_id, settings) is False
    status, done, attempt = job_state(job_id)
    assert (status, done, attempt) == (JobStatus.SUCCEEDED, 300, 2)
    assert epoch_numbers(job_id) == list(range(1, 301))
    result = core.train(NETWORK, training, x, t)
    assert result.model is not None
    reference = result.model.network.weights + result.model.network.biases
    for served, expected in zip(trained_weights(job_id), reference, strict=True):
        assert np.array_equal(served, expected)


def test_a_job_cancelled_as_it_is_given_back_ends_cancelled(
    isolated: tuple[dict[str, str], Settings],
) -> None:
    _, settings = isolated
    x, t = dataset()
    with Session.begin() as session:
        job_id = q.add_job(session, store_arrays(session, "d", x, t), NETWORK, TRAINING).id

    def cancel() -> None:
        with Session.begin() as session:
            job = q.get_job(session, job_id)
            assert job is not None
            q.request_cancel(session, job, stop_reason=core.StopReason.CANCELLED)

    assert run_job(job_id, settings, should_give_back=polls_until(50, then=cancel)) is False
    with Session.begin() as session:
        job = q.get_job(session, job_id)
        assert job is not None
        assert (job.status, job.stop_reason, job.given_back) == (
            JobStatus.CANCELLED,
            "cancelled",
            0,
        )
        assert job.epochs_completed == 49
        assert q.get_checkpoint(session, job_id) is None


def test_epochs_past_where_a_resumed_attempt_stopped_are_forgotten(
    isolated: tuple[dict[str, str], Settings],
) -> None:
    """A lost attempt's epochs past its checkpoint belong to no model once the
    resumed attempt stops sooner (a cancel here; a sweep's pruner in a sweep)."""
    _, settings = isolated
    x, t = dataset()
    with Session.begin() as session:
        job_id = q.add_job(session, store_arrays(session, "d", x, t), NETWORK, TRAINING).id
    assert run_job(job_id, settings, should_give_back=polls_until(101)) is True
    lost = [asdict(core.EpochStats(e, 9.0, None, None, 0.05, 1.0, 0.001)) for e in range(101, 1401)]
    with Session.begin() as session:
        q.record_epochs(session, job_id, lost)  # as a lost attempt flushes between checkpoints

    polls = 0

    def cancel_soon() -> bool:
        nonlocal polls
        polls += 1
        if polls == 20:
            with Session.begin() as session:
                job = q.get_job(session, job_id)
                assert job is not None
                q.request_cancel(session, job, stop_reason=core.StopReason.CANCELLED)
        return False

    assert run_job(job_id, settings, should_give_back=cancel_soon) is False
    status, done, _ = job_state(job_id)
    assert status == JobStatus.CANCELLED and 120 <= done < 1400, done
    assert epoch_numbers(job_id) == list(range(1, done + 1))
    with Session.begin() as session:
        job = q.get_job(session, job_id)
        last = session.get(Epoch, (job_id, done))
        assert job is not None and last is not None
        assert (job.loss, job.val_loss) == (last.loss, last.val_loss)
