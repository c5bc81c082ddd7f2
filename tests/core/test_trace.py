"""core.trace: one backpropagation step named number by number, checked against
seed 001's worked example, the engine's own gradients and finite differences."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from core import SpecError, gradient_check
from core.activations import ACTIVATIONS
from core.losses import LOSSES
from core.network import Backprop, Network
from core.trace import (
    MAX_TRACE_PARAMS,
    TraceTooLarge,
    parse_traced_network,
    trace_step,
    unit_names,
)
from tests.worked_example import INPUTS, NETWORK, TARGETS

TOL = 1e-9


def seed_trace() -> dict[str, Any]:
    network = parse_traced_network(NETWORK)
    return trace_step(network, INPUTS[0], TARGETS[0], learning_rate=0.5, train_bias=False).to_json()


def test_the_seeds_worked_example() -> None:
    answer = seed_trace()
    units, weights = answer["units"], answer["weights"]
    assert answer["loss"] == "squared_error"
    assert units["h1"]["net"] == pytest.approx(0.3775, abs=TOL)
    assert units["h1"]["out"] == pytest.approx(0.593269992, abs=TOL)
    assert units["h2"]["out"] == pytest.approx(0.596884378, abs=TOL)
    assert units["o1"]["out"] == pytest.approx(0.751365070, abs=TOL)
    assert units["o2"]["out"] == pytest.approx(0.772928465, abs=TOL)
    assert answer["error"]["total"] == pytest.approx(0.298371109, abs=TOL)
    assert answer["error"]["outputs"]["o1"] == pytest.approx(0.274811083, abs=TOL)
    assert answer["error"]["outputs"]["o2"] == pytest.approx(0.023560026, abs=TOL)
    assert units["o1"]["delta"] == pytest.approx(0.138498562, abs=TOL)
    # the seed's dE/dout_o1 = 0.7414 and dE/dout_h1 = 0.036
    assert units["o1"]["dE_dout"] == pytest.approx(0.741365070, abs=TOL)
    assert units["h1"]["dE_dout"] == pytest.approx(0.036350306, abs=TOL)
    assert weights["w5"]["gradient"] == pytest.approx(0.082167041, abs=TOL)
    assert weights["w1"]["gradient"] == pytest.approx(0.000438568, abs=TOL)
    assert weights["w5"]["after"] == pytest.approx(0.358916480, abs=TOL)
    assert weights["w1"]["after"] == pytest.approx(0.149780716, abs=TOL)
    # the seed's other updated weights, to its four digits
    seed_after = [0.1498, 0.1996, 0.2498, 0.2995, 0.3589, 0.4086, 0.5113, 0.5614]
    for k, value in enumerate(seed_after, start=1):
        assert weights[f"w{k}"]["after"] == pytest.approx(value, abs=1e-4)
    # frozen biases: a gradient, no change
    assert units["o1"]["bias"]["gradient"] == pytest.approx(0.138498562, abs=TOL)
    assert units["o1"]["bias"]["after"] == units["o1"]["bias"]["value"] == 0.6
    assert answer["network_after"]["layers"][0]["bias"] == [0.35, 0.35]


def test_the_seeds_weight_names_and_places() -> None:
    weights = seed_trace()["weights"]
    feeds = {name: (w["from"], w["to"], w["at"]) for name, w in weights.items()}
    assert feeds == {
        "w1": ("i1", "h1", "layers[0].weights[0][0]"),
        "w2": ("i2", "h1", "layers[0].weights[0][1]"),
        "w3": ("i1", "h2", "layers[0].weights[1][0]"),
        "w4": ("i2", "h2", "layers[0].weights[1][1]"),
        "w5": ("h1", "o1", "layers[1].weights[0][0]"),
        "w6": ("h2", "o1", "layers[1].weights[0][1]"),
        "w7": ("h1", "o2", "layers[1].weights[1][0]"),
        "w8": ("h2", "o2", "layers[1].weights[1][1]"),
    }
    assert [w["value"] for w in weights.values()] == [0.15, 0.2, 0.25, 0.3, 0.4, 0.45, 0.5, 0.55]


def test_the_update_is_the_engines_training_step() -> None:
    """network_after is what one epoch of SGD training makes of the same network."""
    from core import parse_training, train
    from tests.worked_example import TRAINING, WEIGHTS_AFTER_1

    answer = seed_trace()
    after = [layer["weights"] for layer in answer["network_after"]["layers"]]
    np.testing.assert_allclose(after, WEIGHTS_AFTER_1, atol=1e-8)
    trained = train(NETWORK, parse_training(TRAINING), INPUTS, TARGETS).model.network
    for layer, w in zip(answer["network_after"]["layers"], trained.weights, strict=True):
        np.testing.assert_array_equal(layer["weights"], w)


def test_unit_names() -> None:
    assert unit_names([2, 2, 2]) == [["i1", "i2"], ["h1", "h2"], ["o1", "o2"]]
    assert unit_names([3, 1]) == [["i1", "i2", "i3"], ["o1"]]
    assert unit_names([1, 2, 3, 1]) == [["i1"], ["h1_1", "h1_2"], ["h2_1", "h2_2", "h2_3"], ["o1"]]


def _network(activations: list[str], sizes: list[int], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    layers = []
    for name, fan_in, units in zip(activations, sizes, sizes[1:], strict=False):
        layers.append(
            {
                "units": units,
                "activation": name,
                "weights": rng.uniform(-1, 1, (units, fan_in)).tolist(),
                "bias": rng.uniform(-0.5, 0.5, units).tolist(),
            }
        )
    return {"input_dim": sizes[0], "layers": layers}


def _targets(loss: str, output: str, units: int, rng: np.random.Generator) -> list[float]:
    if ACTIVATIONS[output].distribution:
        t = rng.uniform(0.05, 1, units)
        return list(t / t.sum())
    return list(rng.uniform(0.1, 0.9, units))


# Every loss with every output activation it accepts; every activation in a hidden layer.
CASES = [
    (hidden, output, loss)
    for loss, record in LOSSES.items()
    for output in ACTIVATIONS
    if record.requires is None or output in record.requires
    for hidden in ACTIVATIONS
    if not ACTIVATIONS[hidden].distribution
]


@pytest.mark.parametrize(("hidden", "output", "loss"), CASES)
def test_gradients_are_the_engines_and_the_derivatives(hidden: str, output: str, loss: str) -> None:
    spec = _network([hidden, output], [3, 4, 3], seed=len(hidden) * 7 + len(output))
    rng = np.random.default_rng(5)
    x = list(rng.uniform(-1, 1, 3))
    t = _targets(loss, output, 3, rng)
    network = parse_traced_network(spec)
    step = trace_step(network, x, t, loss=loss, learning_rate=0.3)
    answer = step.to_json()
    assert answer["loss"] == loss

    # The engine's Backprop on the same network and sample gives the same numbers.
    engine = parse_traced_network(spec)
    backprop = Backprop(engine, loss, 1)
    total = backprop.gradients(np.array([x]), np.array([t]))
    assert answer["error"]["total"] == total
    for layer in range(2):
        np.testing.assert_array_equal(step.grad_w[layer], backprop.grad_w[layer])
        np.testing.assert_array_equal(step.grad_b[layer], backprop.grad_b[layer])
    # The per-output errors add up to the engine's loss.
    assert sum(answer["error"]["outputs"].values()) == pytest.approx(total, rel=1e-12, abs=1e-15)
    # core.gradcheck agrees with those gradients (tiny ones compared nearly absolutely).
    checked = min(
        gradient_check(parse_traced_network(spec), loss, np.array([x]), np.array([t]), eps=eps)
        for eps in (1e-5, 1e-4)
    )
    assert checked < 1e-4

    # Central differences of the traced loss itself, weight by weight and bias by bias.
    eps = 1e-6
    for name, weight in answer["weights"].items():
        numeric = _numeric(spec, weight["at"], x, t, loss, eps)
        assert weight["gradient"] == pytest.approx(numeric, rel=1e-5, abs=1e-8), name
        assert weight["after"] == weight["value"] - 0.3 * weight["gradient"]
    for name, unit in answer["units"].items():
        if unit["layer"] == 0:
            continue
        bias = unit["bias"]
        numeric = _numeric(spec, bias["at"], x, t, loss, eps)
        assert bias["gradient"] == pytest.approx(numeric, rel=1e-5, abs=1e-8), name
        assert bias["gradient"] == unit["delta"]
        assert bias["after"] == bias["value"] - 0.3 * bias["gradient"]
        # delta = dE/dout * dout/dnet, where the loss gives dE/dout of its own
        if "dE_dout" in unit and ACTIVATIONS[unit["activation"]].scalar is not None:
            derivative = ACTIVATIONS[unit["activation"]].scalar_derivative
            assert derivative is not None
            assert unit["delta"] == pytest.approx(
                unit["dE_dout"] * derivative(unit["net"], unit["out"]), rel=1e-12, abs=1e-15
            )
    # network_after, sent back, traces the next step.
    again = trace_step(parse_traced_network(answer["network_after"]), x, t, loss=loss)
    assert again.before.weights[0][0, 0] == answer["weights"]["w1"]["after"]


def _numeric(
    spec: dict[str, Any], at: str, x: list[float], t: list[float], loss: str, eps: float
) -> float:
    def total(shift: float) -> float:
        moved = copy.deepcopy(spec)
        layer = int(at.split("[")[1].split("]")[0])
        indices = [int(part.split("]")[0]) for part in at.split("[")[2:]]
        place = moved["layers"][layer]["weights" if ".weights" in at else "bias"]
        for index in indices[:-1]:
            place = place[index]
        place[indices[-1]] += shift
        return trace_step(parse_traced_network(moved), x, t, loss=loss).total

    return (total(eps) - total(-eps)) / (2 * eps)


def test_two_hidden_layers() -> None:
    spec = _network(["tanh", "relu", "sigmoid"], [2, 3, 2, 1], seed=3)
    x, t = [0.4, -0.7], [0.8]
    step = trace_step(parse_traced_network(spec), x, t, learning_rate=0.1)
    answer = step.to_json()
    assert list(answer["units"]) == ["i1", "i2", "h1_1", "h1_2", "h1_3", "h2_1", "h2_2", "o1"]
    assert len(answer["weights"]) == 2 * 3 + 3 * 2 + 2 * 1
    assert answer["weights"]["w7"]["from"] == "h1_1" and answer["weights"]["w7"]["to"] == "h2_1"
    assert answer["weights"]["w7"]["at"] == "layers[1].weights[0][0]"
    assert answer["weights"]["w13"]["from"] == "h2_1" and answer["weights"]["w13"]["to"] == "o1"
    engine = Backprop(parse_traced_network(spec), "squared_error", 1)
    engine.gradients(np.array([x]), np.array([t]))
    for layer in range(3):
        np.testing.assert_array_equal(step.grad_w[layer], engine.grad_w[layer])
    # The forward pass is the engine's feedforward.
    out = parse_traced_network(spec).feedforward(np.array([x]))
    assert answer["units"]["o1"]["out"] == out[0, 0]
    # Every hidden dE/dout is the next layer's deltas through its weights.
    h2 = [answer["units"][f"h2_{j}"]["dE_dout"] for j in (1, 2)]
    np.testing.assert_allclose(
        h2, answer["units"]["o1"]["delta"] * np.array(spec["layers"][2]["weights"][0])
    )
    for name in ("w1", "w7", "w13"):
        numeric = _numeric(spec, answer["weights"][name]["at"], x, t, "squared_error", 1e-6)
        assert answer["weights"][name]["gradient"] == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_softmax_crossentropy_uses_the_combined_delta() -> None:
    spec = _network(["sigmoid", "softmax"], [2, 2, 3], seed=1)
    step = trace_step(parse_traced_network(spec), [0.5, 0.1], [0, 1, 0]).to_json()
    assert step["loss"] == "categorical_crossentropy"
    for j, target in enumerate([0, 1, 0], start=1):
        unit = step["units"][f"o{j}"]
        assert unit["delta"] == pytest.approx(unit["out"] - target, abs=1e-15)
        assert "dE_dout" not in unit


def test_a_float32_network_is_traced_in_float64() -> None:
    network = parse_traced_network(NETWORK)
    single = Network(
        network.activation_names,
        [w.astype(np.float32) for w in network.weights],
        [b.astype(np.float32) for b in network.biases],
    )
    step = trace_step(single, INPUTS[0], TARGETS[0], train_bias=False)
    assert step.before.dtype == np.float64
    assert step.to_json()["units"]["h1"]["net"] == pytest.approx(0.3775, abs=1e-7)
    assert single.weights[0].dtype == np.float32  # the given network is left alone


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["network"]["layers"][0].pop("weights"), "network.layers[0].weights"),
        (lambda b: b["network"]["layers"][1].pop("bias"), "network.layers[1].bias"),
        (lambda b: b["network"]["layers"][1].update(weights=[[1.0]]), "network.layers[1].weights"),
        (lambda b: b["network"].pop("input_dim"), "network.input_dim"),
        (lambda b: b.update(inputs=[0.1]), "inputs"),
        (lambda b: b.update(inputs=[0.1, float("nan")]), "inputs[1]"),
        (lambda b: b.update(targets=[0.1, 0.2, 0.3]), "targets"),
        (lambda b: b.update(targets=[0.1, 1.5]), "targets"),  # beyond a sigmoid's reach
        (lambda b: b.update(loss="hinge"), "loss"),
        (lambda b: b.update(loss="categorical_crossentropy"), "loss"),  # needs softmax
        (lambda b: b.update(learning_rate=0), "learning_rate"),
        (lambda b: b.update(learning_rate=float("inf")), "learning_rate"),
    ],
)
def test_bad_input_names_its_field(change: Any, field: str) -> None:
    body: dict[str, Any] = {
        "network": copy.deepcopy(NETWORK),
        "inputs": list(INPUTS[0]),
        "targets": list(TARGETS[0]),
        "loss": None,
        "learning_rate": 0.5,
    }
    change(body)
    with pytest.raises(SpecError) as caught:
        trace_step(
            parse_traced_network(body["network"]),
            body["inputs"],
            body["targets"],
            loss=body["loss"],
            learning_rate=body["learning_rate"],
        )
    assert caught.value.field == field, caught.value


def test_softmax_targets_must_be_a_distribution() -> None:
    spec = _network(["sigmoid", "softmax"], [2, 2, 2], seed=1)
    with pytest.raises(SpecError) as caught:
        trace_step(parse_traced_network(spec), [0.5, 0.1], [1, 1])
    assert caught.value.field == "targets"


def test_the_size_limit() -> None:
    # 1 input, one layer of n units: 2n weights and biases
    units = MAX_TRACE_PARAMS // 2 + 1
    spec = {
        "input_dim": 1,
        "layers": [{"units": units, "weights": [[0.1]] * units, "bias": [0.0] * units}],
    }
    with pytest.raises(TraceTooLarge) as caught:
        parse_traced_network(spec)
    assert caught.value.field == "network"
    network = Network(["sigmoid"], [np.zeros((units, 1))], [np.zeros(units)])
    with pytest.raises(TraceTooLarge):
        trace_step(network, [0.0], [0.5] * units)
    fits = {**spec, "layers": [{**spec["layers"][0], "units": units - 1}]}
    fits["layers"][0]["weights"] = fits["layers"][0]["weights"][:-1]
    fits["layers"][0]["bias"] = fits["layers"][0]["bias"][:-1]
    assert len(trace_step(parse_traced_network(fits), [1.0], [0.5] * (units - 1)).deltas[0]) == (
        units - 1
    )


def test_a_step_that_overflows_is_refused_naming_the_network() -> None:
    spec = copy.deepcopy(NETWORK)
    spec["layers"][0]["weights"] = [[1e308, 1e308], [0.1, 0.1]]
    with pytest.raises(SpecError) as caught:
        trace_step(parse_traced_network(spec), [1.0, 1.0], TARGETS[0])
    assert caught.value.field == "network"
    assert "net h1 is not a finite float64" in caught.value.message
    # a learning rate that throws a weight past float64's range: gradient 100
    line = {
        "input_dim": 1,
        "layers": [{"units": 1, "activation": "identity", "weights": [[1.0]], "bias": [0.0]}],
    }
    with pytest.raises(SpecError) as caught:
        trace_step(parse_traced_network(line), [10.0], [0.0], learning_rate=1e308)
    assert caught.value.field == "network"
    assert "after the update" in caught.value.message
