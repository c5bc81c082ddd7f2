"""From a table of typed columns to the arrays a network trains on, and back.

The service's jobs train on datasets stored as :class:`Frame` objects. The
steps between the table and the Trainer are here, in the order they happen:

1. rows held out for testing (``training.test_split``; stratified by class);
2. the Trainer's validation rows set aside (:func:`core.data.split_rows`), so
   that preprocessing and target scaling are fitted on the training rows alone;
3. the network spec completed: ``input_dim`` is the encoded width when omitted,
   and the output layer the task needs (with its loss) is appended when the
   last layer given is not one;
4. every row encoded; the Trainer gets the training rows, already normalized.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._types import Array
from .activations import ACTIVATIONS
from .data import Rows, split_rows
from .errors import SpecError
from .frame import CATEGORY, Frame
from .model import Model
from .preprocess import Preprocessor
from .spec import TrainingConfig, parse_training
from .targets import TargetEncoder, stratified_split
from .trainer import Trainer

# Output activations whose units read as probabilities of classes or labels.
PROBABILITIES = ("sigmoid", "softmax")


@dataclass(frozen=True)
class Design:
    """Everything fitted or decided before training starts.

    ``network`` and ``training`` are the resolved specs (plain dicts, what the
    job records); ``train_rows`` are the rows the Trainer sees (its validation
    rows among them) and ``test_rows`` those held out, as indices into the frame.
    """

    features: list[str]
    targets: list[str]
    network: dict[str, Any]
    training: dict[str, Any]
    preprocessor: Preprocessor
    target: TargetEncoder
    train_rows: Rows
    test_rows: Rows

    @property
    def classes(self) -> list[str] | None:
        return self.target.classes if self.target.task == "classification" else None

    @property
    def multilabel(self) -> bool:
        return self.target.task == "multilabel"

    def inputs(self, frame: Frame, rows: Rows | None = None) -> Array:
        """Encoded inputs of ``rows`` (all rows when None): rows x encoded width."""
        # Encoded straight into the network's dtype: no float64 copy of a float32 job.
        dtype = np.dtype(_parse(self.training).dtype)
        if rows is not None and _every_row(rows, frame.n_rows):
            rows = None  # blocks of rows are then slices: no gathering
        return self.preprocessor.transform(frame.select(self.features), dtype, rows=rows)

    def outputs(self, frame: Frame, rows: Rows | None = None) -> Array:
        """Encoded targets of ``rows``: what the network is trained to output."""
        table = frame.select(self.targets)
        units = int(self.network["layers"][-1]["units"])
        return self.target.encode(table if rows is None else table.take(rows), units)

    def trainer(self, frame: Frame) -> Trainer:
        """A Trainer on the training rows, encoded."""
        rows = self.train_rows
        return Trainer(
            self.network,
            self.trainer_config(),
            self.inputs(frame, rows),
            self.outputs(frame, rows),
            classes=self.classes,
            multilabel=self.multilabel,
        )

    def resume(self, checkpoint: bytes, frame: Frame) -> Trainer:
        rows = self.train_rows
        return Trainer.resume(checkpoint, self.inputs(frame, rows), self.outputs(frame, rows))

    def trainer_config(self) -> dict[str, Any]:
        # The preprocessor has normalized the number columns already; one-hot and
        # indicator columns stay 0/1, as scikit-learn's ColumnTransformer leaves them.
        return {**self.training, "normalize": None}

    def model(self, trained: Model) -> Model:
        """The trained network with this design's preprocessing and targets around it."""
        return Model(
            trained.network,
            trained.loss,
            classes=self.classes,
            feature_names=self.features,
            preprocessor=self.preprocessor,
            target=self.target,
        )


def design(
    frame: Frame,
    features: Sequence[str],
    targets: Sequence[str],
    task: str,
    network: dict[str, Any],
    training: dict[str, Any],
    *,
    start: Model | None = None,
) -> Design:
    """Split, fit and resolve, deterministically for the job's seed.

    ``start`` (a trained model) lends its preprocessing and target encoding
    instead of fitting new ones, and its weights when ``network`` has no layers.
    Raises SpecError: a field of ``network`` or ``training`` (paths prefixed),
    or ``target`` for unusable target values.
    """
    config = _parse(training)
    features, targets = list(features), list(targets)
    target_frame = frame.select(targets)
    labels = None
    if task == "classification" and target_frame.columns[0].kind == CATEGORY:
        labels = target_frame.columns[0].values
    if config.test_split > 0:
        train_rows, test_rows = stratified_split(
            labels, config.test_split, config.seed, n_rows=frame.n_rows
        )
        if len(test_rows) == 0 or len(train_rows) == 0:
            raise SpecError(
                "training.test_split",
                f"{config.test_split} of {frame.n_rows} rows leaves no test or no training rows",
            )
    else:
        train_rows, test_rows = np.arange(frame.n_rows), np.arange(0)
    fit_rows = train_rows[split_rows(len(train_rows), config.validation_split, config.seed)[0]]

    field = "init_from_model"
    if start is None and isinstance(network, dict):
        start = _document(network)
        field = "network"
    if start is not None:
        if start.preprocessor is None or start.target is None:
            raise SpecError(field, "the model was not trained on a stored table")
        preprocessor, target = start.preprocessor, start.target
        for name, kind in preprocessor.kinds.items():
            if name not in frame or frame[name].kind != kind:
                why = "no such column" if name not in frame else f"it holds {frame[name].kind}"
                raise SpecError(field, f"the model takes the {kind} column {name!r}: {why}")
        if network.get("layers") is None:
            network = {"input_dim": start.input_dim, **start.to_json()}
    else:
        preprocessor = Preprocessor.fit(
            frame.select(features),
            replace(config.preprocess, normalize=config.normalize),
            rows=fit_rows,
        )
        target = TargetEncoder.fit(target_frame.take(fit_rows), task, scale=False)
    resolved, appended = _resolve_network(network, preprocessor.width, target)
    resolved_training = dict(training)
    if appended and config.loss is None:
        resolved_training["loss"] = target.output_layer()[2]
    layers = resolved.get("layers")
    last = layers[-1] if isinstance(layers, list) and layers else None
    # A spec without layers gets no scaling here; the engine's parser names what is wrong.
    output = last.get("activation", "sigmoid") if isinstance(last, dict) else None
    scale = config.target_scaling == "standardize" or (
        config.target_scaling == "auto" and task == "regression" and output == "identity"
    )
    if start is None and scale:
        target = TargetEncoder.fit(target_frame.take(fit_rows), task, scale=True)
    return Design(
        features,
        targets,
        resolved,
        resolved_training,
        preprocessor,
        target,
        train_rows,
        test_rows,
    )


def _document(network: dict[str, Any]) -> Model | None:
    """The model a network spec is the weights document of (``GET /models/<id>/weights``),
    whose preprocessing it must keep; None for a plain spec.

    Raises SpecError for a document whose normalization cannot be kept: that of a
    model trained on bare arrays, which a table job would silently drop.
    """
    if network.get("preprocess") is not None:
        try:
            return Model.from_json(network)
        except (SpecError, KeyError, TypeError, ValueError) as exc:
            raise SpecError("network", f"not a usable model document: {exc}") from None
    if network.get("normalization") is not None:
        raise SpecError(
            "network.normalization",
            "the normalization of a model trained on arrays is not applied to a table; "
            "leave it out to fit a new one, or start from the model (init_from_model)",
        )
    return None


def _every_row(rows: Rows, n_rows: int) -> bool:
    """Whether ``rows`` is 0, 1, ..., n_rows - 1 (a job without held-out rows)."""
    return len(rows) == n_rows and bool((rows == np.arange(n_rows)).all())


def _parse(training: dict[str, Any]) -> TrainingConfig:
    try:
        return parse_training(training)
    except SpecError as exc:
        raise SpecError(f"training.{exc.field}", exc.message) from None


def _resolve_network(
    network: dict[str, Any], width: int, target: TargetEncoder
) -> tuple[dict[str, Any], bool]:
    """The network spec with ``input_dim`` and the output layer filled in.

    The last layer given is taken as the output layer when it has as many
    units as the task needs (or two units for two classes); otherwise the
    task's output layer is appended after it.
    """
    if not isinstance(network, dict):
        raise SpecError("network", f"expected an object, got {type(network).__name__}")
    resolved = dict(network)
    resolved.setdefault("input_dim", width)
    layers = resolved.get("layers")
    if not isinstance(layers, list) or not layers or not all(isinstance(la, dict) for la in layers):
        return resolved, False  # the engine's parser names what is wrong
    units, activation, _ = target.output_layer()
    last, last_activation = layers[-1].get("units"), layers[-1].get("activation", "sigmoid")
    binary = target.task == "classification" and len(target.classes or ()) == 2
    record = ACTIVATIONS.get(last_activation) if isinstance(last_activation, str) else None
    # A softmax can only be an output: a wrong width there is the spec's mistake to name.
    if record is not None and record.distribution:
        return resolved, False
    # Classes and labels are read from probabilities: a relu layer as wide as the
    # classes is a hidden layer, and the output layer comes after it.
    wide_enough = last == units or (binary and last == 2)
    if wide_enough and (target.task == "regression" or last_activation in PROBABILITIES):
        return resolved, False
    resolved["layers"] = [*layers, {"units": units, "activation": activation}]
    return resolved, True
