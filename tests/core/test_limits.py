"""The engine's declared working ranges, its estimate of stored sizes, and matching
columns by name in linear time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import core
from core.frame import unmatched

NET = {"input_dim": 2, "layers": [{"units": 3, "activation": "tanh"}, {"units": 1}]}


@pytest.mark.parametrize(
    ("training", "field"),
    [
        ({"schedule": {"name": "invscaling", "power": 1000}}, "schedule.power"),
        ({"optimizer": {"name": "sgd", "momentum": 0.9999999}}, "optimizer.momentum"),
        ({"optimizer": {"name": "adam", "beta1": 1 - 1e-17}}, "optimizer.beta1"),
        ({"optimizer": {"name": "adam", "beta2": 0.9999999}}, "optimizer.beta2"),
        ({"optimizer": {"name": "rmsprop", "rho": 0.99999999}}, "optimizer.rho"),
        ({"optimizer": {"name": "adam", "epsilon": 1e-40}}, "optimizer.epsilon"),
        ({"optimizer": {"name": "adam", "epsilon": 10.0}}, "optimizer.epsilon"),
        ({"schedule": {"name": "plateau", "patience": 10**12}}, "schedule.patience"),
        ({"early_stopping": {"patience": 10**12}}, "early_stopping.patience"),
        ({"l2": 1e6}, "l2"),
        ({"seed": 2**64}, "seed"),
    ],
)
def test_numbers_outside_their_working_range_are_refused(
    training: dict[str, Any], field: str
) -> None:
    with pytest.raises(core.SpecError) as caught:
        core.parse_training({"epochs": 3, **training})
    assert caught.value.field == field


def test_the_edges_of_the_ranges_train() -> None:
    # The largest values each range admits run epochs without an exception.
    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    t = np.array([[1.0], [1.0], [0.0], [0.0]])
    for training in (
        {"schedule": {"name": "invscaling", "power": core.spec.MAX_POWER}},
        {"optimizer": {"name": "adam", "beta1": core.spec.MAX_DECAY, "beta2": core.spec.MAX_DECAY}},
        {"optimizer": {"name": "sgd", "momentum": core.spec.MAX_DECAY, "nesterov": True}},
        {"optimizer": {"name": "rmsprop", "rho": core.spec.MAX_DECAY, "epsilon": 1e-30}},
    ):
        config = {"epochs": 5, "batch_size": 2, "dtype": "float32", **training}
        result = core.Trainer(NET, config, x, t).run()
        assert result.epochs_completed == 5, result.message
        assert result.model is not None


def _trained(network: dict[str, Any], optimizer: str) -> core.Trainer:
    width = network["input_dim"]
    x = np.random.default_rng(0).normal(size=(4, width))
    t = np.ones((4, network["layers"][-1]["units"]))
    trainer = core.Trainer(network, {"epochs": 1, "optimizer": optimizer}, x, t)
    trainer.run()
    return trainer


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(
    "network",
    [
        {"input_dim": 1, "layers": [{"units": 1}] * 60},
        {"input_dim": 50, "layers": [{"units": 200}, {"units": 3}]},
    ],
    ids=["deep-and-thin", "wide"],
)
def test_the_stored_size_estimate_is_an_upper_bound(
    network: dict[str, Any], optimizer: str
) -> None:
    trainer = _trained(network, optimizer)
    spec = core.parse_network(network)
    slots = 2 if optimizer == "adam" else 0
    checkpoint = len(trainer.checkpoint())
    assert checkpoint <= spec.stored_bytes("float64", copies=2 + slots)
    # ...and not a wild one: within a few times the real size.
    assert spec.stored_bytes("float64", copies=2 + slots) < 4 * checkpoint + (1 << 17)


def test_unmatched_names() -> None:
    expected = ["a", "b", "c"]
    assert unmatched(["c", "a", "b"], expected) == (None, None)
    assert unmatched(["a", "b", "c", "y"], expected, ignored=["y"]) == (None, None)
    assert unmatched(["a", "z", "b", "c"], expected) == ("z", None)
    assert unmatched(["a", "c"], expected) == (None, "b")
    assert unmatched(["q", "a"], expected, ignored=["y"]) == ("q", "b")


def test_unmatched_names_of_a_wide_model() -> None:
    # 100,000 columns: quadratic matching took minutes; this takes milliseconds.
    expected = [f"feature_{i}" for i in range(100_000)]
    given = list(reversed(expected))
    assert unmatched(given, expected) == (None, None)
    assert unmatched(given[:-1], expected) == (None, "feature_0")
    assert unmatched([*given, "extra"], expected) == ("extra", None)
