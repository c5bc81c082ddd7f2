"""Analytic gradients against central finite differences."""

from __future__ import annotations

import numpy as np

from ._types import Array
from .losses import LOSSES
from .network import Backprop, Network


def gradient_check(network: Network, loss: str, x: Array, t: Array, eps: float = 1e-6) -> float:
    """Largest relative error between backprop's gradients and numerical ones.

    Relative error is |a - n| / max(|a| + |n|, 1e-8) per parameter, so tiny
    gradients are compared absolutely. Needs a float64 network.
    """
    backprop = Backprop(network, loss, len(x))
    backprop.gradients(x, t)
    analytic = [g.copy() for g in backprop.grads()]
    value = LOSSES[loss].value
    last = len(network.weights) - 1

    def mean_loss() -> float:
        a = backprop.forward(x)
        return value(backprop.zs[last][: len(x)], a, t) / len(x)

    worst = 0.0
    for param, grad in zip(network.params(), analytic, strict=True):
        # Indexed in place: weights are column-major, so reshape(-1) would be a copy.
        for index in np.ndindex(param.shape):
            saved = float(param[index])
            param[index] = saved + eps
            up = mean_loss()
            param[index] = saved - eps
            down = mean_loss()
            param[index] = saved
            numeric = (up - down) / (2 * eps)
            exact = float(grad[index])
            worst = max(worst, abs(exact - numeric) / max(abs(exact) + abs(numeric), 1e-8))
    return worst
