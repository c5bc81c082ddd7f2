"""Input normalization against scikit-learn's scalers, constant columns included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import datasets
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import core
from core.normalize import Normalizer

CASES = Path(__file__).parent / "cases"
# Issue case c12: a calibration column that is 14.62 in every row.
C12 = np.loadtxt(CASES / "c12_constant_column.csv", delimiter=",", skiprows=1)

SCALERS: dict[str, Any] = {"standardize": StandardScaler, "minmax": MinMaxScaler}


def real_tables() -> dict[str, np.ndarray]:
    # digits has all-zero pixel columns; the others have columns on very different scales.
    tables = {
        name: loader(return_X_y=True)[0]
        for name, loader in {
            "digits": datasets.load_digits,
            "diabetes": datasets.load_diabetes,
            "wine": datasets.load_wine,
            "breast_cancer": datasets.load_breast_cancer,
        }.items()
    }
    tables["c12"] = C12[:, :2]
    return tables


TABLES = real_tables()


@pytest.mark.parametrize("method", list(SCALERS))
@pytest.mark.parametrize("name", list(TABLES))
def test_same_transform_as_sklearn(method: str, name: str) -> None:
    x = TABLES[name]
    ours = Normalizer.fit(method, x)
    scaler = SCALERS[method]().fit(x)
    np.testing.assert_allclose(ours.apply(x), scaler.transform(x), rtol=1e-10, atol=1e-12)
    # Unseen values too: that is where a tiny scale blew up.
    shifted = x + 0.01
    np.testing.assert_allclose(
        ours.apply(shifted), scaler.transform(shifted), rtol=1e-10, atol=1e-12
    )
    if method == "standardize":
        np.testing.assert_allclose(ours.scale, scaler.scale_, rtol=1e-12)
    else:
        np.testing.assert_allclose(1.0 / ours.scale, scaler.scale_, rtol=1e-12)


def test_digits_constant_pixels_get_scale_one() -> None:
    x = TABLES["digits"]
    constant = x.min(axis=0) == x.max(axis=0)
    assert constant.sum() == 3  # pixels that are 0 in every image
    for method in SCALERS:
        assert np.all(Normalizer.fit(method, x).scale[constant] == 1.0)


@pytest.mark.parametrize("method", list(SCALERS))
def test_constant_column_of_c12(method: str) -> None:
    x = C12[:, :2]
    norm = Normalizer.fit(method, x)
    assert norm.scale[1] == 1.0
    # 14.63 is 0.01 away from every training value: it normalizes to 0.01, not 2.8e12.
    assert norm.apply(np.array([[17.5, 14.63]]))[0, 1] == pytest.approx(0.01, abs=1e-12)


@pytest.mark.parametrize(
    ("column", "constant"),
    [
        # n copies of m: computed variance up to (n m eps)^2, still a constant column
        (np.full(1000, 1e6 / 3), True),
        (np.full(7, -2.5e-3), True),
        # tiny but real spread: kept, as StandardScaler keeps it
        (np.array([0.0, 1e-10, 2e-10, 3e-10]), False),
        (np.array([1.0, 1.0 + 1e-12, 1.0, 1.0 + 1e-12]), False),
    ],
)
def test_near_constant_rule_matches_sklearn(column: np.ndarray, constant: bool) -> None:
    x = column.reshape(-1, 1)
    ours = Normalizer.fit("standardize", x).scale[0]
    theirs = StandardScaler().fit(x).scale_[0]
    assert (ours == 1.0) == constant
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_prediction_with_a_new_calibration_value_is_sane() -> None:
    x, t = C12[:, :2], C12[:, 2:]
    network = {"input_dim": 2, "layers": [{"units": 1, "activation": "identity"}]}
    training = {
        "epochs": 2000,
        "batch_size": "full",
        "normalize": "standardize",
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
    }
    result = core.train(network, training, x, t)
    assert result.model is not None
    # yield = 0.5 temp + 1 exactly; the calibration column carries no information.
    assert result.model.predict([[17.5, 14.62]])[0, 0] == pytest.approx(9.75, abs=1e-6)
    # Before the fix: -1.5e13. The unused calibration weight (|w| < 1.5) moves it by 0.01 w.
    assert result.model.predict([[17.5, 14.63]])[0, 0] == pytest.approx(9.75, abs=0.015)
