"""A batch prediction job survives a worker killed in the middle of it: the next
worker predicts every row again, and the output is complete and written once.

Real worker processes with short leases, on both deployments (the embedded
defaults with a storage folder, and PostgreSQL + Redis with the database as
object storage), through test_reliability's fixtures.
"""

from __future__ import annotations

import io
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import core
from api.uploads import Upload, store
from core.frame import Column, Frame
from store import JobStatus, Session, storage
from store import queries as q
from store.settings import Settings
from tests.service.processes import WorkerProcess, wait_for
from tests.service.test_reliability import isolated, workers  # noqa: F401  (fixtures)
from worker.app import make_celery
from worker.queue import enqueue_training

from .api_helpers import train_in_process

N_FEATURES = 20
# Wide enough that predicting the rows takes a few blocks of visible progress.
NETWORK = {
    "layers": [{"units": 256, "activation": "tanh"}, {"units": 256, "activation": "tanh"}],
}
TRAINING = {"epochs": 2, "batch_size": 50, "seed": 4}


def frame(n_rows: int, seed: int) -> Frame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, N_FEATURES))
    columns = [Column.number(f"x{j}", x[:, j]) for j in range(N_FEATURES)]
    return Frame([*columns, Column.number("y", x[:, :3].sum(axis=1))])


def stored(name: str, table: Frame) -> int:
    upload = Upload(table, ["y"], "regression")
    with ExitStack() as staged, Session.begin() as session:
        return store(session, name, upload, "local", staged).id


def test_a_killed_worker_leaves_a_complete_output_written_once(
    isolated: tuple[dict[str, str], Settings],  # noqa: F811
    workers: list[WorkerProcess],  # noqa: F811
    tmp_path: Path,
) -> None:
    env, settings = isolated
    with Session.begin() as session:
        dataset = q.get_dataset(session, stored("small", frame(200, 1)))
        assert dataset is not None
        job_id = q.add_job(session, dataset, NETWORK, TRAINING).id
    model_id = train_in_process(job_id)
    big = frame(200_000, 2)
    with Session.begin() as session:
        model = q.get_model(session, model_id)
        dataset = q.get_dataset(session, stored("big", big))
        assert model is not None and dataset is not None
        prediction = q.add_prediction_job(session, model, dataset).id
        weights_key = model.weights_key

    first = WorkerProcess(env, tmp_path)
    workers.append(first)
    first.wait_ready()
    enqueue_training(prediction, make_celery(settings))

    def midway() -> bool:
        with Session.begin() as session:
            job = q.get_job(session, prediction)
            assert job is not None
            return 0 < job.epochs_completed < big.n_rows and job.status == JobStatus.RUNNING

    wait_for(midway, 60, 0.02, "the prediction to be part way through")
    first.kill()

    second = WorkerProcess(env, tmp_path)
    workers.append(second)
    second.wait_ready()

    def finished() -> bool:
        with Session.begin() as session:
            job = q.get_job(session, prediction)
            return job is not None and job.status.finished

    wait_for(finished, 120, 0.1, "the prediction to finish on the second worker")
    with Session.begin() as session:
        job = q.get_job(session, prediction)
        assert job is not None
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.attempt == 2 and job.epochs_completed == big.n_rows
        key = job.output_key
    assert key is not None
    assert storage().objects.keys(f"predictions/{prediction}/") == [key]

    table = pq.read_table(io.BytesIO(storage().read(key)))
    assert table.num_rows == big.n_rows and table.column_names == ["y"]
    trained = core.Model.from_bytes(storage().read(weights_key))
    expected = trained.predict(big)[:, 0]
    np.testing.assert_allclose(table.column("y").to_numpy(), expected, rtol=1e-12, atol=1e-12)
