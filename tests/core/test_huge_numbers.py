"""JSON integers beyond float range are bad input with a field, not a crash."""

from __future__ import annotations

import pytest

import core

HUGE = 10**400


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (
            lambda: core.parse_training({"epochs": 1, "optimizer": {"learning_rate": HUGE}}),
            "optimizer.learning_rate",
        ),
        (
            lambda: core.parse_network(
                {"input_dim": 1, "layers": [{"units": 1, "weights": [[HUGE]]}]}
            ),
            "layers[0].weights[0][0]",
        ),
        (
            lambda: core.parse_network({"input_dim": 1, "layers": [{"units": 1, "bias": [HUGE]}]}),
            "layers[0].bias[0]",
        ),
        (
            lambda: core.train(
                {"input_dim": 1, "layers": [{"units": 1}]}, {"epochs": 1}, [[HUGE]], [[1]]
            ),
            "inputs",
        ),
    ],
)
def test_huge_integers_raise_spec_error(call: object, field: str) -> None:
    with pytest.raises(core.SpecError) as error:
        call()  # type: ignore[operator]
    assert error.value.field == field
