"""Table bodies (CSV, tab-separated, Parquet, JSON records) through the one reader."""

from __future__ import annotations

from typing import Any

from .decorators import TSV, TableBody
from .schemas import TableQuery
from .tables import ReadOptions, ReadTable, read_csv, read_parquet


def read_body(body: TableBody, **options: Any) -> ReadTable:
    """The body as a typed table; ``options`` are :class:`ReadOptions` fields.

    The delimiter and decimal mark come from the query string (a tab for
    ``text/tab-separated-values``), the charset from the Content-Type.
    Raises ApiError (422) naming the line and column of a bad cell.
    """
    params = body.params
    assert isinstance(params, TableQuery)
    if body.is_parquet:
        return read_parquet(body.raw, ReadOptions(**options))
    delimiter = "\t" if params.delimiter == "tab" or body.media == TSV else params.delimiter
    read = ReadOptions(delimiter=delimiter, decimal=params.decimal, charset=body.charset, **options)
    return read_csv(body.raw, read)
