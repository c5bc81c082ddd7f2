"""Admitting a training job: everything the worker would refuse, refused up front.

The engine validates the spec and the config and states whether a network
fits a dataset (``core.check_fit``); here both are applied, with the service's
limits, before the job is queued, so that a queued job fails only for reasons
nobody could know before training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

import core
from store import Dataset
from store import queries as q
from store.settings import Settings

from .errors import invalid, limit_exceeded
from .schemas import JobCreate
from .uploads import Table, check_cells, from_json


@dataclass(frozen=True)
class Plan:
    network: core.NetworkSpec
    training: core.TrainingConfig
    loss: str


def _prefixed(prefix: str, field: str) -> str:
    # The engine names a non-object spec by its own name ("network"), not by a path.
    return prefix if field == prefix else f"{prefix}.{field}"


def check_spec(payload: JobCreate, settings: Settings) -> Plan:
    """The parsed spec and config, within the service's limits."""
    try:
        network = core.parse_network(payload.network)
    except core.SpecError as exc:
        raise invalid(_prefixed("network", exc.field), exc.message) from None
    try:
        training = core.parse_training(payload.training)
    except core.SpecError as exc:
        raise invalid(_prefixed("training", exc.field), exc.message) from None
    if training.epochs > settings.max_epochs:
        raise limit_exceeded(
            "training.epochs",
            f"at most {settings.max_epochs} epochs (BACKPROP_MAX_EPOCHS), got {training.epochs}",
        )
    if training.time_limit is not None and training.time_limit > settings.max_job_seconds:
        raise limit_exceeded(
            "training.time_limit",
            f"at most {settings.max_job_seconds:g} s (BACKPROP_MAX_JOB_SECONDS), "
            f"got {training.time_limit:g}",
        )
    if network.n_weights() > settings.max_weights:
        raise limit_exceeded(
            "network",
            f"the network has {network.n_weights()} weights and biases; the limit is "
            f"{settings.max_weights} (BACKPROP_MAX_WEIGHTS)",
        )
    try:
        loss = core.resolve_loss(network, training)
    except core.SpecError as exc:
        raise invalid(_prefixed("training", exc.field), exc.message) from None
    return Plan(network, training, loss)


def inline_table(payload: JobCreate, settings: Settings) -> Table | None:
    """The job's inline dataset as arrays; None when it names a stored one."""
    if (payload.dataset is None) == (payload.dataset_id is None):
        raise invalid("dataset_id", "give either dataset_id or dataset, not both or neither")
    if payload.dataset is None:
        return None
    return from_json(payload.dataset, settings.max_dataset_cells, prefix="dataset.")


def check_fit(
    plan: Plan,
    *,
    n_samples: int,
    n_features: int,
    n_targets: int,
    classes: list[str] | None,
    targets: Callable[[], np.ndarray],
    field: str,
) -> None:
    """The network fits the dataset, by the engine's own rules (``core.check_fit``).

    ``targets`` loads the target array only if a rule needs it; ``field``
    names the dataset in errors about its contents. Raises the 422 ApiError.
    """
    try:
        core.check_fit(
            plan.network,
            plan.loss,
            n_samples=n_samples,
            n_features=n_features,
            n_targets=n_targets,
            classes=classes,
            targets=targets,
            validation_split=plan.training.validation_split,
        )
    except core.SpecError as exc:
        about_dataset = exc.field in ("targets", "classes")
        raise invalid(field if about_dataset else exc.field, exc.message) from None


def check_table(plan: Plan, table: Table) -> None:
    check_fit(
        plan,
        n_samples=table.n_samples,
        n_features=int(table.inputs.shape[1]),
        n_targets=int(table.targets.shape[1]),
        classes=table.classes,
        targets=lambda: table.targets,
        field="dataset.targets",
    )


def stored_dataset(
    session: Session, plan: Plan, dataset_id: int, settings: Settings, owner: str
) -> Dataset:
    """The owner's stored dataset the job names, checked against the plan."""
    dataset = q.get_dataset(session, dataset_id, owner=owner)
    if dataset is None:
        raise invalid("dataset_id", f"no dataset with id {dataset_id}")
    check_cells(
        dataset.n_samples,
        dataset.n_features + dataset.n_targets,
        settings.max_dataset_cells,
        "dataset_id",
    )

    def targets() -> np.ndarray:
        # `data` is deferred: only a classification loss on unlabelled targets loads it.
        return q.unpack_arrays(dataset.data)[1]

    check_fit(
        plan,
        n_samples=dataset.n_samples,
        n_features=dataset.n_features,
        n_targets=dataset.n_targets,
        classes=dataset.classes,
        targets=targets,
        field="dataset_id",
    )
    return dataset
