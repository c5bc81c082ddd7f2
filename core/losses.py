"""Loss functions: value, gradient with respect to the output, fused deltas.

A loss sums over the samples of a batch; the trainer divides by the number of
samples. ``grad`` writes dE/da for each sample into ``out``. Where a loss and an
output activation cancel algebraically, ``FUSED`` gives dE/dz directly, which is
both cheaper and numerically stable (seed 003: dz = a - y).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._types import Array

Value = Callable[[Array, Array, Array], float]
Grad = Callable[[Array, Array, Array], None]


def squared_error(z: Array, a: Array, t: Array) -> float:
    """E = 1/2 sum_k (t_k - a_k)^2 per sample, summed over the batch."""
    diff = a - t
    return 0.5 * float(np.vdot(diff, diff))


def squared_error_grad(a: Array, t: Array, out: Array) -> None:
    np.subtract(a, t, out=out)


def mse(z: Array, a: Array, t: Array) -> float:
    """Mean over output units of (t_k - a_k)^2 per sample, summed over the batch."""
    diff = a - t
    return float(np.vdot(diff, diff)) / int(a.shape[1])


def mse_grad(a: Array, t: Array, out: Array) -> None:
    np.subtract(a, t, out=out)
    out *= 2.0 / a.shape[1]


def binary_crossentropy(z: Array, a: Array, t: Array) -> float:
    """-sum_k [t log a + (1 - t) log(1 - a)] with a = sigmoid(z), from z for stability."""
    # log(1 + exp(-|z|)) + max(z, 0) - z t  equals the expression above exactly.
    per_unit = np.logaddexp(0.0, -np.abs(z)) + np.maximum(z, 0.0) - z * t
    return float(per_unit.sum())


def categorical_crossentropy(z: Array, a: Array, t: Array) -> float:
    """-sum_k t_k log softmax(z)_k, through log-sum-exp."""
    zmax = z.max(axis=1, keepdims=True)
    log_norm = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
    return float(log_norm @ t.sum(axis=1) - np.vdot(z, t))


def difference_delta(z: Array, a: Array, t: Array, out: Array) -> None:
    np.subtract(a, t, out=out)


@dataclass(frozen=True)
class Loss:
    name: str
    value: Value
    grad: Grad | None
    # output activation -> function writing dE/dz into its last argument
    fused: dict[str, Callable[[Array, Array, Array, Array], None]]
    # output activations this loss accepts; None means any
    requires: frozenset[str] | None = None


LOSSES: dict[str, Loss] = {
    "squared_error": Loss("squared_error", squared_error, squared_error_grad, {}),
    "mse": Loss("mse", mse, mse_grad, {}),
    "binary_crossentropy": Loss(
        "binary_crossentropy",
        binary_crossentropy,
        None,
        {"sigmoid": difference_delta},
        frozenset({"sigmoid"}),
    ),
    "categorical_crossentropy": Loss(
        "categorical_crossentropy",
        categorical_crossentropy,
        None,
        {"softmax": difference_delta},
        frozenset({"softmax"}),
    ),
}

CLASSIFICATION_LOSSES = frozenset({"binary_crossentropy", "categorical_crossentropy"})


def count_correct(a: Array, t: Array) -> int:
    """Samples whose output picks the target's class.

    One output unit: both sides of 0.5 agree. Several: the largest output is at
    the largest target (the seeds' "classified correctly").
    """
    if a.shape[1] == 1:
        return int(np.count_nonzero((a[:, 0] >= 0.5) == (t[:, 0] >= 0.5)))
    return int(np.count_nonzero(a.argmax(axis=1) == t.argmax(axis=1)))
