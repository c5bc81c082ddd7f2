"""Persistence shared by the API and the workers: models, sessions, queries."""

from .db import Session, configure, engine_for
from .models import LOCAL_OWNER, ApiKey, Base, Dataset, Epoch, Job, JobStatus, TrainedModel

__all__ = [
    "LOCAL_OWNER",
    "ApiKey",
    "Base",
    "Dataset",
    "Epoch",
    "Job",
    "JobStatus",
    "Session",
    "TrainedModel",
    "configure",
    "engine_for",
]
