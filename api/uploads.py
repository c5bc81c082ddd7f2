"""Turning what clients send (JSON lists, CSV text, .npy arrays) into float64 arrays:
datasets to store, and rows to predict.

Class labels become one-hot columns with the classes sorted. Every problem is
an :class:`ApiError` naming the field (or CSV column) at fault, and the line and
column of a CSV cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

import core
from store import Dataset
from store import queries as q

from .errors import ApiError, invalid, limit_exceeded
from .schemas import DatasetCsvQuery, DatasetData, HeaderRule

Array = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class Table:
    inputs: Array
    targets: Array
    classes: list[str] | None = None
    feature_names: list[str] | None = None
    target_names: list[str] | None = None

    @property
    def n_samples(self) -> int:
        return int(self.inputs.shape[0])


def store(session: Session, name: str, table: Table, owner: str) -> Dataset:
    return q.add_dataset(
        session,
        name,
        table.inputs,
        table.targets,
        classes=table.classes,
        feature_names=table.feature_names,
        target_names=table.target_names,
        owner=owner,
    )


def check_cells(n_rows: int, n_columns: int, limit: int, field: str | None) -> None:
    if n_rows * n_columns > limit:
        raise limit_exceeded(
            field,
            f"the dataset has {n_rows} rows x {n_columns} columns = {n_rows * n_columns} "
            f"values; the limit is {limit} (BACKPROP_MAX_DATASET_CELLS)",
        )


def _rectangular(rows: Sequence[Sequence[float]], field: str) -> Array:
    width = len(rows[0])
    for index, row in enumerate(rows):
        if len(row) != width:
            raise invalid(
                f"{field}[{index}]", f"ragged rows: expected {width} values, got {len(row)}"
            )
    return np.array(rows, dtype=np.float64).reshape(len(rows), width)


def _one_hot(labels: Sequence[str], classes: list[str]) -> Array:
    index = {name: i for i, name in enumerate(classes)}
    out = np.zeros((len(labels), len(classes)))
    out[np.arange(len(labels)), [index[label] for label in labels]] = 1.0
    return out


def _classes(labels: Sequence[str], field: str) -> list[str]:
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise invalid(field, f"class labels need at least 2 distinct classes, got {classes}")
    return classes


def from_json(data: DatasetData, max_cells: int, prefix: str = "") -> Table:
    """A table from a validated JSON dataset; ``prefix`` goes before field names."""
    inputs = _rectangular(data.inputs, f"{prefix}inputs")
    n, n_features = inputs.shape
    raw = data.targets
    if len(raw) != n:
        raise invalid(f"{prefix}targets", f"expected {n} rows (one per input row), got {len(raw)}")
    classes = None
    if isinstance(raw[0], str):
        labels: list[str] = raw
        classes = _classes(labels, f"{prefix}targets")
        check_cells(n, n_features + len(classes), max_cells, f"{prefix}inputs")
        targets = _one_hot(labels, classes)
        n_target_names = 1
    else:
        check_cells(n, n_features, max_cells, f"{prefix}inputs")
        if isinstance(raw[0], list):
            targets = _rectangular(raw, f"{prefix}targets")
        else:
            targets = np.array(raw, dtype=np.float64).reshape(-1, 1)
        check_cells(n, n_features + targets.shape[1], max_cells, f"{prefix}inputs")
        n_target_names = targets.shape[1]
    # Names pick columns (CSV headers, instance objects): one named twice would feed
    # the same value to both.
    for field, names in (
        ("feature_names", data.feature_names),
        ("target_names", data.target_names),
    ):
        if names is not None and len(set(names)) != len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise invalid(f"{prefix}{field}", f"{twice!r} is named twice")
    if data.feature_names is not None and len(data.feature_names) != n_features:
        raise invalid(
            f"{prefix}feature_names", f"expected {n_features} names, got {len(data.feature_names)}"
        )
    if data.target_names is not None and len(data.target_names) != n_target_names:
        raise invalid(
            f"{prefix}target_names",
            f"expected {n_target_names} names, got {len(data.target_names)}",
        )
    return Table(inputs, targets, classes, data.feature_names, data.target_names)


# --- CSV -------------------------------------------------------------------------


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells without surrounding spaces) of each CSV row that is not blank."""
    reader = csv.reader(io.StringIO(text))
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield reader.line_num, [cell.strip() for cell in row]
    except csv.Error as exc:
        raise invalid("body", f"line {reader.line_num}: {exc}") from None


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _numbers(cells: list[str], lines: list[int], field: str, where: str = "") -> Array | None:
    """The column as floats, or None if some cell is not a number.

    ``where`` follows the line number in messages (the column's position).
    """
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        return None
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        line = lines[int(bad[0])]
        raise invalid(field, f"line {line}{where}: must be finite, got {cells[int(bad[0])]!r}")
    return values


def _floats(
    cells: list[str], lines: list[int], field: str, where: str = "", note: str = ""
) -> Array:
    """The column as floats; else an error at the first cell that is not a number."""
    values = _numbers(cells, lines, field, where)
    if values is None:
        line, cell = next((ln, c) for c, ln in zip(cells, lines, strict=True) if not _is_number(c))
        raise invalid(field, f"line {line}{where}: expected a number, got {cell!r}{note}")
    return values


def from_csv(text: str, params: DatasetCsvQuery, max_cells: int) -> Table:
    """A table from CSV text with a header row; ``params.target`` names the target columns."""
    records = _records(text)
    first = next(records, None)
    if first is None:
        raise invalid("body", "the CSV body is empty; expected a header row")
    header_line, header = first
    if any(not name for name in header):
        raise invalid("body", f"line {header_line}: every column needs a name in the header row")
    if len(set(header)) != len(header):
        raise invalid("body", f"line {header_line}: column names must be unique")
    target_names = [name.strip() for name in params.target.split(",")]
    for name in target_names:
        if name not in header:
            hint = ""
            if all(_is_number(cell) for cell in header):
                hint = f" (line {header_line} holds numbers: the CSV needs a header row first)"
            raise invalid("target", f"no column {name!r}; the columns are {header}{hint}")
    if len(set(target_names)) != len(target_names):
        raise invalid("target", "a column is named twice")
    feature_names = [name for name in header if name not in target_names]
    if not feature_names:
        raise invalid("target", "every column is a target; at least one must be a feature")

    width = len(header)
    rows: list[list[str]] = []
    lines: list[int] = []
    for line, row in records:
        if len(row) != width:
            raise invalid("body", f"line {line}: expected {width} values, got {len(row)}")
        rows.append(row)
        lines.append(line)
        # Stop early instead of holding a body's worth of rows past the limit.
        check_cells(len(rows), width, max_cells, "body")
    if not rows:
        raise invalid("body", "the CSV has a header but no data rows")

    columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    inputs = np.column_stack([_floats(columns[name], lines, name) for name in feature_names])

    classes = None
    labels = columns[target_names[0]]
    if len(target_names) == 1 and _numbers(labels, lines, target_names[0]) is None:
        if "" in labels:
            line = lines[labels.index("")]
            raise invalid(target_names[0], f"line {line}: empty class label")
        classes = _classes(labels, target_names[0])
        check_cells(len(rows), len(feature_names) + len(classes), max_cells, "body")
        targets = _one_hot(labels, classes)
    else:
        note = " (class labels are allowed only when `target` names a single column)"
        targets = np.column_stack(
            [_floats(columns[name], lines, name, note=note) for name in target_names]
        )
    return Table(inputs, targets, classes, feature_names, target_names)


# --- rows to predict ---------------------------------------------------------------


def feature_error(field: str, message: str) -> ApiError:
    # A 400, as clients of TensorFlow Serving and Vertex AI expect for a row that
    # does not match the model's named features.
    return ApiError(400, "feature_mismatch", message, field)


def rows_of(rows: list[list[float]], width: int, field: str = "inputs") -> Array:
    """JSON rows of numbers, each as wide as the model's input."""
    for index, row in enumerate(rows):
        if len(row) != width:
            raise invalid(
                f"{field}[{index}]", f"the model takes {width} inputs per row, got {len(row)}"
            )
    return np.array(rows, dtype=np.float64)


def instance_rows(
    instances: list[list[float] | dict[str, float | str]],
    model: core.Model,
    ignored: Collection[str] = (),
) -> Array:
    """TensorFlow Serving instances: lists in input order, or objects keyed by feature name
    (where the ``ignored`` keys, the training targets, may appear too)."""
    rows = []
    for index, instance in enumerate(instances):
        if isinstance(instance, list):
            rows.append(instance)
            continue
        names = model.feature_names
        if names is None:
            raise invalid(
                f"instances[{index}]",
                "this model's dataset had no column names; send each instance as a list",
            )
        for name in names:
            if name not in instance:
                raise feature_error(f"instances[{index}].{name}", "missing feature")
        for name in instance:
            if name not in names and name not in ignored:
                raise feature_error(
                    f"instances[{index}].{name}",
                    f"unknown feature; the model takes {', '.join(names)}",
                )
        row = []
        for name in names:
            value = instance[name]
            if isinstance(value, str):
                raise invalid(f"instances[{index}].{name}", f"expected a number, got {value!r}")
            row.append(value)
        rows.append(row)
    return rows_of(rows, model.input_dim, "instances")


def npy_rows(array: np.ndarray[Any, Any], width: int) -> Array:
    if array.ndim != 2 or array.shape[1] != width or array.dtype.kind not in "fiu":
        raise invalid(
            "inputs",
            f"expected a 2-D numeric array with {width} columns, "
            f"got shape {array.shape} of {array.dtype}",
        )
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        raise invalid(f"inputs[{row}]", "must be finite (no NaN or Infinity)")
    return array


def _has_header(line: int, cells: list[str], rule: HeaderRule) -> bool:
    """Whether the first row names the columns.

    Told by ``rule``, or else by the row itself: all numbers is data, all names is a
    header, and a mix is refused rather than guessed.
    """
    if rule != "auto":
        return rule == "present"
    numbers = [_is_number(cell) for cell in cells]
    if all(numbers):
        return False
    if not any(numbers):
        return True
    raise invalid(
        "header",
        f"line {line} holds both numbers and names {cells}; say whether it is a header "
        "with ?header=present or ?header=absent",
    )


def _columns_by_name(
    line: int, header: list[str], names: list[str], ignored: Collection[str]
) -> list[int]:
    """Positions of the model's features in ``header``."""
    for name in header:
        if header.count(name) > 1:
            raise invalid(name, f"line {line}: the column {name!r} appears twice")
        if name not in names and name not in ignored:
            raise feature_error(name, f"unknown column; the model takes {', '.join(names)}")
    for name in names:
        if name not in header:
            raise feature_error(name, "missing feature column")
    return [header.index(name) for name in names]


def csv_rows(text: str, rule: HeaderRule, model: core.Model, ignored: Collection[str]) -> Array:
    """Rows of a CSV body, in the model's input order; no row is ever dropped.

    With a header, a model that has feature names takes its columns by name and
    skips the ``ignored`` ones (the training targets); a model without names takes
    the columns as they come. Without a header, every row is data in input order.
    """
    records = _records(text)
    first = next(records, None)
    if first is None:
        raise invalid("body", "the CSV body is empty; expected rows of inputs")
    line, cells = first
    names = model.feature_names
    width = model.input_dim
    if _has_header(line, cells, rule):
        data = list(records)
        if not data:
            raise invalid("body", f"the CSV body has a header (line {line}) but no rows")
        if names is not None:
            order = _columns_by_name(line, cells, names, ignored)
        elif len(cells) != width:
            raise invalid("body", f"line {line}: the model takes {width} columns, got {len(cells)}")
        else:
            order = list(range(width))
        expected = len(cells)
    else:
        data = [first, *records]
        order = list(range(width))
        expected = width
    for row_line, row in data:
        if len(row) != expected:
            raise invalid("body", f"line {row_line}: expected {expected} values, got {len(row)}")
    lines = [row_line for row_line, _ in data]
    columns = []
    for feature, position in enumerate(order):
        field = names[feature] if names is not None else "body"
        where = f", column {position + 1}"
        columns.append(_floats([row[position] for _, row in data], lines, field, where))
    return np.column_stack(columns)
