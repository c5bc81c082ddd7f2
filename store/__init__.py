"""Persistence shared by the API and the workers: models, sessions, queries."""

from .db import Session, configure, engine_for
from .models import Base, Dataset, Epoch, Job, JobStatus, Model

__all__ = [
    "Base",
    "Dataset",
    "Epoch",
    "Job",
    "JobStatus",
    "Model",
    "Session",
    "configure",
    "engine_for",
]
