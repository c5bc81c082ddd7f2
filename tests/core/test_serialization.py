"""Models to bytes and JSON and back, and predicting labels."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import core
from core import Model


def three_classes(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    labels = np.arange(n) % 3
    centers = np.array([[0.0, 4.0], [4.0, 0.0], [-4.0, -4.0]])
    x = centers[labels] + rng.normal(0, 0.7, size=(n, 2)) + [50.0, -20.0]
    return x, np.eye(3)[labels]


SOFTMAX_NET = {
    "input_dim": 2,
    "layers": [{"units": 5, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
}
NAMES = ["setosa", "versicolor", "virginica"]


def softmax_model(dtype: str = "float64") -> tuple[Model, np.ndarray, np.ndarray]:
    x, t = three_classes()
    training = {
        "epochs": 300,
        "normalize": "standardize",
        "dtype": dtype,
        "stop_when_all_correct": True,
        "optimizer": {"name": "adam", "learning_rate": 0.02},
    }
    result = core.train(SOFTMAX_NET, training, x, t, classes=NAMES)
    assert result.model is not None
    return result.model, x, t


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bytes_round_trip(dtype: str) -> None:
    model, x, _ = softmax_model(dtype)
    data = model.to_bytes()
    assert isinstance(data, bytes)
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        assert "weights/0" in npz.files and "normalization/shift" in npz.files
        np.testing.assert_array_equal(npz["weights/1"], model.network.weights[1])
    loaded = Model.from_bytes(data)
    assert loaded.classes == NAMES
    assert loaded.loss == model.loss == "categorical_crossentropy"
    assert loaded.network.dtype == np.dtype(dtype)
    assert loaded.normalizer is not None and loaded.normalizer.method == "standardize"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.predict_labels(x) == model.predict_labels(x)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_json_round_trip(dtype: str) -> None:
    model, x, _ = softmax_model(dtype)
    document = json.loads(json.dumps(model.to_json()))
    assert document["classes"] == NAMES
    assert document["layers"][1]["activation"] == "softmax"
    assert document["normalization"]["method"] == "standardize"
    loaded = Model.from_json(document)
    assert loaded.classes == NAMES
    assert loaded.network.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.predict_labels(x) == model.predict_labels(x)
    # The JSON form doubles as a network spec with initial weights.
    spec = core.parse_network({"input_dim": document["input_dim"], "layers": document["layers"]})
    assert spec.layers[0].weights is not None


def test_json_model_without_weights_is_rejected() -> None:
    model, _, _ = softmax_model()
    document = model.to_json()
    del document["layers"][1]["bias"]
    with pytest.raises(core.SpecError) as info:
        Model.from_json(document)
    assert info.value.field == "layers[1]"


def test_model_without_normalizer_or_classes_round_trips() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3))
    t = x.sum(axis=1, keepdims=True)
    network = {"input_dim": 3, "layers": [{"units": 1, "activation": "identity"}]}
    result = core.train(network, {"epochs": 5}, x, t)
    assert result.model is not None
    for loaded in (
        Model.from_bytes(result.model.to_bytes()),
        Model.from_json(result.model.to_json()),
    ):
        assert loaded.classes is None and loaded.normalizer is None
        assert not loaded.is_classifier
        np.testing.assert_array_equal(loaded.predict(x), result.model.predict(x))


def test_softmax_labels_are_names() -> None:
    model, x, t = softmax_model()
    labels = model.predict_labels(x)
    assert labels == [NAMES[i] for i in t.argmax(axis=1)]
    unnamed = Model(model.network, model.loss, model.normalizer)
    assert unnamed.predict_labels(x) == [int(i) for i in t.argmax(axis=1)]
    # One row given as a flat list.
    assert model.predict_labels(list(x[0])) == [labels[0]]


def test_single_sigmoid_binary_classifier() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 2))
    y = (x[:, 0] - x[:, 1] > 0).astype(float)[:, None]
    network = {
        "input_dim": 2,
        "layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    }
    training = {
        "epochs": 2000,
        "loss": "binary_crossentropy",
        "stop_when_all_correct": True,
        "optimizer": {"name": "adam", "learning_rate": 0.05},
    }
    result = core.train(network, training, x, y, classes=["no", "yes"])
    assert result.stop_reason == "all_correct"
    model = result.model
    assert model is not None and model.is_classifier
    expected = ["yes" if v else "no" for v in y[:, 0]]
    assert model.predict_labels(x) == expected
    outputs = model.predict(x)
    assert model.labels_from_outputs(outputs) == expected
    for loaded in (Model.from_bytes(model.to_bytes()), Model.from_json(model.to_json())):
        assert loaded.classes == ["no", "yes"]
        assert loaded.predict_labels(x) == expected


def test_threshold_is_at_one_half() -> None:
    model, _, _ = softmax_model()
    binary = Model(model.network, "binary_crossentropy", None, ["neg", "pos"])
    outputs = np.array([[0.49999], [0.5], [0.9], [0.0]])
    assert binary.labels_from_outputs(outputs) == ["neg", "pos", "pos", "neg"]


def test_predict_rejects_bad_inputs() -> None:
    model, _, _ = softmax_model()
    for bad, text in (([[1.0, 2.0, 3.0]], "rows of 2"), ([[1.0, float("nan")]], "finite")):
        with pytest.raises(core.SpecError) as info:
            model.predict(bad)
        assert info.value.field == "inputs" and text in info.value.message
