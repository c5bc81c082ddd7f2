"""Stopping after any epoch and resuming from the checkpoint changes nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import core


def data(seed: int = 0, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [1.0, 5.0, 0.2] + [0.0, 10.0, -1.0]
    labels = ((x[:, 0] + (x[:, 1] - 10) / 5) > 0).astype(int) + (x[:, 2] > -1).astype(int)
    return x, np.eye(3)[labels]


NETWORK = {
    "input_dim": 3,
    "layers": [{"units": 6, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
}

CONFIGS: dict[str, dict[str, Any]] = {
    "sgd-nesterov-shuffle": {
        "epochs": 25,
        "batch_size": 5,
        "normalize": "standardize",
        "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
    },
    "rmsprop-l2-invscaling": {
        "epochs": 25,
        "batch_size": 7,
        "l2": 1e-3,
        "normalize": "minmax",
        "optimizer": {"name": "rmsprop", "learning_rate": 0.01},
        "schedule": {"name": "invscaling", "power": 0.5},
    },
    "adam-validation-plateau": {
        "epochs": 30,
        "batch_size": 8,
        "validation_split": 0.25,
        "normalize": "standardize",
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "schedule": {"name": "plateau", "patience": 2, "factor": 0.5, "min_delta": 0.01},
    },
    "early-stopping": {
        "epochs": 400,
        "batch_size": 4,
        "validation_split": 0.25,
        "normalize": "standardize",
        "optimizer": {"name": "adam", "learning_rate": 0.02},
        "early_stopping": {"patience": 4},
    },
    # No validation split: the kept weights are those the best epoch started from.
    "early-stopping-training-loss": {
        "epochs": 400,
        "batch_size": 4,
        "normalize": "standardize",
        "optimizer": {"name": "sgd", "learning_rate": 0.5, "momentum": 0.9},
        "early_stopping": {"patience": 4},
    },
    "float32-full-batch": {
        "epochs": 20,
        "batch_size": "full",
        "dtype": "float32",
        "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.5},
    },
}


def stats_key(s: core.EpochStats) -> tuple[Any, ...]:
    return (s.epoch, s.loss, s.val_loss, s.val_accuracy, s.learning_rate, s.grad_norm)


def uninterrupted(training: dict[str, Any]) -> tuple[core.TrainResult, list[core.EpochStats]]:
    x, t = data()
    seen: list[core.EpochStats] = []
    result = core.Trainer(NETWORK, training, x, t).run(on_epoch=seen.append)
    return result, seen


def interrupted(
    training: dict[str, Any], k: int
) -> tuple[core.TrainResult, list[core.EpochStats], list[core.EpochStats]]:
    """Train to epoch k saving a checkpoint there, then continue from it in a new trainer."""
    x, t = data()
    trainer = core.Trainer(NETWORK, training, x, t)
    before: list[core.EpochStats] = []
    saved: list[bytes] = []

    def on_epoch(stats: core.EpochStats) -> None:
        before.append(stats)
        if stats.epoch == k:
            saved.append(trainer.checkpoint())

    first = trainer.run(on_epoch=on_epoch, should_stop=lambda: bool(saved))
    assert first.stop_reason == "stop_requested" and first.epochs_completed == k
    after: list[core.EpochStats] = []
    # Fresh arrays: the resumed run must not rely on the first run's objects.
    x2, t2 = data()
    result = core.Trainer.resume(saved[0], x2, t2).run(on_epoch=after.append)
    return result, before, after


def assert_same_model(a: core.TrainResult, b: core.TrainResult) -> None:
    assert a.model is not None and b.model is not None
    for p, q in zip(
        a.model.network.weights + a.model.network.biases,
        b.model.network.weights + b.model.network.biases,
        strict=True,
    ):
        assert p.dtype == q.dtype
        assert np.array_equal(p, q)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("k", [1, 6])
def test_resume_is_bit_identical(name: str, k: int) -> None:
    training = CONFIGS[name]
    full, seen = uninterrupted(training)
    assert full.epochs_completed > k
    result, before, after = interrupted(training, k)

    assert result.stop_reason == full.stop_reason
    assert result.epochs_completed == full.epochs_completed
    assert result.message == full.message
    assert [stats_key(s) for s in before] == [stats_key(s) for s in seen[:k]]
    assert [stats_key(s) for s in after] == [stats_key(s) for s in seen[k:]]
    assert_same_model(full, result)
    # The epoch the model was kept from survives the checkpoint too.
    assert full.kept is not None and result.kept is not None
    assert stats_key(result.kept) == stats_key(full.kept)


def test_configs_exercise_what_they_claim() -> None:
    result, seen = uninterrupted(CONFIGS["early-stopping"])
    assert result.stop_reason == "early_stopping"
    result, seen = uninterrupted(CONFIGS["early-stopping-training-loss"])
    assert result.stop_reason == "early_stopping" and seen[0].val_loss is None
    # The best epoch (9) comes after the checkpoint of epoch 6 and before the stop (13):
    # the resumed run replaces the kept network it loaded, then stops on patience.
    assert result.kept is not None and 6 < result.kept.epoch < result.epochs_completed
    _, seen = uninterrupted(CONFIGS["adam-validation-plateau"])
    assert len({s.learning_rate for s in seen}) > 1
    assert seen[0].val_loss is not None


@pytest.mark.parametrize("name", ["early-stopping", "early-stopping-training-loss"])
def test_checkpoint_at_the_stopping_epoch(name: str) -> None:
    training = CONFIGS[name]
    full, seen = uninterrupted(training)
    x, t = data()
    trainer = core.Trainer(NETWORK, training, x, t)
    saved: list[bytes] = []
    trainer.run(on_epoch=lambda s: saved.append(trainer.checkpoint()))
    resumed = core.Trainer.resume(saved[-1], x, t)
    extra: list[core.EpochStats] = []
    result = resumed.run(on_epoch=extra.append)
    assert extra == []
    assert result.stop_reason == full.stop_reason == "early_stopping"
    assert result.epochs_completed == full.epochs_completed
    assert_same_model(full, result)


def test_checkpoint_is_plain_npz() -> None:
    x, t = data()
    trainer = core.Trainer(NETWORK, CONFIGS["adam-validation-plateau"], x, t)
    trainer.run(should_stop=lambda: trainer.epoch >= 2)
    import io

    with np.load(io.BytesIO(trainer.checkpoint()), allow_pickle=False) as npz:
        assert "network/weights/0" in npz.files


def test_resume_rejects_a_dataset_of_another_shape() -> None:
    x, t = data()
    trainer = core.Trainer(NETWORK, CONFIGS["sgd-nesterov-shuffle"], x, t)
    trainer.run(should_stop=lambda: trainer.epoch >= 1)
    saved = trainer.checkpoint()
    with pytest.raises(core.SpecError) as info:
        core.Trainer.resume(saved, x[:-1], t[:-1])
    assert info.value.field == "checkpoint"


@pytest.mark.parametrize("k", [4, 6])
def test_resume_is_bit_identical_across_subnormal_flushes(k: int, monkeypatch: Any) -> None:
    """Flushes happen at steps counted from the run's start, so a resumed run flushes
    where the uninterrupted one did."""
    # A margin this wide makes each flush zero real velocities (below ~1e-4), so that
    # the flushes change the run, every 64 steps: mid-epoch, not at checkpoints.
    monkeypatch.setattr(core.optimizers.Optimizer, "FLUSH_MARGIN", 2.0**112)
    training = {
        "epochs": 14,
        "batch_size": 4,
        "dtype": "float32",
        "normalize": "standardize",
        "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.3},
    }
    full, seen = uninterrupted(training)
    result, before, after = interrupted(training, k)
    assert [stats_key(s) for s in before + after] == [stats_key(s) for s in seen]
    assert_same_model(full, result)

    monkeypatch.setattr(core.optimizers.Optimizer, "flush_interval", None)
    unflushed, _ = uninterrupted(training)
    assert unflushed.model is not None and full.model is not None
    assert not np.array_equal(unflushed.model.network.weights[0], full.model.network.weights[0])
