"""Typed columns: a table as users send it, before it is encoded as numbers.

A :class:`Frame` holds named columns of two kinds. A number column is float64
or float32 (a table sent as float32 stays float32: half the memory) with NaN
where a value is missing; a category column is int64 codes into its
sorted ``categories`` with -1 where a value is missing. Frames are what
datasets are stored as, and what preprocessing (:mod:`core.preprocess`) and
target encoding (:mod:`core.targets`) are fitted on and applied to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .serialize import pack, unpack

NUMBER = "number"
CATEGORY = "category"
KINDS = (NUMBER, CATEGORY)
MISSING_CODE = -1
NUMBER_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))

Codes = np.ndarray[Any, np.dtype[np.int64]]
Values = np.ndarray[Any, np.dtype[Any]]


@dataclass(frozen=True, eq=False)
class Column:
    """One named column.

    ``values``: float64 or float32 (NaN = missing) for a number column; int64 codes into
    ``categories`` (-1 = missing) for a category column. Raises ValueError for
    a kind not in :data:`KINDS` or values that do not fit the kind.
    """

    name: str
    kind: str
    values: Values
    categories: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name!r}: unknown kind {self.kind!r}")
        if self.values.ndim != 1:
            raise ValueError(f"column {self.name!r}: expected 1-D values")
        if self.kind == NUMBER and self.values.dtype not in NUMBER_DTYPES:
            raise ValueError(f"column {self.name!r}: a number column holds float64 or float32")
        if self.kind == CATEGORY:
            if self.values.dtype != np.int64:
                raise ValueError(f"column {self.name!r}: a category column holds int64 codes")
            if self.values.size and (
                self.values.min() < MISSING_CODE or self.values.max() >= len(self.categories)
            ):
                raise ValueError(f"column {self.name!r}: a code outside its categories")

    @classmethod
    def number(cls, name: str, values: Any) -> Column:
        """A number column: float32 values stay float32, anything else becomes float64."""
        return cls(name, NUMBER, np.asarray(values, dtype=_number_dtype(values)).reshape(-1))

    @classmethod
    def category(cls, name: str, labels: Sequence[str | None]) -> Column:
        """A category column from labels (None = missing); categories sorted."""
        categories = tuple(sorted({label for label in labels if label is not None}))
        index = {label: code for code, label in enumerate(categories)}
        codes = np.fromiter(
            (MISSING_CODE if label is None else index[label] for label in labels),
            dtype=np.int64,
            count=len(labels),
        )
        return cls(name, CATEGORY, codes, categories)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def missing(self) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Which rows are missing a value."""
        mask: np.ndarray[Any, np.dtype[np.bool_]] = (
            np.isnan(self.values) if self.kind == NUMBER else self.values == MISSING_CODE
        )
        return mask

    def labels(self) -> list[str | None]:
        """A category column's values as text (None = missing)."""
        if self.kind != CATEGORY:
            raise ValueError(f"column {self.name!r} holds numbers, not labels")
        return [None if code < 0 else self.categories[code] for code in self.values.tolist()]

    def take(self, rows: Any) -> Column:
        return Column(self.name, self.kind, self.values[rows], self.categories)


def unmatched(
    given: Iterable[str], expected: Sequence[str], ignored: Iterable[str] = ()
) -> tuple[str | None, str | None]:
    """Matching columns by name: the first of ``given`` that is neither ``expected`` nor
    ``ignored``, and the first of ``expected`` not ``given`` (None when there is none).

    Linear in the number of names (sets, not lists): a model of 100,000 columns is
    matched in milliseconds, not minutes.
    """
    known = set(expected)
    skipped = set(ignored)
    present = set()
    unknown = None
    for name in given:
        present.add(name)
        if unknown is None and name not in known and name not in skipped:
            unknown = name
    missing = next((name for name in expected if name not in present), None)
    return unknown, missing


def _number_dtype(values: Any) -> type[np.floating[Any]]:
    dtype = getattr(values, "dtype", None)
    return np.float32 if dtype == np.float32 else np.float64


class Frame:
    """Columns of equal length with distinct names, in order.

    Raises ValueError for columns of different lengths or a repeated name.
    """

    def __init__(self, columns: Sequence[Column]) -> None:
        names = [column.name for column in columns]
        if len(set(names)) != len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise ValueError(f"the column name {twice!r} appears twice")
        if len({len(column) for column in columns}) > 1:
            raise ValueError("columns of different lengths")
        self.columns = list(columns)
        self._by_name = {column.name: column for column in columns}

    @classmethod
    def from_arrays(cls, x: Any, names: Sequence[str] | None = None) -> Frame:
        """Number columns from a samples x features array; unnamed ones are x0, x1, ...
        (float32 stays float32, anything else becomes float64)."""
        array = np.asarray(x, dtype=_number_dtype(x))
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        names = list(names) if names is not None else [f"x{i}" for i in range(array.shape[1])]
        return cls([Column.number(name, array[:, i]) for i, name in enumerate(names)])

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def n_rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def __len__(self) -> int:
        return len(self.columns)

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Column:
        return self._by_name[name]

    def select(self, names: Sequence[str]) -> Frame:
        """The named columns, in the order given (KeyError for an unknown name)."""
        return Frame([self._by_name[name] for name in names])

    def take(self, rows: Any) -> Frame:
        """The given rows (an index array or a boolean mask) of every column."""
        return Frame([column.take(rows) for column in self.columns])

    def sha256(self) -> str:
        """A digest of the names, kinds, categories, value types and values (not of the
        stored bytes, whose zip headers carry a time).

        A float32 column and a float64 one of the same values differ; a float64 or
        category column hashes as it did before float32 columns existed.
        """
        digest = hashlib.sha256()
        for column in self.columns:
            header: list[Any] = [column.name, column.kind, list(column.categories), len(column)]
            if column.kind == NUMBER and column.values.dtype != np.float64:
                header.append(column.values.dtype.name)
            digest.update(json.dumps(header).encode())
            # The array's own memory (no bytes copy of a large column).
            digest.update(np.ascontiguousarray(column.values).data)
        return digest.hexdigest()

    # --- bytes: an .npz of the value arrays plus the names, kinds and categories

    def to_bytes(self) -> bytes:
        arrays = {f"values/{i}": column.values for i, column in enumerate(self.columns)}
        meta = {
            "n_rows": self.n_rows,
            "columns": [
                {"name": c.name, "kind": c.kind, "categories": list(c.categories)}
                for c in self.columns
            ],
        }
        return pack(arrays, meta)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frame:
        arrays, meta = unpack(data)
        return cls(
            [
                Column(c["name"], c["kind"], arrays[f"values/{i}"], tuple(c["categories"]))
                for i, c in enumerate(meta["columns"])
            ]
        )
