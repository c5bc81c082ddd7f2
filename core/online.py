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
from operator import mul
from typing import Any

import numpy as np

from ._types import Array
from .activations import ACTIVATIONS, ScalarDerivative, ScalarForward
from .losses import LOSSES
from .network import Network
from .optimizers import SGD

# Beyond this many weights and biases the NumPy path is as fast.
MAX_WEIGHTS = 128


def eligible(network: Network, loss: str, batch_size: int, optimizer: object) -> bool:
    """Whether this path applies: online SGD, float64, one-float forms of the
    activations and of the loss (see the registries)."""
    n_weights = sum(w.size + b.size for w, b in zip(network.weights, network.biases, strict=True))
    record = LOSSES[loss]
    return (
        batch_size == 1
        and isinstance(optimizer, SGD)
        and network.dtype == np.float64
        and record.sample_value is not None
        and (record.sample_grad is not None or network.activation_names[-1] in record.cancels)
        and all(ACTIVATIONS[name].scalar is not None for name in network.activation_names)
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
        records = [ACTIVATIONS[name] for name in network.activation_names]
        self.forward: list[ScalarForward] = [r.scalar for r in records if r.scalar is not None]
        self.derivative: list[ScalarDerivative] = [
            r.scalar_derivative for r in records if r.scalar_derivative is not None
        ]
        record = LOSSES[loss]
        assert record.sample_value is not None and len(self.forward) == len(records)
        self.sample_value = record.sample_value
        # None: the loss and the output activation cancel, and dE/dz = a - t.
        self.sample_grad = None if records[-1].name in record.cancels else record.sample_grad

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
        sample_value, sample_grad = self.sample_value, self.sample_grad
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
                loss_sum += sample_value(zs[-1], a, target)
                if sample_grad is None:
                    delta = [aj - tj for aj, tj in zip(a, target, strict=True)]
                else:
                    fprime = derivative[-1]
                    delta = [
                        g * fprime(zj, aj)
                        for g, zj, aj in zip(sample_grad(a, target), zs[-1], a, strict=True)
                    ]

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
