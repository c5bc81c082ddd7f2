"""The user's path: Ctrl-C on `backprop up` while a job trains, start it again.

The real `backprop up` (gunicorn API and Celery worker as its children) on the
embedded defaults -- SQLite and the filesystem broker in a fresh data folder --
and on PostgreSQL + Redis. SIGINT must end every process within a few seconds,
with the job checkpointed and queued again; the next start must finish it from
its checkpoint (without waiting for a lease to expire) with every epoch recorded
once and the weights of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select

import core
from store import Epoch, Job, JobStatus
from store.models import Checkpoint
from store.settings import ENV_NAMES
from tests import worked_example as worked
from tests.service.conftest import REDIS_URL, create_database, delete_redis_keys, drop_database
from tests.service.http import answers, call, finished_job, free_port
from tests.service.processes import ROOT, wait_for

# Times Ctrl-C: alone, so that a neighbour test does not slow the stop it measures.
pytestmark = pytest.mark.serial

EPOCHS = 100_000
BACKPROP = str(Path(sys.executable).parent / "backprop")


@pytest.fixture(scope="module")
def uninterrupted() -> Iterator[Future[core.TrainResult]]:
    """The worked example trained in one go, here; computed while the service trains."""
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(
            core.train, worked.NETWORK, worked.training(EPOCHS), worked.INPUTS, worked.TARGETS
        )


@pytest.fixture(params=["sqlite-filesystem", "postgres-redis"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of `backprop up`: only the embedded defaults, or PostgreSQL + Redis.

    Nothing of this run's other settings leaks in. Checkpoints come often so
    that the job has one soon; leases and re-sends keep their defaults (30 s,
    60 s), so a job that resumes sooner was not rescued by the reconciler.
    """
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES.values()}
    env["BACKPROP_DATA_DIR"] = str(tmp_path / "data")
    env["BACKPROP_CHECKPOINT_SECONDS"] = "0.5"
    if request.param == "sqlite-filesystem":
        yield env
        return
    url = create_database(f"restart_{uuid.uuid4().hex[:6]}")
    prefix = f"backprop-test-restart-{uuid.uuid4().hex[:8]}:"
    env.update({"DATABASE_URL": url, "BROKER_URL": REDIS_URL, "BROKER_PREFIX": prefix})
    try:
        yield env
    finally:
        delete_redis_keys(prefix)
        drop_database(url)


class Up:
    """A `backprop up` process on a free port, answering before this returns."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.base = f"http://127.0.0.1:{free_port()}"
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [BACKPROP, "up", "--port", self.base.rsplit(":", 1)[1]],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(lambda: self._alive() and answers(self.base), 60, 0.1, "backprop up to answer")

    def _alive(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"backprop up exited:\n{self.log.read_text()}")
        return True

    def children(self) -> list[int]:
        """Pids of the processes `backprop up` started (the API's and the worker's mains)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                found.append(int(stat.parent.name))
        return found

    def interrupt(self) -> float:
        """Ctrl-C; returns the seconds until `backprop up` and its children are gone."""
        groups = self.children()
        assert len(groups) == 2, groups  # the API and the worker, each leading a group
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        self.process.wait(30)
        seconds = time.monotonic() - started
        for group in groups:
            with pytest.raises(ProcessLookupError):
                os.killpg(group, 0)  # nothing of the group is left
        return seconds

    def kill(self) -> None:
        for group in [self.process.pid, *self.children()]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


def database(env: dict[str, str]) -> Engine:
    url = env.get("DATABASE_URL") or f"sqlite:///{env['BACKPROP_DATA_DIR']}/backprop.db"
    return create_engine(url)


def job_row(engine: Engine, job_id: int) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(Job.__table__).where(Job.id == job_id)).one()


def checkpoint_epoch(engine: Engine, job_id: int) -> int | None:
    with engine.connect() as connection:
        return connection.scalar(select(Checkpoint.epoch).where(Checkpoint.job_id == job_id))


def test_ctrl_c_gives_the_job_back_and_the_next_start_finishes_it(
    uninterrupted: Future[core.TrainResult], deployment: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "up.log"
    first = Up(deployment, log)
    engine = database(deployment)
    try:
        key = (Path(deployment["BACKPROP_DATA_DIR"]) / "api-key").read_text().strip()
        status, job = call(first.base, "POST", "/jobs", worked.job(EPOCHS), key)
        assert status == 202, job
        job_id = job["id"]
        at = wait_for(
            lambda: checkpoint_epoch(engine, job_id), 60, 0.05, "the job's first checkpoint"
        )
        assert at < EPOCHS // 2, "the job nearly finished before the interruption"
        seconds = first.interrupt()
        print(f"\n[{deployment.get('BROKER_URL', 'filesystem')}] Ctrl-C to exit: {seconds:.2f} s")
        assert seconds < 5, log.read_text()

        # Given back: queued, no owner, its progress and checkpoint at the same epoch.
        row = job_row(engine, job_id)
        assert (row.status, row.lease_owner, row.attempt, row.given_back) == (
            JobStatus.QUEUED,
            None,
            1,
            1,
        ), log.read_text()
        stopped_at = checkpoint_epoch(engine, job_id)
        assert stopped_at is not None and at <= stopped_at < EPOCHS
        assert row.epochs_completed == stopped_at
        assert "gave the job back at epoch" in log.read_text()

        second = Up(deployment, log)
        try:
            # Resumed well within the 30 s lease and the 60 s re-send: by the
            # message the give-back sent.
            wait_for(lambda: job_row(engine, job_id).attempt == 2, 20, 0.05, "the job to resume")
            done = finished_job(second.base, job_id, key, timeout=180)
            assert done["status"] == "succeeded", done
            assert done["epochs_completed"] == EPOCHS
            status, served = call(
                second.base, "GET", f"/models/{done['model_id']}/weights", key=key
            )
            assert status == 200
        finally:
            second.kill()
    finally:
        first.kill()

    row = job_row(engine, job_id)
    assert (row.attempt, row.given_back) == (2, 1)  # the give-back took no attempt
    with engine.connect() as connection:
        count, low, high = connection.execute(
            select(func.count(), func.min(Epoch.epoch), func.max(Epoch.epoch)).where(
                Epoch.job_id == job_id
            )
        ).one()
    engine.dispose()
    assert (count, low, high) == (EPOCHS, 1, EPOCHS)  # each epoch once (unique per job)
    assert "resumes from its checkpoint" in log.read_text()

    reference = uninterrupted.result().model
    assert reference is not None
    # JSON floats round-trip float64 exactly, so equal lists are equal bits.
    assert served["layers"] == reference.to_json()["layers"]
