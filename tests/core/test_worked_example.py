"""Seed 001's worked example: one step of online backprop on a 2-2-2 sigmoid net."""

from __future__ import annotations

import numpy as np
import pytest

import core
from tests import worked_example as worked


def run(epochs: int) -> tuple[core.TrainResult, list[core.EpochStats]]:
    seen: list[core.EpochStats] = []
    result = core.train(
        worked.NETWORK, worked.training(epochs), worked.INPUTS, worked.TARGETS, on_epoch=seen.append
    )
    return result, seen


def test_one_epoch_matches_the_hand_computation() -> None:
    result, seen = run(1)
    assert result.stop_reason == "max_epochs"
    assert result.epochs_completed == 1
    assert [s.epoch for s in seen] == [1]
    # The loss is measured in the forward pass, before the update.
    assert seen[0].loss == pytest.approx(worked.EPOCH_1_LOSS, abs=1e-9)

    assert result.model is not None
    network = result.model.network
    for layer, expected in enumerate(worked.WEIGHTS_AFTER_1):
        np.testing.assert_allclose(network.weights[layer], expected, atol=1e-8)
    # train_bias false: the seed keeps b1 = 0.35 and b2 = 0.60.
    np.testing.assert_array_equal(network.biases[0], [0.35, 0.35])
    np.testing.assert_array_equal(network.biases[1], [0.60, 0.60])

    np.testing.assert_allclose(
        result.model.predict(worked.INPUTS), [worked.PREDICTION_AFTER_1], atol=1e-8
    )


def test_ten_thousand_epochs_match_the_seed() -> None:
    result, seen = run(10_000)
    assert result.stop_reason == "max_epochs"
    assert len(seen) == 10_000
    assert seen[-1].loss == pytest.approx(worked.EPOCH_10000_LOSS, rel=1e-6)
    assert result.model is not None
    np.testing.assert_allclose(
        result.model.predict(worked.INPUTS), [worked.PREDICTION_AFTER_10000], atol=1e-8
    )


def test_inputs_are_not_modified() -> None:
    inputs = np.array(worked.INPUTS)
    targets = np.array(worked.TARGETS)
    result = core.train(worked.NETWORK, worked.training(3), inputs, targets)
    assert result.model is not None
    result.model.predict(inputs)
    np.testing.assert_array_equal(inputs, worked.INPUTS)
    np.testing.assert_array_equal(targets, worked.TARGETS)
