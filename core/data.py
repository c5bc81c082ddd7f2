"""Checking and splitting the arrays a network is trained on."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._types import Array
from .errors import SpecError
from .losses import CLASSIFICATION_LOSSES
from .spec import NetworkSpec


def as_matrix(value: Any, field: str, dtype: np.dtype[Any]) -> Array:
    """A finite 2-D array of ``dtype``; a 1-D array becomes one column."""
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SpecError(field, f"expected a rectangular table of numbers ({exc})") from None
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise SpecError(
            field, f"expected a 2-D table (rows of numbers), got {array.ndim} dimensions"
        )
    if array.shape[0] == 0:
        raise SpecError(field, "needs at least one row")
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        raise SpecError(f"{field}[{row}]", "must be finite (no NaN or Infinity)")
    return array


def check_dataset(
    inputs: Any, targets: Any, spec: NetworkSpec, loss: str, dtype: np.dtype[Any]
) -> tuple[Array, Array]:
    """Inputs and targets as arrays, checked against the network and the loss."""
    x = as_matrix(inputs, "inputs", dtype)
    t = as_matrix(targets, "targets", dtype)
    if x.shape[0] != t.shape[0]:
        raise SpecError(
            "targets", f"expected {x.shape[0]} rows (one per input row), got {t.shape[0]}"
        )
    if x.shape[1] != spec.input_dim:
        raise SpecError(
            "network.input_dim",
            f"is {spec.input_dim} but the inputs have {x.shape[1]} features",
        )
    if t.shape[1] != spec.output_dim:
        raise SpecError(
            f"network.layers[{len(spec.layers) - 1}].units",
            f"is {spec.output_dim} but the targets have {t.shape[1]} columns",
        )
    if loss in CLASSIFICATION_LOSSES and ((t < 0).any() or (t > 1).any()):
        raise SpecError("targets", f"{loss} needs targets between 0 and 1")
    return x, t


def split(
    x: Array, t: Array, fraction: float, seed: int
) -> tuple[Array, Array, Array | None, Array | None]:
    """Random training/validation split; without a fraction, the arrays unchanged."""
    if fraction <= 0:
        return x, t, None, None
    n = x.shape[0]
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise SpecError(
            "validation_split",
            f"{fraction} of {n} samples leaves no validation or no training samples",
        )
    order = np.random.default_rng([seed, 1]).permutation(n)
    val, train = order[:n_val], order[n_val:]
    return x[train], t[train], x[val], t[val]
