"""Class labels: the fit rules between output units and classes, and two classes on one unit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier

import core

CASES = Path(__file__).parent / "cases"


def spam() -> tuple[np.ndarray, list[str], np.ndarray]:
    """Issue case c02: inputs, labels, and one-hot targets with the classes sorted."""
    rows = (CASES / "c02_binary_strings.csv").read_text().split()[1:]
    x = np.array([[float(v) for v in row.split(",")[:2]] for row in rows])
    labels = [row.split(",")[2] for row in rows]
    return x, labels, np.eye(2)[[["no", "yes"].index(label) for label in labels]]


ONE_UNIT = {"input_dim": 2, "layers": [{"units": 1, "activation": "sigmoid"}]}
BCE = {
    "epochs": 500,
    "loss": "binary_crossentropy",
    "batch_size": "full",
    "optimizer": {"name": "adam", "learning_rate": 0.05},
}


def test_two_classes_on_one_sigmoid_unit() -> None:
    x, labels, one_hot = spam()
    trainer = core.Trainer(ONE_UNIT, BCE, x, one_hot, classes=["no", "yes"])
    # The unit learns the second class ("yes") as a 0/1 column.
    np.testing.assert_array_equal(trainer.t[:, 0], [lab == "yes" for lab in labels])
    result = trainer.run()
    assert result.model is not None
    outputs = result.model.predict(x)
    assert outputs.shape == (6, 1)
    assert result.model.predict_labels(x) == labels
    # scikit-learn's log loss of P(yes) is the engine's own binary cross-entropy.
    mean_bce, correct = trainer.evaluate(trainer.x, trainer.t)
    assert log_loss([lab == "yes" for lab in labels], outputs[:, 0]) == pytest.approx(
        mean_bce, rel=1e-9
    )
    assert correct == 6
    # scikit-learn, given the same data, also answers with one logistic unit.
    sk = MLPClassifier(hidden_layer_sizes=(), solver="lbfgs", random_state=0).fit(x, labels)
    assert sk.n_outputs_ == 1
    assert list(sk.predict(x)) == labels


def test_one_unit_labels_threshold_at_one_half() -> None:
    net = core.Network(["sigmoid"], [np.array([[1.0]])], [np.zeros(1)])
    model = core.Model(net, "binary_crossentropy", classes=["no", "yes"])
    # sigmoid(0) = 0.5 is the second class; just below it, the first.
    assert model.predict_labels([[0.0], [-1e-9], [3.0]]) == ["yes", "no", "yes"]


X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
ONE_HOT_3 = np.eye(3)[[0, 1, 2, 0]]


def network(units: int, activation: str) -> dict[str, Any]:
    return {"input_dim": 2, "layers": [{"units": units, "activation": activation}]}


FIT_CASES: list[tuple[str, Any, Any, list[str] | None, str, str]] = [
    # (id, network, targets, classes, field, message)
    (
        "three-classes-two-units",
        network(2, "softmax"),
        ONE_HOT_3,
        ["a", "b", "c"],
        "network.layers[0].units",
        "is 2 but the dataset has 3 classes: use 3",
    ),
    (
        "three-classes-one-unit",
        network(1, "sigmoid"),
        ONE_HOT_3,
        ["a", "b", "c"],
        "network.layers[0].units",
        "is 1 but the dataset has 3 classes: use 3",
    ),
    (
        "two-classes-three-units",
        network(3, "sigmoid"),
        np.eye(2)[[0, 1, 1, 0]],
        ["a", "b"],
        "network.layers[0].units",
        "is 3 but the dataset has 2 classes: use 2 (or 1 for two classes)",
    ),
    (
        "names-for-other-columns",
        network(3, "softmax"),
        ONE_HOT_3,
        ["a", "b"],
        "classes",
        "expected 3 class names, got 2",
    ),
    (
        "softmax-on-one-unit",
        network(1, "softmax"),
        np.array([[0.0], [1.0], [1.0], [0.0]]),
        None,
        "network.layers[0].units",
        "a softmax over one unit is always 1: use 2 or more units, or sigmoid",
    ),
    (
        "softmax-needs-class-rows",
        network(2, "softmax"),
        np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.5, 0.5]]),
        None,
        "targets",
        "a softmax output needs class targets: each row between 0 and 1 and summing to 1 "
        "(one-hot for a class); row 1 sums to 2",
    ),
]


@pytest.mark.parametrize(
    ("net", "targets", "classes", "field", "message"),
    [case[1:] for case in FIT_CASES],
    ids=[case[0] for case in FIT_CASES],
)
def test_fit_rules(
    net: Any, targets: Any, classes: list[str] | None, field: str, message: str
) -> None:
    with pytest.raises(core.SpecError) as info:
        core.Trainer(net, {"epochs": 1}, X, targets, classes=classes)
    assert (info.value.field, info.value.message) == (field, message)


def test_soft_class_rows_are_accepted() -> None:
    soft = np.array([[0.25, 0.75], [1.0, 0.0], [0.5, 0.5], [0.1, 0.9]])
    trainer = core.Trainer(network(2, "softmax"), {"epochs": 1}, X, soft)
    np.testing.assert_array_equal(trainer.t, soft)


def test_fit_rules_read_labelled_targets_only_when_needed() -> None:
    # The API loads a stored dataset's targets only if a rule asks for them.
    loaded: list[bool] = []

    def targets() -> np.ndarray:
        loaded.append(True)
        return ONE_HOT_3

    spec = core.parse_network(network(3, "softmax"))
    shape = {"n_samples": 4, "n_features": 2, "n_targets": 3, "targets": targets}
    core.check_fit(spec, "categorical_crossentropy", classes=["a", "b", "c"], **shape)
    assert loaded == []
    core.check_fit(spec, "categorical_crossentropy", classes=None, **shape)
    assert loaded == [True]
