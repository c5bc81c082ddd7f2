"""Trained models, loaded once per process.

A model row never changes after the worker writes it, so a loaded
``core.Model`` is kept; each use still asks the database whether the caller's
model exists (one indexed lookup), so a model deleted through any API process
is gone from every other one at its next request. That check comes before any
load, and entries are kept per owner: another owner's model, loadable or not,
answers as a missing one, and no owner's traffic evicts another's models.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

import core
from store import Session, storage
from store import queries as q
from store.objects import ObjectMissing

from .errors import ApiError

log = logging.getLogger(__name__)


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


def model_unavailable(model_id: int, why: str) -> ApiError:
    """409: the caller's model exists but cannot serve (its stored weights are gone
    or unreadable); its description, its training job and its deletion still work."""
    return ApiError(
        409,
        "model_unavailable",
        f"model {model_id} cannot be used: {why}; delete it and train it again",
    )


class ModelCache:
    """Loaded models, kept per owner so that one owner's requests never evict
    another's models.

    Each owner has a least-recently-used map of up to ``per_owner`` models. The
    map of the owner least recently served goes only once more than ``owners``
    owners have models loaded in this process: a bound on memory (at most
    ``per_owner * owners`` models per process, against 16 when one map served
    everyone), reached only by a deployment with that many active owners (owners
    are made by the operator, not by callers).
    """

    def __init__(self, per_owner: int = 8, owners: int = 16) -> None:
        self.per_owner = per_owner
        self.owners = owners
        self._models: OrderedDict[str, OrderedDict[int, Served]] = OrderedDict()
        # Gunicorn threads share the cache; the lock only guards the dicts.
        self._lock = threading.Lock()

    def get(self, model_id: int, owner: str) -> Served | None:
        """The owner's model, or None if they have no such model; ApiError 409
        ``model_unavailable`` if its stored weights cannot be loaded.

        Whether the model is the owner's is asked first, before anything is read or
        loaded, so another owner's model answers exactly as a missing one, however
        its weights are.
        """
        with Session.begin() as session:
            if not q.model_exists(session, model_id, owner=owner):
                self.forget(model_id, owner)
                return None
        with self._lock:
            mine = self._models.get(owner)
            hit = mine.get(model_id) if mine is not None else None
            if mine is not None and hit is not None:
                mine.move_to_end(model_id)
                self._models.move_to_end(owner)
                return hit
        with Session.begin() as session:
            row = q.get_model(session, model_id, owner=owner)
            if row is None:
                return None  # deleted since the check above
            weights_key = row.weights_key
            names = row.spec.get("target_names")
            if names is None and row.dataset_id is not None:
                dataset = q.get_dataset(session, row.dataset_id)
                names = dataset.target_names if dataset is not None else None
            target_names = tuple(names or ())
            ignored_columns = tuple(row.spec.get("ignored_columns") or ())
        # Decoding outside the lock: two threads may both load a model, which is harmless.
        served = Served(load_model(model_id, weights_key), target_names, ignored_columns)
        with self._lock:
            mine = self._models.setdefault(owner, OrderedDict())
            mine[model_id] = served
            mine.move_to_end(model_id)
            self._models.move_to_end(owner)
            while len(mine) > self.per_owner:
                mine.popitem(last=False)
            while len(self._models) > self.owners:
                self._models.popitem(last=False)
        return served

    def forget(self, model_id: int, owner: str) -> None:
        with self._lock:
            mine = self._models.get(owner)
            if mine is not None:
                mine.pop(model_id, None)

    def loaded(self, owner: str) -> list[int]:
        """Ids of the owner's models loaded in this process, least recently used first."""
        with self._lock:
            return list(self._models.get(owner, ()))

    def __len__(self) -> int:
        with self._lock:
            return sum(len(models) for models in self._models.values())


def load_model(model_id: int, weights_key: str) -> core.Model:
    """The model stored under ``weights_key``; ApiError 409 if it is gone or unreadable.

    A database or storage outage is not caught: it is a 503 (see ``api.errors``),
    not a broken model.
    """
    try:
        weights = storage().read(weights_key)
    except ObjectMissing:
        log.warning("model %s: stored weights %s are missing", model_id, weights_key)
        raise model_unavailable(model_id, "its stored weights are missing") from None
    try:
        return core.Model.from_bytes(weights)
    except Exception:  # any decoding failure: the bytes are not a model this code reads
        log.warning("model %s: stored weights %s cannot be read", model_id, weights_key)
        raise model_unavailable(model_id, "its stored weights cannot be read") from None
