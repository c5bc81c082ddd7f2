"""One backpropagation step on one sample, every number of it kept and named.

The numbers are the engine's own: the forward and backward passes run through
:class:`core.network.Backprop` (the same activation and loss records, the same
combined ``a - t`` delta where a loss and its output activation cancel), and the
update is the engine's plain SGD (``w := w - lr * dE/dw``, every gradient taken
with the weights from before the update). This module only reads the passes'
buffers and gives each number a name, as seed 001 names them:

- units: ``i1..`` the inputs, ``o1..`` the outputs; hidden units ``h1..`` when
  there is one hidden layer (the seed's 2-2-2 network), ``h<k>_<j>`` (unit j of
  hidden layer k, both from 1) when there are several;
- weights: ``w1..``, numbered layer by layer, then unit j by unit j of the layer,
  then input i by input i: in the seed's network w1, w2 feed h1 from i1, i2; w3,
  w4 feed h2; w5, w6 feed o1 from h1, h2; w7, w8 feed o2. Each also carries its
  place in the network spec, ``layers[l].weights[j][i]`` (w_ji: into unit j from
  unit i);
- biases: each unit's own, at ``layers[l].bias[j]``, kept in the unit's record
  (the seed's b1 is every hidden unit's bias, b2 every output unit's).

For each unit: ``net`` (its weighted input), ``out`` (the activation of net),
``dE_dout`` (dE/dout) and ``delta`` (dE/dnet, the seed's delta_o1 =
(out - target) * out * (1 - out) for a sigmoid output under squared error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._types import Array
from .data import check_fit
from .errors import SpecError
from .losses import LOSSES
from .network import Backprop, Network
from .optimizers import make_optimizer
from .spec import (
    LayerSpec,
    NetworkSpec,
    OptimizerConfig,
    TrainingConfig,
    parse_network,
    resolve_loss,
    vector,
)

# The seed's learning rate: its worked example updates with 0.5.
DEFAULT_LEARNING_RATE = 0.5
# Weights and biases a trace takes: each is a named record in the answer (about
# 200 bytes of JSON), so 10,000 of them are a 2 MB answer, and a drawing of more
# than that would show no single connection anyway.
MAX_TRACE_PARAMS = 10_000


class TraceTooLarge(SpecError):
    """A network of more than MAX_TRACE_PARAMS weights and biases."""


def _check_size(n_params: int) -> None:
    if n_params > MAX_TRACE_PARAMS:
        raise TraceTooLarge(
            "network",
            f"a trace takes at most {MAX_TRACE_PARAMS} weights and biases; this network "
            f"has {n_params}",
        )


def unit_names(sizes: Sequence[int]) -> list[list[str]]:
    """The names of every layer's units, inputs first: ``sizes`` is (inputs, layer 1, ...)."""
    hidden = len(sizes) - 2
    names = [[f"i{i + 1}" for i in range(sizes[0])]]
    for k, size in enumerate(sizes[1:-1], start=1):
        prefix = "h" if hidden == 1 else f"h{k}_"
        names.append([f"{prefix}{j + 1}" for j in range(size)])
    names.append([f"o{j + 1}" for j in range(sizes[-1])])
    return names


def parse_traced_network(value: Any) -> Network:
    """A float64 :class:`Network` from a network spec that gives every layer's weights
    and bias. Raises SpecError naming the field under ``network.``."""
    try:
        spec = parse_network(value)
    except SpecError as exc:
        raise SpecError(_under("network", exc.field), exc.message) from None
    _check_size(spec.n_weights())
    for index, layer in enumerate(spec.layers):
        for name, given in (("weights", layer.weights), ("bias", layer.bias)):
            if given is None:
                raise SpecError(
                    f"network.layers[{index}].{name}",
                    "is required: a trace follows the numbers it is given",
                )
    return _engine_network(spec)


def _engine_network(spec: NetworkSpec) -> Network:
    """The float64 network training would build from ``spec`` (weights all given): the
    same memory layout, so the same BLAS calls and the same bits."""
    return Network.from_spec(spec, np.random.default_rng(0), np.float64)


def _under(prefix: str, field: str) -> str:
    return field if field == prefix or field.startswith(f"{prefix}.") else f"{prefix}.{field}"


@dataclass(frozen=True)
class Trace:
    """Every number of one step. Per layer ``l`` (0 is the first layer of weights):
    ``nets[l]``, ``outs[l]``, ``deltas[l]`` and ``grads_out[l]`` (dE/dout; None for
    an output layer whose loss gives no dE/dout of its own); ``grad_w[l]``,
    ``grad_b[l]`` and the ``before``/``after`` networks."""

    loss: str
    learning_rate: float
    train_bias: bool
    names: list[list[str]]
    inputs: Array
    targets: Array
    nets: list[Array]
    outs: list[Array]
    grads_out: list[Array | None]
    deltas: list[Array]
    errors: Array
    total: float
    grad_w: list[Array]
    grad_b: list[Array]
    before: Network
    after: Network

    def to_json(self) -> dict[str, Any]:
        """The answer of ``POST /trace`` (see api.schemas.TraceOut)."""
        names, before, after = self.names, self.before, self.after
        units: dict[str, dict[str, Any]] = {
            name: {"layer": 0, "out": float(x)}
            for name, x in zip(names[0], self.inputs, strict=True)
        }
        last = len(before.weights) - 1
        for k, activation in enumerate(before.activation_names):
            d_out = self.grads_out[k]
            for j, name in enumerate(names[k + 1]):
                record: dict[str, Any] = {
                    "layer": k + 1,
                    "activation": activation,
                    "net": float(self.nets[k][j]),
                    "out": float(self.outs[k][j]),
                }
                if d_out is not None:  # absent where the loss gives only out - target
                    record["dE_dout"] = float(d_out[j])
                record["delta"] = float(self.deltas[k][j])
                record["bias"] = {
                    "at": f"layers[{k}].bias[{j}]",
                    "value": float(before.biases[k][j]),
                    "gradient": float(self.grad_b[k][j]),
                    "after": float(after.biases[k][j]),
                }
                if k == last:
                    record["target"] = float(self.targets[j])
                units[name] = record
        weights: dict[str, dict[str, Any]] = {}
        for k, w in enumerate(before.weights):
            for j, i in np.ndindex(w.shape):
                weights[f"w{len(weights) + 1}"] = {
                    "at": f"layers[{k}].weights[{j}][{i}]",
                    "from": names[k][i],
                    "to": names[k + 1][j],
                    "value": float(w[j, i]),
                    "gradient": float(self.grad_w[k][j, i]),
                    "after": float(after.weights[k][j, i]),
                }
        return {
            "loss": self.loss,
            "learning_rate": self.learning_rate,
            "train_bias": self.train_bias,
            "units": units,
            "weights": weights,
            "error": {
                "total": self.total,
                "outputs": {name: float(e) for name, e in zip(names[-1], self.errors, strict=True)},
            },
            "network_after": network_json(after),
        }


def network_json(network: Network) -> dict[str, Any]:
    """A network as a spec with its weights: what ``POST /trace`` takes back."""
    return {
        "input_dim": network.input_dim,
        "layers": [
            {
                "units": int(w.shape[0]),
                "activation": name,
                "weights": w.tolist(),
                "bias": b.tolist(),
            }
            for name, w, b in zip(
                network.activation_names, network.weights, network.biases, strict=True
            )
        ],
    }


def output_errors(loss: str, z: Array, a: Array, t: Array) -> Array:
    """Each output unit's share of one sample's loss (they sum to the loss's value):
    the seed's E_o1, E_o2 under squared error."""
    if loss == "squared_error":
        return 0.5 * (a - t) ** 2
    if loss == "mse":
        return (a - t) ** 2 / a.size
    if loss == "binary_crossentropy":
        return np.logaddexp(0.0, -np.abs(z)) + np.maximum(z, 0.0) - z * t
    if loss == "categorical_crossentropy":
        # -t_k log softmax(z)_k, with log softmax(z)_k = z_k - log sum exp z
        zmax = float(z.max())
        log_norm = zmax + math.log(float(np.exp(z - zmax).sum()))
        return t * (log_norm - z)
    raise SpecError("loss", f"{loss} has no per-output breakdown in the trace")


def trace_step(
    network: Network,
    inputs: Any,
    targets: Any,
    *,
    loss: str | None = None,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    train_bias: bool = True,
) -> Trace:
    """One forward pass, error, backward pass and plain gradient-descent update of
    ``network`` (left unchanged) on one sample.

    ``inputs`` and ``targets``: flat lists of numbers, as wide as the network's
    input and output layers. ``loss``: a name of ``core.losses.LOSSES``; None
    chooses as training does (categorical_crossentropy under softmax, else
    squared_error). ``train_bias`` False freezes the biases (the seed's example):
    their gradients are still reported, their ``after`` equals their value.

    Raises TraceTooLarge (a SpecError) for more than MAX_TRACE_PARAMS weights and
    biases; SpecError naming ``inputs``, ``targets``, ``loss`` or ``learning_rate``
    (unusable targets as training refuses them: outside a bounded output's reach,
    class targets that are not distributions for softmax); SpecError naming
    ``network`` when a number of the step overflows float64 (huge weights or inputs).
    """
    _check_size(sum(w.size + b.size for w, b in zip(network.weights, network.biases, strict=True)))
    sizes = [network.input_dim] + [int(w.shape[0]) for w in network.weights]
    spec = NetworkSpec(
        sizes[0],
        tuple(
            LayerSpec(int(w.shape[0]), name, w.astype(np.float64), b.astype(np.float64))
            for name, w, b in zip(
                network.activation_names, network.weights, network.biases, strict=True
            )
        ),
    )
    net = _engine_network(spec)
    if loss is not None and loss not in LOSSES:
        raise SpecError("loss", f"expected one of {', '.join(LOSSES)}, got {loss!r}")
    loss = resolve_loss(spec, TrainingConfig(epochs=1, loss=loss))
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, int | float)
        or not math.isfinite(learning_rate)
        or learning_rate <= 0
    ):
        raise SpecError("learning_rate", f"must be a finite number above 0, got {learning_rate!r}")
    x = vector(inputs, "inputs", sizes[0]).reshape(1, -1)
    t = vector(targets, "targets", sizes[-1]).reshape(1, -1)
    # Training's rules for targets (they name ``targets`` or ``network.layers[k].units``).
    check_fit(
        spec,
        loss,
        n_samples=1,
        n_features=sizes[0],
        n_targets=sizes[-1],
        classes=None,
        targets=lambda: t,
    )

    # Overflow is reported below, naming the first number it reached.
    with np.errstate(over="ignore", invalid="ignore"):
        # Biases always get their gradients (the learner sees dE/db); train_bias decides
        # only whether the update applies them.
        backprop = Backprop(net, loss, batch_size=1, train_bias=True)
        backprop.forward(x)
        # Copied now: the backward pass uses the z buffers as scratch.
        nets = [z[0].copy() for z in backprop.zs]
        outs = [a[0].copy() for a in backprop.activations[1:]]
        last = len(nets) - 1
        z_out, a_out = nets[last].reshape(1, -1), outs[last].reshape(1, -1)
        total = backprop.gradients(x, t)
        deltas = [d[0].copy() for d in backprop.deltas]
        grad_w = [g.copy() for g in backprop.grad_w]
        grad_b = [g.copy() for g in backprop.grad_b]

        # dE/dout: below the output, what the backward pass multiplies by f'(net);
        # at the output, the loss's own dE/da where it has one (the cross-entropies
        # give only the combined delta a - t).
        grads_out: list[Array | None] = [deltas[k + 1] @ net.weights[k + 1] for k in range(last)]
        record = LOSSES[loss]
        d_out: Array | None = None
        if record.grad is not None:
            d_out = np.empty_like(t)
            record.grad(a_out, t, d_out)
            d_out = d_out[0]
        grads_out.append(d_out)

        after = net.copy()
        params = after.params(train_bias)
        steps = [g.copy() for g in (grad_w if not train_bias else _interleave(grad_w, grad_b))]
        make_optimizer(
            params, OptimizerConfig(name="sgd", learning_rate=float(learning_rate))
        ).update(params, steps)
        errors = output_errors(loss, z_out[0], a_out[0], t[0])
    names = unit_names(sizes)
    _check_finite(names, nets, outs, grads_out, deltas, grad_w, after)
    if not (math.isfinite(total) and np.isfinite(errors).all()):
        raise SpecError("network", "the error of this step is not a finite float64")
    return Trace(
        loss=loss,
        learning_rate=float(learning_rate),
        train_bias=train_bias,
        names=names,
        inputs=x[0],
        targets=t[0],
        nets=nets,
        outs=outs,
        grads_out=grads_out,
        deltas=deltas,
        errors=errors,
        total=float(total),
        grad_w=grad_w,
        grad_b=grad_b,
        before=net,
        after=after,
    )


def _check_finite(
    names: list[list[str]],
    nets: list[Array],
    outs: list[Array],
    grads_out: list[Array | None],
    deltas: list[Array],
    grad_w: list[Array],
    after: Network,
) -> None:
    """A SpecError naming the first number of the step that is not finite: an answer
    of nulls (JSON has no infinity) would not say where the step broke down."""
    for what, arrays in (
        ("net", nets),
        ("out", outs),
        ("dE/dout of", [g for g in grads_out if g is not None]),
        ("delta", deltas),
        ("a weight's gradient into", grad_w),
        ("a weight after the update into", after.weights),
        ("the bias after the update of", after.biases),
    ):
        for k, values in enumerate(arrays):
            bad = np.argwhere(~np.isfinite(values))
            if bad.size:
                unit = names[k + 1][int(bad[0][0])]
                raise SpecError(
                    "network",
                    f"{what} {unit} is not a finite float64: the step overflows; "
                    "use smaller weights, inputs or learning rate",
                )


def _interleave(weights: list[Array], biases: list[Array]) -> list[Array]:
    """In the order of ``Network.params()``: each layer's weights, then its bias."""
    return [p for pair in zip(weights, biases, strict=True) for p in pair]
