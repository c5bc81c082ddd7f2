"""Activation functions: one record each, in one registry.

A record holds everything the engine knows about an activation: the batch
forward function and its derivative (NumPy, in place), the same pair on one
float for the online path (:mod:`core.online`), the initial-weight family, and
whether its outputs form a distribution over the units (softmax).

Each batch forward function writes ``f(z)`` into ``out``. Each derivative
multiplies ``delta`` (holding dE/da on entry) in place by da/dz, so that on
return it holds dE/dz, the ``delta`` of the backpropagation equations.
Derivatives use the layer's output ``a`` where the formula allows it (sigmoid,
tanh, relu) and ``z`` where it does not (gaussian, leaky_relu). A derivative may
overwrite ``z`` as scratch: the backward pass has no use for it afterwards, and a
temporary of the layer's size would cost an allocation and a pass of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._types import Array, registry

LEAKY_SLOPE = 0.01

Forward = Callable[[Array, Array], None]
Derivative = Callable[[Array, Array, Array], None]
ScalarForward = Callable[[float], float]
ScalarDerivative = Callable[[float, float], float]  # da/dz from (z, a)
Initializer = Callable[[int, int, np.random.Generator], Array]  # (fan_in, fan_out, rng)


@dataclass(frozen=True)
class Activation:
    name: str
    forward: Forward
    derivative: Derivative
    # On one float; None when f is not elementwise (softmax couples the units).
    scalar: ScalarForward | None
    scalar_derivative: ScalarDerivative | None
    # Initial weights, shape (fan_out, fan_in).
    init: Initializer
    # Outputs that sum to 1 over the units: allowed only in the output layer,
    # needs two or more units and targets that are class distributions.
    distribution: bool = False
    # The values an output unit can reach, (low, high): a regression whose targets
    # lie outside cannot be fitted by this output layer.
    reach: tuple[float, float] = (-math.inf, math.inf)


# --- initial weights ------------------------------------------------------------


def he_normal(fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
    """N(0, 2 / fan_in): keeps the variance of rectified units (He et al., 2015)."""
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))


def glorot_uniform(fan_in: int, fan_out: int, rng: np.random.Generator, gain: float = 1.0) -> Array:
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=(fan_out, fan_in))


def glorot_uniform_logistic(fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
    # The logistic function is a quarter as steep as tanh at 0 (Glorot & Bengio, 2010).
    return glorot_uniform(fan_in, fan_out, rng, gain=4.0)


# --- identity -----------------------------------------------------------------


def identity(z: Array, out: Array) -> None:
    if out is not z:
        np.copyto(out, z)


def identity_derivative(z: Array, a: Array, delta: Array) -> None:
    return None


# --- sigmoid ------------------------------------------------------------------


def sigmoid(z: Array, out: Array) -> None:
    # 1 / (1 + exp(-z)); exp overflow for very negative z gives 1/inf = 0, the right limit.
    with np.errstate(over="ignore"):
        np.negative(z, out=out)
        np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)


def sigmoid_derivative(z: Array, a: Array, delta: Array) -> None:
    delta *= a
    np.subtract(1.0, a, out=z)
    delta *= z


def sigmoid_scalar(z: float) -> float:
    try:
        return 1.0 / (1.0 + math.exp(-z))
    except OverflowError:  # exp(-z) beyond float range: the limit is 0
        return 0.0


# --- tanh ---------------------------------------------------------------------


def tanh(z: Array, out: Array) -> None:
    np.tanh(z, out=out)


def tanh_derivative(z: Array, a: Array, delta: Array) -> None:
    np.square(a, out=z)
    np.subtract(1.0, z, out=z)
    delta *= z


# --- rectifiers -----------------------------------------------------------------


def relu(z: Array, out: Array) -> None:
    np.maximum(z, 0.0, out=out)


def relu_derivative(z: Array, a: Array, delta: Array) -> None:
    np.greater(a, 0.0, out=z)
    delta *= z


def leaky_relu(z: Array, out: Array) -> None:
    # The scaled copy is a temporary so that ``out is z`` (Network.feedforward
    # works in place) still compares against the unscaled z.
    np.maximum(z, LEAKY_SLOPE * z, out=out)


def leaky_relu_derivative(z: Array, a: Array, delta: Array) -> None:
    # Only where z is not positive (NaN included): elsewhere the factor is 1.
    flat = np.greater(z, 0.0)
    np.logical_not(flat, out=flat)
    np.multiply(delta, LEAKY_SLOPE, out=delta, where=flat)


# --- softmax --------------------------------------------------------------------


def softmax(z: Array, out: Array) -> None:
    # Subtracting the row maximum keeps exp from overflowing; the result is unchanged.
    np.subtract(z, z.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)


def softmax_log_norm(z: Array, out: Array, log_norm: Array) -> None:
    """softmax(z) into ``out`` and each row's log sum_k exp(z_k) into ``log_norm``.

    The cross-entropy of softmax outputs needs exactly the log-sum-exp that softmax
    computes on its way: sharing it saves the loss a second max, exp, sum and log.
    Same operations as ``softmax`` and ``categorical_crossentropy``, so the same bits.
    """
    zmax = z.max(axis=1, keepdims=True)
    np.subtract(z, zmax, out=out)
    np.exp(out, out=out)
    norm = out.sum(axis=1, keepdims=True)
    out /= norm
    np.log(norm[:, 0], out=log_norm)
    log_norm += zmax[:, 0]


def softmax_derivative(z: Array, a: Array, delta: Array) -> None:
    # Jacobian-vector product of softmax: a * (g - <g, a>) row by row.
    dot = np.einsum("ij,ij->i", delta, a)[:, None]
    delta -= dot
    delta *= a


# --- gaussian -------------------------------------------------------------------


def gaussian(z: Array, out: Array) -> None:
    np.square(z, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)


def gaussian_derivative(z: Array, a: Array, delta: Array) -> None:
    np.multiply(z, -2.0, out=z)
    z *= a
    delta *= z


def gaussian_scalar(z: float) -> float:
    return math.exp(-(z * z))


ACTIVATIONS = registry(
    Activation(
        "identity",
        identity,
        identity_derivative,
        float,
        lambda z, a: 1.0,
        glorot_uniform,
    ),
    Activation(
        "sigmoid",
        sigmoid,
        sigmoid_derivative,
        sigmoid_scalar,
        lambda z, a: a * (1.0 - a),
        glorot_uniform_logistic,
        reach=(0.0, 1.0),
    ),
    Activation(
        "tanh",
        tanh,
        tanh_derivative,
        math.tanh,
        lambda z, a: 1.0 - a * a,
        glorot_uniform,
        reach=(-1.0, 1.0),
    ),
    Activation(
        "relu",
        relu,
        relu_derivative,
        lambda z: z if z > 0.0 else 0.0,
        lambda z, a: 1.0 if a > 0.0 else 0.0,
        he_normal,
        reach=(0.0, math.inf),
    ),
    Activation(
        "leaky_relu",
        leaky_relu,
        leaky_relu_derivative,
        lambda z: z if z > 0.0 else z * LEAKY_SLOPE,
        lambda z, a: 1.0 if z > 0.0 else LEAKY_SLOPE,
        he_normal,
    ),
    Activation(
        "softmax",
        softmax,
        softmax_derivative,
        None,
        None,
        glorot_uniform,
        distribution=True,
        reach=(0.0, 1.0),
    ),
    Activation(
        "gaussian",
        gaussian,
        gaussian_derivative,
        gaussian_scalar,
        lambda z, a: -2.0 * z * a,
        glorot_uniform,
        reach=(0.0, 1.0),
    ),
)
