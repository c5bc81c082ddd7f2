"""Online SGD for tiny networks in plain Python floats.

With one sample per step and a handful of weights, a NumPy call costs far more
than the arithmetic it performs, so each step here runs on Python lists: the
same equations as :class:`core.network.Backprop` and :class:`core.optimizers.SGD`,
in the same order of operations, on one sample at a time. Results agree with
the NumPy path to rounding (NumPy's vectorized ``exp`` may differ from libm's
in the last bit). The weights live in the network's arrays between epochs, so
checkpoints, resume and evaluation work unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from operator import mul
from typing import Any

import numpy as np

from ._types import Array
from .activations import LEAKY_SLOPE
from .network import Network
from .optimizers import SGD

# Beyond this many weights and biases the NumPy path is as fast.
MAX_WEIGHTS = 128
LOSSES = frozenset({"squared_error", "mse", "binary_crossentropy"})


def _sigmoid(z: float) -> float:
    try:
        return 1.0 / (1.0 + math.exp(-z))
    except OverflowError:  # exp(-z) beyond float range: the limit is 0
        return 0.0


def _gaussian(z: float) -> float:
    return math.exp(-(z * z))


ACTIVATIONS: dict[str, Callable[[float], float]] = {
    "identity": float,
    "sigmoid": _sigmoid,
    "tanh": math.tanh,
    "relu": lambda z: z if z > 0.0 else 0.0,
    "leaky_relu": lambda z: z if z > 0.0 else z * LEAKY_SLOPE,
    "gaussian": _gaussian,
}

# da/dz from (z, a), as in core.activations
DERIVATIVES: dict[str, Callable[[float, float], float]] = {
    "identity": lambda z, a: 1.0,
    "sigmoid": lambda z, a: a * (1.0 - a),
    "tanh": lambda z, a: 1.0 - a * a,
    "relu": lambda z, a: 1.0 if a > 0.0 else 0.0,
    "leaky_relu": lambda z, a: 1.0 if z > 0.0 else LEAKY_SLOPE,
    "gaussian": lambda z, a: -2.0 * z * a,
}


def eligible(network: Network, loss: str, batch_size: int, optimizer: object) -> bool:
    """Whether this path applies: online SGD, float64, elementwise activations."""
    n_weights = sum(w.size + b.size for w, b in zip(network.weights, network.biases, strict=True))
    return (
        batch_size == 1
        and isinstance(optimizer, SGD)
        and network.dtype == np.float64
        and loss in LOSSES
        and all(name in ACTIVATIONS for name in network.activation_names)
        and n_weights <= MAX_WEIGHTS
    )


class OnlineSGD:
    """One epoch of per-sample backpropagation and SGD on Python floats."""

    def __init__(
        self,
        network: Network,
        loss: str,
        optimizer: SGD,
        x: Array,
        t: Array,
        *,
        l2: float,
        train_bias: bool,
    ) -> None:
        self.network = network
        self.loss = loss
        self.optimizer = optimizer
        self.l2 = l2
        self.train_bias = train_bias
        self.xs: list[list[float]] = x.tolist()
        self.ts: list[list[float]] = t.tolist()
        self.forward = [ACTIVATIONS[name] for name in network.activation_names]
        self.derivative = [DERIVATIVES[name] for name in network.activation_names]

    def _velocities(self) -> tuple[list[Any], list[Any]]:
        velocities = self.optimizer.velocities
        if not velocities:
            return [], []
        if self.train_bias:
            return [v.tolist() for v in velocities[0::2]], [v.tolist() for v in velocities[1::2]]
        return [v.tolist() for v in velocities], []

    def _store_velocities(self, vw: list[Any], vb: list[Any]) -> None:
        velocities = self.optimizer.velocities
        if not velocities:
            return
        if self.train_bias:
            for array, values in zip(
                velocities, [v for pair in zip(vw, vb, strict=True) for v in pair], strict=True
            ):
                array[...] = values
        else:
            for array, values in zip(velocities, vw, strict=True):
                array[...] = values

    def epoch(self, order: list[int] | range) -> tuple[float, float]:
        """Train on the samples in ``order``; returns (summed loss, last gradient norm)."""
        network = self.network
        weights: list[list[list[float]]] = [w.tolist() for w in network.weights]
        biases: list[list[float]] = [b.tolist() for b in network.biases]
        vw, vb = self._velocities()
        lr, mu = self.optimizer.learning_rate, self.optimizer.momentum
        nesterov, l2, train_bias = self.optimizer.nesterov, self.l2, self.train_bias
        forward, derivative = self.forward, self.derivative
        layers = range(len(weights) - 1, -1, -1)
        loss_name = self.loss
        last_index = len(order) - 1
        loss_sum = 0.0
        grad_norm = 0.0
        try:
            for step, index in enumerate(order):
                a: list[float] = self.xs[index]
                target = self.ts[index]
                activations = [a]
                zs = []
                for w, b, f in zip(weights, biases, forward, strict=True):
                    z = [sum(map(mul, row, a)) + bj for row, bj in zip(w, b, strict=True)]
                    a = [f(zj) for zj in z]
                    zs.append(z)
                    activations.append(a)

                # Output delta dE/dz, and the loss seen before the update.
                if loss_name == "binary_crossentropy":  # sigmoid output, fused: a - t
                    z = zs[-1]
                    for zj, tj in zip(z, target, strict=True):
                        loss_sum += math.log1p(math.exp(-abs(zj))) + max(zj, 0.0) - zj * tj
                    delta = [aj - tj for aj, tj in zip(a, target, strict=True)]
                else:
                    diff = [aj - tj for aj, tj in zip(a, target, strict=True)]
                    squares = sum(d * d for d in diff)
                    if loss_name == "squared_error":
                        loss_sum += 0.5 * squares
                        grad = diff
                    else:  # mse
                        loss_sum += squares / len(diff)
                        grad = [d * (2.0 / len(diff)) for d in diff]
                    fprime = derivative[-1]
                    delta = [g * fprime(zj, aj) for g, zj, aj in zip(grad, zs[-1], a, strict=True)]

                if step == last_index:
                    grad_norm = self._grad_norm(weights, activations, zs, delta)
                for layer in layers:
                    w, a_prev = weights[layer], activations[layer]
                    below: list[float] = []
                    if layer > 0:
                        # Uses the weights from before this step's update, as backprop must.
                        fprime = derivative[layer - 1]
                        below = [
                            sum(map(mul, column, delta)) * fprime(zi, ai)
                            for column, zi, ai in zip(
                                zip(*w, strict=True), zs[layer - 1], a_prev, strict=True
                            )
                        ]
                    for j, dj in enumerate(delta):
                        row = w[j]
                        velocity = vw[layer][j] if vw else None
                        for i, ai in enumerate(a_prev):
                            g = dj * ai
                            if l2:
                                g += l2 * row[i]
                            row[i] = _step(row, i, g, lr, mu, nesterov, velocity)
                        if train_bias:
                            bias_velocity = vb[layer] if vb else None
                            biases[layer][j] = _step(
                                biases[layer], j, dj, lr, mu, nesterov, bias_velocity
                            )
                    delta = below
        except OverflowError:
            loss_sum = math.inf

        for w_array, w_values in zip(network.weights, weights, strict=True):
            w_array[...] = w_values
        for b_array, b_values in zip(network.biases, biases, strict=True):
            b_array[...] = b_values
        self._store_velocities(vw, vb)
        return loss_sum, grad_norm

    def _grad_norm(
        self,
        weights: list[list[list[float]]],
        activations: list[list[float]],
        zs: list[list[float]],
        delta: list[float],
    ) -> float:
        """The L2 norm of this sample's gradient (with the L2 penalty), before the update."""
        total = 0.0
        for layer in range(len(weights) - 1, -1, -1):
            w, a_prev = weights[layer], activations[layer]
            for j, dj in enumerate(delta):
                for i, ai in enumerate(a_prev):
                    g = dj * ai + (self.l2 * w[j][i] if self.l2 else 0.0)
                    total += g * g
                if self.train_bias:
                    total += dj * dj
            if layer > 0:
                fprime = self.derivative[layer - 1]
                delta = [
                    sum(map(mul, column, delta)) * fprime(zi, ai)
                    for column, zi, ai in zip(
                        zip(*w, strict=True), zs[layer - 1], a_prev, strict=True
                    )
                ]
        return math.sqrt(total)


def _step(
    values: list[float],
    i: int,
    g: float,
    lr: float,
    mu: float,
    nesterov: bool,
    velocity: list[float] | None,
) -> float:
    """The new value of ``values[i]`` after one SGD step, as core.optimizers.SGD takes it."""
    g = g * lr
    if velocity is None:
        return values[i] - g
    v = velocity[i] * mu - g
    velocity[i] = v
    if nesterov:
        return (values[i] + mu * v) - g
    return values[i] + v
