"""Bad specs, configs and datasets: each is a SpecError naming the offending field."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

import core

NAN = float("nan")
INF = float("inf")


def net(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "input_dim": 2,
        "layers": [
            {"units": 2, "activation": "sigmoid"},
            {"units": 2, "activation": "sigmoid"},
        ],
    }
    spec.update(changes)
    return spec


def with_layer(index: int, **changes: Any) -> dict[str, Any]:
    spec = net()
    spec["layers"] = copy.deepcopy(spec["layers"])
    spec["layers"][index].update(changes)
    return spec


def without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


GOOD_W2 = [[0.1, 0.2], [0.3, 0.4]]

NETWORK_CASES: list[tuple[str, Any, str, str]] = [
    # (id, spec, field, text in message)
    (
        "weights-wrong-shape",
        with_layer(1, weights=[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]),
        "layers[1].weights",
        "expected 2x2, got 2x3",
    ),
    ("weights-too-few-rows", with_layer(0, weights=[[0.1, 0.2]]), "layers[0].weights", "2x2"),
    ("unknown-activation", with_layer(0, activation="swish"), "layers[0].activation", "swish"),
    (
        "softmax-hidden",
        with_layer(0, activation="softmax"),
        "layers[0].activation",
        "only in the output layer",
    ),
    ("nan-weight", with_layer(1, weights=[[0.1, NAN], [0.3, 0.4]]), "layers[1].weights[0][1]", ""),
    ("inf-weight", with_layer(1, weights=[[0.1, 0.2], [INF, 0.4]]), "layers[1].weights[1][0]", ""),
    ("nan-bias", with_layer(0, bias=[0.0, NAN]), "layers[0].bias[1]", "finite"),
    ("bias-wrong-length", with_layer(0, bias=[0.0, 0.0, 0.0]), "layers[0].bias", "expected 2"),
    (
        "ragged-weights",
        with_layer(1, weights=[[0.1, 0.2], [0.3]]),
        "layers[1].weights[1]",
        "ragged",
    ),
    (
        "string-weight",
        with_layer(1, weights=[[0.1, "x"], [0.3, 0.4]]),
        "layers[1].weights[0][1]",
        "",
    ),
    ("bool-units", with_layer(0, units=True), "layers[0].units", "integer"),
    ("float-units", with_layer(0, units=2.0), "layers[0].units", "integer"),
    ("zero-units", with_layer(1, units=0), "layers[1].units", "at least 1"),
    ("missing-units", net(layers=[{"activation": "sigmoid"}]), "layers[0].units", "required"),
    ("missing-input-dim", without(net(), "input_dim"), "input_dim", "required"),
    ("input-dim-zero", net(input_dim=0), "input_dim", "at least 1"),
    ("unknown-layer-field", with_layer(1, dropout=0.5), "layers[1].dropout", "unknown field"),
    ("unknown-network-field", net(name="x"), "name", "unknown field"),
    ("layers-empty", net(layers=[]), "layers", "non-empty"),
    ("layers-missing", without(net(), "layers"), "layers", ""),
    ("layer-not-object", net(layers=[3]), "layers[0]", "object"),
    ("network-not-object", [1, 2], "network", "object"),
]


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [case[1:] for case in NETWORK_CASES],
    ids=[case[0] for case in NETWORK_CASES],
)
def test_bad_network(spec: Any, field: str, text: str) -> None:
    with pytest.raises(core.SpecError) as info:
        core.parse_network(spec)
    assert info.value.field == field
    assert text in info.value.message
    assert str(info.value).startswith(f"{field}: ")


TRAINING_CASES: list[tuple[str, Any, str, str]] = [
    ("missing-epochs", {}, "epochs", "required"),
    ("epochs-zero", {"epochs": 0}, "epochs", "at least 1"),
    ("epochs-float", {"epochs": 1.5}, "epochs", "integer"),
    (
        "negative-learning-rate",
        {"epochs": 1, "optimizer": {"name": "sgd", "learning_rate": -0.1}},
        "optimizer.learning_rate",
        "greater than",
    ),
    (
        "zero-learning-rate",
        {"epochs": 1, "optimizer": {"learning_rate": 0}},
        "optimizer.learning_rate",
        "",
    ),
    ("unknown-optimizer", {"epochs": 1, "optimizer": "lbfgs"}, "optimizer.name", "lbfgs"),
    (
        "momentum-one",
        {"epochs": 1, "optimizer": {"name": "sgd", "momentum": 1.0}},
        "optimizer.momentum",
        "at most 0.99999",
    ),
    (
        "invscaling-power-1000",
        {"epochs": 5, "schedule": {"name": "invscaling", "power": 1000}},
        "schedule.power",
        "at most 10",
    ),
    (
        "unknown-optimizer-field",
        {"epochs": 1, "optimizer": {"name": "adam", "decay": 0.1}},
        "optimizer.decay",
        "unknown field",
    ),
    ("bad-dtype", {"epochs": 1, "dtype": "float16"}, "dtype", "float16"),
    ("bad-normalize", {"epochs": 1, "normalize": "zscore"}, "normalize", "zscore"),
    ("validation-split-one", {"epochs": 1, "validation_split": 1.0}, "validation_split", ""),
    ("validation-split-negative", {"epochs": 1, "validation_split": -0.1}, "validation_split", ""),
    ("batch-size-zero", {"epochs": 1, "batch_size": 0}, "batch_size", "at least 1"),
    ("batch-size-string", {"epochs": 1, "batch_size": "all"}, "batch_size", "integer"),
    ("unknown-training-field", {"epochs": 1, "epoch": 3}, "epoch", "unknown field"),
    ("unknown-loss", {"epochs": 1, "loss": "hinge"}, "loss", "hinge"),
    ("unknown-schedule", {"epochs": 1, "schedule": "cosine"}, "schedule.name", "cosine"),
    (
        "plateau-factor-one",
        {"epochs": 1, "schedule": {"name": "plateau", "factor": 1.0}},
        "schedule.factor",
        "",
    ),
    ("shuffle-not-bool", {"epochs": 1, "shuffle": "yes"}, "shuffle", "true or false"),
    ("l2-negative", {"epochs": 1, "l2": -1e-4}, "l2", "at least 0"),
    ("l2-nan", {"epochs": 1, "l2": NAN}, "l2", "finite"),
    ("time-limit-zero", {"epochs": 1, "time_limit": 0}, "time_limit", ""),
    (
        "early-stopping-patience-zero",
        {"epochs": 1, "early_stopping": {"patience": 0}},
        "early_stopping.patience",
        "",
    ),
    ("training-not-object", "fast", "training", "object"),
]


@pytest.mark.parametrize(
    ("config", "field", "text"),
    [case[1:] for case in TRAINING_CASES],
    ids=[case[0] for case in TRAINING_CASES],
)
def test_bad_training(config: Any, field: str, text: str) -> None:
    with pytest.raises(core.SpecError) as info:
        core.parse_training(config)
    assert info.value.field == field
    assert text in info.value.message


X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
T = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
SOFTMAX = with_layer(1, activation="softmax")

DATA_CASES: list[tuple[str, Any, Any, Any, Any, str, str]] = [
    # (id, network, training, inputs, targets, field, text)
    (
        "bce-with-softmax",
        SOFTMAX,
        {"epochs": 1, "loss": "binary_crossentropy"},
        X,
        T,
        "loss",
        "sigmoid",
    ),
    (
        "cce-with-sigmoid",
        net(),
        {"epochs": 1, "loss": "categorical_crossentropy"},
        X,
        T,
        "loss",
        "softmax",
    ),
    ("wrong-feature-count", net(), {"epochs": 1}, X[:, :1], T, "network.input_dim", "1 features"),
    (
        "wrong-target-columns",
        net(),
        {"epochs": 1},
        X,
        T[:, :1],
        "network.layers[1].units",
        "1 target columns",
    ),
    (
        "targets-outside-unit-interval",
        net(),
        {"epochs": 1, "loss": "binary_crossentropy"},
        X,
        T * 2,
        "targets",
        "between 0 and 1",
    ),
    (
        "softmax-default-loss-range",
        SOFTMAX,
        {"epochs": 1},
        X,
        T - 0.5,
        "targets",
        "between 0 and 1",
    ),
    ("row-count-mismatch", net(), {"epochs": 1}, X, T[:3], "targets", "expected 4 rows"),
    ("nan-input", net(), {"epochs": 1}, np.where(X == 1, NAN, X), T, "inputs[1]", "finite"),
    ("inf-target", net(), {"epochs": 1}, X, np.where(T == 1, INF, T)[::-1], "targets[0]", "finite"),
    ("ragged-inputs", net(), {"epochs": 1}, [[0.0, 1.0], [1.0]], T[:2], "inputs", "rectangular"),
    ("string-inputs", net(), {"epochs": 1}, [["a", "b"]], T[:1], "inputs", ""),
    ("no-rows", net(), {"epochs": 1}, np.zeros((0, 2)), np.zeros((0, 2)), "inputs", "at least one"),
    ("3d-inputs", net(), {"epochs": 1}, np.zeros((4, 2, 1)), T, "inputs", "2-D"),
    (
        "validation-leaves-nothing",
        net(),
        {"epochs": 1, "validation_split": 0.1},
        X,
        T,
        "training.validation_split",
        "no validation",
    ),
]


@pytest.mark.parametrize(
    ("network", "training", "inputs", "targets", "field", "text"),
    [case[1:] for case in DATA_CASES],
    ids=[case[0] for case in DATA_CASES],
)
def test_bad_dataset(
    network: Any, training: Any, inputs: Any, targets: Any, field: str, text: str
) -> None:
    with pytest.raises(core.SpecError) as info:
        core.train(network, training, inputs, targets)
    assert info.value.field == field
    assert text in info.value.message
    with pytest.raises(core.SpecError) as again:
        core.Trainer(network, training, inputs, targets)
    assert again.value.field == field


def test_wrong_number_of_class_names() -> None:
    with pytest.raises(core.SpecError) as info:
        core.Trainer(SOFTMAX, {"epochs": 1}, X, T, classes=["a", "b", "c"])
    assert info.value.field == "classes"
    single = with_layer(1, units=1)
    with pytest.raises(core.SpecError) as info:
        core.Trainer(single, {"epochs": 1}, X, T[:, :1], classes=["only"])
    assert (info.value.field, info.value.message) == ("classes", "expected 2 class names, got 1")


def test_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^epochs: is required$"):
        core.parse_training({})


def test_good_spec_parses() -> None:
    spec = core.parse_network(with_layer(1, weights=GOOD_W2, bias=[0, 1]))
    assert spec.output_dim == 2
    assert spec.n_weights() == 12
    config = core.parse_training({"epochs": 3, "batch_size": "full", "optimizer": "adam"})
    assert config.batch_size is None
    assert config.optimizer.learning_rate == 0.001
