"""api.tables: CSV, Parquet and JSON tables into typed frames (no HTTP, no database)."""

from __future__ import annotations

import io
import math
import random
from pathlib import Path

import numpy as np
import palmerpenguins
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import api.tables
from api.errors import ApiError
from api.tables import (
    ReadOptions,
    ReadTable,
    read_columns,
    read_csv,
    read_parquet,
    read_records,
)
from core.frame import Frame


@pytest.fixture(autouse=True, params=["bytes", "file"])
def source(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every CSV and Parquet case twice: from bytes (predict and evaluate bodies) and
    from the file an upload is spooled to (read memory-mapped)."""
    if request.param == "file":
        counter = iter(range(1_000_000))

        def from_file(reader: object) -> object:
            def read(body: bytes, options: ReadOptions) -> ReadTable:
                path = tmp_path / f"body{next(counter)}"
                path.write_bytes(body)
                return reader(path, options)  # type: ignore[operator, no-any-return]

            return read

        monkeypatch.setitem(globals(), "read_csv", from_file(api.tables.read_csv))
        monkeypatch.setitem(globals(), "read_parquet", from_file(api.tables.read_parquet))
    return str(request.param)


def refused(call: object, *args: object, **kwargs: object) -> ApiError:
    assert callable(call)
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def numbers(table: ReadTable, name: str) -> list[float | None]:
    column = table.frame[name]
    assert column.kind == "number"
    return [None if math.isnan(v) else v for v in column.values.tolist()]


def labels(table: ReadTable, name: str) -> list[str | None]:
    return table.frame[name].labels()


# --- delimiters, quotes, decimals -------------------------------------------------------


def test_comma_csv_with_quoted_commas() -> None:
    table = read_csv(b'city,pop,note\n"Paris, FR",2.1,"a, b"\nLyon,0.5,c\n', ReadOptions())
    assert table.frame.names == ["city", "pop", "note"]
    assert labels(table, "city") == ["Paris, FR", "Lyon"]
    assert table.frame["city"].categories == ("Lyon", "Paris, FR")
    assert table.frame["city"].values.tolist() == [1, 0]
    assert numbers(table, "pop") == [2.1, 0.5]
    assert labels(table, "note") == ["a, b", "c"]
    assert table.ignored == ()
    assert table.inferred_ignored == {}


def test_semicolon_with_decimal_comma() -> None:
    table = read_csv(b"a;b\n1,5;-2,25\n3;,5\n", ReadOptions(decimal=","))
    assert numbers(table, "a") == [1.5, 3.0]
    assert numbers(table, "b") == [-2.25, 0.5]


def test_tab_separated() -> None:
    table = read_csv(b"x\ty\n1\ta b\n2\tc\n", ReadOptions())
    assert numbers(table, "x") == [1.0, 2.0]
    assert labels(table, "y") == ["a b", "c"]


def test_pipe_separated() -> None:
    table = read_csv(b"x|y|z\n1|2|3\n4|5|6\n", ReadOptions())
    assert [numbers(table, n) for n in "xyz"] == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]


def test_delimiter_inside_quotes_does_not_count() -> None:
    # Three commas inside the quoted name, two semicolons outside: semicolons win.
    table = read_csv(b'"a,b,c,d";e;f\n1;2;3\n', ReadOptions())
    assert table.frame.names == ["a,b,c,d", "e", "f"]


def test_delimiter_of_decimal_comma_rows_without_a_header() -> None:
    # Three commas and two semicolons on the first line, but only the semicolons
    # come back as often on the next.
    body = b"1,5;2,5;3,5\n4,25;5;6\n"
    table = read_csv(body, ReadOptions(header="absent", decimal=","))
    assert [numbers(table, f"x{i}") for i in range(3)] == [[1.5, 4.25], [2.5, 5.0], [3.5, 6.0]]


def test_bad_options() -> None:
    for options, field in (
        (ReadOptions(delimiter=";;"), "delimiter"),
        (ReadOptions(delimiter='"'), "delimiter"),
        (ReadOptions(decimal=";"), "decimal"),
        (ReadOptions(header="maybe"), "header"),
        (ReadOptions(schema={"a": "text"}), "schema"),
    ):
        assert refused(read_csv, b"a\n1\n", options).field == field


def test_explicit_delimiter() -> None:
    table = read_csv(b"a;b,c\n1;2,5\n", ReadOptions(delimiter=";", decimal=","))
    assert table.frame.names == ["a", "b,c"]
    assert numbers(table, "b,c") == [2.5]


def test_line_endings_crlf_and_cr_and_blank_lines() -> None:
    for body in (b"a,b\r\n1,x\r\n\r\n2,y\r\n", b"a,b\r1,x\r\r2,y\r", b"\n\na,b\n1,x\n\n2,y"):
        table = read_csv(body, ReadOptions())
        assert numbers(table, "a") == [1.0, 2.0]
        assert labels(table, "b") == ["x", "y"]


# --- charsets ------------------------------------------------------------------------------


def test_windows_1252_text() -> None:
    body = "city;v\nZürich;1,5\nGenève;2\n".encode("cp1252")
    table = read_csv(body, ReadOptions(charset="windows-1252", decimal=","))
    assert labels(table, "city") == ["Zürich", "Genève"]
    assert numbers(table, "v") == [1.5, 2.0]


def test_windows_1252_bytes_read_as_utf8_are_refused_at_their_cell() -> None:
    body = "city;v\nBern;1,5\nZürich;1,5\n".encode("cp1252")
    error = refused(read_csv, body, ReadOptions(decimal=","))
    assert error.status == 422
    assert error.field == "city"
    assert error.message.startswith("line 3, column 1: byte b'\\xfc' is not valid utf-8")


def test_undecodable_header_names_line_one() -> None:
    error = refused(read_csv, "a;Zürich\n1;2\n".encode("cp1252"), ReadOptions())
    assert error.field == "body"
    assert error.message.startswith("line 1, column 2: byte b'\\xfc' is not valid utf-8")


def test_unknown_charset() -> None:
    for charset in ("klingon-8", "base64"):
        error = refused(read_csv, b"a\n1\n", ReadOptions(charset=charset))
        assert (error.status, error.field) == (422, "charset")
        assert error.message == f"unknown charset {charset!r}"


def test_bom_is_stripped_from_the_first_name() -> None:
    table = read_csv(b"\xef\xbb\xbfid,v\n1,2\n", ReadOptions())
    assert table.frame.names == ["id", "v"]
    latin = read_csv("\ufeffid,v\n1,2\n".encode("utf-16"), ReadOptions(charset="utf-16"))
    assert latin.frame.names == ["id", "v"]


# --- missing values, booleans, categories -------------------------------------------------


def test_every_null_marker_in_any_case_and_with_spaces() -> None:
    markers = ["", "NA", "na", "N/A", "n/a", "null", "NULL", "NaN", "nan", "?", " NA ", '""']
    body = "a,b\n" + "".join(f"{i},{m}\n" for i, m in enumerate(markers)) + "99,1.5\n"
    table = read_csv(body.encode(), ReadOptions())
    assert numbers(table, "b") == [None] * len(markers) + [1.5]
    text = "a,b\n" + "".join(f"{i},{m}\n" for i, m in enumerate(markers)) + "99,x\n"
    assert labels(read_csv(text.encode(), ReadOptions()), "b") == [None] * len(markers) + ["x"]


def test_booleans_are_canonical_categories() -> None:
    table = read_csv(b"a,b\n1,true\n2,False\n3,TRUE\n4,\n", ReadOptions())
    assert table.frame["b"].categories == ("false", "true")
    assert labels(table, "b") == ["true", "false", "true", None]
    mixed = read_csv(b"a,b\n1,True\n2,maybe\n3,FALSE\n", ReadOptions())
    assert labels(mixed, "b") == ["true", "maybe", "false"]


def test_categorical_numeric_codes() -> None:
    body = b"x,cls\n0.5,1\n0.7,2\n0.1,3\n0.2,1\n"
    table = read_csv(body, ReadOptions(categorical=frozenset({"cls"})))
    column = table.frame["cls"]
    assert column.kind == "category"
    assert column.categories == ("1", "2", "3")
    assert column.values.tolist() == [0, 1, 2, 0]


def test_text_is_kept_as_written_with_spaces_stripped() -> None:
    table = read_csv(b"a,b\n1,  setosa \n2,Setosa\n", ReadOptions())
    assert table.frame["b"].categories == ("Setosa", "setosa")


def test_mostly_text_with_a_few_numbers_is_a_category() -> None:
    table = read_csv(b"a,b\n1,x\n2,y\n3,7\n", ReadOptions())
    assert labels(table, "b") == ["x", "y", "7"]


def test_unknown_categorical_or_ignore_names() -> None:
    assert refused(read_csv, b"a\n1\n", ReadOptions(ignore=frozenset({"b"}))).field == "ignore"
    error = refused(read_csv, b"a\n1\n", ReadOptions(categorical=frozenset({"b"})))
    assert error.field == "categorical"
    assert error.message == "no column 'b'; the columns are ['a']"


# --- dropped columns --------------------------------------------------------------------------


def test_ignore_drops_columns() -> None:
    table = read_csv(b"a,b,c\n1,x,3\n", ReadOptions(ignore=frozenset({"b"})))
    assert table.frame.names == ["a", "c"]
    assert table.ignored == ("b",)
    assert table.inferred_ignored == {}


def identifiers_csv(rows: int) -> bytes:
    lines = ["Unnamed: 0,name,x,rownames,all_missing"]
    lines += [f"{i},person {i},{(i * 7) % 5}.5,{i + 1}," for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def test_identifier_and_row_index_columns_are_inferred_ignored() -> None:
    table = read_csv(identifiers_csv(20), ReadOptions())
    assert table.frame.names == ["x"]
    assert table.ignored == ("Unnamed: 0", "name", "rownames", "all_missing")
    assert table.inferred_ignored == {
        "Unnamed: 0": "the row positions 0..19 in order: a saved row index",
        "name": "every value is distinct: an identifier",
        "rownames": "the row positions 1..20 in order: a saved row index",
        "all_missing": "every value is missing",
    }


def test_identifiers_are_kept_below_twenty_rows_or_when_kept() -> None:
    small = read_csv(identifiers_csv(19), ReadOptions())
    assert small.frame.names == ["Unnamed: 0", "name", "x", "rownames"]
    assert small.inferred_ignored == {"all_missing": "every value is missing"}
    keep = frozenset({"name", "rownames", "all_missing"})
    kept = read_csv(identifiers_csv(20), ReadOptions(keep=keep))
    assert kept.frame.names == ["name", "x", "rownames", "all_missing"]
    assert numbers(kept, "all_missing") == [None] * 20
    assert kept.ignored == ("Unnamed: 0",)


# --- refusals with line and column -----------------------------------------------------------


def test_stray_text_in_a_number_column() -> None:
    error = refused(read_csv, b"a,b\n1,2\n3,4\n5,abc\n6,7\n", ReadOptions())
    assert error.status == 422
    assert error.field == "b"
    assert error.message == (
        "line 4, column 2: 'abc' is text in a column of numbers; pass categorical=b "
        "if this column holds categories"
    )


def test_plain_number_forms() -> None:
    body = b"a,b\n+5,1\n.5,2\n5.,3\n1E+5,4\n -2.5e-3 ,5\n007,6\n"
    expected = [5.0, 0.5, 5.0, 1e5, -2.5e-3, 7.0]
    assert numbers(read_csv(body, ReadOptions()), "a") == expected


def test_a_late_stray_word_is_found_past_pyarrow_first_block() -> None:
    rows = 150_000  # more than one of pyarrow's 1 MB blocks
    body = b"a,b\n" + b"".join(b"%d,%d.5\n" % (i % 7, i) for i in range(rows)) + b"3,oops\n"
    error = refused(read_csv, body, ReadOptions())
    assert error.message.startswith(f"line {rows + 2}, column 2: 'oops' is text")


def test_thousands_separators() -> None:
    error = refused(read_csv, b'a,b\n1,2\n3,"1,234"\n4,5\n', ReadOptions())
    assert (error.field, error.message) == (
        "b",
        "line 3, column 2: '1,234' has a thousands separator; write numbers without one",
    )
    error = refused(read_csv, b"a;b\n1;2\n3;1,234,567.5\n", ReadOptions())
    assert error.message.startswith("line 3, column 2: '1,234,567.5' has a thousands separator")
    error = refused(read_csv, b"a;b\n1;2\n3;1.234\n", ReadOptions(decimal=","))
    assert error.message.startswith("line 3, column 2: '1.234' has a thousands separator")
    error = refused(read_csv, b"a;b\n1;2\n3;1.5\n", ReadOptions(decimal=","))
    assert error.message.startswith("line 3, column 2: '1.5' has a point")


def test_decimal_comma_without_the_option_hints_it() -> None:
    error = refused(read_csv, b"a;b\n1;2\n3;1,5\n", ReadOptions())
    assert error.message == (
        "line 3, column 2: '1,5' has a decimal comma; pass decimal=, if the file writes "
        "numbers that way"
    )


def test_whole_columns_in_the_other_convention_are_refused_not_taken_as_text() -> None:
    error = refused(read_csv, b"a;b\n1;1,5\n2;2,25\n3;0,5\n", ReadOptions())
    assert error.message.startswith("line 2, column 2: '1,5' has a decimal comma; pass decimal=,")
    error = refused(read_csv, b'a,b\n1,"1,234"\n2,"12,345"\n', ReadOptions())
    assert error.message == (
        "line 2, column 2: '1,234' has a thousands separator; write numbers without one"
    )


def test_numbers_beyond_float_range_and_non_plain_numbers() -> None:
    error = refused(read_csv, b"a,b\n1,2\n3,1e999\n", ReadOptions())
    assert (error.field, error.message) == ("b", "line 3, column 2: must be finite, got '1e999'")
    for cell in ("inf", "-Infinity"):
        error = refused(read_csv, f"a,b\n1,2\n3,4\n5,{cell}\n".encode(), ReadOptions())
        assert error.message == f"line 4, column 2: must be finite, got {cell!r}"
    for cell in ("0x1F", "1_0", "\u0661\u0662"):
        error = refused(read_csv, f"a,b\n1,2\n3,4\n5,{cell}\n".encode(), ReadOptions())
        assert error.message == (
            "line 4, column 2: expected a plain decimal number (digits, a point, an exponent), "
            f"got {cell!r}"
        )


def test_hex_integers_are_not_numbers() -> None:
    # pyarrow would read these as 31 and 16; here they are text like any other.
    table = read_csv(b"a,b\n1,0x1F\n2,0x10\n", ReadOptions())
    assert table.frame["b"].categories == ("0x10", "0x1F")


def test_ragged_row() -> None:
    error = refused(read_csv, b"a,b\n1,2\n3\n", ReadOptions())
    assert (error.field, error.message) == ("body", "line 3: expected 2 values, got 1")


def test_ragged_row_after_a_quoted_newline_counts_lines() -> None:
    body = b'a,b\n1,"two\nlines"\n\n3,x\n5,6,7\n'
    error = refused(read_csv, body, ReadOptions())
    assert error.message == "line 6: expected 2 values, got 3"
    table = read_csv(b'a,b\n1,"two\r\nlines"\n\n3,x\n', ReadOptions())
    assert labels(table, "b") == ["two\r\nlines", "x"]
    assert [table.line_of(0), table.line_of(1)] == [2, 5]


def test_text_cell_after_a_quoted_newline_names_its_line() -> None:
    body = b'n,t\n1,"x\ny"\n2,b\n3,c\n4,d\noops,e\n'
    error = refused(read_csv, body, ReadOptions())
    assert error.field == "n"
    assert error.message.startswith("line 7, column 1: 'oops' is text")


def test_header_problems() -> None:
    error = refused(read_csv, b"a,,c\n1,2,3\n", ReadOptions())
    assert (error.field, error.message) == (
        "body",
        "line 1, column 2: the header row needs a name here",
    )
    error = refused(read_csv, b"a,b,a\n1,2,3\n", ReadOptions())
    assert (error.field, error.message) == ("a", "line 1: the column name 'a' appears twice")
    error = refused(read_csv, b"a,b\n\n", ReadOptions())
    assert error.message == "the CSV has a header (line 1) but no data rows"
    assert refused(read_csv, b"", ReadOptions()).message == "the CSV body is empty"


def test_header_auto_and_absent() -> None:
    table = read_csv(b"1,2.5\n3,4\n", ReadOptions(header="auto", names=("p", "q")))
    assert table.frame.names == ["p", "q"]
    assert numbers(table, "q") == [2.5, 4.0]
    assert table.line_of(0) == 1
    named = read_csv(b"p,q\n1,2\n", ReadOptions(header="auto", names=("x", "y")))
    assert named.frame.names == ["p", "q"]
    absent = read_csv(b"1,a\n2,b\n", ReadOptions(header="absent"))
    assert absent.frame.names == ["x0", "x1"]
    assert labels(absent, "x1") == ["a", "b"]
    error = refused(read_csv, b"a,1\n2,3\n", ReadOptions(header="auto"))
    assert error.field == "header"
    assert "?header=present or ?header=absent" in error.message
    error = refused(read_csv, b"1,2\n", ReadOptions(header="absent", names=("p",)))
    assert (error.field, error.message) == ("body", "line 1: expected 1 values, got 2")
    # A mistyped number makes a row of data, not a header with a name `1_0`.
    error = refused(read_csv, b"6.4,1_0\n5.1,3.5\n", ReadOptions(header="auto"))
    assert error.message == (
        "line 1, column 2: expected a plain decimal number (digits, a point, an exponent), "
        "got '1_0'"
    )
    # Decimal commas read with decimal ".": data, refused with the hint, not a header.
    error = refused(read_csv, b"1,5;2\n3;4\n", ReadOptions(header="auto"))
    assert error.message.startswith("line 1, column 1: '1,5' has a decimal comma")


# --- schema and limits -----------------------------------------------------------------------


def test_schema_coercion() -> None:
    body = b"a,b,c\n1,2,x\n2,NA,y\n3,4.5,\n"
    schema = {"a": "category", "b": "number", "c": "category"}
    table = read_csv(body, ReadOptions(schema=schema))
    assert labels(table, "a") == ["1", "2", "3"]
    assert numbers(table, "b") == [2.0, None, 4.5]
    assert labels(table, "c") == ["x", "y", None]
    error = refused(read_csv, b"a,b\n1,x\n2,y\n3,z\n", ReadOptions(schema={"b": "number"}))
    assert (error.field, error.message) == ("b", "line 2, column 2: expected a number, got 'x'")
    # No inference for schema columns: one missing-only column stays.
    empty = read_csv(b"a,b\n1,\n2,\n", ReadOptions(schema={"b": "category"}))
    assert empty.frame["b"].values.tolist() == [-1, -1]
    bad = refused(read_csv, b"a\n1\n", ReadOptions(schema={"a": "date"}))
    assert bad.field == "schema"


def test_max_cells() -> None:
    body = b"a,b,c\n1,2,3\n4,5,6\n"
    assert read_csv(body, ReadOptions(max_cells=6)).frame.n_rows == 2
    error = refused(read_csv, body, ReadOptions(max_cells=5))
    assert (error.status, error.code, error.field) == (422, "limit_exceeded", "body")
    assert "BACKPROP_MAX_DATASET_CELLS" in error.message
    assert "2 rows x 3 columns = 6 values; the limit is 5" in error.message


def test_palmer_penguins_as_shipped() -> None:
    """A real table nobody here made: NA markers, quoted commas, dates as text."""
    data = Path(palmerpenguins.__file__).parent / "data"
    table = read_csv((data / "penguins.csv").read_bytes(), ReadOptions())
    frame = table.frame
    assert frame.n_rows == 344
    assert frame["species"].categories == ("Adelie", "Chinstrap", "Gentoo")
    assert frame["sex"].categories == ("female", "male")
    assert int(frame["bill_length_mm"].missing.sum()) == 2
    assert int(frame["sex"].missing.sum()) == 11
    assert frame["body_mass_g"].values[:3].tolist() == [3750.0, 3800.0, 3250.0]
    raw = read_csv((data / "penguins-raw.csv").read_bytes(), ReadOptions())
    assert raw.frame["Stage"].categories == ("Adult, 1 Egg Stage",)
    assert raw.frame["Date Egg"].kind == "category"
    assert raw.line_of(343) == 345


def test_frame_round_trips_through_bytes() -> None:
    table = read_csv(b"a,b\n1.5,x\nNA,y\n", ReadOptions())
    again = Frame.from_bytes(table.frame.to_bytes())
    assert again.names == ["a", "b"]
    assert again["b"].labels() == ["x", "y"]
    assert np.isnan(again["a"].values[1])


# --- Parquet ---------------------------------------------------------------------------------


def parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def test_parquet_round_trip() -> None:
    body = parquet(
        pa.table(
            {
                "x": pa.array([1.5, None, float("nan"), 4.0]),
                "n": pa.array([1, 2, None, 4], pa.int32()),
                "s": pa.array(["b", None, "a", "b"]),
                "flag": pa.array([True, False, None, True]),
                "d": pa.array([1, 2, 3, 4], pa.date32()),
                "cls": pa.array([3, 1, 2, 1]),
            }
        )
    )
    table = read_parquet(body, ReadOptions(categorical=frozenset({"cls"})))
    assert table.frame.names == ["x", "n", "s", "flag", "cls"]
    assert numbers(table, "x") == [1.5, None, None, 4.0]
    assert numbers(table, "n") == [1.0, 2.0, None, 4.0]
    assert table.frame["s"].categories == ("a", "b")
    assert labels(table, "s") == ["b", None, "a", "b"]
    assert labels(table, "flag") == ["true", "false", None, "true"]
    assert table.frame["cls"].categories == ("1", "2", "3")
    assert table.ignored == ("d",)
    assert table.inferred_ignored == {"d": "type date32[day] is not supported"}


def test_parquet_schema_and_bad_values() -> None:
    body = parquet(pa.table({"a": pa.array([1.0, 2.0]), "b": pa.array(["1.5", "x"])}))
    table = read_parquet(body, ReadOptions(schema={"a": "category"}))
    assert labels(table, "a") == ["1", "2"]
    error = refused(read_parquet, body, ReadOptions(schema={"b": "number"}))
    assert (error.field, error.message) == ("b", "row 1: expected a number, got 'x'")
    nan = parquet(pa.table({"a": pa.array([float("nan")] * 3), "b": pa.array([1.0, 2.0, 3.0])}))
    assert read_parquet(nan, ReadOptions()).inferred_ignored == {"a": "every value is missing"}
    infinite = parquet(pa.table({"a": pa.array([1.0, float("inf")])}))
    error = refused(read_parquet, infinite, ReadOptions())
    assert (error.field, error.message) == ("a", "row 1: must be finite, got 'inf'")


def test_parquet_float32_stays_float32() -> None:
    values = [0.5, None, float("nan"), 0.1, 3e38]
    body = parquet(
        pa.table(
            {
                "single": pa.array(values, pa.float32()),
                "half": pa.array([1.5, 2.0, None, 0.25, 8.0], pa.float16()),
                "double": pa.array(values, pa.float64()),
                "ints": pa.array([1, 2, 3, None, 5], pa.int32()),
            }
        )
    )
    table = read_parquet(body, ReadOptions())
    dtypes = {column.name: column.values.dtype for column in table.frame}
    assert dtypes == {
        "single": np.float32,
        "half": np.float32,
        "double": np.float64,
        "ints": np.float64,
    }
    # A null and a NaN are both missing; 0.1 is the float32 nearest to it, not widened.
    single = table.frame["single"].values
    assert np.isnan(single[[1, 2]]).all()
    assert single[3] == np.float32(0.1) and single[4] == np.float32(3e38)
    assert numbers(table, "half") == [1.5, 2.0, None, 0.25, 8.0]
    assert numbers(table, "double")[3] == 0.1
    infinite = parquet(pa.table({"a": pa.array([1.0, float("-inf")], pa.float32())}))
    error = refused(read_parquet, infinite, ReadOptions())
    assert (error.field, error.message) == ("a", "row 1: must be finite, got '-inf'")


def test_parquet_of_many_row_groups_reads_every_row_in_order() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal(10_000).astype(np.float32)
    x[::7] = np.nan
    text = np.array(["a", "b", "c"])[rng.integers(0, 3, 10_000)]
    out = io.BytesIO()
    pq.write_table(pa.table({"x": x, "t": text, "y": np.arange(10_000)}), out, row_group_size=999)
    table = read_parquet(out.getvalue(), ReadOptions(keep=frozenset({"y"})))
    np.testing.assert_array_equal(table.frame["x"].values, x)
    assert table.frame["x"].values.dtype == np.float32
    assert labels(table, "t") == text.tolist()
    assert numbers(table, "y") == list(range(10_000))


def test_parquet_cell_limit_is_checked_on_the_metadata() -> None:
    body = parquet(pa.table({"a": pa.array([1.0, 2.0, 3.0]), "b": pa.array(["x", "y", "z"])}))
    error = refused(read_parquet, body, ReadOptions(max_cells=5))
    assert (error.code, error.field) == ("limit_exceeded", "body")
    assert "3 rows x 2 columns = 6 values; the limit is 5" in error.message


def test_not_parquet_or_no_rows() -> None:
    error = refused(read_parquet, b"a,b\n1,2\n", ReadOptions())
    assert (error.status, error.field) == (422, "body")
    empty = parquet(pa.table({"a": pa.array([], pa.float64())}))
    assert refused(read_parquet, empty, ReadOptions()).message == "the Parquet file has no rows"


# --- JSON ------------------------------------------------------------------------------------


def test_records_with_nulls_bools_and_absent_keys() -> None:
    records = [
        {"a": 1, "b": True, "c": "x"},
        {"a": None, "b": False},
        {"a": 2.5, "c": "NA", "d": 1.0},
    ]
    table = read_records(records, ReadOptions())
    assert table.frame.names == ["a", "b", "c", "d"]
    assert numbers(table, "a") == [1.0, None, 2.5]
    assert labels(table, "b") == ["true", "false", None]
    assert labels(table, "c") == ["x", None, None]
    assert numbers(table, "d") == [None, None, 1.0]
    assert table.line_of(2) == 2


def test_records_with_numbers_as_text() -> None:
    table = read_records([{"a": "1.5"}, {"a": " 2 "}, {"a": "NA"}], ReadOptions())
    assert numbers(table, "a") == [1.5, 2.0, None]


def test_records_schema_category_writes_integers_without_a_point() -> None:
    records = [{"k": 1.0}, {"k": 2}, {"k": 2.5}, {"k": True}]
    table = read_records(records, ReadOptions(schema={"k": "category"}))
    assert table.frame["k"].categories == ("1", "2", "2.5", "true")


def test_records_refusals() -> None:
    error = refused(read_records, [{"a": 1}, {"a": 2}, {"a": 3}, {"a": [1, 2]}], ReadOptions())
    assert (error.field, error.message) == (
        "records[3].a",
        "expected a number, text, true/false or null, got a list",
    )
    error = refused(read_records, [{"a": 1}, {"a": 2}, {"a": "x"}], ReadOptions(), "instances")
    assert error.field == "instances[2].a"
    assert error.message.startswith("'x' is text in a column of numbers")
    assert refused(read_records, [{"a": 1}, 5], ReadOptions()).field == "records[1]"
    assert refused(read_records, [], ReadOptions()).field == "records"
    error = refused(read_records, [{"a": float("inf")}], ReadOptions())
    assert (error.field, error.message) == ("records[0].a", "must be finite, got inf")
    error = refused(read_records, [{"a": 1}, {"a": 10**400}], ReadOptions())
    assert error.field == "records[1].a"
    assert error.message.startswith("must be finite, got '1000000")


def test_columns() -> None:
    table = read_columns({"a": [1, 2, None], "b": ["x", "y", "x"]}, ReadOptions())
    assert numbers(table, "a") == [1.0, 2.0, None]
    assert labels(table, "b") == ["x", "y", "x"]
    error = refused(read_columns, {"a": [1, 2, 3], "b": [1, 2]}, ReadOptions())
    assert (error.field, error.message) == (
        "inputs.b",
        "expected 3 values (as many as 'a' has), got 2",
    )
    error = refused(read_columns, {"a": [1, {"x": 1}]}, ReadOptions())
    assert error.field == "inputs.a[1]"
    error = refused(read_columns, {"a": [1, 2]}, ReadOptions(max_cells=1))
    assert error.code == "limit_exceeded"


# --- anything at all -------------------------------------------------------------------------

PIECES = [b"a", b"1", b"2.5", b",", b";", b"\n", b"\r\n", b"\r", b'"', b" ", b"NA", b"1e999"]
PIECES += [b"\xff", b"\xc3\xa9", b"true", b"0x1", b"\t", b"|", b"1,5", b""]


def test_any_bytes_give_a_table_or_a_422() -> None:
    """Seeded random bodies: a table whose rows all have lines, or an ApiError, never
    another exception (stray quotes, bare CRs and cut UTF-8 included)."""
    rng = random.Random(0)
    for _ in range(3000):
        body = b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 30)))
        options = ReadOptions(
            header=rng.choice(["present", "absent", "auto"]), decimal=rng.choice([".", ","])
        )
        try:
            table = read_csv(body, options)
        except ApiError as error:
            assert error.status == 422
            continue
        lines = [table.line_of(row) for row in range(table.frame.n_rows)]
        assert lines == sorted(set(lines))
