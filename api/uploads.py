"""Turning uploaded datasets (JSON lists or CSV text) into float64 arrays.

Class labels become one-hot columns with the classes sorted. Every problem is
an :class:`ApiError` naming the field (or CSV column) at fault.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from store import Dataset
from store import queries as q

from .errors import invalid, limit_exceeded
from .schemas import DatasetCsvQuery, DatasetData

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


def _numbers(cells: list[str], lines: list[int], column: str) -> Array | None:
    """The column as floats, or None if some cell is not a number."""
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        return None
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        line = lines[int(bad[0])]
        raise invalid(column, f"line {line}: must be finite, got {cells[int(bad[0])]!r}")
    return values


def _first_non_number(cells: list[str], lines: list[int]) -> tuple[int, str]:
    for cell, line in zip(cells, lines, strict=True):
        try:
            float(cell)
        except ValueError:
            return line, cell
    raise AssertionError("every cell is a number")


def from_csv(text: str, params: DatasetCsvQuery, max_cells: int) -> Table:
    """A table from CSV text with a header row; ``params.target`` names the target columns."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [name.strip() for name in next(reader, [])]
        if not header:
            raise invalid("body", "the CSV body is empty; expected a header row")
        if any(not name for name in header):
            raise invalid("body", "line 1: every column needs a name in the header row")
        if len(set(header)) != len(header):
            raise invalid("body", "line 1: column names must be unique")
        target_names = [name.strip() for name in params.target.split(",")]
        for name in target_names:
            if name not in header:
                raise invalid("target", f"no column {name!r}; the columns are {header}")
        if len(set(target_names)) != len(target_names):
            raise invalid("target", "a column is named twice")
        feature_names = [name for name in header if name not in target_names]
        if not feature_names:
            raise invalid("target", "every column is a target; at least one must be a feature")

        width = len(header)
        rows: list[list[str]] = []
        lines: list[int] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != width:
                raise invalid(
                    "body", f"line {reader.line_num}: expected {width} values, got {len(row)}"
                )
            rows.append(row)
            lines.append(reader.line_num)
            # Stop early instead of holding a body's worth of rows past the limit.
            check_cells(len(rows), width, max_cells, "body")
    except csv.Error as exc:
        raise invalid("body", f"line {reader.line_num}: {exc}") from None
    if not rows:
        raise invalid("body", "the CSV has a header but no data rows")

    columns = {name: [row[i].strip() for row in rows] for i, name in enumerate(header)}
    features = []
    for name in feature_names:
        values = _numbers(columns[name], lines, name)
        if values is None:
            line, cell = _first_non_number(columns[name], lines)
            raise invalid(name, f"line {line}: expected a number, got {cell!r}")
        features.append(values)
    inputs = np.column_stack(features)

    classes = None
    numeric = [_numbers(columns[name], lines, name) for name in target_names]
    if len(target_names) == 1 and numeric[0] is None:
        labels = columns[target_names[0]]
        if "" in labels:
            line = lines[labels.index("")]
            raise invalid(target_names[0], f"line {line}: empty class label")
        classes = _classes(labels, target_names[0])
        check_cells(len(rows), len(feature_names) + len(classes), max_cells, "body")
        targets = _one_hot(labels, classes)
    else:
        columns_of_numbers = []
        for name, values in zip(target_names, numeric, strict=True):
            if values is None:
                line, cell = _first_non_number(columns[name], lines)
                raise invalid(
                    name,
                    f"line {line}: expected a number, got {cell!r} (class labels are allowed "
                    "only when `target` names a single column)",
                )
            columns_of_numbers.append(values)
        targets = np.column_stack(columns_of_numbers)
    return Table(inputs, targets, classes, feature_names, target_names)
