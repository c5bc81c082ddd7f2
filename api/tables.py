"""One reader for every table users send: CSV bytes, Parquet bytes, JSON records
and JSON columns, turned into a typed :class:`core.frame.Frame`.

pyarrow does the parsing and the conversions: numbers are parsed by its CSV
reader (or cast from text by pyarrow.compute), and category codes come from its
dictionary encoding. Python only looks at cells one by one when something is
wrong, to say where: ``line 7, column 3: ...`` for CSV, ``records[3].age`` or
``inputs.age[3]`` for JSON. Every problem is an :class:`api.errors.ApiError`.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import math
import mmap
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pcsv  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from core.frame import CATEGORY, KINDS, MISSING_CODE, NUMBER, Column, Frame

from .errors import ApiError, invalid, limit_exceeded

HEADER_RULES = ("present", "absent", "auto")
DELIMITERS = (",", ";", "\t", "|")
# Below this many values, "every value distinct" or "0, 1, 2, ..." says little about
# a column: a small table of measurements can look like that by chance.
MIN_ROWS_TO_INFER_IGNORED = 20

# Cells that mark a missing value, in any case once surrounding spaces are gone:
# pandas' and R's usual markers, and the `?` of UCI files.
MISSING = ("", "na", "n/a", "null", "nan", "?")
BOOLEANS = ("true", "false")


def _all_cases(words: Sequence[str]) -> list[str]:
    """Every upper/lower-case spelling: pyarrow matches null and boolean markers exactly."""
    spellings: set[str] = set()
    for word in words:
        choices = [(c.lower(), c.upper()) if c.isalpha() else (c,) for c in word]
        spellings.update("".join(p) for p in itertools.product(*choices))
    return sorted(spellings)


NULL_SPELLINGS = _all_cases(MISSING)
TRUE_SPELLINGS = _all_cases(("true",))
FALSE_SPELLINGS = _all_cases(("false",))

# Plain decimal numbers with an optional exponent, in ASCII digits (RE2 syntax, for
# pyarrow.compute, and Python's). Python and pyarrow read more (`inf`, `1_0`,
# `0x1F`), which spreadsheets do not write as numbers: such a cell is a slip.
NUMBER_PATTERN = {
    ".": r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$",
    ",": r"^[+-]?(?:[0-9]+,?[0-9]*|,[0-9]+)(?:[eE][+-]?[0-9]+)?$",
}
NUMBER_RE = {mark: re.compile(pattern) for mark, pattern in NUMBER_PATTERN.items()}
# Numbers written with the other mark: thousands separators, or decimals in the
# other convention. They count as numbers when deciding a column's kind, so that a
# column of `1,5` read with decimal "." is refused with a hint, not taken as text.
THOUSANDS_PATTERN = {
    ".": r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?",
    ",": r"[+-]?[0-9]{1,3}(?:\.[0-9]{3})+(?:,[0-9]*)?",
}
OTHER_DECIMAL_PATTERN = {
    ".": r"[+-]?[0-9]*,[0-9]+",
    ",": r"[+-]?[0-9]*\.[0-9]+(?:[eE][+-]?[0-9]+)?",
}
THOUSANDS = {mark: re.compile(pattern) for mark, pattern in THOUSANDS_PATTERN.items()}
OTHER_DECIMAL = {mark: re.compile(pattern) for mark, pattern in OTHER_DECIMAL_PATTERN.items()}
OTHER_MARK_PATTERN = {
    mark: f"^(?:{THOUSANDS_PATTERN[mark]}|{OTHER_DECIMAL_PATTERN[mark]})$"
    for mark in THOUSANDS_PATTERN
}
HEX = re.compile(r"[+-]?0[xX][0-9a-fA-F]+")
MAX_QUOTED = 40

# A table body: its bytes, or (an upload spooled to disk) the path of the file that
# holds them, which is read memory-mapped rather than copied into memory.
Source = bytes | Path
# Bytes in memory or a view of a mapped file; slices of a memoryview copy nothing.
Buffer = bytes | memoryview


@dataclass(frozen=True)
class ReadOptions:
    """How to read a table; every field has the default of a plain upload.

    ``delimiter`` None detects one of ``, ; TAB |`` from the first line.
    ``header`` is "present", "absent" or "auto". ``names`` name the columns of
    a table without a header (else x0, x1, ...). ``categorical`` columns are
    read as categories even when they hold numbers; ``ignore`` columns are
    dropped; ``keep`` columns are never dropped automatically; ``schema`` fixes
    the kind ("number" | "category") of the columns it names. ``max_cells``
    limits rows x columns.
    """

    delimiter: str | None = None
    decimal: str = "."
    charset: str = "utf-8"
    header: str = "present"
    names: tuple[str, ...] | None = None
    categorical: frozenset[str] = frozenset()
    ignore: frozenset[str] = frozenset()
    keep: frozenset[str] = frozenset()
    schema: Mapping[str, str] | None = None
    max_cells: int | None = None
    # Predict bodies may hold no rows (a batch that happens to be empty); uploads may not.
    allow_empty: bool = False


def _row_itself(row: int) -> int:
    return row


def _no_rows(names: Sequence[str], options: ReadOptions, problem: str) -> ReadTable:
    """Columns without rows, of the schema's kinds, where ``allow_empty``; else a 422."""
    if not options.allow_empty:
        raise invalid("body", problem)
    schema = options.schema or {}
    kept = [name for name in names if name not in options.ignore]
    columns = [
        Column.category(name, []) if schema.get(name) == CATEGORY else Column.number(name, [])
        for name in kept
    ]
    return ReadTable(Frame(columns), tuple(n for n in names if n in options.ignore), {})


@dataclass(frozen=True)
class ReadTable:
    """What a reader made of a table.

    ``frame`` holds the kept columns in file order; ``ignored`` the dropped ones
    in file order; ``inferred_ignored`` says why each column dropped without
    being asked was dropped.
    """

    frame: Frame
    ignored: tuple[str, ...]
    inferred_ignored: dict[str, str]
    _locate: Callable[[int], int] = field(default=_row_itself, repr=False, compare=False)

    def line_of(self, row: int) -> int:
        """The 1-based line where CSV data row ``row`` (0-based) starts; for JSON and
        Parquet, ``row`` itself. Slow on first call for CSV (it re-reads the text)."""
        return self._locate(row)


# --- where a cell is, for messages --------------------------------------------------


class _Places:
    """Names cells in messages: ``(field, prefix)`` for a cell of a column."""

    # Parquet floats may hold NaN for missing; in text, NaN is only a missing marker.
    nan_is_missing = False

    def at(self, name: str, position: int, row: int) -> tuple[str, str]:
        raise NotImplementedError

    def raw(self, position: int, row: int) -> str | None:
        """The cell as sent, when the column's values no longer hold it."""
        return None

    def line_of(self, row: int) -> int:
        return row


class _RecordPlaces(_Places):
    def __init__(self, field: str) -> None:
        self.field = field

    def at(self, name: str, position: int, row: int) -> tuple[str, str]:
        return f"{self.field}[{row}].{name}", ""


class _ColumnPlaces(_Places):
    def __init__(self, field: str) -> None:
        self.field = field

    def at(self, name: str, position: int, row: int) -> tuple[str, str]:
        return f"{self.field}.{name}[{row}]", ""


class _ParquetPlaces(_Places):
    nan_is_missing = True

    def at(self, name: str, position: int, row: int) -> tuple[str, str]:
        return name, f"row {row}: "


class _CsvPlaces(_Places):
    """Lines of the data rows, found by re-reading the text with Python's csv module.

    Only error paths and :meth:`ReadTable.line_of` need them, so the scan waits
    until one asks.
    """

    def __init__(self, data: Buffer, first_line: int, delimiter: str) -> None:
        self.data = data
        self.first_line = first_line
        self.delimiter = delimiter

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """(line where it starts, cells) of each data record; blank lines skipped.

        Stops early at what Python's csv module cannot read (a cell past its field
        size limit): this only locates errors, so it must not raise one itself.
        """
        text = str(self.data, "utf-8", errors="replace")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter)
        end = self.first_line - 1
        try:
            for row in reader:
                start, end = end + 1, self.first_line - 1 + reader.line_num
                if row:
                    yield start, row
        except csv.Error:
            return

    @cached_property
    def _lines(self) -> list[int]:
        return [line for line, _ in self.records()]

    def line_of(self, row: int) -> int:
        lines = self._lines
        return lines[row] if 0 <= row < len(lines) else self.first_line + row

    def raw(self, position: int, row: int) -> str | None:
        # One cell, once: not worth holding every row's cells in memory.
        cells = next(itertools.islice(self.records(), row, None), (0, []))[1]
        return cells[position].strip() if position < len(cells) else None

    def at(self, name: str, position: int, row: int) -> tuple[str, str]:
        return name, f"line {self.line_of(row)}, column {position + 1}: "


def _quote(cell: str) -> str:
    if len(cell) > MAX_QUOTED:
        cell = cell[: MAX_QUOTED - 3] + "..."
    return repr(cell)


# --- columns: text to kinds -----------------------------------------------------------


Mask = np.ndarray[Any, np.dtype[np.bool_]]
Floats = np.ndarray[Any, np.dtype[np.float64]]
Codes = np.ndarray[Any, np.dtype[np.int64]]


def _mask(values: Any) -> Mask:
    mask: Mask = np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)
    return mask


def _cleaned(values: Any) -> Any:
    """Text with spaces trimmed, missing markers as nulls and booleans as "true"/"false"."""
    trimmed = pc.utf8_trim_whitespace(values)
    lowered = pc.utf8_lower(trimmed)
    missing = pc.is_in(lowered, value_set=pa.array(MISSING, pa.string()))
    trimmed = pc.if_else(missing, pa.scalar(None, trimmed.type), trimmed)
    boolean = pc.is_in(lowered, value_set=pa.array(BOOLEANS, pa.string()))
    return pc.if_else(boolean, lowered, trimmed)


class _Text:
    """A column of text as its distinct values (``entries``, cleaned) and, for each
    row, the index of its entry (-1 for missing).

    Every check and conversion runs once per distinct value rather than once per
    cell, then reaches the rows by indexing: 200,000 cells of 10 categories cost
    10 regex matches.
    """

    def __init__(self, values: Any) -> None:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if pa.types.is_dictionary(values.type):
            # A Parquet dictionary may list values that no row holds.
            values = values.dictionary_decode()
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            values = pc.cast(values, pa.string())
        encoded = pc.dictionary_encode(values)
        self.entries = _cleaned(encoded.dictionary)
        self.valid = _mask(self.entries.is_valid())
        indices = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        self.indices: Codes = np.array(indices, dtype=np.int64)  # a copy: written below
        # Entries that cleaning made missing (NA, " ") are missing rows too.
        self.indices[~np.append(self.valid, False)[self.indices]] = -1
        present = self.indices[self.indices >= 0]
        self.counts = np.bincount(present, minlength=len(self.entries))

    def rows(self, entries: Mask) -> Mask:
        """Which rows hold one of the given entries."""
        mask: Mask = np.append(entries, False)[self.indices]
        return mask

    def first_row(self, entries: Mask) -> int | None:
        found = np.flatnonzero(self.rows(entries))
        return int(found[0]) if found.size else None

    def count(self, entries: Mask) -> int:
        return int(self.counts[entries].sum())

    @property
    def n_present(self) -> int:
        return int(self.counts.sum())

    def cell(self, row: int) -> str:
        return str(self.entries[int(self.indices[row])].as_py())

    def matches(self, pattern: str) -> Mask:
        """Which entries match an RE2 pattern (never the missing ones)."""
        return _mask(pc.match_substring_regex(self.entries, pattern)) & self.valid

    def categories(self) -> tuple[Codes, tuple[str, ...]]:
        """Codes into the sorted distinct values (-1 for missing)."""
        # Encoding again merges entries that cleaning made equal (" a" and "a").
        encoded = pc.dictionary_encode(self.entries)
        labels = encoded.dictionary
        if len(labels) == 0:
            return np.full(len(self.indices), MISSING_CODE, dtype=np.int64), ()
        order = np.asarray(pc.array_sort_indices(labels).to_numpy(), dtype=np.int64)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order), dtype=np.int64)
        label_of = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        label_of = np.asarray(label_of, dtype=np.int64)
        code_of = np.where(label_of >= 0, rank[np.maximum(label_of, 0)], MISSING_CODE)
        codes: Codes = np.append(code_of, MISSING_CODE)[self.indices].astype(np.int64)
        categories = tuple(str(label) for label in labels.take(pa.array(order)).to_pylist())
        return codes, categories


@dataclass
class _Column:
    """One column being read: its name, 0-based position in the file, and where
    its cells are named in messages."""

    name: str
    position: int
    places: _Places
    decimal: str
    # What an upload may say to read the column as categories (a predict body's
    # columns take the model's types, so it has nothing to say there).
    remedy: str = ""

    @property
    def nan_is_missing(self) -> bool:
        return self.places.nan_is_missing

    def error(self, row: int, message: str) -> ApiError:
        field, prefix = self.places.at(self.name, self.position, row)
        return invalid(field, prefix + message)

    def not_a_number(self, row: int, cell: str, inferred: bool) -> ApiError:
        """The error for a cell that is not a plain decimal number."""
        quoted = _quote(cell)
        mark = self.decimal
        if THOUSANDS[mark].fullmatch(cell):
            return self.error(row, f"{quoted} has a thousands separator; write numbers without one")
        if OTHER_DECIMAL[mark].fullmatch(cell):
            if mark == ".":
                return self.error(
                    row,
                    f"{quoted} has a decimal comma; pass decimal=, if the file writes numbers "
                    "that way",
                )
            return self.error(
                row,
                f"{quoted} has a point in a file read with decimal=,; write numbers like 1234,5",
            )
        value = _python_float(cell)
        if value is not None and not math.isfinite(value):  # inf, -Infinity
            return self.error(row, f"must be finite, got {quoted}")
        if value is not None or HEX.fullmatch(cell):
            return self.error(
                row, f"expected a plain decimal number (digits, a point, an exponent), got {quoted}"
            )
        if inferred:
            return self.error(
                row,
                f"{quoted} is text in a column of numbers{self.remedy}",
            )
        return self.error(row, f"expected a number, got {quoted}")

    def numbers(self, values: Any) -> Floats:
        """A column pyarrow parsed as numbers, as float64 (float32 and float16 ones as
        float32); refuses what is not finite."""
        vtype = values.type
        single = pa.types.is_float32(vtype) or pa.types.is_float16(vtype)
        target = (pa.float32(), np.float32) if single else (pa.float64(), np.float64)
        # Unsafe: integers past 2**53 round to the nearest float instead of failing.
        floats = values if vtype == target[0] else pc.cast(values, target[0], safe=False)
        if isinstance(floats, pa.ChunkedArray) and floats.num_chunks == 1:
            floats = floats.chunk(0)  # without nulls, its values are viewed, not copied
        array: Floats = np.asarray(floats.to_numpy(zero_copy_only=False), dtype=target[1])
        # Parquet's NaN is a missing value; elsewhere a missing cell is a null (NaN
        # here), so only more non-finite values than nulls call for a closer look.
        if self.nan_is_missing:
            suspicious = bool(np.isinf(array).any())
        else:
            suspicious = int(np.count_nonzero(~np.isfinite(array))) > values.null_count
        if suspicious:
            if self.nan_is_missing:
                bad = np.isinf(array)
            else:
                bad = ~np.isfinite(array) & _mask(floats.is_valid())
            row = int(np.flatnonzero(bad)[0])
            raw = self.places.raw(self.position, row)
            cell = raw if raw is not None else str(floats[row].as_py())
            if NUMBER_RE[self.decimal].fullmatch(cell) or raw is None:
                raise self.error(row, f"must be finite, got {_quote(cell)}")
            raise self.not_a_number(row, cell, inferred=False)
        return array

    def is_number(self, text: _Text) -> Mask:
        return text.matches(NUMBER_PATTERN[self.decimal])

    def numbers_from_text(self, text: _Text, number: Mask, inferred: bool) -> Floats:
        """Text cells as float64; the first cell that is not a finite number is refused."""
        row = text.first_row(text.valid & ~number)
        if row is not None:
            raise self.not_a_number(row, text.cell(row), inferred)
        entries = text.entries
        pointed = pc.replace_substring(entries, ",", ".") if self.decimal == "," else entries
        floats = pc.cast(pointed, pa.float64()).to_numpy(zero_copy_only=False)
        values: Floats = np.asarray(floats, dtype=np.float64)
        row = text.first_row(~np.isfinite(values) & text.valid)
        if row is not None:  # too large for a float, like 1e999
            raise self.error(row, f"must be finite, got {_quote(text.cell(row))}")
        return np.append(values, np.nan)[text.indices]


def _python_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


# Names that tools give the row index they save with a table (pandas writes an empty
# header, or "Unnamed: 0" once read back; R writes "" or "rownames"): only such a
# column of 0..n-1 or 1..n is taken for an index, not a feature that counts up.
INDEX_NAMES = frozenset({"", "index", "rownames", "row.names", "row", "id", "unnamed: 0"})


def _row_index(name: str, values: np.ndarray[Any, np.dtype[np.float64]]) -> str | None:
    """Why a number column looks like a saved row index, or None."""
    n = values.shape[0]
    if name.strip().lower() not in INDEX_NAMES:
        return None
    if n < MIN_ROWS_TO_INFER_IGNORED or values[0] not in (0.0, 1.0):
        return None
    start = int(values[0])
    if values[-1] != start + n - 1 or not np.array_equal(values, np.arange(start, start + n)):
        return None
    return f"the row positions {start}..{start + n - 1} in order: a saved row index"


Built = tuple[Column | None, str | None]


def _build(column: _Column, values: Any, kind: str | None, infer_text: bool, keep: bool) -> Built:
    """One column of a frame, or None and why it was dropped.

    ``kind`` is the kind asked for (schema or categorical), else None to infer it.
    ``infer_text``: whether text may turn out to be numbers (CSV, JSON), or is
    always categories (Parquet strings).
    """
    name = column.name
    vtype = values.type
    numeric = pa.types.is_integer(vtype) or pa.types.is_floating(vtype)
    numeric = numeric or pa.types.is_decimal(vtype)
    if kind == NUMBER and numeric:
        return Column(name, NUMBER, column.numbers(values)), None
    if kind is None and numeric:
        array = column.numbers(values)
        if not keep and np.isnan(array).all():
            return None, "every value is missing"
        reason = None if keep else _row_index(name, array)
        return (None, reason) if reason else (Column(name, NUMBER, array), None)
    if pa.types.is_null(vtype):
        if kind == CATEGORY:
            return Column(name, CATEGORY, np.full(len(values), MISSING_CODE, np.int64)), None
        if kind is None and not keep:
            return None, "every value is missing"
        return Column(name, NUMBER, np.full(len(values), np.nan)), None

    text = _Text(values)
    if kind == NUMBER:
        number = column.is_number(text)
        return Column(name, NUMBER, column.numbers_from_text(text, number, False)), None
    if kind == CATEGORY:
        codes, categories = text.categories()
        return Column(name, CATEGORY, codes, categories), None

    n_present = text.n_present
    if n_present == 0:
        if keep:
            return Column(name, NUMBER, np.full(len(values), np.nan)), None
        return None, "every value is missing"
    if infer_text:
        number = column.is_number(text)
        n_numbers = text.count(number)
        if n_numbers < n_present:
            other_mark = text.matches(OTHER_MARK_PATTERN[column.decimal])
            n_numbers += text.count(other_mark & ~number)
        # The rarer kind is the slip: a stray word among numbers is refused at the
        # word, while a few numbers among words are categories like the rest.
        if n_numbers * 2 >= n_present:
            array = column.numbers_from_text(text, number, True)
            reason = None if keep else _row_index(name, array)
            return (None, reason) if reason else (Column(name, NUMBER, array), None)
    codes, categories = text.categories()
    if not keep and n_present >= MIN_ROWS_TO_INFER_IGNORED and len(categories) == n_present:
        return None, "every value is distinct: an identifier"
    return Column(name, CATEGORY, codes, categories), None


def _check_options(options: ReadOptions) -> None:
    if options.decimal not in (".", ","):
        raise invalid("decimal", f"expected '.' or ',', got {options.decimal!r}")
    if options.header not in HEADER_RULES:
        raise invalid(
            "header", f"expected one of {', '.join(HEADER_RULES)}, got {options.header!r}"
        )
    if options.delimiter is not None and (
        len(options.delimiter) != 1 or options.delimiter in '"\r\n'
    ):
        raise invalid(
            "delimiter",
            f"expected one character other than a quote or a line break, got {options.delimiter!r}",
        )
    for name, kind in (options.schema or {}).items():
        if kind not in KINDS:
            raise invalid("schema", f"column {name!r}: expected a kind among {KINDS}, got {kind!r}")


def _check_names(names: Sequence[str], options: ReadOptions) -> None:
    """Refuse ``ignore`` and ``categorical`` names that no column has."""
    known = set(names)
    for option, asked in (("ignore", options.ignore), ("categorical", options.categorical)):
        unknown = sorted(asked - known)
        if unknown:
            raise invalid(option, f"no column {unknown[0]!r}; the columns are {list(names)}")


def _check_cells(n_rows: int, n_columns: int, options: ReadOptions) -> None:
    if options.max_cells is not None and n_rows * n_columns > options.max_cells:
        raise limit_exceeded(
            "body",
            f"the table has {n_rows} rows x {n_columns} columns = {n_rows * n_columns} values; "
            f"the limit is {options.max_cells} (BACKPROP_MAX_DATASET_CELLS)",
        )


def _kind(name: str, options: ReadOptions) -> str | None:
    if options.schema is not None and name in options.schema:
        return options.schema[name]
    return CATEGORY if name in options.categorical else None


def _assemble(
    names: Sequence[str],
    columns: dict[str, Any],
    options: ReadOptions,
    places: _Places,
    infer_text: bool,
    decimal: str,
    unsupported: Mapping[str, str] | None = None,
) -> ReadTable:
    """The frame of ``columns`` (name -> pyarrow array), in the order of ``names``.

    Each array is taken out of ``columns`` once converted, so that a caller holding
    no other reference to it frees it before the next column is converted.
    """
    kept: list[Column] = []
    ignored: list[str] = []
    inferred: dict[str, str] = {}
    for position, name in enumerate(names):
        if name in options.ignore:
            ignored.append(name)
            continue
        if unsupported and name in unsupported:
            if _kind(name, options) is not None or name in options.keep:
                raise invalid(name, f"column {name!r}: {unsupported[name]}")
            ignored.append(name)
            inferred[name] = unsupported[name]
            continue
        remedy = (
            f"; pass categorical={name} if this column holds categories"
            if options.schema is None
            else ""
        )
        reading = _Column(name, position, places, decimal, remedy)
        built, reason = _build(
            reading, columns.pop(name), _kind(name, options), infer_text, name in options.keep
        )
        if built is None:
            ignored.append(name)
            inferred[name] = reason or "dropped"
        else:
            kept.append(built)
    return ReadTable(Frame(kept), tuple(ignored), inferred, places.line_of)


# --- CSV ----------------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"
LINE_BREAK = re.compile(rb"\r\n|\r|\n")
SAMPLE_BYTES = 65536


def _utf8(body: Buffer, charset: str, delimiter: str | None) -> Buffer:
    """The body as UTF-8 without a byte order mark; undecodable bytes are refused.

    UTF-8 comes back as a view of ``body``; another charset is decoded (and encoded
    again) in memory.
    """
    try:
        info = codecs.lookup(charset)
    except LookupError:
        info = None
    # Python also names codecs from bytes to bytes (base64, zlib): not charsets.
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise invalid("charset", f"unknown charset {charset!r}")
    codec = info.name
    if codec in ("utf-8", "utf-8-sig"):
        return body[len(BOM) :] if bytes(body[: len(BOM)]) == BOM else body
    try:
        text = str(body, codec)
    except UnicodeDecodeError as exc:
        raise _undecodable(body, exc.start, charset, delimiter=delimiter) from None
    return text.removeprefix("\ufeff").encode("utf-8")


def _undecodable(
    body: Buffer,
    offset: int,
    charset: str,
    first_line: int = 1,
    delimiter: str | None = None,
    names: Sequence[str] = (),
) -> ApiError:
    """Where the first byte that ``charset`` cannot decode is: line and column.

    ``first_line`` is the line of the file where ``body`` starts; ``names``, when
    known, name the columns. Without a ``delimiter``, the first line's is taken.
    """
    body = bytes(body)  # a failure's message: worth a copy
    before = body[:offset]
    line = first_line + _line_breaks(before)
    start = max(before.rfind(b"\n"), before.rfind(b"\r")) + 1
    text = before[start:].decode(charset, errors="replace")
    if delimiter is None:
        first = _skip_blank_lines(body)
        line_one = body[first : _line_end(body, first)].decode(charset, errors="replace")
        delimiter = _detect_delimiter([line_one])
    column = _outside_quotes(text).count(delimiter) + 1
    return invalid(
        names[column - 1] if column <= len(names) else "body",
        f"line {line}, column {column}: byte {body[offset : offset + 1]!r} is not valid "
        f"{charset}; pass the file's charset in the Content-Type",
    )


def _outside_quotes(text: str) -> str:
    return re.sub(r'"(?:[^"]|"")*("|$)', "", text)


def _detect_delimiter(lines: Sequence[str], decimal: str = ".") -> str:
    """The delimiter of a file whose first lines are ``lines`` (the first one decides
    first): a candidate on the first line, outside quotes, preferably as often on
    every line, preferably not the decimal mark, then the most frequent. Lines after
    the first tell `1,5;2` (semicolons, decimal commas) from `1;5,2`."""
    counts = {c: [_outside_quotes(line).count(c) for line in lines] for c in DELIMITERS}

    def score(candidate: str) -> tuple[bool, bool, bool, int]:
        first, *rest = counts[candidate]
        return first > 0, all(n == first for n in rest), candidate != decimal, first

    best = max(DELIMITERS, key=score)  # the first listed among equals
    return best if counts[best][0] else ","


def _sample_lines(data: Buffer, start: int, limit: int = 10) -> list[str]:
    """Up to ``limit`` non-blank lines from ``start``, for guessing the delimiter."""
    chunk = bytes(data[start : start + SAMPLE_BYTES])
    lines = chunk.decode("utf-8", errors="replace").splitlines()
    if len(chunk) == SAMPLE_BYTES:
        lines = lines[:-1]  # cut short
    return [line for line in lines if line.strip()][:limit]


def _line_breaks(data: Buffer) -> int:
    data = bytes(data)
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _holds(data: Buffer, *needles: bytes) -> bool:
    """Whether ``data`` holds one of the ``needles`` (a mapped file is not copied)."""
    if isinstance(data, bytes):
        return any(needle in data for needle in needles)
    pattern = b"|".join(re.escape(needle) for needle in needles)
    return re.search(pattern, data) is not None


def _skip_blank_lines(data: Buffer) -> int:
    """The offset of the first byte that is not a line break."""
    found = re.search(rb"[^\r\n]", data)
    return found.start() if found else len(data)


def _line_end(data: Buffer, start: int) -> int:
    """The offset of the first line break from ``start`` (or the end)."""
    found = LINE_BREAK.search(data, start)
    return found.start() if found else len(data)


def _first_record(data: Buffer, start: int, delimiter: str, line: int) -> tuple[list[str], int]:
    """The cells of the record that starts at ``start`` (spaces stripped), and the
    offset past its line break.

    Read with Python's csv module, which like pyarrow takes a quote as one only at
    the start of a cell, so that both agree on where the data rows begin. The text
    read grows until the record ends inside it.
    """
    size = SAMPLE_BYTES
    while True:
        chunk = bytes(data[start : start + size])
        text = chunk.decode("utf-8", errors="replace")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        try:
            row = next(reader, [])
        except csv.Error as exc:
            raise invalid("body", f"line {line}: {exc}") from None
        breaks = list(itertools.islice(LINE_BREAK.finditer(chunk), reader.line_num))
        if start + size >= len(data) or len(breaks) == reader.line_num:
            break
        size *= 4
    after = start + breaks[-1].end() if len(breaks) == reader.line_num else len(data)
    if bytes(data[after - 1 : after + 1]) == b"\r\n":  # a chunk cut between CR and LF
        after += 1
    return [cell.strip() for cell in row], min(after, len(data))


def _classify(cell: str, decimal: str) -> str:
    """ "missing", "number" or "text"; a number with the other mark, or mistyped,
    is a number here, so that the reader then refuses it with a hint instead of
    taking the row for a header."""
    if cell.lower() in MISSING:
        return "missing"
    plain = NUMBER_RE[decimal].fullmatch(cell)
    other = THOUSANDS[decimal].fullmatch(cell) or OTHER_DECIMAL[decimal].fullmatch(cell)
    # Mistyped numbers (1_0, inf, 0x1F) are data too, refused at their cell after.
    typo = _python_float(cell) is not None or HEX.fullmatch(cell)
    return "number" if plain or other or typo else "text"


def _has_header(line: int, cells: list[str], options: ReadOptions) -> bool:
    """Whether the first record names the columns; "auto" decides by its cells."""
    if options.header != "auto":
        return options.header == "present"
    # Every column the reader was told to expect, by name: a header, even of names
    # that read as numbers (columns called 2019 and 2020).
    if options.names and len(set(cells)) > 1 and set(options.names) <= set(cells):
        return True
    kinds = {_classify(cell, options.decimal) for cell in cells} - {"missing"}
    if kinds == {"text"}:
        return True
    if "text" not in kinds:
        return False
    raise invalid(
        "header",
        f"line {line} holds both numbers and names {cells}; say whether it is a header with "
        "?header=present or ?header=absent",
    )


def _check_header(line: int, names: list[str]) -> None:
    seen: set[str] = set()
    for column, name in enumerate(names, start=1):
        # The first column may be unnamed: pandas writes its row index so. It must then
        # turn out to be that index (read_csv checks), or it is refused as unnamed.
        if not name and column > 1:
            raise invalid("body", f"line {line}, column {column}: the header row needs a name here")
        if name in seen:
            raise invalid(name, f"line {line}: the column name {name!r} appears twice")
        seen.add(name)


def _mapped(source: Source) -> Buffer:
    """The bytes of a body: itself, or a read-only memory map of its file.

    The map is closed when the last view of it goes (a :class:`ReadTable` keeps one
    to find lines); the arrays pyarrow reads from it are its own, not views of it.
    """
    if isinstance(source, bytes):
        return memoryview(source)
    with open(source, "rb") as file:
        if file.seek(0, io.SEEK_END) == 0:
            return b""  # an empty file cannot be mapped
        return memoryview(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))


def read_csv(body: Source, options: ReadOptions) -> ReadTable:
    """A typed table from CSV bytes in ``options.charset`` (or the file at ``body``,
    memory-mapped).

    The first record is the header, or data (``options.header``); without a
    header the columns are ``options.names`` or x0, x1, ...; with one,
    ``options.names`` is not used. Returns the kept columns (number: float64 with
    NaN for missing; category: int64 codes into sorted categories, -1 missing) in
    file order. Raises ApiError 422 (``invalid``) whose message starts
    ``line L, column C:`` and whose field is the column's name (``body`` when the
    fault is not one column's: a ragged row, an empty body), and
    ``limit_exceeded`` (field ``body``) when rows x columns, counting every column
    of the file, passes ``options.max_cells``.
    """
    _check_options(options)
    data = _utf8(_mapped(body), options.charset, options.delimiter)
    start = _skip_blank_lines(data)
    if start == len(data):
        raise invalid("body", "the CSV body is empty")
    first_line = _line_breaks(data[:start]) + 1
    stop = _line_end(data, start)
    delimiter = options.delimiter or _detect_delimiter(
        [
            bytes(data[start:stop]).decode("utf-8", errors="replace"),
            *_sample_lines(data, stop),
        ],
        options.decimal,
    )
    cells, after = _first_record(data, start, delimiter, first_line)
    try:
        bytes(data[start:after]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _undecodable(data, start + exc.start, "utf-8", delimiter=delimiter) from None
    if _has_header(first_line, cells, options):
        names = cells
        _check_header(first_line, names)
        rows = data[after:]
        rows_line = first_line + _line_breaks(data[start:after])
    else:
        given = options.names
        if given is not None and len(given) != len(cells):
            # The names are the columns expected (a model's inputs): the row is at fault.
            raise invalid(
                "body", f"line {first_line}: expected {len(given)} values, got {len(cells)}"
            )
        names = list(given) if given is not None else [f"x{i}" for i in range(len(cells))]
        if len(set(names)) != len(names):
            raise invalid("names", "a name appears twice")
        rows = data[start:]
        rows_line = first_line
    _check_names(names, options)
    if not re.search(rb"[^\r\n]", rows):
        return _no_rows(
            names, options, f"the CSV has a header (line {first_line}) but no data rows"
        )
    places = _CsvPlaces(rows, rows_line, delimiter)
    table = _arrow_csv(rows, names, delimiter, options, places)
    if table.num_rows == 0:
        return _no_rows(
            names, options, f"the CSV has a header (line {first_line}) but no data rows"
        )
    _check_cells(table.num_rows, len(names), options)
    columns = {
        name: table.column(f"c{i}") for i, name in enumerate(names) if name not in options.ignore
    }
    del table  # each column is freed once converted
    read = _assemble(names, columns, options, places, True, options.decimal)
    # An upload must have found the unnamed column an index; a predict body (read with
    # a schema) may still hold the index its model's upload ignored.
    if "" in read.frame and options.schema is None:
        raise invalid("body", f"line {first_line}, column 1: the header row needs a name here")
    return read


# Bytes scanned at a time when counting a body's lines.
_SCAN_BYTES = 1 << 22


def csv_rows_at_least(body: Source) -> int:
    """A lower bound of the data rows of CSV bytes, found without parsing: the
    non-empty lines less one (a header), when no quote can hold a line break; else 0.

    Counted on NumPy blocks of the bytes, so that a body far past a row limit is
    refused in a fraction of the time and memory of reading it.
    """
    if not isinstance(body, bytes) or b'"' in body:
        return 0
    data = np.frombuffer(body, dtype=np.uint8)
    lines, before = 0, True  # before: the byte before the block is a line break
    for start in range(0, len(data), _SCAN_BYTES):
        block = data[start : start + _SCAN_BYTES]
        breaks = (block == ord("\n")) | (block == ord("\r"))
        previous = np.concatenate(([before], breaks[:-1]))
        lines += int(np.count_nonzero(breaks & ~previous))
        before = bool(breaks[-1])
    if len(data) and not before:
        lines += 1  # the last line has no line break
    return max(lines - 1, 0)


def _arrow_csv(
    rows: Buffer, names: list[str], delimiter: str, options: ReadOptions, places: _CsvPlaces
) -> Any:
    """pyarrow's reading of the data rows, under internal names c0, c1, ...

    Columns pyarrow would read as dates, times or hex integers are read again as
    text, so that the rules here (not pyarrow's) decide what they are.
    """
    internal = [f"c{i}" for i in range(len(names))]
    text_types = {
        f"c{i}": pa.string()
        for i, name in enumerate(names)
        if _kind(name, options) == CATEGORY and name not in options.ignore
    }
    # None reads every column: pyarrow matches a list of included names to the columns
    # one by one, which is quadratic for a table of 100,000 columns.
    included = [f"c{i}" for i, name in enumerate(names) if name not in options.ignore]
    if len(included) == len(names):
        included = []
    parse = pcsv.ParseOptions(
        delimiter=delimiter,
        quote_char='"',
        double_quote=True,
        escape_char=False,
        # Only a quote can hold a line break; without one, blocks are cut in parallel.
        newlines_in_values=_holds(rows, b'"'),
        ignore_empty_lines=True,
    )
    read = pcsv.ReadOptions(column_names=internal, autogenerate_column_names=False)
    hex_possible = _holds(rows, b"0x", b"0X")
    # Columns that must hold numbers need no boolean spellings, whose matching pyarrow
    # sets up once per column (seconds for 100,000 columns); "true" is then text there,
    # refused as a number would be.
    numbers_only = options.schema is not None and all(
        options.schema.get(name) == NUMBER for name in names if name not in options.ignore
    )
    for _ in range(2):
        convert = pcsv.ConvertOptions(
            column_types=text_types,
            include_columns=included,
            null_values=NULL_SPELLINGS,
            true_values=[] if numbers_only else TRUE_SPELLINGS,
            false_values=[] if numbers_only else FALSE_SPELLINGS,
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            decimal_point=options.decimal,
            timestamp_parsers=[],
        )
        try:
            table = pcsv.read_csv(
                pa.py_buffer(rows), read_options=read, parse_options=parse, convert_options=convert
            )
        except pa.ArrowInvalid as exc:
            raise _csv_failure(rows, names, places, exc) from None
        retry = {}
        # By position: looking each field up by name costs a scan of the schema.
        for name, vtype in zip(table.column_names, table.schema.types, strict=True):
            if pa.types.is_binary(vtype):
                raise _csv_failure(rows, names, places, None)
            supported = (
                (pa.types.is_integer(vtype) and not hex_possible)
                or pa.types.is_floating(vtype)
                or pa.types.is_boolean(vtype)
            )
            supported = supported or pa.types.is_null(vtype) or pa.types.is_string(vtype)
            if not supported:
                retry[name] = pa.string()
        if not retry:
            return table
        text_types = {**text_types, **retry}
    return table


def _csv_failure(
    rows: Buffer, names: list[str], places: _CsvPlaces, exc: Exception | None
) -> ApiError:
    """Why pyarrow could not read the rows: undecodable bytes or a ragged row."""
    try:
        str(rows, "utf-8")
    except UnicodeDecodeError as bad:
        return _undecodable(rows, bad.start, "utf-8", places.first_line, places.delimiter, names)
    width = len(names)
    for line, row in places.records():
        if len(row) != width:
            return invalid("body", f"line {line}: expected {width} values, got {len(row)}")
    return invalid("body", f"the CSV could not be read: {exc}")


# --- Parquet ------------------------------------------------------------------------


def _supported(vtype: Any) -> bool:
    return bool(
        pa.types.is_integer(vtype)
        or pa.types.is_floating(vtype)
        or pa.types.is_decimal(vtype)
        or pa.types.is_string(vtype)
        or pa.types.is_large_string(vtype)
        or pa.types.is_dictionary(vtype)
        or pa.types.is_boolean(vtype)
        or pa.types.is_null(vtype)
    )


def read_parquet(body: Source, options: ReadOptions) -> ReadTable:
    """A typed table from Parquet bytes (or the file at ``body``, memory-mapped).

    Numeric columns become numbers (float32 and float16 ones float32, others
    float64); text, dictionary and boolean columns categories; others (dates,
    timestamps, nested) are dropped with their type as the reason. The size
    limit is checked on the file's metadata, before any column is read, and
    ignored or unsupported columns are not read. Raises ApiError 422 (field
    "body") for bytes that are not Parquet, and names the column and row of a
    bad value.
    """
    _check_options(options)
    try:
        if isinstance(body, Path):
            file = pq.ParquetFile(str(body), memory_map=True)
        else:
            file = pq.ParquetFile(pa.BufferReader(body))
        schema = file.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise invalid("body", f"the body is not a Parquet file: {exc}") from None
    names = [str(name) for name in schema.names]
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise invalid(twice, f"the column name {twice!r} appears twice")
    _check_names(names, options)
    n_rows = file.metadata.num_rows
    _check_cells(n_rows, len(names), options)
    if n_rows == 0:
        return _no_rows(names, options, "the Parquet file has no rows")
    unsupported = {
        name: f"type {vtype} is not supported"
        for name, vtype in zip(names, schema.types, strict=True)
        if not _supported(vtype)
    }
    wanted = [name for name in names if name not in options.ignore and name not in unsupported]
    try:
        # Row groups and columns are decoded on pyarrow's threads; a column without
        # nulls becomes a NumPy view of its arrow buffer, not a copy.
        table = file.read(columns=None if wanted == names else wanted, use_threads=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise invalid("body", f"the body is not a Parquet file: {exc}") from None
    columns = {name: table.column(name) for name in wanted}
    del table, file
    return _assemble(names, columns, options, _ParquetPlaces(), False, ".", unsupported)


# --- JSON ---------------------------------------------------------------------------


class _BadValue(Exception):
    """A JSON value no column can hold; the caller knows its field."""


def _json_cell(value: Any) -> str | None:
    """A JSON value as the text of a cell: numbers as written by JSON (an
    integer-valued float as "1"), booleans as "true"/"false", null as missing.
    Raises _BadValue for nested values and infinities."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise _BadValue(f"must be finite, got {value}")
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value
    kind = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else ""
    raise _BadValue(
        f"expected a number, text, true/false or null, got {kind or type(value).__name__}"
    )


def read_records(
    records: list[dict[str, Any]], options: ReadOptions, field: str = "records"
) -> ReadTable:
    """A typed table from JSON objects, one per row: ``[{"col": value, ...}, ...]``.

    Numbers, text (read as a CSV cell is, with a decimal point whatever
    ``options.decimal`` says), true/false and null are values; ``options``'
    delimiter, charset, header and names do not apply.

    The columns are every key seen, in first-seen order; a key absent from a
    record, null, and the missing markers are missing values. Raises ApiError 422
    naming ``records[i].col`` for a bad value (a nested list or object, text
    among numbers).
    """
    _check_options(options)
    if not isinstance(records, list) or not records:
        raise invalid(field, "expected a non-empty list of objects, one per row")
    numbers = _number_records(records, options, field)
    if numbers is not None:
        return numbers
    cells: dict[str, list[str | None]] = {}
    for row, record in enumerate(records):
        if not isinstance(record, dict):
            raise invalid(f"{field}[{row}]", "expected an object of column: value")
        for key, value in record.items():
            column = cells.get(key)
            if column is None:
                column = cells[key] = [None] * row
            try:
                column.append(_json_cell(value))
            except _BadValue as exc:
                raise invalid(f"{field}[{row}].{key}", str(exc)) from None
        for column in cells.values():
            if len(column) == row:
                column.append(None)
    return _json_table(cells, options, _RecordPlaces(field), field)


def _number_records(
    records: list[dict[str, Any]], options: ReadOptions, field: str
) -> ReadTable | None:
    """Records whose every column the schema makes a number and whose every value is
    a number or null, the same keys in every record: one NumPy array per column, with
    no pyarrow call per column (a model of 100,000 columns). None for anything else,
    which the general reader takes."""
    schema = options.schema
    first = records[0]
    if schema is None or not isinstance(first, dict) or options.ignore:
        return None
    names = list(first)
    if any(schema.get(name) != NUMBER for name in names):
        return None
    for record in records:
        if not isinstance(record, dict) or record.keys() != first.keys():
            return None
        for value in record.values():
            if isinstance(value, bool) or not (value is None or isinstance(value, int | float)):
                return None
    _check_names(names, options)
    _check_cells(len(records), len(names), options)
    columns = []
    for name in names:
        values = [record[name] for record in records]
        try:
            array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        except OverflowError:
            array = np.array([np.nan if v is None else _as_float(v) for v in values])
        if np.isinf(array).any():
            row = int(np.flatnonzero(np.isinf(array))[0])
            raise invalid(f"{field}[{row}].{name}", f"must be finite, got {values[row]}")
        columns.append(Column(name, NUMBER, array))
    return ReadTable(Frame(columns), (), {}, _row_itself)


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def read_columns(
    columns: dict[str, list[Any]], options: ReadOptions, field: str = "inputs"
) -> ReadTable:
    """A typed table from TensorFlow Serving's columnar JSON: ``{"col": [values...]}``.

    Every list must be as long as the first. Raises ApiError 422 naming
    ``inputs.col`` for a list of another length and ``inputs.col[i]`` for a bad
    value.
    """
    _check_options(options)
    if not isinstance(columns, dict) or not columns:
        raise invalid(field, "expected an object of column: list of values")
    cells: dict[str, list[str | None]] = {}
    length: int | None = None
    first = ""
    for name, values in columns.items():
        if not isinstance(values, list):
            raise invalid(f"{field}.{name}", "expected a list of values")
        if length is None:
            length, first = len(values), name
        elif len(values) != length:
            raise invalid(
                f"{field}.{name}",
                f"expected {length} values (as many as {first!r} has), got {len(values)}",
            )
        column: list[str | None] = []
        for row, value in enumerate(values):
            try:
                column.append(_json_cell(value))
            except _BadValue as exc:
                raise invalid(f"{field}.{name}[{row}]", str(exc)) from None
        cells[name] = column
    if not length:
        raise invalid(field, "expected at least one row, got none")
    return _json_table(cells, options, _ColumnPlaces(field), field)


def _json_table(
    cells: dict[str, list[str | None]], options: ReadOptions, places: _Places, field: str
) -> ReadTable:
    names = list(cells)
    if "" in cells:
        raise invalid(field, "a column needs a name; got an empty key")
    _check_names(names, options)
    n_rows = len(next(iter(cells.values()))) if cells else 0
    _check_cells(n_rows, len(names), options)
    arrays = {name: pa.array(values, pa.string()) for name, values in cells.items()}
    # JSON numbers always use a decimal point, whatever a CSV option says.
    return _assemble(names, arrays, options, places, True, ".")
