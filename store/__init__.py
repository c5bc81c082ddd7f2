"""Persistence shared by the API and the workers: models, sessions, queries."""

from .db import Session, configure, engine_for
from .models import (
    LOCAL_OWNER,
    ApiKey,
    Base,
    Dataset,
    Epoch,
    Job,
    JobKind,
    JobStatus,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    Sweep,
    TrainedModel,
)
from .objects import Storage, configure_storage, storage
from .settings import Settings


def connect(settings: Settings) -> None:
    """Bind this process to the database and the object store the settings name;
    called once at process start."""
    configure(settings.database_url)
    configure_storage(settings.storage_url, settings.cache_folder, settings.cache_bytes)


__all__ = [
    "LOCAL_OWNER",
    "ApiKey",
    "Base",
    "Dataset",
    "Epoch",
    "Job",
    "JobKind",
    "JobStatus",
    "ModelAlias",
    "ModelVersion",
    "RegisteredModel",
    "Session",
    "Settings",
    "Storage",
    "Sweep",
    "TrainedModel",
    "configure",
    "configure_storage",
    "connect",
    "engine_for",
    "storage",
]
