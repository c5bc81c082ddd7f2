"""Tables. The rows every API and worker process shares; the bytes of datasets,
checkpoints and model weights live in object storage (:mod:`store.objects`),
and each row names its object's key."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A moment in time, always read back as a timezone-aware UTC datetime.

    PostgreSQL keeps ``timestamptz`` and answers in the session's time zone;
    SQLite keeps text without an offset and answers with naive datetimes. Values
    are converted to UTC on the way in (naive ones are refused: their zone is
    unknown) and marked UTC on the way out, so comparisons with ``utcnow()``
    work the same on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give the time zone (use utcnow())")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # Only this type writes these columns, and it writes UTC.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    # Every datetime column is a UTCDateTime through its annotation.
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime}


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobKind(enum.StrEnum):
    """What a job does: train a network, or predict a stored dataset with a model."""

    TRAINING = "training"
    PREDICTION = "prediction"


# Rows made without an API key (the CLI, tests of the store) belong to this owner.
LOCAL_OWNER = "local"


class ApiKey(Base):
    """An API key, stored as the SHA-256 of its secret; the secret is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # the first characters of the key, to tell keys apart in listings
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), index=True, default=LOCAL_OWNER)
    name: Mapped[str] = mapped_column(String(200))
    n_samples: Mapped[int]
    n_features: Mapped[int]
    n_targets: Mapped[int]
    feature_names: Mapped[list[Any] | None]
    target_names: Mapped[list[Any] | None]
    classes: Mapped[list[Any] | None]
    # classification, regression or multilabel: what the target columns are
    task: Mapped[str | None] = mapped_column(String(20))
    # per column: type, role, missing and distinct counts, moments or top categories
    profile: Mapped[dict[str, Any] | None]
    sha256: Mapped[str] = mapped_column(String(64))
    # the object of its typed columns (worker.frames: an Arrow IPC file)
    data_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), index=True, default=LOCAL_OWNER)
    # Training and batch prediction share the queue, leases, retries and cancel.
    kind: Mapped[str] = mapped_column(
        String(20), default=JobKind.TRAINING, server_default=JobKind.TRAINING.value
    )
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, name="job_status", values_callable=lambda e: [m.value for m in e]),
        default=JobStatus.QUEUED,
    )
    network: Mapped[dict[str, Any]]
    training: Mapped[dict[str, Any]]
    # a trained model whose weights and preprocessing the job starts from
    init_model_id: Mapped[int | None]
    # a prediction job: the model it predicts with, the object of its rows when they
    # were uploaded with it (else the dataset's), and the object of its outputs
    model_id: Mapped[int | None]
    input_key: Mapped[str | None] = mapped_column(String(200))
    output_key: Mapped[str | None] = mapped_column(String(200))
    # a prediction job counts rows here: the dataset's rows, and those predicted
    epochs_total: Mapped[int]
    # a trial of a sweep: its sweep, its number in the sweep's study, its parameters
    sweep_id: Mapped[int | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), index=True
    )
    trial_number: Mapped[int | None]
    params: Mapped[dict[str, Any] | None]
    epochs_completed: Mapped[int] = mapped_column(default=0)
    loss: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    stop_reason: Mapped[str | None] = mapped_column(String(40))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The lease of the attempt now running the job. ``attempt`` is the fencing
    # token: a worker writes only while the row still carries its attempt number.
    attempt: Mapped[int] = mapped_column(default=0, server_default="0")
    # Attempts that handed the job back on a graceful worker stop. They are still
    # fencing tokens, but do not count toward the service's limit of attempts.
    given_back: Mapped[int] = mapped_column(default=0, server_default="0")
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    @hybrid_property
    def counted_attempts(self) -> int:
        """Attempts that count toward the limit: those not given back on a graceful stop
        (an expression in queries, a number on a loaded row)."""
        return self.attempt - self.given_back


class Epoch(Base):
    __tablename__ = "epochs"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    loss: Mapped[float] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float] = mapped_column(Float)
    grad_norm: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)


class Checkpoint(Base):
    """The latest checkpoint of a running job (core.Trainer.checkpoint())."""

    __tablename__ = "checkpoints"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int]
    epoch: Mapped[int]
    # the object of core.Trainer.checkpoint()'s bytes
    data_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainedModel(Base):
    """A trained network (``core.Model``) as stored: its spec, summary and weights."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), index=True, default=LOCAL_OWNER)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    # core.Model.describe(): architecture, loss, dtype, normalization, classes
    spec: Mapped[dict[str, Any]]
    # stop reason, epochs, final losses
    summary: Mapped[dict[str, Any]]
    # the object of core.Model.to_bytes(): .npz, read back with allow_pickle=False
    weights_key: Mapped[str] = mapped_column(String(200))
    # scores of the rows held out by training.test_split (worker/evaluation.py)
    metrics: Mapped[dict[str, Any] | None]
    # Lineage: with job_id, dataset_sha256 and created_at, where the model came from.
    # SHA-256 of the job's completed network spec and training config (spec_sha256())
    spec_sha256: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    # the backprop release that trained it
    service_version: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RegisteredModel(Base):
    """A name under which an owner keeps numbered versions of trained models (MLflow's
    registered model)."""

    __tablename__ = "registered_models"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_registered_models_owner_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), default=LOCAL_OWNER)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    # The highest version number ever given: numbers are not reused after a deletion, so
    # "version 3" never comes to mean another model; incremented in place, under the
    # row's lock, by each registration.
    last_version: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """Version ``version`` (1, 2, ...) of a registered model: one trained model."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("registered_model_id", "version", name="uq_model_versions_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registered_model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE")
    )
    version: Mapped[int]
    # A registered model cannot be deleted from under its versions (queries refuse it).
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelAlias(Base):
    """A movable name (``production``, ``staging``) for one version of a registered model."""

    __tablename__ = "model_aliases"

    registered_model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Sweep(Base):
    """A hyperparameter search: trials (training jobs) drawn by an Optuna study."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), index=True, default=LOCAL_OWNER)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    # queued, running, succeeded, failed, cancelled (JobStatus's values)
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED.value)
    # the base spec every trial starts from, and the search over its paths
    network: Mapped[dict[str, Any]]
    training: Mapped[dict[str, Any]]
    search_space: Mapped[dict[str, Any]]
    trials: Mapped[int]
    parallel: Mapped[int]
    sampler: Mapped[str] = mapped_column(String(20))
    pruner: Mapped[str] = mapped_column(String(20))
    # the sampler's and the pruner's options beyond their names (seed, min_resource...)
    sampler_options: Mapped[dict[str, Any] | None]
    pruner_options: Mapped[dict[str, Any] | None]
    metric: Mapped[str] = mapped_column(String(60))
    direction: Mapped[str] = mapped_column(String(10))
    # the Optuna study's name in its storage
    study_name: Mapped[str] = mapped_column(String(200))
    best_job_id: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class StoredObject(Base):
    """One part of an object kept by the database backend of :mod:`store.objects`."""

    __tablename__ = "objects"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
