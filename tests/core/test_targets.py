"""Targets: task inference, encoding for training, reading outputs back, the split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from palmerpenguins import load_penguins

from core.errors import SpecError
from core.frame import Column, Frame
from core.targets import (
    TargetEncoder,
    code_text,
    infer_task,
    stratified_split,
    subset_accuracy,
)


def species() -> Frame:
    labels = [str(v) for v in load_penguins()["species"]]
    return Frame([Column.category("species", labels)])


def test_infer_task() -> None:
    assert infer_task(species()) == "classification"
    assert infer_task(Frame.from_arrays([[0, 1], [1, 1], [0, 0]], ["a", "b"])) == "multilabel"
    # one 0/1 column is a number to predict unless classification is asked for
    assert infer_task(Frame.from_arrays([0.0, 1.0, 1.0], ["y"])) == "regression"
    assert infer_task(Frame.from_arrays([[0, 1], [1, 0.5]], ["a", "b"])) == "regression"
    assert infer_task(Frame.from_arrays([[3.5, 1], [1, 2]], ["a", "b"])) == "regression"
    mixed = Frame([Column.category("kind", ["x", "y"]), Column.number("n", [1.0, 2.0])])
    with pytest.raises(SpecError) as caught:
        infer_task(mixed)
    assert caught.value.field == "target"
    assert "kind" in caught.value.message
    with pytest.raises(SpecError):
        infer_task(Frame([]))


def test_classes_from_a_category_column_are_all_its_categories() -> None:
    frame = species()
    encoder = TargetEncoder.fit(frame.take(np.arange(10)), "classification", scale=False)
    # the first ten rows are all Adelie; the classes still come from the whole column
    assert encoder.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert encoder.output_layer() == (3, "softmax", "categorical_crossentropy")


def test_class_codes_become_text() -> None:
    frame = Frame.from_arrays([3.0, 1.0, 2.0, 1.0, 3.0], ["grade"])
    encoder = TargetEncoder.fit(frame, "classification", scale=False)
    assert encoder.classes == ["1", "2", "3"]
    np.testing.assert_array_equal(encoder.indices(frame), [2, 0, 1, 0, 2])
    np.testing.assert_array_equal(
        encoder.encode(frame, 3), [[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]]
    )
    assert [code_text(v) for v in (1.0, -2.0, 2.5, 10.0)] == ["1", "-2", "2.5", "10"]
    # codes sort by number, not by text: 10 comes after 9
    ten = TargetEncoder.fit(Frame.from_arrays([9.0, 10.0], ["g"]), "classification", scale=False)
    assert ten.classes == ["9", "10"]


def test_encode_one_hot_and_one_unit_binary() -> None:
    frame = Frame([Column.category("spam", ["yes", "no", "no", "yes"])])
    encoder = TargetEncoder.fit(frame, "classification", scale=False)
    assert encoder.classes == ["no", "yes"]
    np.testing.assert_array_equal(encoder.encode(frame, 2), [[0, 1], [1, 0], [1, 0], [0, 1]])
    # one unit learns the class named last
    np.testing.assert_array_equal(encoder.encode(frame, 1), [[1], [0], [0], [1]])
    assert encoder.output_layer() == (1, "sigmoid", "binary_crossentropy")
    # a frame that codes its categories otherwise is read by text
    other = Frame([Column.category("spam", ["yes", "yes"])])
    assert other["spam"].values.tolist() == [0, 0]
    np.testing.assert_array_equal(encoder.encode(other, 1), [[1], [1]])
    assert encoder.labels(np.array([[0.2], [0.5], [0.9]])) == ["no", "yes", "yes"]
    assert encoder.labels(np.array([[0.7, 0.3], [0.1, 0.9]])) == ["no", "yes"]
    with pytest.raises(SpecError) as caught:
        encoder.encode(Frame([Column.category("spam", ["no", "maybe"])]), 2)
    assert caught.value.message == "row 1: unknown class 'maybe' in spam (the classes are: no, yes)"


def test_one_class_is_not_enough() -> None:
    with pytest.raises(SpecError) as caught:
        TargetEncoder.fit(Frame([Column.category("y", ["a", "a"])]), "classification", scale=False)
    assert caught.value.field == "target"
    assert "at least 2 classes" in caught.value.message


def test_multilabel() -> None:
    frame = Frame.from_arrays([[0, 1, 1], [1, 0, 0], [1, 1, 0]], ["red", "green", "blue"])
    encoder = TargetEncoder.fit(frame, "multilabel", scale=False)
    assert encoder.classes == ["red", "green", "blue"]
    np.testing.assert_array_equal(encoder.encode(frame, 3), [[0, 1, 1], [1, 0, 0], [1, 1, 0]])
    outputs = np.array([[0.1, 0.5, 0.9], [0.6, 0.49, 0.0]])
    assert encoder.labels(outputs) == [[0, 1, 1], [1, 0, 0]]
    assert encoder.output_layer() == (3, "sigmoid", "binary_crossentropy")
    assert subset_accuracy(outputs, np.array([[0, 1, 1], [1, 1, 0]])) == 0.5
    with pytest.raises(SpecError):
        TargetEncoder.fit(
            Frame.from_arrays([[0, 2], [1, 0]], ["a", "b"]), "multilabel", scale=False
        )


def test_regression_scaling_round_trip() -> None:
    penguins = load_penguins().dropna()
    names = ["body_mass_g", "flipper_length_mm"]
    frame = Frame.from_arrays(penguins[names].to_numpy(dtype=np.float64), names)
    t = np.column_stack([frame[name].values for name in names])
    encoder = TargetEncoder.fit(frame, "regression", scale=True)
    assert encoder.classes is None
    np.testing.assert_allclose(encoder.shift, t.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(encoder.scale, t.std(axis=0), rtol=1e-15)
    encoded = encoder.encode(frame, 2)
    np.testing.assert_allclose(encoded.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(encoded.std(axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(encoder.decode(encoded), t, rtol=1e-14)
    assert encoder.output_layer() == (2, "identity", "mse")
    with pytest.raises(ValueError):
        encoder.labels(encoded)
    again = TargetEncoder.from_json(json.loads(json.dumps(encoder.to_json())))
    np.testing.assert_array_equal(again.encode(frame, 2), encoded)
    # unscaled: the numbers themselves
    plain = TargetEncoder.fit(frame, "regression", scale=False)
    assert plain.shift is None and plain.scale is None
    np.testing.assert_array_equal(plain.encode(frame, 2), t)
    np.testing.assert_array_equal(plain.decode(t), t)
    # a constant column gets scale 1, as the input normalization does
    constant = TargetEncoder.fit(Frame.from_arrays([14.62] * 12, ["c"]), "regression", scale=True)
    assert constant.scale is not None and constant.scale.tolist() == [1.0]


def test_missing_target_names_the_row() -> None:
    frame = Frame.from_arrays([[1.0, 2.0], [3.0, np.nan], [np.nan, 1.0]], ["a", "b"])
    with pytest.raises(SpecError) as caught:
        TargetEncoder.fit(frame, "regression", scale=True)
    assert (caught.value.field, caught.value.message) == (
        "target",
        "row 2: missing target value in a",
    )
    labels = Frame([Column.category("species", ["Adelie", None, "Gentoo"])])
    with pytest.raises(SpecError) as caught:
        TargetEncoder.fit(labels, "classification", scale=False)
    assert caught.value.message == "row 1: missing target value in species"


def test_stratified_split_keeps_each_class_share() -> None:
    labels = np.array([str(v) for v in load_penguins()["species"]])
    train, test = stratified_split(labels, 0.25, seed=7)
    assert len(test) == 86  # round(0.25 * 344)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(344))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    # 152, 68, 124 rows: 38, 17, 31 of them are 0.25 of each exactly
    classes, counts = np.unique(labels[test], return_counts=True)
    assert classes.tolist() == ["Adelie", "Chinstrap", "Gentoo"]
    assert counts.tolist() == [38, 17, 31]
    again = stratified_split(labels, 0.25, seed=7)
    assert np.array_equal(again[1], test)
    assert not np.array_equal(stratified_split(labels, 0.25, seed=8)[1], test)
    # 0.2 of 344 is 68.8 -> 69 rows; shares 30.4, 13.6, 24.8 floor to 30+13+24 = 67 and
    # the two largest remainders (Gentoo 0.8, Chinstrap 0.6) get one more each
    _, test = stratified_split(labels, 0.2, seed=1)
    assert np.unique(labels[test], return_counts=True)[1].tolist() == [30, 14, 25]


def test_plain_split() -> None:
    train, test = stratified_split(None, 0.3, seed=3, n_rows=10)
    assert len(test) == 3 and len(train) == 7
    assert sorted(train.tolist() + test.tolist()) == list(range(10))
    assert np.array_equal(stratified_split(None, 0.3, seed=3, n_rows=10)[1], test)
    with pytest.raises(ValueError):
        stratified_split(None, 0.3, seed=3)
