"""Datasets as clients send them (JSON arrays, JSON records, CSV, Parquet), made into
typed tables to store: a :class:`core.frame.Frame` of the kept columns, which of
them are targets, and the task they set.

Every problem is an :class:`ApiError` naming the field (or the column) at fault,
and the line and column of a CSV cell.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from core.frame import CATEGORY, Column, Frame
from core.targets import TASKS, class_order, infer_task
from store import Dataset, storage
from store import queries as q
from worker import frames

from .errors import invalid, limit_exceeded
from .profile import profile
from .tables import ReadTable

CELLS_SETTING = "BACKPROP_MAX_DATASET_CELLS"


@dataclass(frozen=True)
class Upload:
    """A dataset ready to store.

    ``frame`` holds the features and the targets (in the file's order);
    ``named`` says whether the client named the feature columns (a JSON
    dataset of bare arrays did not: its columns are x0, x1, ...).
    """

    frame: Frame
    targets: list[str]
    task: str
    named: bool = True
    ignored: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return [name for name in self.frame.names if name not in self.targets]

    @property
    def classes(self) -> list[str] | None:
        if self.task != "classification":
            return None
        return class_order(self.frame[self.targets[0]].categories)

    @property
    def n_samples(self) -> int:
        return self.frame.n_rows


def store(session: Session, name: str, upload: Upload, owner: str, staged: ExitStack) -> Dataset:
    """Write the upload's table to object storage and add its row in ``session``.

    ``staged`` is entered before the transaction of ``session`` began: when that
    transaction does not commit, leaving ``staged`` deletes the stored table, so a
    failed upload leaves no object behind.
    """
    frame = upload.frame
    with tempfile.TemporaryDirectory(prefix="backprop-upload-") as folder:
        path = Path(folder) / f"frame{frames.SUFFIX}"
        frames.write_frame(frame, path)
        key = staged.enter_context(storage().stage("datasets", frames.SUFFIX, path, move=True))
    return q.add_dataset(
        session,
        name,
        key,
        sha256=frame.sha256(),
        n_samples=frame.n_rows,
        n_features=len(upload.features),
        n_targets=len(upload.targets),
        classes=upload.classes,
        feature_names=upload.features if upload.named else None,
        target_names=upload.targets,
        task=upload.task,
        profile=profile(frame, upload.targets, upload.task, upload.ignored),
        owner=owner,
    )


def check_cells(n_rows: int, n_columns: int, limit: int, field: str | None) -> None:
    if n_rows * n_columns > limit:
        raise limit_exceeded(
            field,
            f"the dataset has {n_rows} rows x {n_columns} columns = {n_rows * n_columns} "
            f"values; the limit is {limit} ({CELLS_SETTING})",
        )


def split_names(value: str | None) -> list[str]:
    """``a,b`` -> ["a", "b"]: the comma lists of the query string."""
    if value is None:
        return []
    return [name.strip() for name in value.split(",") if name.strip()]


# --- JSON arrays ---------------------------------------------------------------------


def _rectangular(rows: Sequence[Sequence[float]], field: str) -> np.ndarray[Any, Any]:
    width = len(rows[0])
    for index, row in enumerate(rows):
        if len(row) != width:
            raise invalid(
                f"{field}[{index}]", f"ragged rows: expected {width} values, got {len(row)}"
            )
    return np.array(rows, dtype=np.float64).reshape(len(rows), width)


def _distinct(names: list[str] | None, field: str) -> None:
    # Names pick columns (CSV headers, instance objects): one named twice would feed
    # the same value to both.
    if names is not None and len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise invalid(field, f"{twice!r} is named twice")


def from_arrays(
    inputs: list[list[float]],
    targets: Any,
    feature_names: list[str] | None,
    target_names: list[str] | None,
    max_cells: int,
    prefix: str = "",
) -> Upload:
    """A table from JSON arrays: rows of inputs and one target per row (a number, a
    row of numbers, or a class label); ``prefix`` goes before field names."""
    x = _rectangular(inputs, f"{prefix}inputs")
    n, n_features = x.shape
    if len(targets) != n:
        raise invalid(
            f"{prefix}targets", f"expected {n} rows (one per input row), got {len(targets)}"
        )
    _distinct(feature_names, f"{prefix}feature_names")
    _distinct(target_names, f"{prefix}target_names")
    if feature_names is not None and len(feature_names) != n_features:
        raise invalid(
            f"{prefix}feature_names", f"expected {n_features} names, got {len(feature_names)}"
        )
    labels = isinstance(targets[0], str)
    if labels:
        t = None
        n_targets = 1
    elif isinstance(targets[0], list):
        t = _rectangular(targets, f"{prefix}targets")
        n_targets = t.shape[1]
    else:
        t = np.array(targets, dtype=np.float64).reshape(-1, 1)
        n_targets = 1
    check_cells(n, n_features + n_targets, max_cells, f"{prefix}inputs")
    if target_names is not None and len(target_names) != n_targets:
        raise invalid(
            f"{prefix}target_names", f"expected {n_targets} names, got {len(target_names)}"
        )
    names = target_names or (["y"] if n_targets == 1 else [f"y{i}" for i in range(n_targets)])
    features = feature_names or [f"x{i}" for i in range(n_features)]
    clash = set(names) & set(features)
    if clash:
        raise invalid(f"{prefix}target_names", f"{sorted(clash)[0]!r} also names a feature")
    columns = [Column.number(name, x[:, i]) for i, name in enumerate(features)]
    if t is None:
        column = Column.category(names[0], targets)
        if len(column.categories) < 2:
            raise invalid(
                f"{prefix}targets",
                f"class labels need at least 2 distinct classes, got {list(column.categories)}",
            )
        columns.append(column)
        task = "classification"
    else:
        columns += [Column.number(name, t[:, i]) for i, name in enumerate(names)]
        # Arrays keep their meaning of before typed tables: numbers to fit. One-hot
        # rows with a classification loss still train as classes (the loss says so).
        task = "regression"
    return Upload(Frame(columns), names, task, named=feature_names is not None)


# --- tables (CSV, Parquet, JSON records) ------------------------------------------------


def as_classes(column: Column) -> Column:
    """A number column of class codes as a category column: 1.0 -> "1", 2.5 -> "2.5"."""
    if column.kind == CATEGORY:
        return column
    labels = [
        None if np.isnan(value) else (str(int(value)) if value.is_integer() else repr(value))
        for value in column.values.tolist()
    ]
    return Column.category(column.name, labels)


def _looks_numeric(name: str) -> bool:
    try:
        float(name)
    except ValueError:
        return False
    return True


def from_table(
    read: ReadTable, targets: list[str], task: str | None, max_cells: int, field: str = "target"
) -> Upload:
    """The read table with its ``targets`` checked and its task settled.

    ``task``: classification, regression or multilabel, or None to infer it
    (text or booleans: classification; several 0/1 columns: multilabel;
    numbers: regression). Class codes written as numbers are classes when
    ``task`` is classification.
    """
    frame = read.frame
    if not targets:
        raise invalid(field, "name the target column(s)")
    if len(set(targets)) != len(targets):
        raise invalid(field, "a column is named twice")
    for name in targets:
        if name not in frame:
            why = read.inferred_ignored.get(name) or (
                "it is ignored" if name in read.ignored else None
            )
            detail = f" ({why})" if why else f"; the columns are {frame.names}"
            if not why and all(_looks_numeric(column) for column in frame.names):
                detail += " (line 1 holds numbers: the CSV needs a header row first)"
            raise invalid(field, f"no column {name!r}{detail}")
    features = [name for name in frame.names if name not in targets]
    if not features:
        raise invalid(field, "every column is a target; at least one must be a feature")
    check_cells(frame.n_rows, len(frame), max_cells, "body")
    for name in targets:
        missing = np.flatnonzero(frame[name].missing)
        if missing.size:
            line = read.line_of(int(missing[0]))
            raise invalid(
                name,
                f"line {line}: the target {name!r} is missing here ({int(missing.size)} rows "
                "have no target); remove those rows or fill them in",
            )
    if task is not None and task not in TASKS:
        raise invalid("task", f"expected one of {', '.join(TASKS)}, got {task!r}")
    if task == "classification":
        if len(targets) != 1:
            raise invalid("task", "classification takes one target column of class labels")
        frame = Frame([as_classes(c) if c.name == targets[0] else c for c in frame])
    kinds = {frame[name].kind for name in targets}
    if task is None:
        if CATEGORY in kinds and len(targets) > 1:
            text = next(name for name in targets if frame[name].kind == CATEGORY)
            raise invalid(
                text,
                f"column {text!r} holds text; several target columns must all hold numbers "
                "(0/1 for labels), or name one column of class labels",
            )
        task = infer_task(frame.select(targets))
    if task in ("regression", "multilabel") and CATEGORY in kinds:
        text = next(name for name in targets if frame[name].kind == CATEGORY)
        raise invalid(text, f"{task} needs numbers, but column {text!r} holds text")
    if task == "multilabel":
        for name in targets:
            values = frame[name].values
            if not np.isin(values, (0.0, 1.0)).all():
                row = int(np.flatnonzero(~np.isin(values, (0.0, 1.0)))[0])
                raise invalid(
                    name,
                    f"line {read.line_of(row)}: multilabel targets are 0 or 1, got {values[row]:g}",
                )
    if task == "classification":
        classes = frame[targets[0]].categories
        if len(classes) < 2:
            raise invalid(
                targets[0], f"class labels need at least 2 distinct classes, got {list(classes)}"
            )
    ignored = {name: "ignored on request (ignore=)" for name in read.ignored}
    ignored.update(read.inferred_ignored)
    return Upload(frame, targets, task, ignored=ignored)
