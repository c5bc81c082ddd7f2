"""Two hundred submissions at once, on both deployments: every one admitted, run once
and finished, with no epoch lost or written twice and no 5xx on the way.

The jobs are the seed's worked example for a few epochs, so the figures printed
(``pytest -s``) measure the service's own overhead, not training.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from store import Epoch, Job, JobStatus, Session
from store import queries as q
from store.settings import Settings
from tests.service.http import call
from tests.service.processes import ApiProcess, WorkerProcess, wait_for
from tests.service.test_reliability import isolated  # noqa: F401  (the fixture)
from tests.worked_example import JOB

pytestmark = pytest.mark.serial

SUBMISSIONS = 200
CLIENTS = 32
EPOCHS = 3


def test_concurrent_submissions_each_run_once(
    isolated: tuple[dict[str, str], Settings],  # noqa: F811
    tmp_path: Path,
) -> None:
    env, settings = isolated
    with Session.begin() as session:
        key = q.create_api_key(session, "load")
    worker = WorkerProcess(env, tmp_path, concurrency=2)
    api = ApiProcess(env, tmp_path)
    try:
        worker.wait_ready()
        body: dict[str, Any] = {**JOB, "training": {**JOB["training"], "epochs": EPOCHS}}
        started = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(
                pool.map(lambda _: call(api.base, "POST", "/jobs", body, key), range(SUBMISSIONS))
            )
        submit_seconds = time.monotonic() - started
        statuses = [status for status, _ in answers]
        server_errors = sum(status >= 500 for status in statuses)
        assert statuses == [202] * SUBMISSIONS, {s: statuses.count(s) for s in set(statuses)}
        ids = [job["id"] for _, job in answers]
        assert len(set(ids)) == SUBMISSIONS

        def all_finished() -> bool:
            with Session.begin() as session:
                unfinished = session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.id.in_(ids), Job.finished_at.is_(None))
                )
            return unfinished == 0

        wait_for(all_finished, 240, 0.5, "every submitted job to finish")
        total_seconds = time.monotonic() - started
        with Session.begin() as session:
            jobs = session.scalars(select(Job).where(Job.id.in_(ids))).all()
            rows = session.execute(
                select(Epoch.job_id, func.count(), func.count(func.distinct(Epoch.epoch)))
                .where(Epoch.job_id.in_(ids))
                .group_by(Epoch.job_id)
            ).all()
        succeeded = sum(job.status == JobStatus.SUCCEEDED for job in jobs)
        attempts = sorted({job.attempt for job in jobs})
        epochs = {job_id: (count, distinct) for job_id, count, distinct in rows}
        lost = sum(epochs.get(job_id, (0, 0))[1] < EPOCHS for job_id in ids)
        duplicated = sum(count - distinct for count, distinct in epochs.values())
        print(
            f"\n{env['DATABASE_URL'].split(':')[0]}: submitted {SUBMISSIONS} from {CLIENTS} "
            f"clients in {submit_seconds:.1f} s, succeeded {succeeded}, lost {lost}, "
            f"duplicated epochs {duplicated}, 5xx {server_errors}, attempts {attempts}, "
            f"all finished after {total_seconds:.1f} s"
        )
        assert succeeded == SUBMISSIONS
        assert lost == 0 and duplicated == 0
        assert all(count == EPOCHS for count, _ in epochs.values())
        # One message, one attempt: nothing was delivered twice.
        assert attempts == [1]
    finally:
        api.stop()
        worker.stop()
