"""Seed 001's worked example: one step of online backprop on a 2-2-2 sigmoid net."""

from __future__ import annotations

import numpy as np
import pytest

import core

NETWORK = {
    "input_dim": 2,
    "layers": [
        {
            "units": 2,
            "activation": "sigmoid",
            "weights": [[0.15, 0.20], [0.25, 0.30]],
            "bias": [0.35, 0.35],
        },
        {
            "units": 2,
            "activation": "sigmoid",
            "weights": [[0.40, 0.45], [0.50, 0.55]],
            "bias": [0.60, 0.60],
        },
    ],
}
INPUTS = [[0.05, 0.10]]
TARGETS = [[0.01, 0.99]]


def training(epochs: int) -> dict[str, object]:
    return {
        "epochs": epochs,
        "loss": "squared_error",
        "optimizer": {"name": "sgd", "learning_rate": 0.5},
        "batch_size": 1,
        "train_bias": False,
    }


def run(epochs: int) -> tuple[core.TrainResult, list[core.EpochStats]]:
    seen: list[core.EpochStats] = []
    result = core.train(NETWORK, training(epochs), INPUTS, TARGETS, on_epoch=seen.append)
    return result, seen


def test_one_epoch_matches_the_hand_computation() -> None:
    result, seen = run(1)
    assert result.stop_reason == "max_epochs"
    assert result.epochs_completed == 1
    assert [s.epoch for s in seen] == [1]
    # The loss is measured in the forward pass, before the update.
    assert seen[0].loss == pytest.approx(0.298371109, abs=1e-9)

    assert result.model is not None
    network = result.model.network
    np.testing.assert_allclose(
        network.weights[0], [[0.149780716, 0.19956143], [0.24975114, 0.29950229]], atol=1e-8
    )
    np.testing.assert_allclose(
        network.weights[1], [[0.35891648, 0.408666186], [0.511301270, 0.561370121]], atol=1e-8
    )
    # train_bias false: the seed keeps b1 = 0.35 and b2 = 0.60.
    np.testing.assert_array_equal(network.biases[0], [0.35, 0.35])
    np.testing.assert_array_equal(network.biases[1], [0.60, 0.60])

    np.testing.assert_allclose(
        result.model.predict([[0.05, 0.10]]), [[0.742088111, 0.775284968]], atol=1e-8
    )


def test_ten_thousand_epochs_match_the_seed() -> None:
    result, seen = run(10_000)
    assert result.stop_reason == "max_epochs"
    assert len(seen) == 10_000
    assert seen[-1].loss == pytest.approx(3.5108548e-05, rel=1e-6)
    assert result.model is not None
    np.testing.assert_allclose(
        result.model.predict([[0.05, 0.10]]), [[0.015913620, 0.984064274]], atol=1e-8
    )


def test_inputs_are_not_modified() -> None:
    inputs = np.array(INPUTS)
    targets = np.array(TARGETS)
    result = core.train(NETWORK, training(3), inputs, targets)
    assert result.model is not None
    result.model.predict(inputs)
    np.testing.assert_array_equal(inputs, INPUTS)
    np.testing.assert_array_equal(targets, TARGETS)
