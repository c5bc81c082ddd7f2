"""Turning what clients send (JSON lists, CSV text, .npy arrays) into float64 arrays:
datasets to store, and rows to predict.

Class labels become one-hot columns with the classes sorted. Every problem is
an :class:`ApiError` naming the field (or CSV column) at fault, and the line and
column of a CSV cell.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
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

# Plain decimal numbers with an optional exponent, in ASCII digits. Python's float()
# also takes `1_0`, `infinity`, `nan` and other scripts' digits, which spreadsheets
# and CSV readers do not take as numbers: such a cell is a typo, not a value.
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Cells that mark a missing value, in any case: pandas' and R's usual markers, and
# the `?` of UCI files.
MISSING = frozenset({"", "na", "n/a", "null", "nan", "?"})
NOT_YET = "missing values are not supported until a later release"


def _is_number(cell: str) -> bool:
    return NUMBER.fullmatch(cell) is not None


def _is_missing(cell: str) -> bool:
    return cell.lower() in MISSING


def _missing(field: str, line: int, column: int, cell: str) -> ApiError:
    what = "an empty cell" if cell == "" else f"{cell!r} marks a missing value"
    return invalid(field, f"line {line}, column {column}: {what}; {NOT_YET}")


def _python_float(cell: str) -> float | None:
    """The cell as Python reads a float (more forms than a number here), or None."""
    try:
        return float(cell)
    except ValueError:
        return None


def _not_a_number(cell: str) -> str:
    """What is wrong with a cell that is neither a number nor missing."""
    value = _python_float(cell)
    if value is None:
        return f"expected a number, got {cell!r}"
    if not math.isfinite(value):
        return f"must be finite, got {cell!r}"
    return f"expected a plain decimal number (digits, a point, an exponent), got {cell!r}"


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells without surrounding spaces) of each CSV record.

    Lines may end in LF, CRLF or CR. A line with nothing on it is skipped, as
    pandas does; any other line is a record, so a row of empty cells reaches the
    callers (who refuse it as missing values) instead of silently going.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            if row:
                yield reader.line_num, [cell.strip() for cell in row]
    except csv.Error as exc:
        raise invalid("body", f"line {reader.line_num}: {exc}") from None


def _data_rows(
    records: Iterable[tuple[int, list[str]]], width: int, max_cells: int | None = None
) -> tuple[list[list[str]], list[int]]:
    """The records as rows of ``width`` cells, and their line numbers.

    ``max_cells`` stops the reading early instead of holding a body's worth of rows
    past the limit.
    """
    rows: list[list[str]] = []
    lines: list[int] = []
    for line, row in records:
        if not any(row):
            # Spaces or bare delimiters: say so, rather than count its cells.
            raise invalid("body", f"line {line}: a row of empty cells; {NOT_YET}")
        if len(row) != width:
            raise invalid("body", f"line {line}: expected {width} values, got {len(row)}")
        rows.append(row)
        lines.append(line)
        if max_cells is not None:
            check_cells(len(rows), width, max_cells, "body")
    return rows, lines


def _floats(cells: list[str], lines: list[int], field: str, column: int, note: str = "") -> Array:
    """Column number ``column`` (from 1) as floats; else an error at its first bad cell."""
    for cell, line in zip(cells, lines, strict=True):
        if _is_missing(cell):
            raise _missing(field, line, column, cell)
        if not _is_number(cell):
            raise invalid(field, f"line {line}, column {column}: {_not_a_number(cell)}{note}")
    values = np.array(cells, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:  # too large for a float, like 1e999
        line, cell = lines[int(bad[0])], cells[int(bad[0])]
        raise invalid(field, f"line {line}, column {column}: must be finite, got {cell!r}")
    return values


def _labels(cells: list[str], lines: list[int], field: str, column: int) -> list[str] | None:
    """A single target column's class labels, or None when it is a column of numbers.

    A column that mixes numbers and text is refused at its first cell of the rarer
    kind: a stray word among numbers (or a number among labels) is far more often
    a slip than a class, and either guess would train on it.
    """
    for cell, line in zip(cells, lines, strict=True):
        if _is_missing(cell):
            raise _missing(field, line, column, cell)
    numbers = [_is_number(cell) for cell in cells]
    if all(numbers):
        return None
    if not any(numbers):
        return cells
    stray_is_number = sum(numbers) * 2 < len(numbers)
    index = numbers.index(stray_is_number)
    kind = "a number among class labels" if stray_is_number else "text in a column of numbers"
    raise invalid(
        field,
        f"line {lines[index]}, column {column}: {cells[index]!r} is {kind}; a target column "
        "holds either numbers (regression) or class labels (classification)",
    )


def _check_header(line: int, header: list[str]) -> None:
    """Refuse a header with an empty or a repeated name."""
    for column, name in enumerate(header, start=1):
        if not name:
            raise invalid("body", f"line {line}, column {column}: the header row needs a name here")
        if header.count(name) > 1:
            raise invalid(name, f"line {line}: the column name {name!r} appears twice")


def from_csv(text: str, params: DatasetCsvQuery, max_cells: int) -> Table:
    """A table from CSV text with a header row; ``params.target`` names the target columns."""
    records = _records(text)
    first = next(records, None)
    if first is None:
        raise invalid("body", "the CSV body is empty; expected a header row")
    header_line, header = first
    _check_header(header_line, header)
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

    rows, lines = _data_rows(records, len(header), max_cells)
    if not rows:
        raise invalid("body", "the CSV has a header but no data rows")

    def floats(name: str, note: str = "") -> Array:
        position = header.index(name)
        return _floats([row[position] for row in rows], lines, name, position + 1, note)

    inputs = np.column_stack([floats(name) for name in feature_names])
    labels = None
    if len(target_names) == 1:
        position = header.index(target_names[0])
        cells = [row[position] for row in rows]
        labels = _labels(cells, lines, target_names[0], position + 1)
    classes = None
    if labels is not None:
        classes = _classes(labels, target_names[0])
        check_cells(len(rows), len(feature_names) + len(classes), max_cells, "body")
        targets = _one_hot(labels, classes)
    else:
        note = " (class labels are allowed only when `target` names a single column)"
        targets = np.column_stack([floats(name, note) for name in target_names])
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
    if array.shape[0] == 0:  # as a JSON or CSV body without rows is refused
        raise invalid("inputs", "expected at least one row, got none")
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        raise invalid(f"inputs[{row}]", "must be finite (no NaN or Infinity)")
    return array


def _has_header(line: int, cells: list[str], rule: HeaderRule) -> bool:
    """Whether the first row names the columns.

    Told by ``rule``, or else by the row itself: all numbers is data, all names is a
    header, and a mix is refused rather than guessed. An empty cell is neither a
    name nor a number, so it is reported as itself.
    """
    if rule != "auto":
        return rule == "present"
    if "" in cells:
        raise invalid(
            "body",
            f"line {line}, column {cells.index('') + 1}: an empty cell, which is neither a "
            f"column name nor a number ({NOT_YET})",
        )
    numbers = [_is_number(cell) for cell in cells]
    if all(numbers):
        return False
    if not any(numbers):
        return True
    words = [cell for cell, number in zip(cells, numbers, strict=True) if not number]
    if all(_is_missing(cell) or _python_float(cell) is not None for cell in words):
        # Numbers beside NA markers or numbers mistyped (1_0, inf): a row of data
        # whose faulty cells the reader then names.
        return False
    raise invalid(
        "header",
        f"line {line} holds both numbers and names {cells}; say whether it is a header "
        "with ?header=present or ?header=absent",
    )


def _columns_by_name(
    line: int, header: list[str], names: list[str], ignored: Collection[str]
) -> list[int]:
    """Positions of the model's features in ``header``."""
    _check_header(line, header)
    for name in header:
        if name not in names and name not in ignored:
            raise feature_error(
                name, f"line {line}: unknown column {name!r}; the model takes {', '.join(names)}"
            )
    for name in names:
        if name not in header:
            raise feature_error(name, f"line {line}: missing feature column {name!r}")
    return [header.index(name) for name in names]


def csv_rows(text: str, rule: HeaderRule, model: core.Model, ignored: Collection[str]) -> Array:
    """Rows of a CSV body, in the model's input order; no row is ever dropped.

    With a header, a model that has feature names takes its columns by name and
    skips the ``ignored`` ones (the training targets); a model without names
    cannot tell what a header means and refuses it. Without a header, every row
    is data in input order.
    """
    records = _records(text)
    first = next(records, None)
    if first is None:
        raise invalid("body", "the CSV body is empty; expected rows of inputs")
    line, cells = first
    names = model.feature_names
    if _has_header(line, cells, rule):
        if names is None:
            # Taking the columns in order would answer for columns the client may
            # have ordered by name: the same refusal as for instance objects.
            raise feature_error(
                "header",
                f"line {line} is a header, but this model's dataset had no column names, so "
                "its columns cannot be matched by name; send rows of numbers in the model's "
                "input order without a header, or pass ?header=absent if the first row is data",
            )
        order = _columns_by_name(line, cells, names, ignored)
        rows, lines = _data_rows(records, len(cells))
        if not rows:
            raise invalid("body", f"the CSV body has a header (line {line}) but no rows")
    else:
        order = list(range(model.input_dim))
        rows, lines = _data_rows([first, *records], model.input_dim)
    columns = []
    for feature, position in enumerate(order):
        field = names[feature] if names is not None else "body"
        columns.append(_floats([row[position] for row in rows], lines, field, position + 1))
    return np.column_stack(columns)
