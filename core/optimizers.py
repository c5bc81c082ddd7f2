"""Optimizers behind one interface: ``update(params, grads)`` changes params in place.

Each keeps its state in named slots, lists of arrays shaped like the params,
so that a checkpoint can store and restore any optimizer exactly. The registry
``OPTIMIZERS`` is the one list of optimizer names and default learning rates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ._types import Array

if TYPE_CHECKING:  # spec imports this module for the registry
    from .spec import OptimizerConfig


class Optimizer:
    name: ClassVar[str]
    default_learning_rate: ClassVar[float]

    def __init__(self, config: OptimizerConfig) -> None:
        self.learning_rate = config.learning_rate
        # slot name -> one array per param; checkpointed as "name/index"
        self.slots: dict[str, list[Array]] = {}

    def _slot(self, name: str, params: list[Array]) -> list[Array]:
        arrays = [np.zeros_like(p) for p in params]
        self.slots[name] = arrays
        return arrays

    def update(self, params: list[Array], grads: list[Array]) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Arrays (``name/index`` keys) and scalars needed to continue exactly."""
        return {
            f"{name}/{i}": array
            for name, arrays in self.slots.items()
            for i, array in enumerate(arrays)
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for name, arrays in self.slots.items():
            for i, array in enumerate(arrays):
                array[...] = state[f"{name}/{i}"]


def _moving_average(average: Array, value: Array, decay: float) -> None:
    """average = decay * average + (1 - decay) * value, in place."""
    average *= decay
    average += (1.0 - decay) * value


class SGD(Optimizer):
    """Gradient descent, optionally with (Nesterov) momentum.

    v = momentum * v - lr * g;  w += v   (Nesterov: w += momentum * v - lr * g)
    """

    name = "sgd"
    default_learning_rate = 0.01

    def __init__(self, params: list[Array], config: OptimizerConfig) -> None:
        super().__init__(config)
        self.momentum = config.momentum
        self.nesterov = config.nesterov
        self.velocities = self._slot("velocity", params) if self.momentum else []

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


class RMSProp(Optimizer):
    """s = rho * s + (1 - rho) * g^2;  w -= lr * g / (sqrt(s) + eps)"""

    name = "rmsprop"
    default_learning_rate = 0.001

    def __init__(self, params: list[Array], config: OptimizerConfig) -> None:
        super().__init__(config)
        self.rho = config.rho
        self.epsilon = config.epsilon
        self.squares = self._slot("square", params)

    def update(self, params: list[Array], grads: list[Array]) -> None:
        for p, g, s in zip(params, grads, self.squares, strict=True):
            _moving_average(s, np.square(g), self.rho)
            step = np.sqrt(s)
            step += self.epsilon
            np.divide(g, step, out=step)
            step *= self.learning_rate
            p -= step


class Adam(Optimizer):
    """Adam with bias-corrected first and second moments (Kingma & Ba, 2015)."""

    name = "adam"
    default_learning_rate = 0.001

    def __init__(self, params: list[Array], config: OptimizerConfig) -> None:
        super().__init__(config)
        self.beta1 = config.beta1
        self.beta2 = config.beta2
        self.epsilon = config.epsilon
        self.t = 0
        self.first = self._slot("first", params)
        self.second = self._slot("second", params)

    def update(self, params: list[Array], grads: list[Array]) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.learning_rate * np.sqrt(1.0 - b2**self.t) / (1.0 - b1**self.t)
        for p, g, m, v in zip(params, grads, self.first, self.second, strict=True):
            _moving_average(m, g, b1)
            _moving_average(v, np.square(g), b2)
            denom = np.sqrt(v)
            denom += self.epsilon
            np.divide(m, denom, out=denom)
            denom *= step_size
            p -= denom

    def state(self) -> dict[str, Any]:
        return {"t": self.t, **super().state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        super().load_state(state)


OPTIMIZERS: dict[str, type[SGD | RMSProp | Adam]] = {cls.name: cls for cls in (SGD, RMSProp, Adam)}


def make_optimizer(params: list[Array], config: OptimizerConfig) -> Optimizer:
    """The optimizer ``config.name`` over ``params`` (names checked by the spec parser)."""
    return OPTIMIZERS[config.name](params, config)
