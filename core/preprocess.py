"""Input preprocessing: typed columns in, one matrix of numbers out.

A :class:`Preprocessor` is fitted on the training rows of a :class:`~core.frame.Frame`
and applied again, unchanged, to validation rows and to predict bodies. Number
columns get their missing values imputed (and optionally a 0/1 indicator of
which rows were missing) and may be normalized; category columns become one-hot
columns. Everything it learned is plain JSON, stored with the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._types import Array
from .errors import SpecError
from .frame import CATEGORY, NUMBER, Column, Frame
from .normalize import METHODS as NORMALIZATIONS
from .normalize import Normalizer
from .spec import _bool, _choice, _join, _mapping, _no_unknown, _number

IMPUTE = ("median", "mean", "constant")
UNKNOWN = ("ignore", "error")

# the suffix of an indicator column and the label of the "missing" one-hot column
MISSING_SUFFIX = "_missing"
MISSING_LABEL = "<missing>"

FORMAT_VERSION = 1

# Rows encoded at a time by Preprocessor.transform.
TRANSFORM_ROWS = 16384

_PLURAL = {NUMBER: "numbers", CATEGORY: "categories"}


@dataclass(frozen=True)
class PreprocessSpec:
    """How inputs are preprocessed (``training.preprocess`` of a job).

    ``impute``: the statistic of the training rows that replaces a missing number.
    ``fill_value``: the number used with ``impute="constant"``.
    ``missing_indicator``: a 0/1 ``<name>_missing`` column after each number
    column that had missing values in the training rows.
    ``normalize``: None, ``"standardize"`` or ``"minmax"``, applied to the
    imputed number columns only (never to indicators or one-hot columns).
    ``unknown``: what a category never seen in training becomes at transform
    time: all-zero one-hot columns (``"ignore"``) or :class:`UnknownCategory`.
    """

    impute: str = "median"
    fill_value: float = 0.0
    missing_indicator: bool = False
    normalize: str | None = None
    unknown: str = "ignore"


def parse_preprocess(raw: object, path: str = "training.preprocess") -> PreprocessSpec:
    """A :class:`PreprocessSpec` from a JSON value; None gives the defaults.

    Raises SpecError naming ``<path>.<key>`` for an unknown key or a bad value,
    or ``path`` itself when ``raw`` is not an object.
    """
    if raw is None:
        return PreprocessSpec()
    if isinstance(raw, PreprocessSpec):
        return raw
    spec = _mapping(raw, path)
    _no_unknown(spec, tuple(PreprocessSpec.__dataclass_fields__), path)
    defaults = PreprocessSpec()
    normalize = spec.get("normalize")
    if normalize is not None:
        normalize = _choice(normalize, tuple(NORMALIZATIONS), _join(path, "normalize"))
    return PreprocessSpec(
        impute=_choice(spec.get("impute", defaults.impute), IMPUTE, _join(path, "impute")),
        fill_value=_number(spec.get("fill_value", defaults.fill_value), _join(path, "fill_value")),
        missing_indicator=_bool(
            spec.get("missing_indicator", defaults.missing_indicator),
            _join(path, "missing_indicator"),
        ),
        normalize=normalize,
        unknown=_choice(spec.get("unknown", defaults.unknown), UNKNOWN, _join(path, "unknown")),
    )


class UnknownCategory(SpecError):
    """A category the training rows never had, met with ``unknown="error"``.

    ``field`` is the column's name and ``value`` the unseen text.
    """

    def __init__(self, field: str, value: str, known: list[str]) -> None:
        super().__init__(field, f"unknown category {value!r} (the model knows: {', '.join(known)})")
        self.value = value
        self.known = list(known)


@dataclass(frozen=True)
class _NumberRule:
    name: str
    fill: float  # what a missing value becomes
    indicator: bool  # whether a <name>_missing column follows


@dataclass(frozen=True)
class _CategoryRule:
    name: str
    categories: tuple[str, ...]  # the training rows' categories, sorted
    missing: bool  # whether a <name>=<missing> column follows them


_Rule = _NumberRule | _CategoryRule


class Preprocessor:
    """Fitted preprocessing of input columns; build with :meth:`fit` or :meth:`from_json`.

    ``input_names``: the columns it reads, in order. ``kinds``: each one's kind
    (``"number"`` or ``"category"``), the schema a predict body is read with.
    ``output_names``: the name of each encoded column, ``width`` of them.
    """

    def __init__(
        self, spec: PreprocessSpec, rules: list[_Rule], normalizer: Normalizer | None
    ) -> None:
        self.spec = spec
        self._rules = list(rules)
        self.normalizer = normalizer
        self.input_names = [rule.name for rule in self._rules]
        self.kinds = {
            rule.name: NUMBER if isinstance(rule, _NumberRule) else CATEGORY for rule in self._rules
        }
        # where each rule's first output column lands, and the number columns' places
        self._offsets: list[int] = []
        self.output_names: list[str] = []
        number_places: list[int] = []
        for rule in self._rules:
            self._offsets.append(len(self.output_names))
            if isinstance(rule, _NumberRule):
                number_places.append(len(self.output_names))
                self.output_names.append(rule.name)
                if rule.indicator:
                    self.output_names.append(rule.name + MISSING_SUFFIX)
            else:
                self.output_names.extend(f"{rule.name}={c}" for c in rule.categories)
                if rule.missing:
                    self.output_names.append(f"{rule.name}={MISSING_LABEL}")
        self._number_places = np.array(number_places, dtype=np.intp)

    @property
    def width(self) -> int:
        """Columns of the transformed matrix."""
        return len(self.output_names)

    # --- fitting -------------------------------------------------------------

    @classmethod
    def fit(cls, frame: Frame, spec: PreprocessSpec, rows: Any = None) -> Preprocessor:
        """Learn the imputation values, categories and normalization from ``frame``
        (its ``rows`` only, an index array, when given: the training rows).

        Every column of ``frame`` is an input feature. Columns are fitted one at a
        time, in float64, each taken out of ``frame`` only while it is fitted. The
        normalization is :meth:`Normalizer.fit` on the imputed number columns.
        Raises ValueError only for a ``spec.normalize`` that
        :func:`parse_preprocess` would have refused.
        """
        if rows is not None:
            # The statistics do not depend on the order of the rows; in order, the
            # rows are read from the (memory-mapped) columns front to back, and all of
            # them (distinct indices, so 0..n-1) are the columns themselves.
            rows = None if len(rows) == frame.n_rows else np.sort(rows)
        rules: list[_Rule] = []
        imputed: list[tuple[float, float]] = []
        for whole in frame:
            column = whole if rows is None else whole.take(rows)
            missing = column.missing
            had_missing = bool(missing.any())
            if column.kind == NUMBER:
                # float32 columns are fitted in float64 too, one column at a time.
                values = column.values.astype(np.float64)
                fill = _statistic(values[~missing], spec)
                rules.append(_NumberRule(column.name, fill, spec.missing_indicator and had_missing))
                if spec.normalize is not None:
                    # Its moments now, from this one column: never the stacked matrix.
                    imputed.append(
                        Normalizer.moments(spec.normalize, np.where(missing, fill, values))
                    )
            else:
                seen = np.unique(column.values[~missing])
                categories = tuple(sorted(column.categories[int(code)] for code in seen))
                rules.append(_CategoryRule(column.name, categories, had_missing))
        normalizer = None
        if spec.normalize is not None and imputed:
            n_rows = frame.n_rows if rows is None else len(rows)
            normalizer = Normalizer.from_moments(spec.normalize, imputed, n_rows)
        return cls(spec, rules, normalizer)

    # --- applying ------------------------------------------------------------

    def transform(
        self,
        frame: Frame,
        dtype: np.dtype[Any] | type = np.float64,
        unknown: str | None = None,
        rows: Any = None,
    ) -> Array:
        """The encoded matrix: ``frame.n_rows`` x :attr:`width`, of ``dtype``; with
        ``rows`` (an index array), of those rows only, gathered a block at a time
        rather than copied out of ``frame`` first.

        Columns are looked up by name, so ``frame`` may hold others too and in
        any order. A missing category value when the training rows had none
        becomes all-zero one-hot columns (whatever ``unknown`` says): there is
        no column for it, and it is not an unknown category either.

        Raises SpecError(field=name) for a column that is absent ("missing
        feature") or of the wrong kind, and :class:`UnknownCategory` for a
        category the training rows never had when ``unknown="error"`` (``unknown``
        overrides the spec's: scoring held-out rows encodes them as zeros).

        Categories are matched by text, and text that reads as a number also by
        value: a code sent as ``2`` finds the training category ``2.0``.
        """
        columns = [self._column(frame, rule) for rule in self._rules]
        n_rows = frame.n_rows if rows is None else len(rows)
        out = np.zeros((n_rows, self.width), dtype=dtype)
        # In blocks of rows: the temporaries of a block, not of the whole table, come
        # on top of the output (a million rows x 100 columns is 400 MB in float32).
        for start in range(0, n_rows, TRANSFORM_ROWS):
            block = slice(start, start + TRANSFORM_ROWS)
            taken = block if rows is None else rows[block]
            self._transform_rows([c.take(taken) for c in columns], out[block], unknown)
        return out

    def _transform_rows(self, columns: list[Column], out: Array, unknown: str | None) -> None:
        dtype = out.dtype
        normalizer = self.normalizer
        k = 0  # the number column's place in the normalizer
        for rule, offset, column in zip(self._rules, self._offsets, columns, strict=True):
            if isinstance(rule, _NumberRule):
                missing = column.missing
                # float64 whenever either side is: a float64 fill is not rounded twice.
                values = column.values.astype(np.promote_types(column.values.dtype, dtype))
                # Worked on contiguously, then written once into the output's column.
                x = np.empty(len(values), dtype=dtype)
                x[...] = np.where(missing, rule.fill, values) if missing.any() else values
                if normalizer is not None:
                    # As Normalizer.apply does: cast to dtype, then subtract the shift and
                    # divide by the scale in dtype (the same numbers as the Trainer's).
                    np.subtract(x, normalizer.shift[k].astype(dtype), out=x)
                    np.divide(x, normalizer.scale[k].astype(dtype), out=x)
                out[:, offset] = x
                k += 1
                if rule.indicator:
                    out[:, offset + 1] = missing
            else:
                self._one_hot(rule, column, out[:, offset:], unknown or self.spec.unknown)

    def _column(self, frame: Frame, rule: _Rule) -> Column:
        if rule.name not in frame:
            raise SpecError(rule.name, "missing feature")
        column = frame[rule.name]
        expected = self.kinds[rule.name]
        if column.kind != expected:
            raise SpecError(rule.name, f"expected {_PLURAL[expected]}, got {_PLURAL[column.kind]}")
        return column

    def _one_hot(self, rule: _CategoryRule, column: Column, out: Array, unknown: str) -> None:
        position = {category: k for k, category in enumerate(rule.categories)}
        by_value = numeric_positions(rule.categories)
        # One entry per category of this frame's column, and a last one that the
        # missing code -1 picks; -1 marks "no column" (unseen, or missing unknown).
        lookup = np.full(len(column.categories) + 1, -1, dtype=np.intp)
        lookup[:-1] = [
            position.get(category, by_value.get(_as_number(category), -1))
            for category in column.categories
        ]
        if rule.missing:
            lookup[-1] = len(rule.categories)
        target = lookup[column.values]
        if unknown == "error":
            unseen = np.flatnonzero((target < 0) & (column.values >= 0))
            if unseen.size:
                value = column.categories[int(column.values[unseen[0]])]
                raise UnknownCategory(rule.name, value, list(rule.categories))
        rows = np.flatnonzero(target >= 0)
        out[rows, target[rows]] = 1

    # --- JSON ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: the spec, one record per input column and the normalization."""
        columns: list[dict[str, Any]] = []
        for rule in self._rules:
            if isinstance(rule, _NumberRule):
                columns.append(
                    {
                        "name": rule.name,
                        "kind": NUMBER,
                        "fill": rule.fill,
                        "indicator": rule.indicator,
                    }
                )
            else:
                columns.append(
                    {
                        "name": rule.name,
                        "kind": CATEGORY,
                        "categories": list(rule.categories),
                        "missing": rule.missing,
                    }
                )
        return {
            "format": FORMAT_VERSION,
            "spec": asdict(self.spec),
            "columns": columns,
            "normalization": None if self.normalizer is None else self.normalizer.to_dict(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocessor:
        """The preprocessor :meth:`to_json` described (SpecError for a bad spec in it)."""
        spec = parse_preprocess(data["spec"], "preprocess.spec")
        rules: list[_Rule] = []
        for column in data["columns"]:
            if column["kind"] == NUMBER:
                rules.append(
                    _NumberRule(column["name"], float(column["fill"]), bool(column["indicator"]))
                )
            else:
                rules.append(
                    _CategoryRule(
                        column["name"],
                        tuple(str(c) for c in column["categories"]),
                        bool(column["missing"]),
                    )
                )
        norm = data.get("normalization")
        normalizer = None if norm is None else Normalizer.from_dict(norm)
        return cls(spec, rules, normalizer)


def _statistic(observed: Array, spec: PreprocessSpec) -> float:
    """The value that replaces a missing number, from the column's observed values."""
    if spec.impute == "constant":
        return spec.fill_value
    if observed.size == 0:
        # No value to take a median or mean of. 0 keeps the column (and so the
        # network's input width) whatever rows training had, as scikit-learn's
        # SimpleImputer(keep_empty_features=True) does; with an indicator, the
        # indicator column carries all the column says.
        return 0.0
    if spec.impute == "median":
        return float(np.median(observed))
    return float(np.mean(observed))


def _as_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def numeric_positions(categories: Sequence[str]) -> dict[float | None, int]:
    """Training categories that read as numbers, by value (codes written 1 or 1.0).

    A value two categories share (``01`` and ``1``) is left out: text decides those.
    """
    seen: dict[float, int] = {}
    shared: set[float] = set()
    for k, category in enumerate(categories):
        value = _as_number(category)
        if value is None:
            continue
        if value in seen:
            shared.add(value)
        seen[value] = k
    return {value: k for value, k in seen.items() if value not in shared}
