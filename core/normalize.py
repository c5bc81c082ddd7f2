"""Input normalization, fitted on the training inputs and stored with the model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ._types import Array

Mask = np.ndarray[Any, np.dtype[np.bool_]]

_EPS = float(np.finfo(np.float64).eps)


def _constant_by_variance(n: int, shift: Array, scale: Array) -> Mask:
    """Columns whose variance is within the rounding error of computing it.

    The bound is the one scikit-learn's ``StandardScaler`` uses (Chan, Golub and
    LeVeque's error bound for the two-pass variance): a column of n copies of m
    has a computed variance up to (n m eps)^2 above zero, so 14.62 repeated 12
    times gives a standard deviation of 3.6e-15 rather than 0.
    """
    var = np.square(scale)
    constant: Mask = var <= n * _EPS * var + np.square(n * shift * _EPS)
    return constant


def _constant_by_range(n: int, shift: Array, scale: Array) -> Mask:
    """Columns whose range is below ten rounding units (``MinMaxScaler``'s rule)."""
    return scale < 10 * _EPS


def _mean_std(x: Array) -> tuple[Array, Array]:
    return x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)


def _min_range(x: Array) -> tuple[Array, Array]:
    low = x.min(axis=0).astype(np.float64)
    return low, x.max(axis=0).astype(np.float64) - low


# method -> (shift and scale of the training columns, which columns count as constant)
METHODS = {
    "standardize": (_mean_std, _constant_by_variance),
    "minmax": (_min_range, _constant_by_range),
}


class Normalizer:
    """x -> (x - shift) / scale, per feature.

    ``standardize``: shift = mean, scale = standard deviation.
    ``minmax``: shift = minimum, scale = maximum - minimum (into [0, 1]).
    A (near-)constant feature gets scale 1, as in scikit-learn's scalers: its
    training values map to about 0 and a new value moves by its distance from
    the training value, instead of being multiplied by ~1e15.
    """

    def __init__(self, method: str, shift: Array, scale: Array) -> None:
        self.method = method
        self.shift = np.asarray(shift, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)

    @classmethod
    def fit(cls, method: str, x: Array) -> Normalizer:
        """Shift and scale of each column of ``x`` (samples x features).

        Raises ValueError for a method not in ``METHODS`` (the spec parser
        refuses those first).
        """
        return cls.fit_columns(method, (x[:, j] for j in range(x.shape[1])))

    @staticmethod
    def moments(method: str, column: Array) -> tuple[float, float]:
        """(shift, scale) of one column (1-D), before the constant-column rule.

        Each column is made contiguous whatever the layout of the matrix it came
        from: NumPy's sums depend on memory layout, and a table's preprocessing and
        the Trainer's normalization of the same numbers must agree bit for bit.
        """
        if method not in METHODS:
            raise ValueError(f"unknown normalization {method!r}")
        shift, scale = METHODS[method][0](np.ascontiguousarray(column).reshape(-1, 1))
        return float(shift[0]), float(scale[0])

    @classmethod
    def from_moments(
        cls, method: str, moments: list[tuple[float, float]], n_rows: int
    ) -> Normalizer:
        """The normalizer of columns whose :meth:`moments` these are (``n_rows`` each)."""
        shift = np.array([m[0] for m in moments], dtype=np.float64)
        scale = np.array([m[1] for m in moments], dtype=np.float64)
        scale = np.where(METHODS[method][1](n_rows, shift, scale), 1.0, scale)
        return cls(method, shift, scale)

    @classmethod
    def fit_columns(cls, method: str, columns: Iterable[Array]) -> Normalizer:
        """:meth:`fit` on the matrix whose columns ``columns`` yields one at a time
        (1-D, of equal length), without stacking them: a million-row table is
        fitted in the memory of one column."""
        found, n_rows = [], 0
        for column in columns:
            found.append(cls.moments(method, column))
            n_rows = column.shape[0]
        return cls.from_moments(method, found, n_rows)

    def apply(self, x: Array, dtype: np.dtype[Any] | type | None = None) -> Array:
        """A normalized copy of ``x`` (the caller's array is never changed)."""
        out = np.array(x, dtype=dtype or x.dtype, copy=True)
        out -= self.shift.astype(out.dtype)
        out /= self.scale.astype(out.dtype)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalizer:
        return cls(data["method"], np.array(data["shift"]), np.array(data["scale"]))
