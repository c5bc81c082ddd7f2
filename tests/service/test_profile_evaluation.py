"""The dataset profile, and held-out scores against scikit-learn's own on the same arrays."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
)

from api.profile import profile
from core.frame import Column, Frame
from worker.evaluation import score

NAN = math.nan


def small() -> Frame:
    return Frame(
        [
            Column.number("age", [1.0, 2.0, 2.0, 4.0, NAN, 11.0]),
            Column.category("color", ["red", "blue", "red", None, "green", "blue"]),
            Column.category("species", ["b", "a", "b", "b", "c", "a"]),
        ]
    )


def test_profile_of_a_small_frame() -> None:
    result = profile(small(), ["species"], "classification", {"rownames": "a row index"})
    json.dumps(result, allow_nan=False)
    assert result["n_rows"] == 6
    assert result["task"] == "classification"
    age, color, species, rownames = result["columns"]
    # observed 1, 2, 2, 4, 11: mean 4, population variance (9+4+4+0+49)/5 = 13.2
    assert age == {
        "name": "age",
        "type": "number",
        "role": "feature",
        "missing": 1,
        "distinct": 4,
        "min": 1.0,
        "max": 11.0,
        "mean": 4.0,
        "std": math.sqrt(13.2),
        "histogram": {
            "edges": [float(v) for v in range(1, 12)],
            "counts": [1, 2, 0, 1, 0, 0, 0, 0, 0, 1],
        },
    }
    assert color == {
        "name": "color",
        "type": "category",
        "role": "feature",
        "missing": 1,
        "distinct": 3,
        "top": [
            {"value": "blue", "count": 2},
            {"value": "red", "count": 2},
            {"value": "green", "count": 1},
        ],
    }
    assert species["role"] == "target"
    assert species["top"][0] == {"value": "b", "count": 3}
    assert rownames == {
        "name": "rownames",
        "type": "ignored",
        "role": "ignored",
        "reason": "a row index",
    }
    assert result["class_balance"] == [
        {"class": "a", "count": 2},
        {"class": "b", "count": 3},
        {"class": "c", "count": 1},
    ]


def test_class_balance_keeps_classes_absent_from_the_rows() -> None:
    frame = small().take(np.array([0, 1, 2]))  # no "c" left, but still a category
    balance = profile(frame, ["species"], "classification", {})["class_balance"]
    assert balance == [
        {"class": "a", "count": 1},
        {"class": "b", "count": 2},
        {"class": "c", "count": 0},
    ]


def test_top_is_ten_categories_by_count_then_text() -> None:
    labels = [f"k{i:02d}" for i in range(12) for _ in range(1 + (i % 3))]  # counts 1, 2, 3, ...
    top = profile(Frame([Column.category("k", labels)]), [], None, {})["columns"][0]["top"]
    assert len(top) == 10
    assert [item["count"] for item in top] == [3, 3, 3, 3, 2, 2, 2, 2, 1, 1]
    assert [item["value"] for item in top[:4]] == ["k02", "k05", "k08", "k11"]
    assert [item["value"] for item in top[8:]] == ["k00", "k03"]


def test_profile_of_numbers_without_values_and_other_tasks() -> None:
    frame = Frame(
        [
            Column.number("empty", [NAN, NAN]),
            Column.number("red", [1.0, 0.0]),
            Column.number("blue", [1.0, 1.0]),
        ]
    )
    result = profile(frame, ["red", "blue"], "multilabel", {})
    json.dumps(result, allow_nan=False)
    empty = result["columns"][0]
    assert empty["missing"] == 2 and empty["distinct"] == 0
    assert empty["mean"] is None and empty["std"] is None and empty["histogram"] is None
    assert result["class_balance"] == [{"class": "red", "count": 1}, {"class": "blue", "count": 2}]
    assert profile(frame, ["red"], "regression", {})["class_balance"] is None
    # a constant column: one bin of width 1 around it, as np.histogram draws it
    constant = profile(frame, [], None, {})["columns"][2]
    assert constant["std"] == 0.0
    assert constant["histogram"]["counts"] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 0]
    assert constant["histogram"]["edges"][0] == 0.5 and constant["histogram"]["edges"][-1] == 1.5


def test_binary_on_one_sigmoid_unit() -> None:
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.8, 0.45, 0.3, 0.9, 0.6, 0.7, 0.55, 0.2, 1.0])
    result = score("classification", ["no", "yes"], p.reshape(-1, 1), y)
    json.dumps(result, allow_nan=False)
    predicted = (p >= 0.5).astype(int)
    assert result["task"] == "classification" and result["n_samples"] == 10
    assert result["accuracy"] == accuracy_score(y, predicted) == 0.8
    assert result["balanced_accuracy"] == balanced_accuracy_score(y, predicted)
    assert result["roc_auc"] == roc_auc_score(y, p)
    # p = 1.0 is clipped to 1 - 1e-15 rather than costing log(0)
    assert result["log_loss"] == pytest.approx(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)), 1e-12)
    precision, recall, f1, support = precision_recall_fscore_support(y, predicted)
    assert [row["class"] for row in result["per_class"]] == ["no", "yes"]
    assert [row["precision"] for row in result["per_class"]] == precision.tolist()
    assert [row["recall"] for row in result["per_class"]] == recall.tolist()
    assert [row["f1"] for row in result["per_class"]] == f1.tolist()
    assert [row["support"] for row in result["per_class"]] == [4, 6]
    assert result["confusion_matrix"] == {
        "labels": ["no", "yes"],
        "matrix": confusion_matrix(y, predicted).tolist(),
    }
    assert result["confusion_matrix"]["matrix"] == [[3, 1], [1, 5]]


def test_softmax_outputs_with_a_class_absent_from_the_rows() -> None:
    classes = ["Adelie", "Chinstrap", "Gentoo", "Macaroni"]
    y = np.array([0, 0, 1, 3, 3, 1, 0])  # no Gentoo among these rows
    rng = np.random.default_rng(5)
    z = rng.normal(size=(7, 4))
    outputs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    result = score("classification", classes, outputs, y)
    predicted = outputs.argmax(axis=1)
    labels = [0, 1, 2, 3]
    matrix = result["confusion_matrix"]["matrix"]
    assert matrix == confusion_matrix(y, predicted, labels=labels).tolist()
    assert len(matrix) == 4 and matrix[2] == [0, 0, 0, 0]
    assert result["per_class"][2]["support"] == 0
    f1 = precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)[2]
    assert [row["f1"] for row in result["per_class"]] == f1.tolist()
    assert result["accuracy"] == accuracy_score(y, predicted)
    assert result["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, predicted))
    assert result["log_loss"] == pytest.approx(log_loss(y, outputs, labels=labels), rel=1e-12)
    assert result["roc_auc"] is None


def test_multilabel_scores() -> None:
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    outputs = np.array([[0.9, 0.2, 0.7], [0.1, 0.4, 0.2], [0.8, 0.6, 0.1], [0.3, 0.1, 0.8]])
    result = score("multilabel", ["red", "green", "blue"], outputs, y)
    predicted = (outputs >= 0.5).astype(int)
    assert result["subset_accuracy"] == result["accuracy"] == accuracy_score(y, predicted) == 0.75
    assert result["hamming_loss"] == hamming_loss(y, predicted) == 1 / 12
    f1 = f1_score(y, predicted, average=None, zero_division=0).tolist()
    assert [row["f1"] for row in result["per_label"]] == f1
    assert [row["label"] for row in result["per_label"]] == ["red", "green", "blue"]
    assert [row["support"] for row in result["per_label"]] == [2, 2, 2]
    assert result["n_samples"] == 4 and result["task"] == "multilabel"


def test_regression_scores() -> None:
    y = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    outputs = np.array([[1.5, 12.0], [2.0, 18.0], [2.0, 33.0], [4.5, 40.0]])
    result = score("regression", None, outputs, y)
    assert result["mae"] == mean_absolute_error(y, outputs)
    rmse = np.mean([math.sqrt(mean_squared_error(y[:, k], outputs[:, k])) for k in range(2)])
    assert result["rmse"] == pytest.approx(rmse, rel=1e-15)
    assert result["r2"] == r2_score(y, outputs)
    assert result["n_samples"] == 4
    # one target as a flat array; R² of one row is undefined: None, not NaN
    one = score("regression", None, np.array([[2.0]]), np.array([3.0]))
    assert (one["mae"], one["rmse"], one["r2"]) == (1.0, 1.0, None)
    json.dumps(one, allow_nan=False)
    overflowed = score("regression", None, np.array([[np.inf], [1.0]]), np.array([1.0, 2.0]))
    assert overflowed["mae"] is None and overflowed["n_samples"] == 2


def test_the_std_of_huge_values_is_a_number() -> None:
    frame = Frame([Column.number("y", [2.0, 1e300, 6.0]), Column.number("x", [1.0, 2.0, 3.0])])
    column = profile(frame, ["y"], "regression", {})["columns"][0]
    assert column["std"] == pytest.approx(np.std([2.0 / 1e300, 1.0, 6.0 / 1e300]) * 1e300)


@pytest.mark.parametrize(
    "values", [[1.0, 1.0000000000000002], [1e17, 1e17], [1e308, 1e308], [-1e308, 1e308]]
)
def test_a_range_without_ten_bins_has_no_histogram(values: list[float]) -> None:
    """Too narrow for its magnitude (NumPy cannot cut it into 10 bins) or too wide to
    subtract: described without a histogram, not refused."""
    column = profile(Frame([Column.number("x", values)]), [], None, {})["columns"][0]
    assert column["histogram"] is None
    assert column["min"] == min(values) and column["max"] == max(values)
