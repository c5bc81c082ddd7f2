"""core.frame: number columns of float64 or float32, and what tells them apart."""

from __future__ import annotations

import numpy as np
import pytest

from core.frame import CATEGORY, NUMBER, Column, Frame


def test_number_keeps_float32_and_widens_the_rest() -> None:
    single = Column.number("a", np.array([0.5, np.nan], dtype=np.float32))
    assert single.values.dtype == np.float32
    assert single.missing.tolist() == [False, True]
    for values in ([1, 2], np.array([1, 2], dtype=np.int32), np.array([0.5], dtype=np.float16)):
        assert Column.number("a", values).values.dtype == np.float64
    assert Frame.from_arrays(np.ones((3, 2), dtype=np.float32))["x1"].values.dtype == np.float32
    assert Frame.from_arrays([[1, 2], [3, 4]])["x0"].values.dtype == np.float64


def test_a_number_column_holds_float64_or_float32_only() -> None:
    with pytest.raises(ValueError, match="float64 or float32"):
        Column("a", NUMBER, np.array([1.0], dtype=np.float16))
    with pytest.raises(ValueError, match="int64 codes"):
        Column("a", CATEGORY, np.array([0.0], dtype=np.float32), ("x",))


def test_digest_tells_float32_from_float64_of_the_same_values() -> None:
    values = [0.5, 1.0, np.nan]
    single = Frame([Column.number("a", np.array(values, dtype=np.float32))])
    double = Frame([Column.number("a", values)])
    assert np.array_equal(single["a"].values, double["a"].values, equal_nan=True)
    assert single.sha256() != double.sha256()
    assert single.sha256() == Frame([Column.number("a", np.array(values, np.float32))]).sha256()


def test_float64_digest_is_unchanged_by_float32_support() -> None:
    # The digest of stored datasets from before float32 columns existed.
    frame = Frame([Column.number("a", [1.0, 2.5]), Column.category("c", ["x", None])])
    assert frame.sha256() == "5d1a416c707bfde3d4125994cb159f6e80c52b7b7aaa088dbca1e8ee1c9b804b"


def test_float32_frames_round_trip_through_bytes_and_take() -> None:
    frame = Frame(
        [
            Column.number("a", np.array([0.1, np.nan, 3.0], dtype=np.float32)),
            Column.number("b", [0.1, 2.0, np.nan]),
        ]
    )
    back = Frame.from_bytes(frame.to_bytes())
    assert [c.values.dtype for c in back] == [np.float32, np.float64]
    assert back.sha256() == frame.sha256()
    assert back.take([2, 0])["a"].values.dtype == np.float32
    np.testing.assert_array_equal(back.take([2, 0])["a"].values, np.float32([3.0, 0.1]))
