"""Query functions. Each takes a session and leaves committing to the caller."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, undefer

from .models import Dataset, Epoch, Job, JobStatus, Model, utcnow

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


class InUse(Exception):
    """A row that running or queued work still needs."""


# --- datasets -----------------------------------------------------------------


def pack_arrays(inputs: np.ndarray[Any, Any], targets: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, inputs=inputs.astype(np.float64), targets=targets.astype(np.float64))
    return buffer.getvalue()


def unpack_arrays(data: bytes) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return npz["inputs"], npz["targets"]


def add_dataset(
    session: Session,
    name: str,
    inputs: np.ndarray[Any, Any],
    targets: np.ndarray[Any, Any],
    *,
    classes: list[str] | None = None,
    feature_names: list[str] | None = None,
    target_names: list[str] | None = None,
) -> Dataset:
    inputs = np.ascontiguousarray(inputs, dtype=np.float64)
    targets = np.ascontiguousarray(targets, dtype=np.float64)
    digest = hashlib.sha256()
    digest.update(inputs.tobytes())
    digest.update(targets.tobytes())
    dataset = Dataset(
        name=name,
        n_samples=int(inputs.shape[0]),
        n_features=int(inputs.shape[1]),
        n_targets=int(targets.shape[1]),
        classes=classes,
        feature_names=feature_names,
        target_names=target_names,
        sha256=digest.hexdigest(),
        data=pack_arrays(inputs, targets),
    )
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, dataset_id: int, *, with_data: bool = False) -> Dataset | None:
    query = select(Dataset).where(Dataset.id == dataset_id)
    if with_data:
        query = query.options(undefer(Dataset.data))
    return session.scalars(query).one_or_none()


def list_datasets(session: Session, *, after: int | None = None, limit: int = 50) -> list[Dataset]:
    query = select(Dataset).order_by(Dataset.id.desc()).limit(limit)
    if after is not None:
        query = query.where(Dataset.id < after)
    return list(session.scalars(query))


def delete_dataset(session: Session, dataset: Dataset) -> None:
    """Delete a dataset unless a queued or running job needs it (:class:`InUse`).

    Finished jobs and trained models keep the dataset's hash, not the dataset.
    """
    busy = session.scalar(
        select(exists().where(Job.dataset_id == dataset.id, Job.status.in_(ACTIVE)))
    )
    if busy:
        raise InUse(f"dataset {dataset.id} is used by a queued or running job")
    session.delete(dataset)


# --- jobs ---------------------------------------------------------------------


def add_job(
    session: Session, dataset: Dataset, network: dict[str, Any], training: dict[str, Any]
) -> Job:
    job = Job(
        dataset_id=dataset.id,
        network=network,
        training=training,
        epochs_total=int(training["epochs"]),
        status=JobStatus.QUEUED,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int, *, for_update: bool = False) -> Job | None:
    query = select(Job).where(Job.id == job_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def list_jobs(
    session: Session, *, status: JobStatus | None = None, after: int | None = None, limit: int = 50
) -> list[Job]:
    """Newest first; ``after`` is the cursor (the last id of the previous page)."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    if after is not None:
        query = query.where(Job.id < after)
    return list(session.scalars(query))


def model_id_for_job(session: Session, job_id: int) -> int | None:
    return session.scalar(select(Model.id).where(Model.job_id == job_id))


def start_job(session: Session, job_id: int) -> Job | None:
    """Move a queued job to running; None if it is not queued (already taken or cancelled)."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(status=JobStatus.RUNNING, started_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return get_job(session, job_id)


def request_cancel(session: Session, job: Job) -> None:
    """A queued job is cancelled at once; a running one at its next epoch boundary."""
    if job.status == JobStatus.QUEUED:
        finish_job(session, job, JobStatus.CANCELLED, stop_reason="cancelled")
    elif job.status == JobStatus.RUNNING:
        job.cancel_requested = True


def cancel_requested(session: Session, job_id: int) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def finish_job(
    session: Session,
    job: Job,
    status: JobStatus,
    *,
    stop_reason: str | None = None,
    error: str | None = None,
) -> None:
    job.status = status
    job.stop_reason = stop_reason
    job.error = error
    job.finished_at = utcnow()


@dataclass(frozen=True)
class EpochRow:
    epoch: int
    loss: float
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float
    grad_norm: float
    seconds: float


def record_epochs(session: Session, job_id: int, rows: Sequence[EpochRow]) -> None:
    """Insert epoch rows (a repeated epoch is ignored) and update the job's progress."""
    if not rows:
        return
    values = [{"job_id": job_id, **row.__dict__} for row in rows]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # executemany of one small statement: compiling a many-row VALUES clause is slow.
    session.execute(insert(Epoch).on_conflict_do_nothing(), values)
    last = rows[-1]
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(epochs_completed=last.epoch, loss=last.loss, val_loss=last.val_loss)
    )


def list_epochs(session: Session, job_id: int, *, after: int = 0, limit: int = 1000) -> list[Epoch]:
    query = (
        select(Epoch)
        .where(Epoch.job_id == job_id, Epoch.epoch > after)
        .order_by(Epoch.epoch)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_jobs_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status.value: count for status, count in rows}


# --- models -------------------------------------------------------------------


def add_model(
    session: Session,
    job: Job,
    dataset: Dataset,
    spec: dict[str, Any],
    summary: dict[str, Any],
    weights: bytes,
) -> Model:
    model = Model(
        job_id=job.id,
        dataset_id=dataset.id,
        dataset_sha256=dataset.sha256,
        spec=spec,
        summary=summary,
        weights=weights,
    )
    session.add(model)
    session.flush()
    return model


def get_model(session: Session, model_id: int, *, with_weights: bool = False) -> Model | None:
    query = select(Model).where(Model.id == model_id)
    if with_weights:
        query = query.options(undefer(Model.weights))
    return session.scalars(query).one_or_none()
