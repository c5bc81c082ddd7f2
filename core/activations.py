"""Activation functions and their derivatives, as small registries.

Each forward function writes ``f(z)`` into ``out``. Each derivative multiplies
``delta`` (holding dE/da on entry) in place by da/dz, so that on return it holds
dE/dz, the ``delta`` of the backpropagation equations. Derivatives use the
layer's output ``a`` where the formula allows it (sigmoid, tanh, relu) and ``z``
where it does not (gaussian).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._types import Array

LEAKY_SLOPE = 0.01

Forward = Callable[[Array, Array], None]
Derivative = Callable[[Array, Array, Array], None]


def identity(z: Array, out: Array) -> None:
    if out is not z:
        np.copyto(out, z)


def sigmoid(z: Array, out: Array) -> None:
    # 1 / (1 + exp(-z)); exp overflow for very negative z gives 1/inf = 0, the right limit.
    with np.errstate(over="ignore"):
        np.negative(z, out=out)
        np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)


def tanh(z: Array, out: Array) -> None:
    np.tanh(z, out=out)


def relu(z: Array, out: Array) -> None:
    np.maximum(z, 0.0, out=out)


def leaky_relu(z: Array, out: Array) -> None:
    # The scaled copy is a temporary so that ``out is z`` (Network.feedforward
    # works in place) still compares against the unscaled z.
    np.maximum(z, LEAKY_SLOPE * z, out=out)


def softmax(z: Array, out: Array) -> None:
    # Subtracting the row maximum keeps exp from overflowing; the result is unchanged.
    np.subtract(z, z.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)


def gaussian(z: Array, out: Array) -> None:
    np.square(z, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)


def identity_derivative(z: Array, a: Array, delta: Array) -> None:
    return None


def sigmoid_derivative(z: Array, a: Array, delta: Array) -> None:
    delta *= a
    delta *= 1.0 - a


def tanh_derivative(z: Array, a: Array, delta: Array) -> None:
    delta *= 1.0 - np.square(a)


def relu_derivative(z: Array, a: Array, delta: Array) -> None:
    delta *= a > 0


def leaky_relu_derivative(z: Array, a: Array, delta: Array) -> None:
    delta *= np.where(z > 0, 1.0, LEAKY_SLOPE).astype(delta.dtype, copy=False)


def softmax_derivative(z: Array, a: Array, delta: Array) -> None:
    # Jacobian-vector product of softmax: a * (g - <g, a>) row by row.
    dot = np.einsum("ij,ij->i", delta, a)[:, None]
    delta -= dot
    delta *= a


def gaussian_derivative(z: Array, a: Array, delta: Array) -> None:
    delta *= -2.0 * z * a


ACTIVATIONS: dict[str, Forward] = {
    "identity": identity,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "softmax": softmax,
    "gaussian": gaussian,
}

DERIVATIVES: dict[str, Derivative] = {
    "identity": identity_derivative,
    "sigmoid": sigmoid_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
    "leaky_relu": leaky_relu_derivative,
    "softmax": softmax_derivative,
    "gaussian": gaussian_derivative,
}

# Activations that may only appear in the output layer.
OUTPUT_ONLY = frozenset({"softmax"})

# Initialization by activation: He for the rectifiers, Glorot for the rest.
HE_INIT = frozenset({"relu", "leaky_relu"})
