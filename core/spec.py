"""Network specs and training configs: plain dicts in, validated objects out.

Every check raises :class:`SpecError` naming the path of the offending field,
so the HTTP layer can pass the message straight to the user.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._types import Array
from .activations import ACTIVATIONS
from .errors import SpecError
from .losses import LOSSES
from .normalize import METHODS as NORMALIZATIONS
from .optimizers import OPTIMIZERS
from .schedules import SCHEDULES

if TYPE_CHECKING:
    from .preprocess import PreprocessSpec

DTYPES = ("float64", "float32")
# The working range of each optimizer and schedule number, declared once: the spec
# parser enforces it and the API's schema documents it. Outside it the engine fails
# (``epoch ** power`` overflows a float past epoch 2 with power 1000) or makes no
# progress a job could report (an Adam beta of 1 - 1e-17 divides by zero). Learning
# rates have no maximum: too large a one diverges, which the engine reports as the
# job's own failure (``non_finite_loss``, with the advice to lower it).
MAX_DECAY = 0.99999  # momentum, beta1, beta2, rho: below 1, whose powers never reach 0
MIN_EPSILON, MAX_EPSILON = 1e-30, 1.0
MAX_POWER = 10.0  # invscaling: 1e6 epochs ** 10 = 1e60, far from float overflow
MAX_L2 = 1e3
MAX_SEED = 2**63 - 1  # NumPy's generators and the stored checkpoint take 64 bits
MAX_PATIENCE = 1_000_000
# Bytes a stored array costs besides its values in the ``.npz`` of a model or a
# checkpoint (zip local and central headers, the .npy header, its name): measured
# at about 300, rounded up.
NPZ_ARRAY_OVERHEAD = 512
NPZ_FIXED_OVERHEAD = 1 << 16
TARGET_SCALINGS = ("auto", "standardize", "none")
# A trained model's weights document (core.Model.to_json) is a network spec with
# these fields besides: accepted, so that it can be sent back as it is, and not
# read (the job's training config and dataset decide them).
MODEL_DOCUMENT_FIELDS = (
    "format",
    "loss",
    "dtype",
    "normalization",
    "classes",
    "feature_names",
    "target_names",
    "preprocess",
    "target",
)


# --- small checkers -----------------------------------------------------------


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(path, f"expected an object, got {type(value).__name__}")
    return value


def _no_unknown(value: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    for key in value:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise SpecError(where, f"unknown field; expected one of {', '.join(allowed)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _as_float(value: int | float) -> float:
    """``float(value)``, but an int beyond float range (valid JSON) becomes infinity."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _int(value: Any, path: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise SpecError(path, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SpecError(path, f"must be at most {maximum}, got {value}")
    return value


def _number(
    value: Any,
    path: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(path, f"expected a number, got {value!r}")
    number = _as_float(value)
    if not math.isfinite(number):
        raise SpecError(path, f"must be finite, got {value!r}")
    if minimum is not None and (number < minimum or (exclusive_minimum and number == minimum)):
        bound = "greater than" if exclusive_minimum else "at least"
        raise SpecError(path, f"must be {bound} {minimum}, got {value!r}")
    if maximum is not None and (number > maximum or (exclusive_maximum and number == maximum)):
        bound = "less than" if exclusive_maximum else "at most"
        raise SpecError(path, f"must be {bound} {maximum}, got {value!r}")
    return number


def _fraction(value: Any, path: str) -> float:
    """A number in [0, 1)."""
    return _number(value, path, minimum=0.0, maximum=1.0, exclusive_maximum=True)


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(path, f"expected true or false, got {value!r}")
    return value


def _choice(value: Any, choices: Sequence[str], path: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SpecError(path, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def matrix(value: Any, path: str, rows: int | None = None, cols: int | None = None) -> Array:
    """A finite 2-D float64 array from nested lists, with its shape checked."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise SpecError(path, f"expected a list of rows, got {type(value).__name__}")
    width = None
    for i, row in enumerate(value):
        if not isinstance(row, Sequence) or isinstance(row, str):
            raise SpecError(f"{path}[{i}]", f"expected a list of numbers, got {row!r}")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise SpecError(f"{path}[{i}]", f"ragged rows: expected {width} values, got {len(row)}")
        for k, item in enumerate(row):
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise SpecError(f"{path}[{i}][{k}]", f"expected a number, got {item!r}")
            if isinstance(item, int) and math.isinf(_as_float(item)):
                raise SpecError(f"{path}[{i}][{k}]", "must be finite (no NaN or Infinity)")
    array = np.array(value, dtype=np.float64).reshape(len(value), width or 0)
    if rows is not None and cols is not None and array.shape != (rows, cols):
        got = "x".join(str(n) for n in array.shape)
        raise SpecError(path, f"expected {rows}x{cols}, got {got}")
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        i, k = (int(n) for n in bad[0])
        raise SpecError(f"{path}[{i}][{k}]", "must be finite (no NaN or Infinity)")
    return array


def vector(value: Any, path: str, length: int | None = None) -> Array:
    """A finite 1-D float64 array from a list, with its length checked."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise SpecError(path, f"expected a list of numbers, got {type(value).__name__}")
    for k, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise SpecError(f"{path}[{k}]", f"expected a number, got {item!r}")
        if not math.isfinite(_as_float(item)):
            raise SpecError(f"{path}[{k}]", "must be finite (no NaN or Infinity)")
    if length is not None and len(value) != length:
        raise SpecError(path, f"expected {length} values, got {len(value)}")
    return np.array(value, dtype=np.float64)


# --- network ------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    units: int
    activation: str
    weights: Array | None = None  # shape (units, inputs): weights[j][i] is w_ji
    bias: Array | None = None


@dataclass(frozen=True)
class NetworkSpec:
    input_dim: int
    layers: tuple[LayerSpec, ...]

    @property
    def output_dim(self) -> int:
        return self.layers[-1].units

    @property
    def output_activation(self) -> str:
        return self.layers[-1].activation

    def n_weights(self) -> int:
        """Trainable numbers: every weight and bias."""
        total, fan_in = 0, self.input_dim
        for layer in self.layers:
            total += layer.units * (fan_in + 1)
            fan_in = layer.units
        return total

    def stored_bytes(self, dtype: str = "float64", copies: int = 1) -> int:
        """An upper estimate of the bytes ``copies`` sets of this network's weights and
        biases take in a model or checkpoint file (values plus each array's overhead)."""
        itemsize = np.dtype(dtype).itemsize
        per_copy = self.n_weights() * itemsize + 2 * len(self.layers) * NPZ_ARRAY_OVERHEAD
        return copies * per_copy + NPZ_FIXED_OVERHEAD + 128 * len(self.layers)

    def to_dict(self) -> dict[str, Any]:
        """The architecture, without initial weights."""
        return {
            "input_dim": self.input_dim,
            "layers": [{"units": la.units, "activation": la.activation} for la in self.layers],
        }


def parse_network(value: Any) -> NetworkSpec:
    """Validate a network spec dict (see README) and return a :class:`NetworkSpec`."""
    if isinstance(value, NetworkSpec):
        return value
    spec = _mapping(value, "network")
    _no_unknown(spec, ("input_dim", "layers", *MODEL_DOCUMENT_FIELDS), "")
    if "input_dim" not in spec:
        raise SpecError("input_dim", "is required")
    input_dim = _int(spec["input_dim"], "input_dim", minimum=1)
    raw_layers = spec.get("layers")
    if not isinstance(raw_layers, Sequence) or isinstance(raw_layers, str) or not raw_layers:
        raise SpecError("layers", "expected a non-empty list of layers")
    layers = []
    fan_in = input_dim
    for index, raw in enumerate(raw_layers):
        path = f"layers[{index}]"
        layer = _mapping(raw, path)
        _no_unknown(layer, ("units", "activation", "weights", "bias"), path)
        if "units" not in layer:
            raise SpecError(f"{path}.units", "is required")
        units = _int(layer["units"], f"{path}.units", minimum=1)
        activation = _choice(
            layer.get("activation", "sigmoid"), tuple(ACTIVATIONS), f"{path}.activation"
        )
        if ACTIVATIONS[activation].distribution and index != len(raw_layers) - 1:
            raise SpecError(
                f"{path}.activation", f"{activation} is allowed only in the output layer"
            )
        weights = bias = None
        if layer.get("weights") is not None:
            weights = matrix(layer["weights"], f"{path}.weights", units, fan_in)
        if layer.get("bias") is not None:
            bias = vector(layer["bias"], f"{path}.bias", units)
        layers.append(LayerSpec(units, activation, weights, bias))
        fan_in = units
    return NetworkSpec(input_dim, tuple(layers))


# --- training -----------------------------------------------------------------


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    rho: float = 0.9
    epsilon: float = 1e-8


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "constant"
    power: float = 0.5  # invscaling: lr / epoch**power
    factor: float = 0.5  # plateau: lr *= factor
    patience: int = 5
    min_delta: float = 1e-4
    min_learning_rate: float = 1e-6


@dataclass(frozen=True)
class EarlyStoppingConfig:
    patience: int = 10
    min_delta: float = 0.0


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int
    loss: str | None = None  # None: chosen from the output activation
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    l2: float = 0.0
    batch_size: int | None = 32  # None: the whole training set in one batch
    shuffle: bool = True
    seed: int = 0
    train_bias: bool = True
    normalize: str | None = None
    validation_split: float = 0.0
    # Rows held out before anything is fitted, scored when training ends (the
    # service's tabular jobs; the Trainer itself trains on the rows it is given).
    test_split: float = 0.0
    # Regression targets: "auto" standardizes them under an identity output, the
    # only output that can reach any value; predictions come back in their units.
    target_scaling: str = "auto"
    # How a table's columns become inputs (core.preprocess); its normalization is
    # ``normalize`` above.
    preprocess: PreprocessSpec = field(default_factory=lambda: _preprocess(None))
    early_stopping: EarlyStoppingConfig | None = None
    target_loss: float | None = None
    stop_when_all_correct: bool = False
    dtype: str = "float64"
    time_limit: float | None = None  # seconds of wall clock

    def to_dict(self) -> dict[str, Any]:
        def plain(obj: Any) -> Any:
            return None if obj is None else dict(obj.__dict__)

        return {
            "epochs": self.epochs,
            "loss": self.loss,
            "optimizer": plain(self.optimizer),
            "schedule": plain(self.schedule),
            "l2": self.l2,
            "batch_size": "full" if self.batch_size is None else self.batch_size,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "train_bias": self.train_bias,
            "normalize": self.normalize,
            "validation_split": self.validation_split,
            "test_split": self.test_split,
            "target_scaling": self.target_scaling,
            "preprocess": {
                key: value for key, value in vars(self.preprocess).items() if key != "normalize"
            },
            "early_stopping": plain(self.early_stopping),
            "target_loss": self.target_loss,
            "stop_when_all_correct": self.stop_when_all_correct,
            "dtype": self.dtype,
            "time_limit": self.time_limit,
        }


def _preprocess(raw: Any) -> PreprocessSpec:
    # core.preprocess builds on this module's checkers, so it is imported when used.
    from .preprocess import parse_preprocess

    spec = parse_preprocess(raw, "preprocess")
    if spec.normalize is not None:
        raise SpecError("preprocess.normalize", "is set by training.normalize")
    return spec


def _parse_optimizer(value: Any, path: str) -> OptimizerConfig:
    if isinstance(value, str):
        value = {"name": value}
    raw = _mapping(value, path)
    _no_unknown(raw, tuple(OptimizerConfig.__dataclass_fields__), path)
    name = _choice(raw.get("name", "sgd"), tuple(OPTIMIZERS), _join(path, "name"))
    lr = _number(
        raw.get("learning_rate", OPTIMIZERS[name].default_learning_rate),
        _join(path, "learning_rate"),
        minimum=0.0,
        exclusive_minimum=True,
    )

    def decay(key: str, default: float) -> float:
        return _number(raw.get(key, default), _join(path, key), minimum=0.0, maximum=MAX_DECAY)

    return OptimizerConfig(
        name=name,
        learning_rate=lr,
        momentum=decay("momentum", 0.0),
        nesterov=_bool(raw.get("nesterov", False), _join(path, "nesterov")),
        beta1=decay("beta1", 0.9),
        beta2=decay("beta2", 0.999),
        rho=decay("rho", 0.9),
        epsilon=_number(
            raw.get("epsilon", 1e-8),
            _join(path, "epsilon"),
            minimum=MIN_EPSILON,
            maximum=MAX_EPSILON,
        ),
    )


def _parse_schedule(value: Any, path: str) -> ScheduleConfig:
    if isinstance(value, str):
        value = {"name": value}
    raw = _mapping(value, path)
    _no_unknown(raw, tuple(ScheduleConfig.__dataclass_fields__), path)
    defaults = ScheduleConfig()
    return ScheduleConfig(
        name=_choice(raw.get("name", "constant"), SCHEDULES, _join(path, "name")),
        power=_number(
            raw.get("power", defaults.power), _join(path, "power"), minimum=0.0, maximum=MAX_POWER
        ),
        factor=_number(
            raw.get("factor", defaults.factor),
            _join(path, "factor"),
            minimum=0.0,
            maximum=1.0,
            exclusive_minimum=True,
            exclusive_maximum=True,
        ),
        patience=_int(
            raw.get("patience", defaults.patience),
            _join(path, "patience"),
            minimum=1,
            maximum=MAX_PATIENCE,
        ),
        min_delta=_number(
            raw.get("min_delta", defaults.min_delta), _join(path, "min_delta"), minimum=0.0
        ),
        min_learning_rate=_number(
            raw.get("min_learning_rate", defaults.min_learning_rate),
            _join(path, "min_learning_rate"),
            minimum=0.0,
        ),
    )


def _parse_early_stopping(value: Any, path: str) -> EarlyStoppingConfig | None:
    if value is None or value is False:
        return None
    if value is True:
        return EarlyStoppingConfig()
    raw = _mapping(value, path)
    _no_unknown(raw, ("patience", "min_delta"), path)
    return EarlyStoppingConfig(
        patience=_int(
            raw.get("patience", 10), _join(path, "patience"), minimum=1, maximum=MAX_PATIENCE
        ),
        min_delta=_number(raw.get("min_delta", 0.0), _join(path, "min_delta"), minimum=0.0),
    )


def parse_training(value: Any) -> TrainingConfig:
    """Validate a training config dict and return a :class:`TrainingConfig`.

    Only ``epochs`` is required; everything else has a default.
    """
    if isinstance(value, TrainingConfig):
        return value
    raw = _mapping(value, "training")
    _no_unknown(raw, tuple(TrainingConfig.__dataclass_fields__), "")
    if "epochs" not in raw:
        raise SpecError("epochs", "is required")
    loss = raw.get("loss")
    if loss is not None:
        loss = _choice(loss, tuple(LOSSES), "loss")
    batch = raw.get("batch_size", 32)
    batch_size = None if batch in (None, "full") else _int(batch, "batch_size", minimum=1)
    normalize = raw.get("normalize")
    if normalize is not None:
        normalize = _choice(normalize, tuple(NORMALIZATIONS), "normalize")
    target_loss = raw.get("target_loss")
    time_limit = raw.get("time_limit")
    return TrainingConfig(
        epochs=_int(raw["epochs"], "epochs", minimum=1),
        loss=loss,
        optimizer=_parse_optimizer(raw.get("optimizer", "sgd"), "optimizer"),
        schedule=_parse_schedule(raw.get("schedule", "constant"), "schedule"),
        l2=_number(raw.get("l2", 0.0), "l2", minimum=0.0, maximum=MAX_L2),
        batch_size=batch_size,
        shuffle=_bool(raw.get("shuffle", True), "shuffle"),
        seed=_int(raw.get("seed", 0), "seed", minimum=0, maximum=MAX_SEED),
        train_bias=_bool(raw.get("train_bias", True), "train_bias"),
        normalize=normalize,
        validation_split=_fraction(raw.get("validation_split", 0.0), "validation_split"),
        test_split=_fraction(raw.get("test_split", 0.0), "test_split"),
        target_scaling=_choice(
            raw.get("target_scaling", "auto"), TARGET_SCALINGS, "target_scaling"
        ),
        preprocess=_preprocess(raw.get("preprocess")),
        early_stopping=_parse_early_stopping(raw.get("early_stopping"), "early_stopping"),
        target_loss=None
        if target_loss is None
        else _number(target_loss, "target_loss", minimum=0.0),
        stop_when_all_correct=_bool(
            raw.get("stop_when_all_correct", False), "stop_when_all_correct"
        ),
        dtype=_choice(raw.get("dtype", "float64"), DTYPES, "dtype"),
        time_limit=None
        if time_limit is None
        else _number(time_limit, "time_limit", minimum=0.0, exclusive_minimum=True),
    )


def resolve_loss(network: NetworkSpec, training: TrainingConfig) -> str:
    """The loss to train with, checked against the output activation."""
    output = network.output_activation
    name = training.loss
    if name is None:
        name = "categorical_crossentropy" if output == "softmax" else "squared_error"
    required = LOSSES[name].requires
    if required is not None and output not in required:
        raise SpecError(
            "loss",
            f"{name} needs a {' or '.join(sorted(required))} output layer, "
            f"but layers[{len(network.layers) - 1}].activation is {output}",
        )
    return name
