"""Ingest benchmark: the table reader against pyarrow's own readers alone.

One seeded CSV of 200,000 rows x 20 columns (18 float columns, one text column
of about 10 categories, one integer column; about 2% of the cells
empty or NA, all but the integers').
Each round times, back to back on the same bytes:

- pyarrow: ``pyarrow.csv.read_csv`` and nothing else;
- reader: ``api.tables.read_csv`` of the file the body was spooled to (memory-mapped,
  as an upload reads it) plus ``Frame.to_bytes()``;
- upload: all ``POST /datasets`` does with the body short of the database insert: the
  reader, the target checks (``api.uploads.from_table``, target ``count``), the profile,
  the digest and the bytes.

Then one seeded Parquet file of 1,000,000 rows x 100 float32 columns (random
normal values, pyarrow's default writer: one row group, snappy), spooled to a
file as an upload is. Each round times, back to back:

- pyarrow: ``pyarrow.parquet.read_table`` of the file, memory-mapped, and nothing else;
- reader: ``api.tables.read_parquet`` of the file (the columns stay float32);
- profile: ``api.profile.profile`` of the frame read;
- digest: ``Frame.sha256()`` of it.

Prints the medians, the median per-round ratios pyarrow/reader and pyarrow/upload
(the goal is at least 0.5: the reader's typing, checks and packing cost at most
as much as pyarrow's parsing), and, last, one JSON line.

    python -m bench.ingest [--repeats 7] [--rows 200000] [--parquet-rows 1000000]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from api.profile import profile
from api.tables import ReadOptions, read_csv, read_parquet
from api.uploads import from_table
from core.frame import Frame

N_FLOATS = 18
MISSING_SHARE = 0.02
CATEGORIES = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliett",
]


def make_csv(rows: int, seed: int = 0) -> bytes:
    """The benchmark's CSV body; every cell written as text, so its size is realistic."""
    rng = np.random.default_rng(seed)
    columns: list[np.ndarray] = []
    for _ in range(N_FLOATS):
        columns.append(np.char.mod("%.6g", rng.normal(0.0, 10.0, rows)))
    columns.append(np.asarray(CATEGORIES, dtype=object)[rng.integers(0, len(CATEGORIES), rows)])
    columns.append(np.char.mod("%d", rng.integers(-1000, 1000, rows)))
    cells = np.column_stack([column.astype(object) for column in columns])
    missing = rng.random(cells.shape) < MISSING_SHARE
    missing[:, -1] = False  # the upload path's target, which may not be missing
    markers = np.where(rng.random(cells.shape) < 0.5, "", "NA")
    cells[missing] = markers[missing]
    header = [f"f{i}" for i in range(N_FLOATS)] + ["kind", "count"]
    out = io.StringIO()
    out.write(",".join(header) + "\n")
    out.writelines(",".join(row) + "\n" for row in cells.tolist())
    return out.getvalue().encode("utf-8")


def make_parquet(path: Path, rows: int, columns: int = 100, seed: int = 0) -> None:
    """The Parquet case: ``columns`` float32 columns of random normal values, the last
    one named ``y`` (the upload's target)."""
    rng = np.random.default_rng(seed)
    names = [f"f{i}" for i in range(columns - 1)] + ["y"]
    table = pa.table({name: rng.standard_normal(rows, dtype=np.float32) for name in names})
    pq.write_table(table, path)


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def rounds_of(runners: dict[str, Callable[[], object]], repeats: int) -> list[dict[str, float]]:
    for run in runners.values():
        run()  # warm-up: imports, thread pools, first-touch pages
    # Interleaved rounds, so a noisy moment on a shared machine slows all alike.
    return [{name: timed(run) for name, run in runners.items()} for _ in range(repeats)]


def csv_case(rows: int, repeats: int, folder: Path) -> dict[str, float]:
    body = make_csv(rows)
    spooled = folder / "body.csv"
    spooled.write_bytes(body)

    def arrow_alone() -> object:
        return pcsv.read_csv(pa.py_buffer(body))

    def reader() -> object:
        return read_csv(spooled, ReadOptions()).frame.to_bytes()

    def upload() -> object:
        read = read_csv(spooled, ReadOptions(keep=frozenset({"count"})))
        table = from_table(read, ["count"], None, max_cells=10**9)
        frame = table.frame
        return (
            profile(frame, table.targets, table.task, table.ignored),
            frame.sha256(),
            frame.to_bytes(),
        )

    runs = rounds_of({"pyarrow": arrow_alone, "reader": reader, "upload": upload}, repeats)
    medians = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
    ratio = statistics.median(r["pyarrow"] / r["reader"] for r in runs)
    upload_ratio = statistics.median(r["pyarrow"] / r["upload"] for r in runs)
    size = len(body) / 1e6
    print(f"{rows} rows x 20 columns, {size:.1f} MB of CSV; median of {repeats} rounds")
    print(f"{'pyarrow.csv.read_csv alone':<44}{medians['pyarrow'] * 1e3:>10.1f} ms")
    print(f"{'api.tables.read_csv + Frame.to_bytes':<44}{medians['reader'] * 1e3:>10.1f} ms")
    print(f"{'upload path (no database insert)':<44}{medians['upload'] * 1e3:>10.1f} ms")
    print(f"{'ratio pyarrow / reader (goal >= 0.5)':<44}{ratio:>10.2f}")
    print(f"{'ratio pyarrow / upload path':<44}{upload_ratio:>10.2f}")
    return {
        "rows": rows,
        "megabytes": round(size, 2),
        "pyarrow_ms": round(medians["pyarrow"] * 1e3, 1),
        "reader_ms": round(medians["reader"] * 1e3, 1),
        "ratio": round(ratio, 3),
        "upload_ms": round(medians["upload"] * 1e3, 1),
        "upload_ratio": round(upload_ratio, 3),
    }


def parquet_case(rows: int, repeats: int, folder: Path) -> dict[str, float]:
    spooled = folder / "body.parquet"
    make_parquet(spooled, rows)
    read: dict[str, Frame] = {}

    def arrow_alone() -> object:
        return pq.read_table(spooled, memory_map=True)

    def reader() -> object:
        read["frame"] = frame = read_parquet(spooled, ReadOptions(keep=frozenset({"y"}))).frame
        assert all(column.values.dtype == np.float32 for column in frame)
        return frame

    def profiled() -> object:
        return profile(read["frame"], ["y"], "regression", {})

    def digest() -> object:
        return read["frame"].sha256()

    runners = {"pyarrow": arrow_alone, "reader": reader, "profile": profiled, "digest": digest}
    runs = rounds_of(runners, repeats)
    medians = {name: statistics.median(r[name] for r in runs) for name in runners}
    ratio = statistics.median(r["pyarrow"] / r["reader"] for r in runs)
    upload_ratio = statistics.median(
        r["pyarrow"] / (r["reader"] + r["profile"] + r["digest"]) for r in runs
    )
    size = spooled.stat().st_size / 1e6
    print(f"{rows} rows x 100 float32 columns, {size:.1f} MB of Parquet; median of {repeats}")
    print(f"{'pyarrow.parquet.read_table alone':<44}{medians['pyarrow'] * 1e3:>10.1f} ms")
    print(f"{'api.tables.read_parquet':<44}{medians['reader'] * 1e3:>10.1f} ms")
    print(f"{'api.profile.profile':<44}{medians['profile'] * 1e3:>10.1f} ms")
    print(f"{'Frame.sha256':<44}{medians['digest'] * 1e3:>10.1f} ms")
    print(f"{'ratio pyarrow / reader (goal >= 0.5)':<44}{ratio:>10.2f}")
    print(f"{'ratio pyarrow / reader+profile+digest':<44}{upload_ratio:>10.2f}")
    return {
        "rows": rows,
        "megabytes": round(size, 2),
        "pyarrow_ms": round(medians["pyarrow"] * 1e3, 1),
        "reader_ms": round(medians["reader"] * 1e3, 1),
        "profile_ms": round(medians["profile"] * 1e3, 1),
        "digest_ms": round(medians["digest"] * 1e3, 1),
        "ratio": round(ratio, 3),
        "upload_ratio": round(upload_ratio, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--parquet-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        summary: dict[str, object] = dict(csv_case(args.rows, args.repeats, Path(folder)))
        print()
        summary["parquet"] = parquet_case(args.parquet_rows, args.repeats, Path(folder))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
