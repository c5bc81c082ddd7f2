"""Backprop's gradients: against seed 003's equations and against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import core
from core.activations import ACTIVATIONS
from core.losses import LOSSES
from core.network import Backprop, Network, initial_weights


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("m", [1, 7])
def test_vectorized_equations_of_seed_003(seed: int, m: int) -> None:
    rng = np.random.default_rng(seed)
    n_x, n_h, n_y = 3, 4, 2
    w1, b1 = rng.normal(size=(n_h, n_x)), rng.normal(size=(n_h, 1))
    w2, b2 = rng.normal(size=(n_y, n_h)), rng.normal(size=(n_y, 1))
    x = rng.normal(size=(n_x, m))  # column form: one sample per column
    y = (rng.random(size=(n_y, m)) > 0.5).astype(float)

    a1 = sigmoid(w1 @ x + b1)
    a2 = sigmoid(w2 @ a1 + b2)
    dz2 = a2 - y
    dw2 = dz2 @ a1.T / m
    db2 = dz2.mean(axis=1)
    dz1 = (w2.T @ dz2) * a1 * (1 - a1)
    dw1 = dz1 @ x.T / m
    db1 = dz1.mean(axis=1)

    network = Network(
        ["sigmoid", "sigmoid"], [w1.copy(), w2.copy()], [b1[:, 0].copy(), b2[:, 0].copy()]
    )
    backprop = Backprop(network, "binary_crossentropy", m)
    loss_sum = backprop.gradients(x.T.copy(), y.T.copy())

    np.testing.assert_allclose(backprop.grad_w[1], dw2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(backprop.grad_b[1], db2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(backprop.grad_w[0], dw1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(backprop.grad_b[0], db1, rtol=0, atol=1e-12)
    expected_loss = -np.sum(y * np.log(a2) + (1 - y) * np.log(1 - a2))
    assert loss_sum == pytest.approx(expected_loss, rel=1e-12)


# Every activation a hidden layer may have, and every output activation with every
# loss that accepts it: the registries say which.
HIDDEN = [name for name, act in ACTIVATIONS.items() if not act.distribution]
OUTPUT_LOSS = [
    (output, loss)
    for output in ACTIVATIONS
    for loss, record in LOSSES.items()
    if record.requires is None or output in record.requires
]


def small_network(hidden: str, output: str, seed: int) -> Network:
    rng = np.random.default_rng(seed)
    weights = [initial_weights(hidden, 3, 4, rng), initial_weights(output, 4, 2, rng)]
    biases = [rng.normal(0, 0.3, size=4), rng.normal(0, 0.3, size=2)]
    return Network([hidden, output], weights, biases)


def targets_for(output: str, rng: np.random.Generator, m: int) -> np.ndarray:
    if ACTIVATIONS[output].distribution:
        return np.eye(2)[rng.integers(0, 2, size=m)]
    if output == "sigmoid":
        return rng.random(size=(m, 2))
    return rng.normal(size=(m, 2))


KINKED = {"relu", "leaky_relu"}  # not differentiable at z = 0


def kink_free(network: Network, x: np.ndarray) -> bool:
    """True when no pre-activation of a rectifier layer is near its kink."""
    a = x
    for w, b, name in zip(network.weights, network.biases, network.activation_names, strict=True):
        z = a @ w.T + b
        if name in KINKED and np.abs(z).min() <= 1e-3:
            return False
        a = z.copy()
        ACTIVATIONS[name].forward(z, a)
    return True


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize(("output", "loss"), OUTPUT_LOSS)
def test_gradient_check(hidden: str, output: str, loss: str) -> None:
    checked = 0
    for seed in range(20):
        network = small_network(hidden, output, seed)
        rng = np.random.default_rng(1000 + seed)
        x = rng.normal(size=(5, 3))
        t = targets_for(output, rng, 5)
        # Finite differences straddling a relu kink are not a gradient; skip such draws.
        if not kink_free(network, x):
            continue
        # Central differences carry roundoff ~1e-16 / eps and truncation ~eps^2: near-
        # saturated sigmoids and leaky_relu's 0.01 slope give gradients small enough that
        # no one step suits every network, so the check passes at either 1e-5 or 1e-4.
        # A wrong derivative is off by far more at both (see the test below).
        error = min(core.gradient_check(network, loss, x, t, eps=eps) for eps in (1e-5, 1e-4))
        assert error < 1e-6
        checked += 1
        if checked == 2:
            break
    assert checked == 2


def test_gradient_check_notices_a_wrong_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    def wrong(z: np.ndarray, a: np.ndarray, delta: np.ndarray) -> None:
        delta *= a  # missing the (1 - a) factor

    monkeypatch.setitem(ACTIVATIONS, "sigmoid", replace(ACTIVATIONS["sigmoid"], derivative=wrong))
    network = small_network("sigmoid", "identity", 0)
    rng = np.random.default_rng(5)
    x, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    assert core.gradient_check(network, "squared_error", x, t) > 1e-3


@pytest.mark.parametrize("hidden", HIDDEN)
def test_predict_agrees_with_the_training_forward_pass(hidden: str) -> None:
    # Network.feedforward applies activations in place, Backprop.forward does not.
    network = small_network(hidden, "identity", 3)
    x = np.random.default_rng(9).normal(size=(6, 3))
    expected = Backprop(network, "squared_error", 6).forward(x).copy()
    np.testing.assert_allclose(network.feedforward(x), expected, rtol=1e-12, atol=1e-12)


def test_gradient_check_on_networks_built_from_a_spec() -> None:
    # Network.from_spec stores weights column-major; the check must perturb them in place.
    from tests import worked_example as worked

    network = core.Network.from_spec(core.parse_network(worked.NETWORK), np.random.default_rng(0))
    assert network.weights[0].flags.f_contiguous
    x, t = np.array(worked.INPUTS), np.array(worked.TARGETS)
    assert core.gradient_check(network, "squared_error", x, t, eps=1e-5) < 1e-6


ELEMENTWISE = [name for name, act in ACTIVATIONS.items() if act.scalar is not None]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_one_float_forms_agree_with_the_batch_forms(name: str) -> None:
    # The online path runs on the one-float forms; backprop on the batch forms.
    act = ACTIVATIONS[name]
    assert act.scalar is not None and act.scalar_derivative is not None
    z = np.array([[-40.0, -2.5, -0.3, 0.2, 1.7, 35.0]])
    a = np.empty_like(z)
    act.forward(z, a)
    delta = np.ones_like(z)
    act.derivative(z.copy(), a, delta)  # a derivative may use its z as scratch
    for zi, ai, di in zip(z[0], a[0], delta[0], strict=True):
        assert act.scalar(float(zi)) == pytest.approx(ai, rel=1e-15, abs=1e-300)
        assert act.scalar_derivative(float(zi), float(ai)) == pytest.approx(di, rel=1e-15)
