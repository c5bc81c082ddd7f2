"""Optimizers behind one interface: ``update(params, grads)`` changes params in place.

Each keeps its state as a list of arrays shaped like the params, so a checkpoint
can store and restore it exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._types import Array
from .spec import OptimizerConfig


class Optimizer:
    learning_rate: float

    def update(self, params: list[Array], grads: list[Array]) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Arrays (``name/index`` keys) and scalars needed to continue exactly."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        return None


class SGD(Optimizer):
    """Gradient descent, optionally with (Nesterov) momentum.

    v = momentum * v - lr * g;  w += v   (Nesterov: w += momentum * v - lr * g)
    """

    def __init__(self, params: list[Array], config: OptimizerConfig) -> None:
        self.learning_rate = config.learning_rate
        self.momentum = config.momentum
        self.nesterov = config.nesterov
        self.velocities = [np.zeros_like(p) for p in params] if self.momentum else []

    def update(self, params: list[Array], grads: list[Array]) -> None:
        for g in grads:
            g *= self.learning_rate
        self.step(params, grads)

    def step(self, params: list[Array], steps: list[Array]) -> None:
        """Apply gradients already multiplied by the learning rate (``lr * g``)."""
        if not self.momentum:
            for p, s in zip(params, steps, strict=True):
                p -= s
            return
        for p, s, v in zip(params, steps, self.velocities, strict=True):
            v *= self.momentum
            v -= s
            if self.nesterov:
                p += self.momentum * v
                p -= s
            else:
                p += v

    def state(self) -> dict[str, Any]:
        return {f"velocity/{i}": v for i, v in enumerate(self.velocities)}

    def load_state(self, state: dict[str, Any]) -> None:
        for i, v in enumerate(self.velocities):
            v[...] = state[f"velocity/{i}"]


class RMSProp(Optimizer):
    """s = rho * s + (1 - rho) * g^2;  w -= lr * g / (sqrt(s) + eps)"""

    def __init__(self, params: list[Array], config: OptimizerConfig) -> None:
        self.learning_rate = config.learning_rate
        self.rho = config.rho
        self.epsilon = config.epsilon
        self.squares = [np.zeros_like(p) for p in params]

    def update(self, params: list[Array], grads: list[Array]) -> None:
        for p, g, s in zip(params, grads, self.squares, strict=True):
            s *= self.rho
            s += (1.0 - self.rho) * np.square(g)
            step = np.sqrt(s)
            step += self.epsilon
            np.divide(g, step, out=step)
            step *= self.learning_rate
            p -= step

    def state(self) -> dict[str, Any]:
        return {f"square/{i}": s for i, s in enumerate(self.squares)}

    def load_state(self, state: dict[str, Any]) -> None:
        for i, s in enumerate(self.squares):
            s[...] = state[f"square/{i}"]


class Adam(Optimizer):
    """Adam with bias-corrected first and second moments (Kingma & Ba, 2015)."""

    def __init__(self, params: list[Array], config: OptimizerConfig) -> None:
        self.learning_rate = config.learning_rate
        self.beta1 = config.beta1
        self.beta2 = config.beta2
        self.epsilon = config.epsilon
        self.t = 0
        self.first = [np.zeros_like(p) for p in params]
        self.second = [np.zeros_like(p) for p in params]

    def update(self, params: list[Array], grads: list[Array]) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.learning_rate * np.sqrt(1.0 - b2**self.t) / (1.0 - b1**self.t)
        for p, g, m, v in zip(params, grads, self.first, self.second, strict=True):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * np.square(g)
            denom = np.sqrt(v)
            denom += self.epsilon
            np.divide(m, denom, out=denom)
            denom *= step_size
            p -= denom

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"t": self.t}
        state.update({f"first/{i}": m for i, m in enumerate(self.first)})
        state.update({f"second/{i}": v for i, v in enumerate(self.second)})
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        for i, m in enumerate(self.first):
            m[...] = state[f"first/{i}"]
        for i, v in enumerate(self.second):
            v[...] = state[f"second/{i}"]


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "rmsprop": RMSProp, "adam": Adam}


def make_optimizer(params: list[Array], config: OptimizerConfig) -> Optimizer:
    return OPTIMIZERS[config.name](params, config)  # type: ignore[call-arg]
