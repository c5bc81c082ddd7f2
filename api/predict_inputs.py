"""What predict and evaluate bodies hold, as a table of the model's input columns.

Every body form (rows of numbers, TensorFlow Serving's instances and columns,
CSV, Parquet, ``.npy``) goes through the one reader (:mod:`api.tables`) into a
:class:`core.frame.Frame`, read with the types the model was trained on; the
model's preprocessing then encodes it as in training.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

import core
from core.frame import NUMBER, Column, Frame, unmatched

from .bodies import read_body
from .decorators import NpyBody, TableBody
from .errors import ApiError, invalid, limit_exceeded
from .schemas import PredictCsvQuery, PredictRequest
from .services import state
from .tables import (
    ReadOptions,
    csv_rows_at_least,
    read_columns,
    read_records,
)


def feature_error(field: str, message: str) -> ApiError:
    # A 400, as clients of TensorFlow Serving and Vertex AI expect for a row that
    # does not match the model's named features.
    return ApiError(400, "feature_mismatch", message, field)


def input_columns(model: core.Model) -> tuple[list[str], dict[str, str]]:
    """The model's input column names, in order, and the type of each."""
    if model.preprocessor is not None:
        names = list(model.preprocessor.input_names)
        return names, dict(model.preprocessor.kinds)
    names = model.feature_names or [f"x{i}" for i in range(model.input_dim)]
    return names, dict.fromkeys(names, NUMBER)


def _rows(rows: Sequence[Sequence[float]], names: list[str], field: str) -> Frame:
    for index, row in enumerate(rows):
        if len(row) != len(names):
            raise invalid(
                f"{field}[{index}]", f"the model takes {len(names)} inputs per row, got {len(row)}"
            )
    array = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    return Frame.from_arrays(array, names)


def _npy(array: np.ndarray[Any, Any], names: list[str]) -> Frame:
    width = len(names)
    if array.ndim != 2 or array.shape[1] != width or array.dtype.kind not in "fiu":
        raise invalid(
            "inputs",
            f"expected a 2-D numeric array with {width} columns, "
            f"got shape {array.shape} of {array.dtype}",
        )
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        raise invalid(f"inputs[{row}]", "must be finite (no NaN or Infinity)")
    return Frame.from_arrays(array, names)


def _by_name(
    frame: Frame, names: list[str], ignored: Collection[str], where: str, line: str = ""
) -> Frame:
    """The model's columns of ``frame``, in input order (400 for a missing or unknown one);
    ``where`` prefixes the field, ``line`` the message."""
    unknown, missing = unmatched(frame.names, names, ignored)
    if unknown is not None:
        raise feature_error(
            f"{where}{unknown}",
            f"{line}unknown column {unknown!r}; the model takes {_listed(names)}",
        )
    if missing is not None:
        raise feature_error(f"{where}{missing}", f"{line}missing feature column {missing!r}")
    return frame.select(names)


def _listed(names: Sequence[str], most: int = 20) -> str:
    """Names for a message: a model of 100,000 columns does not list them all."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown}, ... ({len(names)} columns)"


def _named(model: core.Model, field: str) -> None:
    if model.feature_names is None:
        raise invalid(
            field,
            "this model's dataset had no column names; send each row as a list of numbers "
            "in input order",
        )


def table_frame(
    body: TableBody, model: core.Model, ignored: Collection[str], with_targets: bool = False
) -> Frame:
    """A CSV or Parquet body as the model's input columns (and, ``with_targets``,
    the ``ignored`` target columns kept)."""
    names, kinds = input_columns(model)
    params = body.params
    if not with_targets and not body.is_parquet:
        # A predict body far past the row limit is refused before it is read.
        limit = state().settings.max_predict_rows
        rows = csv_rows_at_least(body.raw)
        if rows > limit:
            raise limit_exceeded(
                "inputs",
                f"at most {limit} rows per request (BACKPROP_MAX_PREDICT_ROWS), got {rows} or more",
            )
    header = params.header if isinstance(params, PredictCsvQuery) else "present"
    read = read_body(body, header=header, names=tuple(names), schema=kinds, allow_empty=True)
    frame = read.frame
    if frame.names != names and model.feature_names is None:
        raise feature_error(
            "header",
            "line 1 is a header, but this model's dataset had no column names, so its "
            "columns cannot be matched by name; send rows of numbers in the model's input "
            "order without a header, or pass ?header=absent if the first row is data",
        )
    selected = _by_name(frame, names, ignored, "", "" if body.is_parquet else "line 1: ")
    if with_targets:
        # ``ignored`` holds the targets first; other skipped columns stay out.
        kept = [name for name in ignored if name in frame and name not in selected]
        return Frame([*selected, *frame.select(kept)])
    return selected


def json_frame(payload: PredictRequest, model: core.Model, ignored: Collection[str]) -> Frame:
    """``inputs`` (rows or columns) or ``instances`` (lists or objects) as input columns."""
    names, kinds = input_columns(model)
    if (payload.inputs is None) == (payload.instances is None):
        raise invalid("inputs", "send the rows as either inputs or instances")
    options = ReadOptions(schema=kinds, allow_empty=True)
    if isinstance(payload.inputs, dict):
        _named(model, "inputs")
        read = read_columns(payload.inputs, options, field="inputs")
        return _by_name(read.frame, names, ignored, "inputs.")
    if payload.inputs is not None:
        if not payload.inputs:
            return empty_frame(names, kinds)
        return _number_rows(model, payload.inputs, names, "inputs")
    instances = payload.instances
    assert instances is not None
    if not instances:
        return empty_frame(names, kinds)
    rows = [row for row in instances if isinstance(row, list)]
    if len(rows) == len(instances):
        return _number_rows(model, rows, names, "instances")
    objects = [isinstance(row, dict) for row in instances]
    if not all(objects):
        index = objects.index(False)
        raise invalid(
            f"instances[{index}]", "send every instance as an object, or every one as a list"
        )
    _named(model, "instances[0]")
    known, skipped = set(names), set(ignored)
    for index, instance in enumerate(instances):
        assert isinstance(instance, dict)
        # Every name present and no other: as many keys as names, all known, is the
        # common case, checked without looking for each name in turn.
        if len(instance) == len(known) and known.issuperset(instance):
            continue
        unknown, missing = unmatched(instance, names, skipped)
        if missing is not None:
            raise feature_error(f"instances[{index}].{missing}", "missing feature")
        if unknown is not None:
            raise feature_error(
                f"instances[{index}].{unknown}",
                f"unknown feature; the model takes {_listed(names)}",
            )
    records = [row for row in instances if isinstance(row, dict)]
    return read_records(records, options, field="instances").frame.select(names)


def empty_frame(names: list[str], kinds: dict[str, str]) -> Frame:
    """No rows, with the model's columns: an empty batch answers with no rows."""
    return Frame(
        [
            Column.number(name, []) if kinds[name] == NUMBER else Column.category(name, [])
            for name in names
        ]
    )


def _number_rows(
    model: core.Model, rows: Sequence[Sequence[float]], names: list[str], field: str
) -> Frame:
    if not model.takes_numbers_only:
        raise invalid(
            field,
            "this model takes named columns, some of them categories; send rows as objects "
            f"keyed by {', '.join(names)}",
        )
    return _rows(rows, names, field)


def npy_frame(body: NpyBody, model: core.Model) -> Frame:
    names, _ = input_columns(model)
    if not model.takes_numbers_only:
        raise invalid("inputs", "this model takes categories; send CSV, Parquet or JSON objects")
    return _npy(body.array, names)


def encoded(model: core.Model, frame: Frame, rows: str = "inputs") -> np.ndarray[Any, Any]:
    """The model's outputs for ``frame`` (rows x outputs, in the targets' units).

    A model stored before typed tables takes numbers only, without missing values.
    ``rows``: the body's field the rows came in, which errors name (422).
    """
    if frame.n_rows == 0:
        return np.zeros((0, model.network.output_dim))
    _check_range(model, frame, rows)
    if model.preprocessor is None:
        x = np.column_stack([column.values for column in frame])
        if np.isnan(x).any():
            row, col = (int(i) for i in np.argwhere(np.isnan(x))[0])
            raise invalid(
                f"{rows}[{row}].{frame.names[col]}",
                "missing value; this model was trained before missing values were imputed",
            )
        return model.predict(x)
    try:
        return model.predict(frame)
    except core.SpecError as exc:
        # An unseen category under unknown="error": a 400 naming the column and value.
        raise feature_error(exc.field, exc.message) from None


def _check_range(model: core.Model, frame: Frame, rows: str) -> None:
    """A float32 model's inputs within float32's range: beyond it a value is infinite in
    the network's arrays, and the outputs are not numbers."""
    dtype = np.dtype(model.network.dtype)
    if dtype.kind != "f" or dtype.itemsize >= 8:
        return
    limit = float(np.finfo(dtype).max)
    for column in frame:
        if column.kind != NUMBER or column.values.dtype.itemsize <= dtype.itemsize:
            continue
        with np.errstate(invalid="ignore"):
            beyond = np.abs(column.values) > limit
        if beyond.any():
            row = int(np.flatnonzero(beyond)[0])
            raise invalid(
                f"{rows}[{row}].{column.name}",
                f"{column.values[row]:g} is beyond the range of this {dtype} model (±{limit:.4g})",
            )


def output_names(model: core.Model, target_names: Sequence[str]) -> list[str] | None:
    """What each output column is: a class, a label or a target column."""
    return model.output_names(target_names)
