"""Optimizers behind one interface: ``update(params, grads)`` changes params in place.

Each keeps its state in named slots, lists of arrays shaped like the params,
so that a checkpoint can store and restore any optimizer exactly. The registry
``OPTIMIZERS`` is the one list of optimizer names and default learning rates.

The network's params, the gradients and every slot are views of one buffer each,
laid out alike (:func:`packed`). An update then runs each of its element-wise
passes once over the whole buffer instead of once per array: for a small layer
or a bias vector a NumPy call costs more than its arithmetic. Every update is
written with ``out=`` into a scratch buffer or the gradients (which the next
backward pass overwrites anyway), so no step allocates, and the arithmetic is
the same operation for operation as the textbook form each docstring gives.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ._types import Array

if TYPE_CHECKING:  # spec imports this module for the registry
    from .spec import OptimizerConfig


def packed(arrays: list[Array]) -> list[Array]:
    """Zeroed arrays shaped, typed and ordered in memory like ``arrays``, back to back
    in one 1-D buffer (each view's ``base``)."""
    buffer = np.zeros(sum(a.size for a in arrays), dtype=arrays[0].dtype if arrays else float)
    views, offset = [], 0
    for a in arrays:
        segment = buffer[offset : offset + a.size]
        if a.flags.f_contiguous and not a.flags.c_contiguous:
            views.append(segment.reshape(a.shape, order="F"))
        else:
            views.append(segment.reshape(a.shape))
        offset += a.size
    return views


def flat(arrays: list[Array]) -> Array | None:
    """The one 1-D buffer that ``arrays`` fill exactly, back to back in this order,
    or None when they do not (arrays of their own, or a subset such as weights
    without their biases)."""
    if not arrays:
        return None
    base = arrays[0].base
    if not isinstance(base, np.ndarray) or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    address = base.ctypes.data
    for a in arrays:
        contiguous = a.flags.c_contiguous or a.flags.f_contiguous
        if a.base is not base or not contiguous or a.ctypes.data != address:
            return None
        address += a.nbytes
    return base if address == base.ctypes.data + base.nbytes else None


class Optimizer:
    name: ClassVar[str]
    default_learning_rate: ClassVar[float]

    def __init__(self, config: OptimizerConfig) -> None:
        self.learning_rate = config.learning_rate
        # slot name -> one array per param; checkpointed as "name/index"
        self.slots: dict[str, list[Array]] = {}
        self._scratch: list[Array] = []
        self.uses_scratch = True
        self._bound: tuple[list[Array], list[Array], list[list[Array]]] | None = None

    def _slot(self, name: str, params: list[Array]) -> list[Array]:
        arrays = packed(params)
        self.slots[name] = arrays
        return arrays

    def _groups(self, params: list[Array], grads: list[Array]) -> list[list[Array]]:
        """The arrays one update pass works on, as [param, grad, scratch, *slots] lists:
        one list of whole buffers when params, grads and slots are each one packed
        buffer laid out alike, else one list per param.

        Worked out once for the lists the trainer passes at every step.
        """
        bound = self._bound
        if bound is not None and bound[0] is params and bound[1] is grads:
            return bound[2]
        if not self._scratch:
            # Plain SGD and momentum need no scratch: the gradients stand in, unwritten.
            self._scratch = packed(params) if self.uses_scratch else grads
        slots = list(self.slots.values())
        per_param = [
            list(arrays) for arrays in zip(params, grads, self._scratch, *slots, strict=True)
        ]
        columns = [params, grads, self._scratch, *slots]
        buffers = [flat(arrays) for arrays in columns]
        alike = all(len({(a.shape, a.strides) for a in arrays}) == 1 for arrays in per_param)
        groups = per_param
        if alike and all(b is not None for b in buffers):
            groups = [[b for b in buffers if b is not None]]
        self._bound = (params, grads, groups)
        return groups

    def update(self, params: list[Array], grads: list[Array]) -> None:
        raise NotImplementedError

    # Slot values that keep decaying towards zero (a dead unit's momentum) turn into
    # subnormal numbers, on which this CPU's arithmetic runs many times slower. Every
    # ``flush_interval`` steps, values below ``tiny * FLUSH_MARGIN`` are set to zero:
    # in that many steps of decay no larger value can reach the subnormal range. The
    # trainer counts the steps from the start of the run, so a resumed run flushes at
    # the same steps as an uninterrupted one.
    FLUSH_MARGIN: ClassVar[float] = 2.0**24

    @property
    def decay(self) -> float | None:
        """The factor by which slot values shrink each step without new gradient."""
        return None

    @property
    def flush_interval(self) -> int | None:
        """Steps between two flushes of subnormal slot values; None: nothing to flush."""
        decay = self.decay
        if not self.slots or decay is None or decay <= 0.0:
            return None
        if decay >= 1.0:
            return 1 << 30
        return max(1, int(math.log(self.FLUSH_MARGIN) / -math.log(decay)))

    def flush_subnormals(self) -> None:
        """Zero the slot values too small to stay out of the subnormal range until the
        next flush (see ``FLUSH_MARGIN``)."""
        for arrays in self.slots.values():
            buffer = flat(arrays)
            for a in [buffer] if buffer is not None else arrays:
                limit = float(np.finfo(a.dtype).tiny) * self.FLUSH_MARGIN
                np.copyto(a, 0.0, where=np.abs(a) < limit)

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
    """average = decay * average + (1 - decay) * value, in place; ``value`` is
    overwritten."""
    np.multiply(value, 1.0 - decay, out=value)
    average *= decay
    average += value


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
        self.uses_scratch = self.nesterov

    @property
    def decay(self) -> float | None:
        return self.momentum

    def update(self, params: list[Array], grads: list[Array]) -> None:
        for group in self._groups(params, grads):
            group[1] *= self.learning_rate
        self.step(params, grads)

    def step(self, params: list[Array], steps: list[Array]) -> None:
        """Apply gradients already multiplied by the learning rate (``lr * g``)."""
        momentum, nesterov = self.momentum, self.nesterov
        for group in self._groups(params, steps):
            p, s = group[0], group[1]
            if not momentum:
                p -= s
                continue
            scratch, v = group[2], group[3]
            v *= momentum
            v -= s
            if nesterov:
                np.multiply(v, momentum, out=scratch)
                p += scratch
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

    @property
    def decay(self) -> float | None:
        return self.rho

    def update(self, params: list[Array], grads: list[Array]) -> None:
        for p, g, step, s in self._groups(params, grads):
            np.square(g, out=step)
            _moving_average(s, step, self.rho)
            np.sqrt(s, out=step)
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
        for p, g, denom, m, v in self._groups(params, grads):
            np.multiply(g, 1.0 - b1, out=denom)
            m *= b1
            m += denom
            np.square(g, out=g)
            _moving_average(v, g, b2)
            np.sqrt(v, out=denom)
            denom += self.epsilon
            np.divide(m, denom, out=denom)
            denom *= step_size
            p -= denom

    @property
    def decay(self) -> float | None:
        return min(self.beta1, self.beta2)

    def state(self) -> dict[str, Any]:
        return {"t": self.t, **super().state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        super().load_state(state)


OPTIMIZERS: dict[str, type[SGD | RMSProp | Adam]] = {cls.name: cls for cls in (SGD, RMSProp, Adam)}


def make_optimizer(params: list[Array], config: OptimizerConfig) -> Optimizer:
    """The optimizer ``config.name`` over ``params`` (names checked by the spec parser)."""
    return OPTIMIZERS[config.name](params, config)
