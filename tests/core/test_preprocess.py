"""Input preprocessing against scikit-learn's imputer, scaler and one-hot encoder,
on the Palmer penguins (missing numbers, a missing sex, three islands)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import core
from core.errors import SpecError
from core.frame import Column, Frame
from core.normalize import Normalizer
from core.preprocess import (
    Preprocessor,
    PreprocessSpec,
    UnknownCategory,
    parse_preprocess,
)

NUMBERS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
CATEGORIES = ["island", "sex"]
# the columns in the order the preprocessor is fitted with: kinds interleaved on purpose
FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "sex", "flipper_length_mm",
            "body_mass_g", "year"]  # fmt: skip


def as_frame(table: pd.DataFrame) -> Frame:
    """Typed columns from pandas: float64 with NaN, or labels with None for missing."""
    columns = []
    for name in table.columns:
        series = table[name]
        if pd.api.types.is_numeric_dtype(series):
            columns.append(Column.number(name, series.to_numpy(dtype=np.float64)))
        else:
            columns.append(Column.category(name, [None if pd.isna(v) else str(v) for v in series]))
    return Frame(columns)


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load_penguins()[FEATURES]


def split(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows never see Torgersen (so it is an unseen island in the test rows);
    both sides have missing numbers and a missing sex."""
    row = np.arange(len(table))
    test = (table["island"] == "Torgersen").to_numpy() | (row % 4 == 0)
    return table[~test], table[test]


def objects(table: pd.DataFrame, names: list[str]) -> np.ndarray:
    """Category columns as scikit-learn reads them: objects, None for missing."""
    return np.array(
        [[None if pd.isna(v) else str(v) for v in table[name]] for name in names], dtype=object
    ).T


def sklearn_matrix(
    train: pd.DataFrame, test: pd.DataFrame, imputer: SimpleImputer, scale: bool
) -> tuple[np.ndarray, list[str]]:
    """The expected matrix of ``test`` and its column names, in the preprocessor's order:
    per number column its scaled imputed value then its indicator; per category column
    its one-hot columns (a missing value is a category of its own, placed last)."""
    numbers = [name for name in FEATURES if name in NUMBERS]
    categories = [name for name in FEATURES if name in CATEGORIES]
    imputer.fit(train[numbers].to_numpy())
    imputed_train = imputer.transform(train[numbers].to_numpy())
    imputed_test = imputer.transform(test[numbers].to_numpy())
    k = len(numbers)
    values_test = imputed_test[:, :k]
    if scale:
        scaler = StandardScaler().fit(imputed_train[:, :k])
        values_test = scaler.transform(values_test)
    with_indicator = list(imputer.indicator_.features_)
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    encoder.fit(objects(train, categories))
    one_hot = encoder.transform(objects(test, categories))
    blocks, names, start = [], [], 0
    for name in FEATURES:
        if name in NUMBERS:
            j = numbers.index(name)
            blocks.append(values_test[:, j : j + 1])
            names.append(name)
            if j in with_indicator:
                place = k + with_indicator.index(j)
                blocks.append(imputed_test[:, place : place + 1])
                names.append(f"{name}_missing")
        else:
            cats = encoder.categories_[categories.index(name)]
            start = sum(len(c) for c in encoder.categories_[: categories.index(name)])
            blocks.append(one_hot[:, start : start + len(cats)])
            names.extend(f"{name}={'<missing>' if c is None else c}" for c in cats)
    return np.hstack(blocks), names


@pytest.mark.parametrize("impute", ["median", "mean", "constant"])
def test_matches_sklearn_imputer_scaler_and_one_hot(penguins: pd.DataFrame, impute: str) -> None:
    train, test = split(penguins)
    spec = PreprocessSpec(
        impute=impute, fill_value=-7.5, missing_indicator=True, normalize="standardize"
    )
    prep = Preprocessor.fit(as_frame(train), spec)
    imputer = SimpleImputer(strategy=impute, fill_value=-7.5, add_indicator=True)
    expected, names = sklearn_matrix(train, test, imputer, scale=True)

    assert prep.output_names == names
    # 5 numbers, 4 indicators (year is never missing), 2 islands, 2 sexes and a missing one
    assert prep.width == expected.shape[1] == 14
    assert prep.input_names == FEATURES
    assert prep.kinds == {name: "category" if name in CATEGORIES else "number" for name in FEATURES}
    got = prep.transform(as_frame(test))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # Torgersen rows: no island column lights up; training had no such island
    torgersen = (test["island"] == "Torgersen").to_numpy()
    island = [prep.output_names.index(f"island={c}") for c in ("Biscoe", "Dream")]
    assert torgersen.sum() == 52
    assert not got[torgersen][:, island].any()
    # a missing sex is its own column, since training rows had missing sexes too
    missing_sex = test["sex"].isna().to_numpy()
    assert missing_sex.sum() == 7
    np.testing.assert_array_equal(got[:, prep.output_names.index("sex=<missing>")], missing_sex)


def test_without_indicator_or_scaling(penguins: pd.DataFrame) -> None:
    train, test = split(penguins)
    prep = Preprocessor.fit(as_frame(train), PreprocessSpec())
    expected, names = sklearn_matrix(
        train, test, SimpleImputer(strategy="median", add_indicator=True), scale=False
    )
    keep = [i for i, name in enumerate(names) if not name.endswith("_missing")]
    assert prep.output_names == [names[i] for i in keep]
    np.testing.assert_allclose(prep.transform(as_frame(test)), expected[:, keep], atol=1e-12)


def test_unknown_category_error(penguins: pd.DataFrame) -> None:
    train, test = split(penguins)
    prep = Preprocessor.fit(as_frame(train), PreprocessSpec(unknown="error"))
    with pytest.raises(UnknownCategory) as caught:
        prep.transform(as_frame(test))
    assert caught.value.field == "island"
    assert caught.value.value == "Torgersen"
    assert caught.value.message == "unknown category 'Torgersen' (the model knows: Biscoe, Dream)"
    assert isinstance(caught.value, SpecError)
    # the known islands still transform
    known = test[test["island"] != "Torgersen"]
    assert prep.transform(as_frame(known)).shape == (len(known), prep.width)


def test_missing_category_unseen_in_training_is_all_zeros() -> None:
    train = Frame([Column.category("sex", ["male", "female", "male"])])
    test = Frame([Column.category("sex", [None, "female"])])
    for unknown in ("ignore", "error"):
        prep = Preprocessor.fit(train, PreprocessSpec(unknown=unknown))
        assert prep.output_names == ["sex=female", "sex=male"]
        np.testing.assert_array_equal(prep.transform(test), [[0, 0], [1, 0]])


def test_categories_compared_by_text_not_code() -> None:
    train = Frame([Column.category("island", ["Torgersen", "Biscoe", "Dream"])])
    prep = Preprocessor.fit(train, PreprocessSpec())
    # A predict frame codes its own categories: here Dream is code 0 and Zed is unseen.
    body = Frame([Column.category("island", ["Dream", "Zed", "Torgersen", "Dream"])])
    assert body["island"].categories == ("Dream", "Torgersen", "Zed")
    np.testing.assert_array_equal(
        prep.transform(body), [[0, 1, 0], [0, 0, 0], [0, 0, 1], [0, 1, 0]]
    )


def test_categories_are_those_of_the_training_rows(penguins: pd.DataFrame) -> None:
    # take() keeps the column's category list; only the islands in these rows count
    frame = as_frame(penguins).take(np.flatnonzero(penguins["island"] != "Dream"))
    assert frame["island"].categories == ("Biscoe", "Dream", "Torgersen")
    prep = Preprocessor.fit(frame.select(["island"]), PreprocessSpec())
    assert prep.output_names == ["island=Biscoe", "island=Torgersen"]


def test_json_round_trip_transforms_identically(penguins: pd.DataFrame) -> None:
    train, test = split(penguins)
    spec = PreprocessSpec(impute="mean", missing_indicator=True, normalize="minmax")
    prep = Preprocessor.fit(as_frame(train), spec)
    data = json.loads(json.dumps(prep.to_json(), allow_nan=False))
    again = Preprocessor.from_json(data)
    assert again.spec == spec
    assert again.output_names == prep.output_names
    assert again.kinds == prep.kinds
    for dtype in (np.float64, np.float32):
        np.testing.assert_array_equal(
            again.transform(as_frame(test), dtype), prep.transform(as_frame(test), dtype)
        )


def numbers_only() -> tuple[np.ndarray, np.ndarray]:
    table = load_penguins()[NUMBERS].dropna()
    # C order, as arrays read from JSON bodies are: NumPy's sums (and so a mean) depend on
    # the memory layout, and the preprocessor stacks its columns in C order.
    x = np.ascontiguousarray(table.to_numpy(dtype=np.float64))
    return x[:250], x[250:]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numbers_without_missing_are_passed_through_bit_for_bit(dtype: Any) -> None:
    x_train, x_test = numbers_only()
    prep = Preprocessor.fit(Frame.from_arrays(x_train, NUMBERS), PreprocessSpec())
    got = prep.transform(Frame.from_arrays(x_test, NUMBERS), dtype)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, x_test.astype(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", ["standardize", "minmax"])
def test_normalization_is_the_normalizers_exactly(method: str, dtype: Any) -> None:
    x_train, x_test = numbers_only()
    prep = Preprocessor.fit(Frame.from_arrays(x_train, NUMBERS), PreprocessSpec(normalize=method))
    got = prep.transform(Frame.from_arrays(x_test, NUMBERS), dtype)
    np.testing.assert_array_equal(got, Normalizer.fit(method, x_train).apply(x_test, dtype))


def test_the_trainers_normalized_inputs_are_the_same_numbers() -> None:
    # float64: a float32 Trainer fits its normalization on inputs already cast to float32,
    # while the preprocessor fits on the float64 columns (its fit knows no dtype).
    x_train, _ = numbers_only()
    t = (x_train[:, :1] > 45).astype(np.float64)
    trainer = core.Trainer(
        {"input_dim": 5, "layers": [{"units": 1, "activation": "sigmoid"}]},
        {"epochs": 1, "normalize": "standardize"},
        x_train,
        t,
    )
    prep = Preprocessor.fit(
        Frame.from_arrays(x_train, NUMBERS), PreprocessSpec(normalize="standardize")
    )
    np.testing.assert_array_equal(prep.transform(Frame.from_arrays(x_train, NUMBERS)), trainer.x)


def test_a_column_missing_in_every_training_row() -> None:
    nan = np.nan
    train = np.array([[nan, 1.0], [nan, 2.0], [nan, 4.0], [nan, 8.0]])
    test = np.array([[5.0, nan], [nan, 3.0]])
    for impute in ("median", "mean"):
        prep = Preprocessor.fit(
            Frame.from_arrays(train, ["a", "b"]),
            PreprocessSpec(impute=impute, missing_indicator=True),
        )
        imputer = SimpleImputer(strategy=impute, add_indicator=True, keep_empty_features=True)
        expected = imputer.fit(train).transform(test)
        # sklearn: a, b, a's indicator; here a, a_missing, b (b had no missing value)
        assert prep.output_names == ["a", "a_missing", "b"]
        got = prep.transform(Frame.from_arrays(test, ["a", "b"]))
        np.testing.assert_array_equal(got, expected[:, [0, 2, 1]])
        fill_b = 3.0 if impute == "median" else 3.75
        np.testing.assert_array_equal(got, [[5.0, 0.0, fill_b], [0.0, 1.0, 3.0]])
    # standardizing the all-zero training column: scale 1, so new values pass unscaled
    prep = Preprocessor.fit(
        Frame.from_arrays(train, ["a", "b"]), PreprocessSpec(normalize="standardize")
    )
    assert prep.transform(Frame.from_arrays(test, ["a", "b"]))[0, 0] == 5.0


def test_columns_by_name_and_kind() -> None:
    train = Frame([Column.number("age", [1.0, 2.0]), Column.category("sex", ["f", "m"])])
    prep = Preprocessor.fit(train, PreprocessSpec())
    reordered = Frame(
        [
            Column.category("sex", ["m"]),
            Column.number("extra", [9.0]),
            Column.number("age", [7.0]),
        ]
    )
    np.testing.assert_array_equal(prep.transform(reordered), [[7.0, 0.0, 1.0]])
    with pytest.raises(SpecError) as caught:
        prep.transform(Frame([Column.number("age", [1.0])]))
    assert (caught.value.field, caught.value.message) == ("sex", "missing feature")
    with pytest.raises(SpecError) as caught:
        prep.transform(Frame([Column.category("age", ["old"]), Column.category("sex", ["f"])]))
    assert caught.value.field == "age"
    assert caught.value.message == "expected numbers, got categories"


def test_parse_preprocess() -> None:
    assert parse_preprocess(None) == PreprocessSpec()
    assert parse_preprocess(
        {"impute": "constant", "fill_value": -1, "missing_indicator": True,
         "normalize": "minmax", "unknown": "error"}
    ) == PreprocessSpec("constant", -1.0, True, "minmax", "error")  # fmt: skip
    bad = {
        "nope": ("training.preprocess.nope", "unknown field"),
        "impute": ("training.preprocess.impute", "expected one of median, mean, constant"),
        "normalize": ("training.preprocess.normalize", "expected one of standardize, minmax"),
        "unknown": ("training.preprocess.unknown", "expected one of ignore, error"),
        "missing_indicator": ("training.preprocess.missing_indicator", "expected true or false"),
        "fill_value": ("training.preprocess.fill_value", "expected a number"),
    }
    for key, (field, start) in bad.items():
        with pytest.raises(SpecError) as caught:
            parse_preprocess({key: "bogus"})
        assert caught.value.field == field
        assert caught.value.message.startswith(start), caught.value.message
    with pytest.raises(SpecError) as caught:
        parse_preprocess([], "preprocess")
    assert caught.value.field == "preprocess"
