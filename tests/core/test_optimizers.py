"""Optimizers on packed buffers, subnormal flushing, and the shared log-sum-exp."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import core
from core.activations import softmax, softmax_log_norm
from core.losses import categorical_crossentropy, categorical_crossentropy_log_norm
from core.optimizers import flat, make_optimizer, packed
from core.spec import parse_training

OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"name": "sgd", "learning_rate": 0.1},
    "momentum": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9},
    "nesterov": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.8, "nesterov": True},
    "rmsprop": {"name": "rmsprop", "learning_rate": 0.01},
    "adam": {"name": "adam", "learning_rate": 0.01},
}


def arrays(dtype: type, rng: np.random.Generator) -> list[np.ndarray[Any, Any]]:
    """Weights (column-major, as the network keeps them) and biases of a 5-4-3 net."""
    return [
        np.asfortranarray(rng.normal(size=(4, 5))).astype(dtype, order="K"),
        rng.normal(size=4).astype(dtype),
        np.asfortranarray(rng.normal(size=(3, 4))).astype(dtype, order="K"),
        rng.normal(size=3).astype(dtype),
    ]


def test_packed_views_fill_one_buffer_in_order() -> None:
    templates = arrays(np.float32, np.random.default_rng(0))
    views = packed(templates)
    buffer = flat(views)
    assert buffer is not None and buffer.size == sum(a.size for a in templates)
    for view, template in zip(views, templates, strict=True):
        assert view.shape == template.shape and view.strides == template.strides
    # A subset, or arrays of their own, are not one buffer.
    assert flat(views[0::2]) is None
    assert flat(templates) is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", list(OPTIMIZERS))
def test_packed_update_is_the_per_array_update(config: str, dtype: type) -> None:
    """One pass over the packed buffers changes every value exactly as the same
    optimizer does array by array."""
    rng = np.random.default_rng(1)
    separate = arrays(dtype, rng)
    together = packed(separate)
    for view, a in zip(together, separate, strict=True):
        np.copyto(view, a)
    cfg = parse_training({"epochs": 1, "optimizer": OPTIMIZERS[config]}).optimizer
    opt_separate = make_optimizer(separate, cfg)
    opt_together = make_optimizer(together, cfg)
    grads_together = packed(together)
    for _ in range(4):
        grads = [rng.normal(size=a.shape).astype(dtype) for a in separate]
        grads_separate = [
            np.asfortranarray(g) if a.ndim == 2 else g for g, a in zip(grads, separate, strict=True)
        ]
        for view, g in zip(grads_together, grads, strict=True):
            np.copyto(view, g)
        opt_separate.update(separate, grads_separate)
        opt_together.update(together, grads_together)
    assert len(opt_together._groups(together, grads_together)) == 1
    assert len(opt_separate._groups(separate, grads_separate)) == len(separate)
    for a, b in zip(separate, together, strict=True):
        assert np.array_equal(a, b)
    for name, slot in opt_separate.slots.items():
        for a, b in zip(slot, opt_together.slots[name], strict=True):
            assert np.array_equal(a, b)


def test_a_trainer_updates_packed_buffers() -> None:
    x = np.random.default_rng(2).normal(size=(20, 3))
    t = np.eye(2)[(x[:, 0] > 0).astype(int)]
    network = {
        "input_dim": 3,
        "layers": [{"units": 4, "activation": "relu"}, {"units": 2, "activation": "softmax"}],
    }
    trainer = core.Trainer(network, {"epochs": 1, "optimizer": OPTIMIZERS["adam"]}, x, t)
    assert len(trainer.optimizer._groups(trainer.params, trainer.grads)) == 1
    # Frozen biases: the weights alone are not one buffer, and each goes on its own.
    trainer = core.Trainer(
        network, {"epochs": 1, "optimizer": OPTIMIZERS["adam"], "train_bias": False}, x, t
    )
    assert len(trainer.optimizer._groups(trainer.params, trainer.grads)) == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flush_zeroes_what_would_turn_subnormal(dtype: type) -> None:
    params = packed(arrays(dtype, np.random.default_rng(3)))
    cfg = parse_training({"epochs": 1, "optimizer": OPTIMIZERS["momentum"]}).optimizer
    opt = make_optimizer(params, cfg)
    tiny = float(np.finfo(dtype).tiny)
    limit = tiny * opt.FLUSH_MARGIN
    velocity = opt.slots["velocity"][0]
    values = [tiny / 4, -tiny, limit / 2, -limit * 2, 1e-3, 0.0]
    velocity.flat[: len(values)] = values
    opt.flush_subnormals()
    assert list(velocity.flat[: len(values)]) == [
        0.0,
        0.0,
        0.0,
        dtype(-limit * 2),
        dtype(1e-3),
        0.0,
    ]
    # Between two flushes, a value the last one kept cannot decay into the subnormal range.
    every = opt.flush_interval
    assert every is not None and limit * 0.9**every >= tiny and limit * 0.9 ** (every + 1) < tiny


def test_nothing_to_flush_without_slots_or_decay() -> None:
    params = packed(arrays(np.float64, np.random.default_rng(4)))
    plain = make_optimizer(
        params, parse_training({"epochs": 1, "optimizer": OPTIMIZERS["sgd"]}).optimizer
    )
    assert plain.flush_interval is None


def test_softmax_log_norm_is_softmax_and_its_cross_entropy_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(scale=30.0, size=(64, 7)).astype(np.float32)
    t = np.eye(7, dtype=np.float32)[rng.integers(0, 7, 64)]
    a, shared = np.empty_like(z), np.empty_like(z)
    log_norm = np.empty(64, dtype=np.float32)
    softmax(z, a)
    softmax_log_norm(z, shared, log_norm)
    assert np.array_equal(a, shared)
    assert categorical_crossentropy_log_norm(z, log_norm, t) == categorical_crossentropy(z, a, t)
