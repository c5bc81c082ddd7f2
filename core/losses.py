"""Loss functions: one record each, in one registry.

A loss sums over the samples of a batch; the trainer divides by the number of
samples. ``grad`` writes dE/da for each sample into ``out``. Where a loss and
an output activation cancel algebraically (``cancels``), dE/dz is simply
a - t, which is both cheaper and numerically stable (seed 003: dz = a - y).
``sample_value`` and ``sample_grad`` are the same pair on one sample's Python
floats, for the online path (:mod:`core.online`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._types import Array, registry

Value = Callable[[Array, Array, Array], float]  # (z, a, t) -> summed loss
Grad = Callable[[Array, Array, Array], None]  # (a, t, out): out = dE/da
SampleValue = Callable[[list[float], list[float], list[float]], float]  # (z, a, t)
SampleGrad = Callable[[list[float], list[float]], list[float]]  # (a, t) -> dE/da


@dataclass(frozen=True)
class Loss:
    name: str
    value: Value
    # None where only the cancelled form a - t exists (cross-entropies)
    grad: Grad | None
    # one sample's floats, for the online path; None where it has no such form
    sample_value: SampleValue | None
    sample_grad: SampleGrad | None
    # output activations with which dE/dz = a - t
    cancels: frozenset[str] = frozenset()
    # the summed loss from (z, each row's log sum exp z, t), for softmax outputs
    value_log_norm: Value | None = None
    # output activations this loss accepts; None means any
    requires: frozenset[str] | None = None
    # targets are class probabilities in [0, 1]
    classification: bool = False


# --- squared errors ----------------------------------------------------------------


def squared_error(z: Array, a: Array, t: Array) -> float:
    """E = 1/2 sum_k (t_k - a_k)^2 per sample, summed over the batch."""
    diff = a - t
    return 0.5 * float(np.vdot(diff, diff))


def squared_error_grad(a: Array, t: Array, out: Array) -> None:
    np.subtract(a, t, out=out)


def squared_error_sample(z: list[float], a: list[float], t: list[float]) -> float:
    return 0.5 * sum((aj - tj) * (aj - tj) for aj, tj in zip(a, t, strict=True))


def squared_error_sample_grad(a: list[float], t: list[float]) -> list[float]:
    return [aj - tj for aj, tj in zip(a, t, strict=True)]


def mse(z: Array, a: Array, t: Array) -> float:
    """Mean over output units of (t_k - a_k)^2 per sample, summed over the batch."""
    diff = a - t
    return float(np.vdot(diff, diff)) / int(a.shape[1])


def mse_grad(a: Array, t: Array, out: Array) -> None:
    np.subtract(a, t, out=out)
    out *= 2.0 / a.shape[1]


def mse_sample(z: list[float], a: list[float], t: list[float]) -> float:
    return sum((aj - tj) * (aj - tj) for aj, tj in zip(a, t, strict=True)) / len(a)


def mse_sample_grad(a: list[float], t: list[float]) -> list[float]:
    return [(aj - tj) * (2.0 / len(a)) for aj, tj in zip(a, t, strict=True)]


# --- cross-entropies -----------------------------------------------------------------


def binary_crossentropy(z: Array, a: Array, t: Array) -> float:
    """-sum_k [t log a + (1 - t) log(1 - a)] with a = sigmoid(z), from z for stability."""
    # log(1 + exp(-|z|)) + max(z, 0) - z t  equals the expression above exactly.
    per_unit = np.logaddexp(0.0, -np.abs(z)) + np.maximum(z, 0.0) - z * t
    return float(per_unit.sum())


def binary_crossentropy_sample(z: list[float], a: list[float], t: list[float]) -> float:
    return sum(
        math.log1p(math.exp(-abs(zj))) + max(zj, 0.0) - zj * tj for zj, tj in zip(z, t, strict=True)
    )


def categorical_crossentropy(z: Array, a: Array, t: Array) -> float:
    """-sum_k t_k log softmax(z)_k, through log-sum-exp."""
    zmax = z.max(axis=1, keepdims=True)
    log_norm = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
    return categorical_crossentropy_log_norm(z, log_norm, t)


def categorical_crossentropy_log_norm(z: Array, log_norm: Array, t: Array) -> float:
    """The same from each row's log sum_k exp(z_k), as the softmax forward pass left it
    (:func:`core.activations.softmax_log_norm`): -log softmax(z)_k = log_norm - z_k."""
    return float(log_norm @ t.sum(axis=1) - np.vdot(z, t))


def difference_delta(z: Array, a: Array, t: Array, out: Array) -> None:
    """dE/dz = a - t, for a loss and an output activation that cancel."""
    np.subtract(a, t, out=out)


SIGMOID, SOFTMAX = frozenset({"sigmoid"}), frozenset({"softmax"})

LOSSES = registry(
    Loss(
        "squared_error",
        squared_error,
        squared_error_grad,
        squared_error_sample,
        squared_error_sample_grad,
    ),
    Loss("mse", mse, mse_grad, mse_sample, mse_sample_grad),
    Loss(
        "binary_crossentropy",
        binary_crossentropy,
        None,
        binary_crossentropy_sample,
        None,
        cancels=SIGMOID,
        requires=SIGMOID,
        classification=True,
    ),
    # softmax has no one-float form, so the online path never needs one here
    Loss(
        "categorical_crossentropy",
        categorical_crossentropy,
        None,
        None,
        None,
        cancels=SOFTMAX,
        requires=SOFTMAX,
        classification=True,
        value_log_norm=categorical_crossentropy_log_norm,
    ),
)

CLASSIFICATION_LOSSES = frozenset(name for name, loss in LOSSES.items() if loss.classification)


def class_index(outputs: Array) -> np.ndarray[Any, np.dtype[np.intp]]:
    """The class each row of outputs (samples x units) picks.

    One unit: class 1 at 0.5 and above, else class 0 (two classes on one
    sigmoid unit). Several: the unit with the largest value (the seeds'
    "classified correctly"). Targets are read the same way.
    """
    if outputs.shape[1] == 1:
        return (outputs[:, 0] >= 0.5).astype(np.intp)
    index: np.ndarray[Any, np.dtype[np.intp]] = outputs.argmax(axis=1)
    return index


def count_correct(a: Array, t: Array, multilabel: bool = False) -> int:
    """Samples whose output picks the target's class.

    ``multilabel``: each unit is a label of its own, on at 0.5; a sample counts
    only when every label is right (subset accuracy, as scikit-learn scores it).
    """
    if multilabel:
        return int(np.count_nonzero(((a >= 0.5) == (t >= 0.5)).all(axis=1)))
    return int(np.count_nonzero(class_index(a) == class_index(t)))


def is_classifier(loss: str, classes: Sequence[str] | None) -> bool:
    """Whether outputs are read as classes: named ones, or a classification loss."""
    return classes is not None or LOSSES[loss].classification
