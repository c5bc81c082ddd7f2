"""Trained models, loaded once per process.

A model row never changes after the worker writes it, so a loaded
``core.Model`` is kept; each use still asks the database whether the caller's
model exists (one indexed lookup), so a model deleted through any API process
is gone from every other one at its next request.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import core
from store import Session, storage
from store import queries as q


@dataclass(frozen=True)
class Served:
    """A model as predictions need it."""

    model: core.Model
    # The training dataset's target columns: a CSV of the training data still holds
    # them, and predict ignores them. Empty if the dataset had no names (or, for a
    # model stored before models kept them, if the dataset has since been deleted).
    target_names: tuple[str, ...] = ()
    # Columns the upload ignored (identifiers, a saved row index, ignore=): predict
    # bodies cut from the training file hold them, and predict skips them too.
    ignored_columns: tuple[str, ...] = ()

    @property
    def skipped(self) -> tuple[str, ...]:
        """Columns a predict body may hold besides the model's inputs."""
        return (*self.target_names, *self.ignored_columns)


class ModelCache:
    """A small least-recently-used map of model id -> :class:`Served`."""

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self._models: OrderedDict[int, tuple[str, Served]] = OrderedDict()
        # Gunicorn threads share the cache; the lock only guards the dict.
        self._lock = threading.Lock()

    def get(self, model_id: int, owner: str) -> Served | None:
        """The owner's model, or None if they have no such model."""
        with Session.begin() as session:
            if not q.model_exists(session, model_id, owner=owner):
                self.forget(model_id)
                return None
        with self._lock:
            hit = self._models.get(model_id)
            if hit is not None:
                self._models.move_to_end(model_id)
                return hit[1] if hit[0] == owner else None
        with Session.begin() as session:
            row = q.get_model(session, model_id)
            if row is None:
                return None
            weights_key, model_owner = row.weights_key, row.owner
            names = row.spec.get("target_names")
            if names is None and row.dataset_id is not None:
                dataset = q.get_dataset(session, row.dataset_id)
                names = dataset.target_names if dataset is not None else None
            target_names = tuple(names or ())
            ignored_columns = tuple(row.spec.get("ignored_columns") or ())
        # Decoding outside the lock: two threads may both load a model, which is harmless.
        weights = storage().read(weights_key)
        served = Served(core.Model.from_bytes(weights), target_names, ignored_columns)
        with self._lock:
            self._models[model_id] = (model_owner, served)
            self._models.move_to_end(model_id)
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
        return served if model_owner == owner else None

    def forget(self, model_id: int) -> None:
        with self._lock:
            self._models.pop(model_id, None)

    def __len__(self) -> int:
        return len(self._models)
