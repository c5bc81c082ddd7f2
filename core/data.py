"""Checking and splitting the arrays a network is trained on."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._types import Array
from .activations import ACTIVATIONS
from .errors import SpecError
from .losses import CLASSIFICATION_LOSSES
from .spec import NetworkSpec

Rows = np.ndarray[Any, np.dtype[np.int64]]

# Rows checked for NaN and infinities at a time.
FINITE_CHECK_ROWS = 65536


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
    # In blocks of rows: a mask of a million-row table would be 100 MB on its own.
    for start in range(0, array.shape[0], FINITE_CHECK_ROWS):
        block = array[start : start + FINITE_CHECK_ROWS]
        if not np.isfinite(block).all():
            row = start + int(np.argwhere(~np.isfinite(block))[0][0])
            raise SpecError(f"{field}[{row}]", "must be finite (no NaN or Infinity)")
    return array


def validation_rows(n_samples: int, fraction: float) -> int:
    """How many of ``n_samples`` rows a validation split of ``fraction`` holds out."""
    return int(round(n_samples * fraction))


def check_fit(
    spec: NetworkSpec,
    loss: str,
    *,
    n_samples: int,
    n_features: int,
    n_targets: int,
    classes: Sequence[str] | None,
    targets: Callable[[], Array],
    validation_split: float = 0.0,
) -> None:
    """Whether ``spec`` trained with ``loss`` fits a dataset of this shape.

    The one statement of these rules, for the Trainer and for the API's job
    admission. ``targets`` is called only when a rule needs the values (the
    API's stored datasets load them lazily); with ``classes`` they are one-hot
    rows (or, for two classes and one output unit, one 0/1 column).

    Raises SpecError naming the job-level field: ``network.input_dim``,
    ``network.layers[k].units``, ``training.validation_split``, ``classes``
    (the class names do not match the target columns) or ``targets`` (values).
    """
    last = f"network.layers[{len(spec.layers) - 1}].units"
    units, output = spec.output_dim, spec.output_activation
    distribution = ACTIVATIONS[output].distribution
    if n_features != spec.input_dim:
        raise SpecError(
            "network.input_dim", f"is {spec.input_dim} but the dataset has {n_features} features"
        )
    if distribution and units == 1:
        raise SpecError(
            last, f"a {output} over one unit is always 1: use 2 or more units, or sigmoid"
        )
    if classes is not None:
        _check_classes(last, units, n_targets, len(classes))
    else:
        if n_targets != units:
            raise SpecError(last, f"is {units} but the dataset has {n_targets} target columns")
        if loss in CLASSIFICATION_LOSSES or distribution:
            _check_unlabelled_targets(targets(), loss, output)
        else:
            _check_reach(targets(), output)
    if validation_split > 0:
        n_val = validation_rows(n_samples, validation_split)
        if n_val < 1 or n_val >= n_samples:
            raise SpecError(
                "training.validation_split",
                f"{validation_split} of {n_samples} samples leaves no validation "
                "or no training samples",
            )


def _check_classes(last: str, units: int, n_targets: int, n_classes: int) -> None:
    # One output unit serves two classes: it learns the second class's 0/1 column
    # and is read with a threshold of 0.5, as scikit-learn's binary MLPClassifier.
    one_unit = units == 1
    if n_targets != n_classes and not (one_unit and n_targets == 1):
        raise SpecError("classes", f"expected {n_targets} class names, got {n_classes}")
    wanted = 2 if one_unit else units
    if n_classes == wanted:
        return
    if n_targets == 1:  # a 0/1 column: the names are what is wrong
        raise SpecError("classes", f"expected 2 class names, got {n_classes}")
    either = " (or 1 for two classes)" if n_classes == 2 else ""
    raise SpecError(
        last, f"is {units} but the dataset has {n_classes} classes: use {n_classes}{either}"
    )


def _check_reach(t: Array, output: str) -> None:
    """Targets a bounded output layer cannot reach: it would train and answer 200 with
    outputs that never come near them."""
    low, high = ACTIVATIONS[output].reach
    if t.size == 0 or (low == -math.inf and high == math.inf):
        return
    t_min, t_max = float(t.min()), float(t.max())
    if t_min < low or t_max > high:
        raise SpecError(
            "targets",
            f"a {output} output reaches only [{low:g}, {high:g}] but the targets range from "
            f"{t_min:g} to {t_max:g}: use an identity output (the targets are then "
            "standardized), or leave the output layer out",
        )


def _check_unlabelled_targets(t: Array, loss: str, output: str) -> None:
    if t.size and (t.min() < 0 or t.max() > 1):
        needs = f"{loss} (training.loss)" if loss in CLASSIFICATION_LOSSES else f"a {output} output"
        raise SpecError(
            "targets",
            f"{needs} needs targets between 0 and 1; these range from {t.min():g} to {t.max():g}",
        )
    if ACTIVATIONS[output].distribution:
        sums = t.sum(axis=1)
        off = np.flatnonzero(np.abs(sums - 1.0) > 1e-6 * t.shape[1])
        if off.size:
            row = int(off[0])
            raise SpecError(
                "targets",
                f"a {output} output needs class targets: each row between 0 and 1 and "
                f"summing to 1 (one-hot for a class); row {row} sums to {sums[row]:g}",
            )


def class_columns(t: Array, n_classes: int | None, units: int) -> Array:
    """The targets the network trains on: one-hot rows of two classes for one output
    unit become the second class's 0/1 column (the classes are sorted, so that is
    the class named last); other targets are unchanged."""
    if n_classes == 2 and units == 1 and t.shape[1] == 2:
        return t[:, 1:].copy()
    return t


def check_dataset(
    inputs: Any,
    targets: Any,
    spec: NetworkSpec,
    loss: str,
    dtype: np.dtype[Any],
    *,
    classes: Sequence[str] | None = None,
    validation_split: float = 0.0,
) -> tuple[Array, Array]:
    """Inputs and targets as arrays of ``dtype``, checked by :func:`check_fit`.

    ``inputs`` is samples x features; ``targets`` samples x columns (a 1-D
    array is one column). Raises SpecError for unusable values or a mismatch.
    """
    x = as_matrix(inputs, "inputs", dtype)
    t = as_matrix(targets, "targets", dtype)
    if x.shape[0] != t.shape[0]:
        raise SpecError(
            "targets", f"expected {x.shape[0]} rows (one per input row), got {t.shape[0]}"
        )
    check_fit(
        spec,
        loss,
        n_samples=x.shape[0],
        n_features=x.shape[1],
        n_targets=t.shape[1],
        classes=classes,
        targets=lambda: t,
        validation_split=validation_split,
    )
    return x, class_columns(t, None if classes is None else len(classes), spec.output_dim)


def split(
    x: Array, t: Array, fraction: float, seed: int
) -> tuple[Array, Array, Array | None, Array | None]:
    """Random training/validation split; without a fraction, the arrays unchanged.

    The fraction must leave rows on both sides (:func:`check_fit` says so first).
    """
    if fraction <= 0:
        return x, t, None, None
    train, val = split_rows(len(x), fraction, seed)
    return x[train], t[train], x[val], t[val]


def split_rows(n_samples: int, fraction: float, seed: int) -> tuple[Rows, Rows]:
    """(training rows, validation rows) of :func:`split`, as index arrays.

    Preprocessing is fitted on the training rows alone, so it needs them before
    the Trainer splits the encoded arrays the same way.
    """
    n_val = validation_rows(n_samples, fraction) if fraction > 0 else 0
    order = np.random.default_rng([seed, 1]).permutation(n_samples)
    return order[n_val:], order[:n_val]
