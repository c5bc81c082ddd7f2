"""Query functions. Each takes a session and leaves committing to the caller."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .lineage import DEFAULT_SEED, service_version, spec_sha256
from .models import (
    LOCAL_OWNER,
    ApiKey,
    Checkpoint,
    Dataset,
    Epoch,
    Job,
    JobKind,
    JobStatus,
    Sweep,
    TrainedModel,
    utcnow,
)
from .registry import registrations

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


class InUse(Exception):
    """A row that running or queued work still needs."""


class LeaseLost(Exception):
    """Another attempt has taken over the job; this one must stop without writing."""


Owned = TypeVar("Owned", Dataset, Job, TrainedModel)


def _owned_row(
    session: Session,
    table: type[Owned],
    row_id: int,
    owner: str | None,
    *,
    lock: bool = False,
) -> Owned | None:
    """Row ``row_id`` of ``table``, only if ``owner`` (when given) owns it; ``lock``
    takes the row for update."""
    query = select(table).where(table.id == row_id)
    if owner is not None:
        query = query.where(table.owner == owner)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


# --- datasets -----------------------------------------------------------------


def add_dataset(
    session: Session,
    name: str,
    data_key: str,
    *,
    sha256: str,
    n_samples: int,
    n_features: int,
    n_targets: int,
    task: str,
    classes: list[str] | None = None,
    feature_names: list[str] | None = None,
    target_names: list[str] | None = None,
    profile: dict[str, Any] | None = None,
    owner: str = LOCAL_OWNER,
) -> Dataset:
    """Record a dataset whose table is stored under ``data_key`` (see
    ``store.objects.Storage.stage``); ``sha256`` is the digest of its contents."""
    dataset = Dataset(
        owner=owner,
        name=name,
        n_samples=n_samples,
        n_features=n_features,
        n_targets=n_targets,
        task=task,
        classes=classes,
        feature_names=feature_names,
        target_names=target_names,
        profile=profile,
        sha256=sha256,
        data_key=data_key,
    )
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, dataset_id: int, *, owner: str | None = None) -> Dataset | None:
    """The dataset; with ``owner``, only if it is theirs (else None, as if missing)."""
    return _owned_row(session, Dataset, dataset_id, owner)


def list_datasets(
    session: Session, *, owner: str, after: int | None = None, limit: int = 50
) -> list[Dataset]:
    query = select(Dataset).where(Dataset.owner == owner).order_by(Dataset.id.desc()).limit(limit)
    if after is not None:
        query = query.where(Dataset.id < after)
    return list(session.scalars(query))


def delete_dataset(session: Session, dataset: Dataset) -> None:
    """Delete a dataset unless a queued or running job or sweep needs it
    (:class:`InUse`): a sweep draws trials on it until it ends, also between two.

    Finished jobs and trained models keep the dataset's hash, not the dataset.
    The caller discards the object under ``dataset.data_key`` after committing.
    """
    busy = session.scalar(
        select(exists().where(Job.dataset_id == dataset.id, Job.status.in_(ACTIVE)))
    )
    if busy:
        raise InUse(f"dataset {dataset.id} is used by a queued or running job")
    active = [status.value for status in ACTIVE]
    sweep = session.scalar(
        select(Sweep.id)
        .where(Sweep.dataset_id == dataset.id, Sweep.status.in_(active))
        .order_by(Sweep.id)
        .limit(1)
    )
    if sweep is not None:
        raise InUse(
            f"dataset {dataset.id} is used by sweep {sweep}, which has not ended; "
            f"cancel it first (POST /sweeps/{sweep}/cancel)"
        )
    session.delete(dataset)


# --- jobs ---------------------------------------------------------------------


def add_job(
    session: Session,
    dataset: Dataset,
    network: dict[str, Any],
    training: dict[str, Any],
    init_model_id: int | None = None,
) -> Job:
    job = Job(
        owner=dataset.owner,
        dataset_id=dataset.id,
        network=network,
        training=training,
        init_model_id=init_model_id,
        epochs_total=int(training["epochs"]),
        status=JobStatus.QUEUED,
        # The caller sends the message right after committing this row.
        enqueued_at=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def add_prediction_job(
    session: Session,
    model: TrainedModel,
    dataset: Dataset | None = None,
    *,
    input_key: str | None = None,
    n_rows: int | None = None,
) -> Job:
    """Queue a batch prediction with ``model`` of every row of ``dataset``, or of the
    ``n_rows`` rows stored under ``input_key`` (a frame uploaded with the request);
    the job's ``epochs_total`` counts the rows and ``epochs_completed`` those predicted."""
    if (dataset is None) == (input_key is None):
        raise ValueError("predict a dataset or an uploaded table, one of the two")
    job = Job(
        owner=model.owner,
        kind=JobKind.PREDICTION,
        dataset_id=None if dataset is None else dataset.id,
        input_key=input_key,
        model_id=model.id,
        network={},
        training={},
        epochs_total=dataset.n_samples if dataset is not None else int(n_rows or 0),
        status=JobStatus.QUEUED,
        enqueued_at=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def get_job(
    session: Session,
    job_id: int,
    *,
    for_update: bool = False,
    owner: str | None = None,
    kind: str | None = None,
) -> Job | None:
    """The job; with ``owner``, only if it is theirs (else None, as if missing); with
    ``kind``, only a job of that kind."""
    job = _owned_row(session, Job, job_id, owner, lock=for_update)
    return None if job is None or (kind is not None and job.kind != kind) else job


def list_jobs(
    session: Session,
    *,
    owner: str,
    status: JobStatus | None = None,
    after: int | None = None,
    limit: int = 50,
    kind: str = JobKind.TRAINING,
) -> list[Job]:
    """Newest first; ``after`` is the cursor (the last id of the previous page)."""
    query = (
        select(Job).where(Job.owner == owner, Job.kind == kind).order_by(Job.id.desc()).limit(limit)
    )
    if status is not None:
        query = query.where(Job.status == status)
    if after is not None:
        query = query.where(Job.id < after)
    return list(session.scalars(query))


def model_id_for_job(session: Session, job_id: int) -> int | None:
    return session.scalar(select(TrainedModel.id).where(TrainedModel.job_id == job_id))


def take_lease(
    session: Session, job_id: int, owner: str, *, lease_seconds: float, max_attempts: int
) -> int | None:
    """Start a new attempt at a job: queued, or running under an expired lease.

    Returns the attempt number (the fencing token), or None when the job is not
    ours to run: finished, cancelled, out of attempts, or leased by a live worker.
    Attempts given back on a graceful stop do not count toward ``max_attempts``.
    """
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.counted_attempts < max_attempts,
            or_(
                Job.status == JobStatus.QUEUED,
                and_(
                    Job.status == JobStatus.RUNNING,
                    Job.heartbeat_at < now - timedelta(seconds=lease_seconds),
                ),
            ),
        )
        .values(
            status=JobStatus.RUNNING,
            attempt=Job.attempt + 1,
            lease_owner=owner,
            heartbeat_at=now,
            started_at=func.coalesce(Job.started_at, now),
        )
        .returning(Job.attempt)
    )
    return result.scalar_one_or_none()


def renew_lease(session: Session, job_id: int, attempt: int) -> bool:
    """Prove the lease is still ours and extend it; returns the job's cancel flag.

    Call first in every transaction that writes for an attempt: on PostgreSQL the
    update locks the job row, so a takeover and this attempt's writes serialize.
    Raises :class:`LeaseLost` when another attempt holds the job.
    """
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempt == attempt, Job.status == JobStatus.RUNNING)
        .values(heartbeat_at=utcnow())
        .returning(Job.cancel_requested)
    ).one_or_none()
    if row is None:
        raise LeaseLost(f"job {job_id} is no longer held by attempt {attempt}")
    return bool(row[0])


def release_lease(session: Session, job_id: int, attempt: int, *, counted: bool = False) -> None:
    """Hand a running job back to the queue: queued again, no lease owner.

    For a worker that stops gracefully after checkpointing, or after an outage;
    call after :func:`renew_lease` in the same transaction, and send the job's
    message again after the commit. The attempt does not count toward the limit
    of attempts unless ``counted`` (an error that might come back every time).
    """
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempt == attempt, Job.status == JobStatus.RUNNING)
        .values(
            status=JobStatus.QUEUED,
            lease_owner=None,
            heartbeat_at=None,
            enqueued_at=utcnow(),
            given_back=Job.given_back + (0 if counted else 1),
        )
    )


def save_checkpoint(
    session: Session, job_id: int, attempt: int, epoch: int, data_key: str
) -> str | None:
    """Make the object under ``data_key`` the job's checkpoint; returns the key of the
    one it replaces, for the caller to discard after committing."""
    previous = session.scalar(select(Checkpoint.data_key).where(Checkpoint.job_id == job_id))
    session.merge(
        Checkpoint(
            job_id=job_id, attempt=attempt, epoch=epoch, data_key=data_key, created_at=utcnow()
        )
    )
    return previous


def checkpoint_prefix(job_id: int) -> str:
    """Where a job's checkpoints are stored: discard it once the job has finished."""
    return f"checkpoints/{job_id}/"


def get_checkpoint(session: Session, job_id: int) -> Checkpoint | None:
    return session.get(Checkpoint, job_id)


def jobs_to_requeue(
    session: Session,
    *,
    lease_seconds: float,
    requeue_seconds: float,
    max_attempts: int,
    lost_reason: str,
    failed: list[int] | None = None,
    held: set[int] | None = None,
    missing: set[int] | None = None,
) -> list[int]:
    """Jobs whose message may be gone; marks them sent and fails the hopeless.

    Running jobs whose worker stopped reporting are sent again (the next attempt
    resumes from the checkpoint) unless they are out of attempts; queued jobs
    sent at least ``requeue_seconds`` ago are sent again when the broker lost
    their message: ``held`` holds the ids of the jobs whose message the broker
    holds, read before this call (None: the broker cannot tell, and every such
    job is sent again). ``missing``, when given, holds the queued jobs found
    without a message by the previous sweep, and is replaced by those found now:
    a job is sent again only when it was missing in both, since a message
    delivered just before the broker was read belongs to a job that stays queued
    for the moment its worker takes to lease it. A duplicate message is harmless:
    only one attempt can take the lease. The caller sends the messages after committing, and names
    ``lost_reason``, the stop reason of a job out of attempts
    (``core.StopReason.WORKER_LOST``: the store does not import the engine); the
    ids of the jobs failed here are appended to ``failed``, for the caller to
    discard their checkpoints after committing.
    """
    now = utcnow()
    stale = now - timedelta(seconds=lease_seconds)
    waited = now - timedelta(seconds=requeue_seconds)
    candidates = session.scalars(
        select(Job)
        .where(
            or_(
                and_(Job.status == JobStatus.RUNNING, Job.heartbeat_at < stale),
                and_(
                    Job.status == JobStatus.QUEUED,
                    or_(Job.enqueued_at.is_(None), Job.enqueued_at < waited),
                ),
            )
        )
        .order_by(Job.id)
        .with_for_update(skip_locked=True)
    )
    resend = []
    gone: set[int] = set()
    for job in candidates:
        counted = job.counted_attempts
        if job.status == JobStatus.RUNNING and counted >= max_attempts:
            finish_job(
                session,
                job,
                JobStatus.FAILED,
                stop_reason=lost_reason,
                error=f"the worker running this job was lost {counted} times; "
                f"gave up after {max_attempts} attempts",
            )
            if failed is not None:
                failed.append(job.id)
            continue
        if (
            job.status == JobStatus.RUNNING
            and job.enqueued_at is not None
            and job.enqueued_at >= stale
        ):
            continue  # already sent again within this lease period
        if job.status == JobStatus.QUEUED and held is not None:
            if job.id in held:
                continue  # its message is still waiting in the broker
            if missing is not None and job.id not in missing:
                gone.add(job.id)
                continue  # to be sent if the next sweep finds it missing still
        job.enqueued_at = now
        resend.append(job.id)
    if missing is not None:
        missing.clear()
        missing.update(gone)
    return resend


def mark_not_sent(session: Session, job_ids: Sequence[int]) -> None:
    """Record that the messages of these queued jobs never reached the broker (it was
    down), so that the reconciler sends them at its next sweeps rather than waiting a
    whole requeue period for a message that does not exist."""
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.status == JobStatus.QUEUED)
            .values(enqueued_at=None)
        )


def request_cancel(session: Session, job: Job, *, stop_reason: str) -> None:
    """A queued job is cancelled at once (ending with ``stop_reason``); a running one
    at its next epoch boundary."""
    if job.status == JobStatus.QUEUED:
        finish_job(session, job, JobStatus.CANCELLED, stop_reason=stop_reason)
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
    job.lease_owner = None
    session.execute(delete(Checkpoint).where(Checkpoint.job_id == job.id))


def record_progress(session: Session, job_id: int, rows_done: int) -> None:
    """A prediction job's rows predicted so far (call after :func:`renew_lease`)."""
    session.execute(update(Job).where(Job.id == job_id).values(epochs_completed=rows_done))


def record_epochs(session: Session, job_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert epoch rows (a repeated epoch is ignored) and update the job's progress.

    Each row maps the ``epochs`` table's columns other than ``job_id`` (the fields
    of ``core.EpochStats``, as ``dataclasses.asdict`` gives them) to values;
    rows are in epoch order.
    """
    if not rows:
        return
    values = [{**row, "job_id": job_id} for row in rows]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # executemany of one small statement: compiling a many-row VALUES clause is slow.
    session.execute(insert(Epoch).on_conflict_do_nothing(), values)
    last = rows[-1]
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(epochs_completed=last["epoch"], loss=last["loss"], val_loss=last["val_loss"])
    )


def forget_epochs_after(session: Session, job_id: int, epoch: int) -> None:
    """Delete the job's epochs after ``epoch``, where its last attempt stopped.

    An attempt resumes from the job's checkpoint, and an earlier attempt may have
    recorded epochs past it before it was lost. Replayed, they come out the same
    (the checkpoint resumes exactly), unless the new attempt stops sooner: a
    cancel, or a sweep's pruner judging the trial against newer trials. Those
    epochs belong to no model, so they go, and the job's progress is its last
    remaining epoch's.
    """
    gone = session.execute(delete(Epoch).where(Epoch.job_id == job_id, Epoch.epoch > epoch))
    if not gone.rowcount:  # type: ignore[attr-defined]
        return
    last = session.scalars(
        select(Epoch).where(Epoch.job_id == job_id).order_by(Epoch.epoch.desc()).limit(1)
    ).first()
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            epochs_completed=0 if last is None else last.epoch,
            loss=None if last is None else last.loss,
            val_loss=None if last is None else last.val_loss,
        )
    )


def list_epochs(session: Session, job_id: int, *, after: int = 0, limit: int = 1000) -> list[Epoch]:
    query = (
        select(Epoch)
        .where(Epoch.job_id == job_id, Epoch.epoch > after)
        .order_by(Epoch.epoch)
        .limit(limit)
    )
    return list(session.scalars(query))


# --- models -------------------------------------------------------------------


def add_model(
    session: Session,
    job: Job,
    dataset: Dataset,
    spec: dict[str, Any],
    summary: dict[str, Any],
    weights_key: str,
    metrics: dict[str, Any] | None = None,
) -> TrainedModel:
    """Record a trained model whose weights are stored under ``weights_key``, with its
    lineage: the job, the dataset's hash, the spec's hash, the seed, this release."""
    seed = job.training.get("seed", DEFAULT_SEED)
    model = TrainedModel(
        owner=job.owner,
        job_id=job.id,
        dataset_id=dataset.id,
        dataset_sha256=dataset.sha256,
        spec=spec,
        summary=summary,
        weights_key=weights_key,
        metrics=metrics,
        spec_sha256=spec_sha256(job.network, job.training),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        service_version=service_version(),
    )
    session.add(model)
    session.flush()
    return model


def list_models(
    session: Session, *, owner: str, after: int | None = None, limit: int = 50
) -> list[tuple[TrainedModel, Job, int | None]]:
    """The owner's models with their training jobs and, for a sweep's trial, the job of
    its sweep's best trial (else None), newest first; ``after`` is the last id of the
    previous page."""
    query = (
        select(TrainedModel, Job, Sweep.best_job_id)
        .join(Job, Job.id == TrainedModel.job_id)
        .outerjoin(Sweep, Sweep.id == Job.sweep_id)
        .where(TrainedModel.owner == owner)
        .order_by(TrainedModel.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(TrainedModel.id < after)
    return [(model, job, best) for model, job, best in session.execute(query)]


def best_job_of_sweep(session: Session, sweep_id: int | None) -> int | None:
    """The job of the sweep's best trial, once the sweep has ended (else None)."""
    if sweep_id is None:
        return None
    return session.scalar(select(Sweep.best_job_id).where(Sweep.id == sweep_id))


def jobs_by_ids(session: Session, job_ids: Sequence[int], *, owner: str) -> dict[int, Job]:
    """The owner's training jobs among ``job_ids``, by id (others are left out)."""
    query = select(Job).where(Job.id.in_(job_ids), Job.owner == owner, Job.kind == JobKind.TRAINING)
    return {job.id: job for job in session.scalars(query)}


def model_exists(session: Session, model_id: int, *, owner: str) -> bool:
    return bool(
        session.scalar(
            select(exists().where(TrainedModel.id == model_id, TrainedModel.owner == owner))
        )
    )


def delete_model(session: Session, model: TrainedModel) -> None:
    """Delete a model unless a queued or running job uses it (:class:`InUse`): a
    batch prediction with it, or a training job that starts from it. The caller
    discards the object under ``model.weights_key`` after committing."""
    busy = session.scalar(
        select(
            exists().where(
                or_(Job.model_id == model.id, Job.init_model_id == model.id),
                Job.status.in_(ACTIVE),
            )
        )
    )
    if busy:
        raise InUse(f"model {model.id} is used by a queued or running job")
    registered = registrations(session, model.id)
    if registered:
        named = [f"version {version} of registered model {name!r}" for name, version in registered]
        more = f" and {len(named) - 3} more" if len(named) > 3 else ""
        raise InUse(
            f"model {model.id} is {', '.join(named[:3])}{more}; delete those versions first"
        )
    session.delete(model)


def delete_training_job(session: Session, job: Job) -> list[str]:
    """Delete a finished training job with its epochs, checkpoint and model; returns
    the keys and prefixes of their objects for the caller to discard after committing.

    Refused (:class:`InUse`) while the job is queued or running, for a sweep's trial
    (the sweep's trials, its best one and its study go together: see
    :func:`delete_sweep`), and when its model cannot be deleted (:func:`delete_model`).
    """
    if not job.status.finished:
        raise InUse(f"job {job.id} is {job.status.value}; cancel it first")
    if job.sweep_id is not None:
        raise InUse(
            f"job {job.id} is trial {job.trial_number} of sweep {job.sweep_id}; delete the "
            f"sweep (DELETE /sweeps/{job.sweep_id}) to delete its trials"
        )
    return _delete_training_job(session, job)


def _delete_training_job(session: Session, job: Job) -> list[str]:
    keys = [checkpoint_prefix(job.id)]
    model = session.scalars(select(TrainedModel).where(TrainedModel.job_id == job.id)).one_or_none()
    if model is not None:
        delete_model(session, model)
        keys.append(model.weights_key)
        session.flush()  # the model's row first: nothing tells the ORM it depends on the job
    session.delete(job)
    return keys


def delete_sweep(session: Session, sweep: Sweep) -> list[str]:
    """Delete a finished sweep with its trial jobs, their epochs, checkpoints and
    models; returns the keys and prefixes of their objects for the caller to discard
    after committing (and the sweep's study is the caller's to delete then).

    Refused (:class:`InUse`) while the sweep is queued or running, and when a trial's
    model cannot be deleted (:func:`delete_model`: a registered model's version).
    """
    if sweep.status in (JobStatus.QUEUED.value, JobStatus.RUNNING.value):
        raise InUse(f"sweep {sweep.id} is {sweep.status}; cancel it first")
    keys: list[str] = []
    trials = session.scalars(select(Job).where(Job.sweep_id == sweep.id).order_by(Job.id))
    for job in trials:
        if not job.status.finished:  # not after the sweep ended; kept safe all the same
            raise InUse(f"job {job.id} of sweep {sweep.id} is {job.status.value}")
        keys += _delete_training_job(session, job)
    session.flush()
    session.delete(sweep)
    return keys


def delete_prediction(session: Session, job: Job) -> list[str]:
    """Delete a finished batch prediction job; returns the keys of its objects (its
    uploaded rows and its outputs) for the caller to discard after committing."""
    if not job.status.finished:
        raise InUse(f"prediction {job.id} is {job.status.value}; cancel it first")
    keys = [key for key in (job.input_key, job.output_key) if key is not None]
    session.delete(job)
    return keys


def get_model(session: Session, model_id: int, *, owner: str | None = None) -> TrainedModel | None:
    """The model; with ``owner``, only if it is theirs (else None, as if missing)."""
    return _owned_row(session, TrainedModel, model_id, owner)


# --- API keys -----------------------------------------------------------------

KEY_PREFIX = "bp_"


def hash_key(key: str) -> str:
    # Keys are 256-bit random secrets, so a plain SHA-256 is enough to store them.
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, owner: str) -> str:
    """A new key for ``owner``; only its hash is stored, so return the secret now."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(owner=owner, key_hash=hash_key(key), prefix=key[:10]))
    session.flush()
    return key


def owner_of_key(session: Session, key: str) -> str | None:
    """The owner of a live key, or None for an unknown or revoked one."""
    return session.scalar(
        select(ApiKey.owner).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    )


def revoke_api_key(session: Session, key_or_prefix: str) -> int:
    """Revoke the key given whole, or every live key starting with a listed prefix."""
    if len(key_or_prefix) < 10:
        return 0  # a shorter prefix could match keys the caller did not mean
    live = ApiKey.revoked_at.is_(None)
    match = or_(ApiKey.key_hash == hash_key(key_or_prefix), ApiKey.prefix == key_or_prefix[:10])
    result = session.execute(update(ApiKey).where(live, match).values(revoked_at=utcnow()))
    return int(result.rowcount)  # type: ignore[attr-defined]


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def has_api_key(session: Session, owner: str) -> bool:
    return bool(
        session.scalar(select(exists().where(ApiKey.owner == owner, ApiKey.revoked_at.is_(None))))
    )
