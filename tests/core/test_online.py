"""The plain-Python online path agrees with the NumPy path it stands in for."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import core
from core import online
from core.activations import ACTIVATIONS
from core.losses import LOSSES

# The activations and losses that have one-float forms, each output with each loss
# that accepts it.
HIDDEN = [name for name, act in ACTIVATIONS.items() if act.scalar is not None]
OUTPUTS = [
    (output, loss)
    for output in HIDDEN
    for loss, record in LOSSES.items()
    if record.sample_value is not None and (record.requires is None or output in record.requires)
]
OPTIMIZERS = [
    {"name": "sgd", "learning_rate": 0.1},
    {"name": "sgd", "learning_rate": 0.02, "momentum": 0.9},
    {"name": "sgd", "learning_rate": 0.02, "momentum": 0.8, "nesterov": True},
]


def dataset(seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(25, 3))
    t = (rng.random((25, 2)) > 0.5).astype(float)
    return x, t


def run(
    network: dict[str, Any], training: dict[str, Any], numpy_only: bool, monkeypatch: Any
) -> tuple[core.TrainResult, list[core.EpochStats], core.Trainer]:
    monkeypatch.setattr(online, "MAX_WEIGHTS", 0 if numpy_only else 128)
    x, t = dataset(training["seed"])
    trainer = core.Trainer(network, training, x, t)
    assert (trainer.online is None) == numpy_only
    seen: list[core.EpochStats] = []
    return trainer.run(on_epoch=seen.append), seen, trainer


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize(("output", "loss"), OUTPUTS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=["sgd", "momentum", "nesterov"])
def test_same_training_as_numpy(
    hidden: str, output: str, loss: str, optimizer: dict[str, Any], monkeypatch: Any
) -> None:
    network = {
        "input_dim": 3,
        "layers": [{"units": 4, "activation": hidden}, {"units": 2, "activation": output}],
    }
    training = {
        "epochs": 6,
        "batch_size": 1,
        "loss": loss,
        "optimizer": optimizer,
        "l2": 0.01,
        "seed": 5,
    }
    fast, fast_epochs, _ = run(network, training, False, monkeypatch)
    slow, slow_epochs, _ = run(network, training, True, monkeypatch)
    # Both paths diverge, or neither, at the same epoch.
    assert (fast.stop_reason, fast.epochs_completed) == (slow.stop_reason, slow.epochs_completed)
    if fast.model is not None and slow.model is not None:
        # BLAS may fuse a multiply and an add (FMA) where Python floats round twice; six
        # epochs of gaussian units and momentum grow that last-bit difference to a few
        # 1e-12 on machines whose kernels use FMA.
        for a, b in zip(fast.model.network.params(), slow.model.network.params(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    assert len(fast_epochs) == len(slow_epochs)
    for a, b in zip(fast_epochs, slow_epochs, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=1e-12)
        assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-12)


def test_frozen_biases_and_no_shuffle(monkeypatch: Any) -> None:
    network = {"input_dim": 3, "layers": [{"units": 3, "activation": "tanh"}, {"units": 2}]}
    training = {
        "epochs": 4,
        "batch_size": 1,
        "train_bias": False,
        "shuffle": False,
        "seed": 2,
        "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.5},
    }
    fast, _, fast_trainer = run(network, training, False, monkeypatch)
    slow, _, _ = run(network, training, True, monkeypatch)
    assert fast.model is not None and slow.model is not None
    np.testing.assert_array_equal(fast.model.network.biases[0], np.zeros(3))
    for a, b in zip(fast.model.network.params(), slow.model.network.params(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_resume_is_exact_on_the_online_path(monkeypatch: Any) -> None:
    network = {"input_dim": 3, "layers": [{"units": 4, "activation": "sigmoid"}, {"units": 2}]}
    training = {
        "epochs": 12,
        "batch_size": 1,
        "seed": 9,
        "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
    }
    whole, _, trainer = run(network, training, False, monkeypatch)
    assert trainer.online is not None
    saved: list[bytes] = []
    x, t = dataset(9)
    first = core.Trainer(network, training, x, t)
    first.run(on_epoch=lambda s: saved.append(first.checkpoint()) if s.epoch == 5 else None)
    resumed = core.Trainer.resume(saved[0], x, t)
    assert resumed.online is not None
    result = resumed.run()
    assert whole.model is not None and result.model is not None
    for a, b in zip(whole.model.network.params(), result.model.network.params(), strict=True):
        assert np.array_equal(a, b)


def test_divergence_is_reported_not_raised(monkeypatch: Any) -> None:
    network = {
        "input_dim": 3,
        "layers": [{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "identity"}],
    }
    training = {
        "epochs": 50,
        "batch_size": 1,
        "seed": 1,
        "loss": "mse",
        "optimizer": {"name": "sgd", "learning_rate": 1e6},
    }
    result, _, trainer = run(network, training, False, monkeypatch)
    assert trainer.online is not None
    assert result.stop_reason == "non_finite_loss" and result.model is None


def test_only_small_online_sgd_float64_nets_take_it() -> None:
    x, t = dataset(0)
    small = {"input_dim": 3, "layers": [{"units": 4, "activation": "tanh"}, {"units": 2}]}
    assert core.Trainer(small, {"epochs": 1, "batch_size": 1}, x, t).online is not None
    for training in (
        {"epochs": 1, "batch_size": 2},
        {"epochs": 1, "batch_size": 1, "dtype": "float32"},
        {"epochs": 1, "batch_size": 1, "optimizer": "adam"},
    ):
        assert core.Trainer(small, training, x, t).online is None, training
    softmax = {"input_dim": 3, "layers": [{"units": 2, "activation": "softmax"}]}
    one_hot = np.eye(2)[t[:, 0].astype(int)]
    assert core.Trainer(softmax, {"epochs": 1, "batch_size": 1}, x, one_hot).online is None
    wide = {"input_dim": 3, "layers": [{"units": 64, "activation": "tanh"}, {"units": 2}]}
    assert core.Trainer(wide, {"epochs": 1, "batch_size": 1}, x, t).online is None
