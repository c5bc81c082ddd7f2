"""Admitting a training job: everything the worker would refuse, refused up front.

The engine validates the spec and the config, completes the spec for the
dataset (``core.tabular.design``: the encoded input width, the output layer
the task needs) and states whether a network fits a dataset
(``core.check_fit``); here all of it is applied, with the service's limits,
before the job is queued, so that a queued job fails only for reasons nobody
could know before training. The job records the completed spec.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

import core
from core.frame import NUMBER, Frame
from core.tabular import Design, design
from store import Dataset
from store import queries as q
from store.settings import Settings
from worker.frames import dataset_frame

from .errors import invalid, limit_exceeded
from .model_cache import load_model
from .schemas import JobCreate
from .uploads import Upload, check_cells, from_arrays, store


@dataclass(frozen=True)
class Admitted:
    """A job ready to queue: its dataset row and its completed spec."""

    dataset: Dataset
    network: dict[str, Any]
    training: dict[str, Any]
    init_model_id: int | None


def _prefixed(prefix: str, field: str) -> str:
    # The engine names a non-object spec by its own name ("network"), not by a path.
    if field == prefix or field.startswith(f"{prefix}."):
        return field
    return f"{prefix}.{field}"


def check_training(payload: JobCreate, settings: Settings) -> core.TrainingConfig:
    """The parsed training config, within the service's limits."""
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
    return training


def inline_upload(payload: JobCreate, settings: Settings) -> Upload | None:
    """The job's inline dataset as a table; None when it names a stored one."""
    if (payload.dataset is None) == (payload.dataset_id is None):
        raise invalid("dataset_id", "give either dataset_id or dataset, not both or neither")
    if payload.dataset is None:
        return None
    data = payload.dataset
    return from_arrays(
        data.inputs,
        data.targets,
        data.feature_names,
        data.target_names,
        settings.max_dataset_cells,
        prefix="dataset.",
    )


def _start_model(session: Session, model_id: int | None, owner: str) -> core.Model | None:
    if model_id is None:
        return None
    row = q.get_model(session, model_id, owner=owner)
    if row is None:
        raise invalid("init_from_model", f"no model with id {model_id}")
    return load_model(model_id, row.weights_key)  # 409 if its weights cannot be loaded


def _design(
    frame: Frame,
    targets: list[str],
    task: str,
    payload: JobCreate,
    start: core.Model | None,
    field: str,
) -> Design:
    features = [name for name in frame.names if name not in targets]
    try:
        return design(
            frame, features, targets, task, payload.network, payload.training, start=start
        )
    except core.SpecError as exc:
        if exc.field.startswith(("training", "network", "init_from_model")):
            raise invalid(exc.field, exc.message) from None
        raise invalid(field, exc.message) from None


def check_depth(network: Any, settings: Settings) -> None:
    """At most ``BACKPROP_MAX_LAYERS`` layers in a network spec (a JSON object, or None),
    counted before the spec is parsed: a million one-unit layers stay under the weight
    limit, yet one epoch of them takes minutes and gigabytes and stores a model too
    large to load."""
    layers = network.get("layers") if isinstance(network, dict) else None
    # A start model's spec is checked with the completed spec (check_plan).
    if isinstance(layers, list) and len(layers) > settings.max_layers:
        raise limit_exceeded(
            "network.layers",
            f"at most {settings.max_layers} layers (BACKPROP_MAX_LAYERS), got {len(layers)}",
        )


def _slot_copies(training: core.TrainingConfig) -> int:
    """Sets of weights a checkpoint holds: the network, the best one kept, and the
    optimizer's slots (momentum's velocity, RMSProp's squares, Adam's two moments)."""
    optimizer = training.optimizer
    slots = {"sgd": 1 if optimizer.momentum else 0, "rmsprop": 1, "adam": 2}
    return 2 + slots.get(optimizer.name, 2)


def check_size(
    network: core.NetworkSpec, training: core.TrainingConfig, settings: Settings
) -> None:
    """Layers, weights and the stored size of the model and its checkpoints."""
    if len(network.layers) > settings.max_layers:
        raise limit_exceeded(
            "network.layers",
            f"at most {settings.max_layers} layers (BACKPROP_MAX_LAYERS), "
            f"got {len(network.layers)}",
        )
    if network.n_weights() > settings.max_weights:
        raise limit_exceeded(
            "network",
            f"the network has {network.n_weights()} weights and biases; the limit is "
            f"{settings.max_weights} (BACKPROP_MAX_WEIGHTS)",
        )
    stored = network.stored_bytes(training.dtype, _slot_copies(training))
    if stored > settings.max_model_bytes:
        raise limit_exceeded(
            "network",
            f"its checkpoints would take about {stored} bytes; the limit is "
            f"{settings.max_model_bytes} (BACKPROP_MAX_MODEL_BYTES)",
        )


def check_range(frame: Frame, training: core.TrainingConfig, field: str) -> None:
    """A float32 job's number columns hold values float32 can: a larger one would be
    infinite in the network's arrays, and the job would fail at its first epoch."""
    if training.dtype != "float32":
        return
    limit = float(np.finfo(np.float32).max)
    for column in frame:
        if column.kind != NUMBER or not len(column):
            continue
        values = column.values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column of missing values
            largest = max(abs(float(np.nanmin(values))), abs(float(np.nanmax(values))))
        if largest > limit:
            row = int(np.flatnonzero(np.abs(values) > limit)[0])
            raise invalid(
                field,
                f"column {column.name!r} holds {values[row]:g} (row {row}), beyond float32's "
                f"range (±{limit:.4g}); train with dtype float64 or rescale the column",
            )


def check_plan(plan: Design, frame: Frame, settings: Settings, field: str) -> None:
    """The completed spec is valid, within the limits, and fits the encoded data."""
    try:
        network = core.parse_network(plan.network)
    except core.SpecError as exc:
        raise invalid(_prefixed("network", exc.field), exc.message) from None
    training = core.parse_training(plan.trainer_config())
    check_size(network, training, settings)
    check_range(frame, training, field)
    try:
        loss = core.resolve_loss(network, training)
    except core.SpecError as exc:
        raise invalid(_prefixed("training", exc.field), exc.message) from None
    rows = plan.train_rows
    try:
        if network.input_dim != plan.preprocessor.width:
            names = ", ".join(plan.preprocessor.output_names[:20])
            raise core.SpecError(
                "network.input_dim",
                f"is {network.input_dim} but the dataset encodes to {plan.preprocessor.width} "
                f"inputs ({names}); omit input_dim to take that width",
            )
        core.check_fit(
            network,
            loss,
            n_samples=len(rows),
            n_features=plan.preprocessor.width,
            n_targets=plan.outputs(frame, rows[:1]).shape[1],
            classes=plan.classes,
            targets=lambda: plan.outputs(frame, rows),
            validation_split=training.validation_split,
        )
    except core.SpecError as exc:
        about_dataset = exc.field in ("targets", "classes")
        raise invalid(field if about_dataset else exc.field, exc.message) from None


def check_spec_alone(network: dict[str, Any], training: dict[str, Any], settings: Settings) -> None:
    """What :func:`admit` checks of a completed spec without its dataset: the spec
    parses, within the service's limits. ApiError (422) naming the field at fault."""
    payload = JobCreate.model_construct(
        dataset_id=None, dataset=None, network=network, training=training, init_from_model=None
    )
    parsed_training = check_training(payload, settings)
    check_depth(payload, settings)
    try:
        parsed = core.parse_network(network)
    except core.SpecError as exc:
        raise invalid(_prefixed("network", exc.field), exc.message) from None
    check_size(parsed, parsed_training, settings)
    try:
        core.resolve_loss(parsed, parsed_training)
    except core.SpecError as exc:
        raise invalid(_prefixed("training", exc.field), exc.message) from None


def check_spec(
    frame: Frame,
    targets: list[str],
    task: str,
    network: dict[str, Any],
    training: dict[str, Any],
    settings: Settings,
    field: str = "dataset_id",
) -> dict[str, Any]:
    """What :func:`admit` checks of a job's spec against a dataset already loaded as
    ``frame`` (its ``targets`` columns, its ``task``), storing nothing: a sweep's
    trial specs are checked so. Returns the completed network; ApiError (422) naming
    the field at fault."""
    payload = JobCreate.model_construct(
        dataset_id=None, dataset=None, network=network, training=training, init_from_model=None
    )
    check_training(payload, settings)
    check_depth(payload, settings)
    plan = _design(frame, targets, task, payload, None, field)
    check_plan(plan, frame, settings, field)
    return plan.network


def admit(
    session: Session, payload: JobCreate, settings: Settings, owner: str, staged: ExitStack
) -> Admitted:
    """Check the job against its dataset (stored, or inline and stored now: ``staged``
    is entered before ``session``'s transaction, see :func:`api.uploads.store`).

    Raises ApiError (422) naming the field at fault: ``network...``,
    ``training...``, ``dataset_id``, ``dataset...`` or ``init_from_model``.
    """
    check_training(payload, settings)
    check_depth(payload.network, settings)
    upload = inline_upload(payload, settings)
    start = _start_model(session, payload.init_from_model, owner)
    if upload is not None:
        frame, targets, task, field = upload.frame, upload.targets, upload.task, "dataset.targets"
    else:
        assert payload.dataset_id is not None
        row = q.get_dataset(session, payload.dataset_id, owner=owner)
        if row is None:
            raise invalid("dataset_id", f"no dataset with id {payload.dataset_id}")
        check_cells(
            row.n_samples, row.n_features + row.n_targets, settings.max_dataset_cells, "dataset_id"
        )
        frame = dataset_frame(row)
        targets, task, field = list(row.target_names or ()), row.task or "regression", "dataset_id"
    plan = _design(frame, targets, task, payload, start, field)
    check_plan(plan, frame, settings, field)
    if upload is not None:
        assert payload.dataset is not None
        dataset = store(session, payload.dataset.name, upload, owner, staged)
    else:
        assert row is not None
        dataset = row
    return Admitted(dataset, plan.network, plan.training, payload.init_from_model)
