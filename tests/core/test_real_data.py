"""Accuracy on scikit-learn's bundled datasets, against sklearn's MLPClassifier."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import core

LOADERS: dict[str, Callable[..., Any]] = {
    "digits": datasets.load_digits,
    "breast_cancer": datasets.load_breast_cancer,
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
}


def sklearn_accuracy(x_train: Any, y_train: Any, x_test: Any, y_test: Any) -> float:
    scaler = StandardScaler().fit(x_train)
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(x_train), y_train)
    return float(clf.score(scaler.transform(x_test), y_test))


@pytest.mark.parametrize("name", list(LOADERS))
def test_accuracy_is_close_to_sklearn(name: str) -> None:
    x, y = LOADERS[name](return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=0
    )
    n_classes = int(y.max()) + 1
    network = {
        "input_dim": x.shape[1],
        "layers": [
            {"units": 64, "activation": "relu"},
            {"units": n_classes, "activation": "softmax"},
        ],
    }
    training = {
        "epochs": 250,
        "optimizer": {"name": "adam", "learning_rate": 0.001},
        "normalize": "standardize",
        "batch_size": min(200, len(x_train)),
        "l2": 1e-4,
        "seed": 0,
    }
    names = [str(c) for c in range(n_classes)]
    result = core.train(network, training, x_train, np.eye(n_classes)[y_train], classes=names)
    assert result.stop_reason == "max_epochs"
    assert result.model is not None
    predicted = np.array([int(label) for label in result.model.predict_labels(x_test)])
    ours = float(np.mean(predicted == y_test))
    theirs = sklearn_accuracy(x_train, y_train, x_test, y_test)
    print(f"{name}: engine {ours:.4f} sklearn {theirs:.4f}")
    assert ours >= theirs - 0.02, f"{name}: engine {ours:.4f} vs sklearn {theirs:.4f}"
