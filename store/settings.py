"""Service settings, read once from environment variables.

With no environment at all the service runs on embedded defaults: SQLite and a
server-less Celery broker (kombu's filesystem transport), both under a local
data folder, so ``backprop up`` works on a bare machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broker_url: str
    # Redis keys of this deployment start with this prefix (tests use one per run).
    broker_prefix: str
    queue: str
    max_body_bytes: int
    max_dataset_cells: int
    max_weights: int
    max_epochs: int
    max_predict_rows: int
    # Training time of one job; a job that reaches it stops and keeps its model.
    max_job_seconds: float
    epoch_flush_seconds: float
    log_format: str
    # An event stream ends after this long; clients reconnect with Last-Event-ID.
    sse_seconds: float
    # A running job's lease expires when its worker has not reported for this long.
    lease_seconds: float
    checkpoint_seconds: float
    # How many times a job may be started (first run plus resumes) before it fails.
    max_attempts: int
    # A queued job whose message may be lost is sent again after this long.
    requeue_seconds: float
    reconcile_seconds: float

    @property
    def broker_is_filesystem(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        return self.data_dir / "broker"

    def as_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in a child process."""
        return {ENV_NAMES[f.name]: str(getattr(self, f.name)) for f in fields(self)}


ENV_NAMES = {
    "data_dir": "BACKPROP_DATA_DIR",
    "database_url": "DATABASE_URL",
    "broker_url": "BROKER_URL",
    "broker_prefix": "BROKER_PREFIX",
    "queue": "BACKPROP_QUEUE",
    "max_body_bytes": "BACKPROP_MAX_BODY_BYTES",
    "max_dataset_cells": "BACKPROP_MAX_DATASET_CELLS",
    "max_weights": "BACKPROP_MAX_WEIGHTS",
    "max_epochs": "BACKPROP_MAX_EPOCHS",
    "max_predict_rows": "BACKPROP_MAX_PREDICT_ROWS",
    "max_job_seconds": "BACKPROP_MAX_JOB_SECONDS",
    "epoch_flush_seconds": "BACKPROP_EPOCH_FLUSH_SECONDS",
    "log_format": "BACKPROP_LOG_FORMAT",
    "sse_seconds": "BACKPROP_SSE_SECONDS",
    "lease_seconds": "BACKPROP_LEASE_SECONDS",
    "checkpoint_seconds": "BACKPROP_CHECKPOINT_SECONDS",
    "max_attempts": "BACKPROP_MAX_ATTEMPTS",
    "requeue_seconds": "BACKPROP_REQUEUE_SECONDS",
    "reconcile_seconds": "BACKPROP_RECONCILE_SECONDS",
}


def load_settings() -> Settings:
    """Settings from the environment, with the documented defaults (see README)."""
    data_dir = Path(os.environ.get("BACKPROP_DATA_DIR") or "data").resolve()
    return Settings(
        data_dir=data_dir,
        database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'backprop.db'}",
        broker_url=os.environ.get("BROKER_URL") or "filesystem://",
        broker_prefix=os.environ.get("BROKER_PREFIX", ""),
        queue=os.environ.get("BACKPROP_QUEUE") or "training",
        max_body_bytes=_int("BACKPROP_MAX_BODY_BYTES", 64 * 1024 * 1024),
        max_dataset_cells=_int("BACKPROP_MAX_DATASET_CELLS", 20_000_000),
        max_weights=_int("BACKPROP_MAX_WEIGHTS", 5_000_000),
        max_epochs=_int("BACKPROP_MAX_EPOCHS", 1_000_000),
        max_predict_rows=_int("BACKPROP_MAX_PREDICT_ROWS", 100_000),
        max_job_seconds=_float("BACKPROP_MAX_JOB_SECONDS", 24 * 3600.0),
        epoch_flush_seconds=_float("BACKPROP_EPOCH_FLUSH_SECONDS", 0.25),
        log_format=os.environ.get("BACKPROP_LOG_FORMAT") or "json",
        sse_seconds=_float("BACKPROP_SSE_SECONDS", 60.0),
        lease_seconds=_float("BACKPROP_LEASE_SECONDS", 30.0),
        checkpoint_seconds=_float("BACKPROP_CHECKPOINT_SECONDS", 5.0),
        max_attempts=_int("BACKPROP_MAX_ATTEMPTS", 5),
        requeue_seconds=_float("BACKPROP_REQUEUE_SECONDS", 60.0),
        reconcile_seconds=_float("BACKPROP_RECONCILE_SECONDS", 5.0),
    )
