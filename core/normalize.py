"""Input normalization, fitted on the training inputs and stored with the model."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._types import Array


class Normalizer:
    """x -> (x - shift) / scale, per feature.

    ``standardize``: shift = mean, scale = standard deviation.
    ``minmax``: shift = minimum, scale = maximum - minimum (into [0, 1]).
    A constant feature gets scale 1, so it maps to 0 instead of dividing by zero.
    """

    def __init__(self, method: str, shift: Array, scale: Array) -> None:
        self.method = method
        self.shift = np.asarray(shift, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)

    @classmethod
    def fit(cls, method: str, x: Array) -> Normalizer:
        if method == "standardize":
            shift, scale = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)
        elif method == "minmax":
            shift = x.min(axis=0).astype(np.float64)
            scale = x.max(axis=0).astype(np.float64) - shift
        else:
            raise ValueError(f"unknown normalization {method!r}")
        scale = np.where(scale > 0, scale, 1.0)
        return cls(method, shift, scale)

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
