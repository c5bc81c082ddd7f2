"""Targets: what the network learns to output, and how its outputs read back.

A :class:`TargetEncoder` is fitted on the target column(s) of a
:class:`~core.frame.Frame` for one of three tasks: ``classification`` (one
column of classes), ``multilabel`` (several 0/1 columns) or ``regression``
(number columns, optionally standardized for training).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._types import Array
from .activations import ACTIVATIONS
from .data import validation_rows
from .errors import SpecError
from .frame import CATEGORY, NUMBER, Column, Frame
from .losses import LOSSES
from .normalize import Normalizer

TASKS = ("classification", "regression", "multilabel")

Indices = np.ndarray[Any, np.dtype[np.intp]]

FIELD = "target"


def infer_task(frame: Frame) -> str:
    """The task the target column(s) in ``frame`` call for.

    One category column: classification. Several number columns whose values
    are all exactly 0 or 1: multilabel. Otherwise number columns: regression
    (one 0/1 number column is regression too; ask for classification to get
    classes "0" and "1"). Raises SpecError("target") for no columns or several
    columns that include a category column.
    """
    if len(frame) == 0:
        raise SpecError(FIELD, "no target column")
    kinds = [column.kind for column in frame]
    if CATEGORY in kinds:
        if len(frame) == 1:
            return "classification"
        raise SpecError(
            FIELD,
            "several target columns must all hold numbers; "
            f"{', '.join(c.name for c in frame if c.kind == CATEGORY)} hold(s) categories",
        )
    if len(frame) > 1 and all(_zero_one(column) for column in frame):
        return "multilabel"
    return "regression"


def _zero_one(column: Column) -> bool:
    observed = column.values[~column.missing]
    return bool(np.isin(observed, (0.0, 1.0)).all())


def class_order(categories: Sequence[str]) -> list[str]:
    """Class names in the order of the outputs: by value when every one is a number
    (codes 1, 2, 10, as scikit-learn orders them), else as text."""
    values = []
    for category in categories:
        try:
            values.append(float(category))
        except ValueError:
            return sorted(categories)
    if not all(math.isfinite(v) for v in values):
        return sorted(categories)
    return [c for _, c in sorted(zip(values, categories, strict=True))]


def code_text(value: float) -> str:
    """A class code as text: 1.0 -> "1", 2.5 -> "2.5"."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_missing(frame: Frame) -> None:
    for column in frame:
        rows = np.flatnonzero(column.missing)
        if rows.size:
            raise SpecError(FIELD, f"row {int(rows[0])}: missing target value in {column.name}")


class TargetEncoder:
    """Targets of one task, fitted on the training rows; build with :meth:`fit`.

    ``names``: the target columns. ``classes``: classification's class names
    (sorted), multilabel's target names, None for regression. ``shift`` and
    ``scale``: regression's standardization (both None when not scaled).
    """

    def __init__(
        self,
        task: str,
        names: list[str],
        classes: list[str] | None = None,
        shift: Array | None = None,
        scale: Array | None = None,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}")
        self.task = task
        self.names = list(names)
        self.classes = None if classes is None else list(classes)
        self.shift = None if shift is None else np.asarray(shift, dtype=np.float64)
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)

    @classmethod
    def fit(cls, frame: Frame, task: str, *, scale: bool) -> TargetEncoder:
        """Learn the classes (or the scaling) from the target columns in ``frame``.

        classification: one column, of categories (the classes are all the
        column's categories) or of number codes (the distinct codes as text, in
        numeric order: 1.0 -> "1"); at least two classes. multilabel: several
        number columns of 0/1. regression: number columns; ``scale`` standardizes
        them with the rows' mean and population standard deviation (a constant
        column gets scale 1, as :class:`~core.normalize.Normalizer` does).

        Raises SpecError("target") for a missing value ("row R: ..." with R the
        0-based row), a column of the wrong kind or count, or too few classes;
        ValueError for a task not in :data:`TASKS`.
        """
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}")
        if len(frame) == 0:
            raise SpecError(FIELD, "no target column")
        _check_missing(frame)
        names = frame.names
        if task == "classification":
            if len(frame) != 1:
                raise SpecError(FIELD, f"classification takes one target column, got {len(frame)}")
            column = frame.columns[0]
            if column.kind == CATEGORY:
                classes = class_order(column.categories)
            else:
                classes = [code_text(v) for v in np.unique(column.values)]
            if len(classes) < 2:
                raise SpecError(
                    FIELD,
                    f"classification needs at least 2 classes; {column.name} has {len(classes)}",
                )
            return cls(task, names, classes)
        for column in frame:
            if column.kind != NUMBER:
                raise SpecError(
                    FIELD, f"{task} needs number columns; {column.name} holds categories"
                )
        if task == "multilabel":
            for column in frame:
                if not _zero_one(column):
                    raise SpecError(FIELD, f"multilabel targets are 0 or 1; {column.name} is not")
            return cls(task, names, list(names))
        if not scale:
            return cls(task, names)
        normalizer = Normalizer.fit("standardize", _numbers(frame))
        return cls(task, names, None, normalizer.shift, normalizer.scale)

    @property
    def n_classes(self) -> int:
        """Classes (classification) or labels (multilabel); 0 for regression."""
        return 0 if self.classes is None else len(self.classes)

    # --- training targets ----------------------------------------------------

    def indices(self, frame: Frame) -> Indices:
        """Classification: each row's class index into :attr:`classes` (n,).

        Classes are matched by text, so ``frame`` may code its categories
        differently from the training rows. Raises SpecError("target") for a
        missing value, a class the encoder does not know or a column of the
        wrong kind; ValueError for another task.
        """
        if self.task != "classification" or self.classes is None:
            raise ValueError(f"class indices need a classification task, not {self.task}")
        column = self._columns(frame)[0]
        position = {name: k for k, name in enumerate(self.classes)}
        if column.kind == CATEGORY:
            texts = list(column.categories)
            codes = column.values
        else:
            unique, inverse = np.unique(column.values, return_inverse=True)
            texts = [code_text(v) for v in unique]
            codes = inverse.reshape(-1).astype(np.int64)
        lookup = np.array([position.get(text, -1) for text in texts] + [-1], dtype=np.intp)
        index = lookup[codes]
        bad = np.flatnonzero(index < 0)
        if bad.size:
            row = int(bad[0])
            raise SpecError(
                FIELD,
                f"row {row}: unknown class {texts[int(codes[row])]!r} in {column.name} "
                f"(the classes are: {', '.join(self.classes)})",
            )
        return index

    def encode(self, frame: Frame, units: int) -> Array:
        """The targets a network with ``units`` output units trains on (float64).

        classification: one-hot rows (n x k), or, with two classes and
        ``units == 1``, the 0/1 column of the class named last (n x 1).
        multilabel: the 0/1 columns (n x k). regression: (t - shift) / scale,
        or t when not scaled (n x targets).

        Raises SpecError("target") for missing or unusable values.
        """
        if self.task == "classification":
            index = self.indices(frame)
            if units == 1 and self.n_classes == 2:
                return index.astype(np.float64).reshape(-1, 1)
            return np.eye(self.n_classes)[index]
        columns = self._columns(frame)
        t = _numbers(Frame(columns))
        if self.task == "multilabel":
            for column in columns:
                if not _zero_one(column):
                    raise SpecError(FIELD, f"multilabel targets are 0 or 1; {column.name} is not")
            return t
        if self.shift is None or self.scale is None:
            return t
        return (t - self.shift) / self.scale

    def _columns(self, frame: Frame) -> list[Column]:
        for name in self.names:
            if name not in frame:
                raise SpecError(FIELD, f"no target column {name}")
        columns = [frame[name] for name in self.names]
        _check_missing(Frame(columns))
        if self.task != "classification":
            for column in columns:
                if column.kind != NUMBER:
                    raise SpecError(FIELD, f"{column.name} must hold numbers")
        return columns

    # --- network outputs -----------------------------------------------------

    def decode(self, outputs: Array) -> Array:
        """Network outputs (n x units) in the targets' own units: regression
        undoes the scaling (outputs * scale + shift); other tasks are unchanged."""
        if self.task == "regression" and self.shift is not None and self.scale is not None:
            decoded: Array = outputs * self.scale + self.shift
            return decoded
        return outputs

    def labels(self, outputs: Array) -> list[Any]:
        """What outputs (n x units) predict, one entry per row.

        classification: class names, by the largest unit, or for one unit
        :attr:`classes`\\[1] at 0.5 and above, else classes[0]. multilabel: a list
        of 0/1 ints per row (threshold 0.5). Raises ValueError for regression.
        """
        if self.classes is None or self.task == "regression":
            raise ValueError("regression outputs have no labels")
        if self.task == "multilabel":
            flags: list[list[int]] = (outputs >= 0.5).astype(int).tolist()
            return list(flags)
        if outputs.shape[1] == 1:
            index = (outputs[:, 0] >= 0.5).astype(np.intp)
        else:
            index = outputs.argmax(axis=1)
        return [self.classes[int(i)] for i in index]

    def output_layer(self) -> tuple[int, str, str]:
        """(units, activation, loss) of the output layer the task calls for."""
        k = self.n_classes
        if self.task == "classification":
            layer = (
                (1, "sigmoid", "binary_crossentropy")
                if k == 2
                else (k, "softmax", "categorical_crossentropy")
            )
        elif self.task == "multilabel":
            layer = (k, "sigmoid", "binary_crossentropy")
        else:
            layer = (len(self.names), "identity", "mse")
        # a renamed registry entry fails here rather than in a job
        assert layer[1] in ACTIVATIONS and layer[2] in LOSSES, layer
        return layer

    # --- JSON ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: task, names, classes and the scaling as lists of floats."""
        return {
            "task": self.task,
            "names": list(self.names),
            "classes": self.classes,
            "shift": None if self.shift is None else self.shift.tolist(),
            "scale": None if self.scale is None else self.scale.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetEncoder:
        """The encoder :meth:`to_json` described."""
        shift, scale = data.get("shift"), data.get("scale")
        return cls(
            data["task"],
            list(data["names"]),
            data.get("classes"),
            None if shift is None else np.array(shift, dtype=np.float64),
            None if scale is None else np.array(scale, dtype=np.float64),
        )


def _numbers(frame: Frame) -> Array:
    return np.column_stack([column.values for column in frame]).astype(np.float64)


def stratified_split(
    labels: np.ndarray[Any, Any] | None,
    fraction: float,
    seed: int,
    *,
    n_rows: int | None = None,
) -> tuple[Indices, Indices]:
    """Rows for training and for testing: (train_rows, test_rows), each sorted.

    The test side gets ``round(fraction * n)`` rows (the count a validation
    split of that fraction holds out). With ``labels`` (n,), each class gives
    its share of them (largest remainders first, ties drawn at random), as
    scikit-learn's ``train_test_split(stratify=...)`` does, though not the same
    rows. With ``labels=None`` it is a plain random split of ``n_rows`` rows.
    The same seed gives the same rows. Raises ValueError for a fraction outside
    [0, 1) or neither labels nor n_rows.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng([seed, 2])
    if labels is None:
        if n_rows is None:
            raise ValueError("a split without labels needs n_rows")
        n = n_rows
        test = rng.permutation(n)[: validation_rows(n, fraction)]
    else:
        n = len(labels)
        n_test = validation_rows(n, fraction)
        _, inverse = np.unique(np.asarray(labels), return_inverse=True)
        inverse = inverse.reshape(-1)
        counts = np.bincount(inverse)
        ideal = counts * (n_test / n) if n else counts * 0.0
        share = np.floor(ideal).astype(np.intp)
        left = n_test - int(share.sum())
        if left > 0:
            # the classes with the largest remainders get the rows rounding left over
            order = rng.permutation(len(counts))
            order = order[np.argsort(-(ideal - share)[order], kind="stable")]
            share[order[:left]] += 1
        picked = [
            rng.permutation(np.flatnonzero(inverse == k))[: share[k]] for k in range(len(counts))
        ]
        test = np.concatenate(picked) if picked else np.array([], dtype=np.intp)
    mask = np.zeros(n, dtype=bool)
    mask[test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def subset_accuracy(outputs: Array, targets: Array) -> float:
    """Share of rows (n x labels) whose every label matches at the threshold 0.5."""
    if outputs.shape[0] == 0:
        return 0.0
    match = (outputs >= 0.5) == (targets >= 0.5)
    return float(match.all(axis=1).mean())
