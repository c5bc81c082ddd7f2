"""A multilayer network and backpropagation through it.

Notation follows the seeds: for layer l, ``zs[l] = a_{l-1} W_l^T + b_l`` and
``activations[l+1] = f_l(zs[l])``; ``delta`` is dE/dz. Samples are rows, so a
batch flows through as one matrix. ``weights[l][j, i]`` is w_ji, the weight from
input i to unit j.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._types import Array
from .activations import ACTIVATIONS, softmax_log_norm
from .losses import LOSSES, Loss, difference_delta
from .optimizers import packed
from .spec import NetworkSpec


class Network:
    """Weights, biases and activations of a feed-forward network."""

    def __init__(self, activations: list[str], weights: list[Array], biases: list[Array]) -> None:
        self.activation_names = list(activations)
        self.weights = weights
        self.biases = biases

    @classmethod
    def from_spec(
        cls, spec: NetworkSpec, rng: np.random.Generator, dtype: np.dtype[Any] | type = np.float64
    ) -> Network:
        """Build from a spec: its weights where given, else drawn by the activation.

        Biases not given start at zero; the random weights already break symmetry.
        """
        weights, biases = [], []
        fan_in = spec.input_dim
        for layer in spec.layers:
            if layer.weights is not None:
                w = np.array(layer.weights, dtype=dtype)
            else:
                w = initial_weights(layer.activation, fan_in, layer.units, rng).astype(dtype)
            if layer.bias is not None:
                b = np.array(layer.bias, dtype=dtype)
            else:
                b = np.zeros(layer.units, dtype=dtype)
            # Column-major storage makes W^T row-major: the forward product a W^T and the
            # gradient delta^T a then run on contiguous operands (~10% faster BLAS calls).
            weights.append(np.asfortranarray(w))
            biases.append(b)
            fan_in = layer.units
        # All params back to back in one buffer, in the order of params(): an optimizer
        # then updates them with one call per pass instead of one per array.
        params = [p for pair in zip(weights, biases, strict=True) for p in pair]
        views = packed(params)
        for view, p in zip(views, params, strict=True):
            np.copyto(view, p)
        return cls([la.activation for la in spec.layers], views[0::2], views[1::2])

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.weights[0].dtype

    @property
    def input_dim(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def output_dim(self) -> int:
        return int(self.weights[-1].shape[0])

    def params(self, train_bias: bool = True) -> list[Array]:
        """The arrays an optimizer updates, in a fixed order."""
        if not train_bias:
            return list(self.weights)
        return [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]

    def copy(self) -> Network:
        return Network(
            self.activation_names,
            [w.copy(order="K") for w in self.weights],
            [b.copy() for b in self.biases],
        )

    def feedforward(self, x: Array) -> Array:
        """Outputs for a batch of inputs (one sample per row)."""
        a = np.asarray(x, dtype=self.dtype)
        for w, b, name in zip(self.weights, self.biases, self.activation_names, strict=True):
            z = a @ w.T
            z += b
            ACTIVATIONS[name].forward(z, z)
            a = z
        return a

    def all_finite(self) -> bool:
        return all(np.isfinite(p).all() for p in self.weights + self.biases)


def initial_weights(activation: str, fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
    """Initial weights of a layer of ``activation`` units, shape (fan_out, fan_in), drawn
    from ``rng`` by the initializer the activation's record names."""
    return ACTIVATIONS[activation].init(fan_in, fan_out, rng)


class Backprop:
    """Forward and backward passes for one network and loss, with reusable buffers.

    ``gradients(x, t)`` fills ``grad_w``/``grad_b`` with the gradient of the mean
    loss over the batch, every gradient computed with the weights as they were
    before any update, and returns the summed loss of the batch.
    """

    def __init__(
        self, network: Network, loss: str, batch_size: int, train_bias: bool = True
    ) -> None:
        self.network = network
        self.loss: Loss = LOSSES[loss]
        self.train_bias = train_bias
        dtype = network.dtype
        sizes = [w.shape[0] for w in network.weights]
        self.zs = [np.empty((batch_size, n), dtype=dtype) for n in sizes]
        self.activations: list[Array] = [np.empty((0, 0), dtype=dtype)] + [
            np.empty((batch_size, n), dtype=dtype) for n in sizes
        ]
        self.deltas = [np.empty((batch_size, n), dtype=dtype) for n in sizes]
        # Laid out like the network's params (see Network.from_spec), for the optimizer.
        grads = packed(network.params())
        self.grad_w, self.grad_b = grads[0::2], grads[1::2]
        self.forward_fns = [ACTIVATIONS[name].forward for name in network.activation_names]
        self.derivative_fns = [ACTIVATIONS[name].derivative for name in network.activation_names]
        # Bias gradients as ones @ delta: BLAS sums the columns faster than np.sum(axis=0).
        self.ones = np.ones(batch_size, dtype=dtype)
        # ReLU as z * [z > 0] with the mask kept as 0/1 floats: the forward pass and the
        # derivative become same-dtype multiplies instead of np.maximum and a bool cast.
        self.relu_masks: list[Array | None] = [
            np.empty((batch_size, n), dtype=dtype) if name == "relu" else None
            for name, n in zip(network.activation_names, sizes, strict=True)
        ]
        cancels = network.activation_names[-1] in self.loss.cancels
        self.output_delta = difference_delta if cancels else None
        # Softmax outputs keep their log-sum-exp for the loss (cross-entropy) to reuse.
        self.log_norm: Array | None = None
        if network.activation_names[-1] == "softmax" and self.loss.value_log_norm is not None:
            self.log_norm = np.empty(batch_size, dtype=dtype)

    def grads(self) -> list[Array]:
        """Gradients in the order of ``Network.params(train_bias)``."""
        if not self.train_bias:
            return list(self.grad_w)
        return [g for pair in zip(self.grad_w, self.grad_b, strict=True) for g in pair]

    def forward(self, x: Array) -> Array:
        m = x.shape[0]
        activations = self.activations
        activations[0] = x
        a = x
        last = len(self.zs) - 1
        for layer, (w, b) in enumerate(zip(self.network.weights, self.network.biases, strict=True)):
            z = self.zs[layer][:m]
            np.matmul(a, w.T, out=z)
            z += b
            a = activations[layer + 1][:m]
            mask = self.relu_masks[layer]
            if mask is not None:
                np.greater(z, 0.0, out=mask[:m])
                np.multiply(z, mask[:m], out=a)
            elif layer == last and self.log_norm is not None:
                softmax_log_norm(z, a, self.log_norm[:m])
            else:
                self.forward_fns[layer](z, a)
        return a

    def loss_sum(self, t: Array) -> float:
        """The summed loss of the batch the last ``forward`` call saw, on targets ``t``."""
        m = len(t)
        last = len(self.zs) - 1
        z = self.zs[last][:m]
        if self.log_norm is not None:
            assert self.loss.value_log_norm is not None
            return self.loss.value_log_norm(z, self.log_norm[:m], t)
        return self.loss.value(z, self.activations[last + 1][:m], t)

    def gradients(self, x: Array, t: Array, scale: float = 1.0) -> float:
        m = x.shape[0]
        last = len(self.zs) - 1
        a = self.forward(x)
        z = self.zs[last][:m]
        loss_sum = self.loss_sum(t)

        delta = self.deltas[last][:m]
        if self.output_delta is not None:
            self.output_delta(z, a, t, delta)
        else:
            assert self.loss.grad is not None
            self.loss.grad(a, t, delta)
            self._derivative(last, z, a, delta)
        # Gradients of the batch mean (times ``scale``, which lets plain SGD receive
        # its steps ready-made): scaled once, on the smallest arrays.
        if scale != 1.0 or m > 1:
            delta *= scale / m

        weights = self.network.weights
        for layer in range(last, -1, -1):
            a_prev = self.activations[layer] if layer == 0 else self.activations[layer][:m]
            np.matmul(delta.T, a_prev, out=self.grad_w[layer])
            if self.train_bias:
                np.matmul(self.ones[:m], delta, out=self.grad_b[layer])
            if layer > 0:
                below = self.deltas[layer - 1][:m]
                np.matmul(delta, weights[layer], out=below)
                self._derivative(layer - 1, self.zs[layer - 1][:m], a_prev, below)
                delta = below
        return loss_sum

    def _derivative(self, layer: int, z: Array, a: Array, delta: Array) -> None:
        mask = self.relu_masks[layer]
        if mask is None:
            self.derivative_fns[layer](z, a, delta)
        else:
            # the mask of this forward pass; its last rows may be a smaller batch
            np.multiply(delta, mask[: len(delta)], out=delta)
