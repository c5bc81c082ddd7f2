"""Ingest benchmark: the table reader against pyarrow's CSV reader alone.

One seeded CSV of 200,000 rows x 20 columns (18 float columns, one text column
of about 10 categories, one integer column; about 2% of the cells
empty or NA, all but the integers').
Each round times, back to back on the same bytes:

- pyarrow: ``pyarrow.csv.read_csv`` and nothing else;
- reader: ``api.tables.read_csv`` plus ``Frame.to_bytes()``;
- upload: all ``POST /datasets`` does with the body short of the database insert: the
  reader, the target checks (``api.uploads.from_table``, target ``count``), the profile,
  the digest and the bytes.

Prints the medians, the median per-round ratio pyarrow/reader (the goal is at
least 0.5: the reader's typing, checks and packing cost at most as much as
pyarrow's parsing), and, last, one JSON line.

    python -m bench.ingest [--repeats 7] [--rows 200000]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from api.profile import profile
from api.tables import ReadOptions, read_csv
from api.uploads import from_table

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


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()

    body = make_csv(args.rows)

    def arrow_alone() -> object:
        return pcsv.read_csv(pa.py_buffer(body))

    def reader() -> object:
        return read_csv(body, ReadOptions()).frame.to_bytes()

    def upload() -> object:
        read = read_csv(body, ReadOptions(keep=frozenset({"count"})))
        table = from_table(read, ["count"], None, max_cells=10**9)
        frame = table.frame
        return (
            profile(frame, table.targets, table.task, table.ignored),
            frame.sha256(),
            frame.to_bytes(),
        )

    runners = {"pyarrow": arrow_alone, "reader": reader, "upload": upload}
    for run in runners.values():
        run()  # warm-up: imports, thread pools, first-touch pages
    # Interleaved rounds, so a noisy moment on a shared machine slows both alike.
    rounds = [{name: timed(run) for name, run in runners.items()} for _ in range(args.repeats)]
    medians = {name: statistics.median(r[name] for r in rounds) for name in runners}
    ratio = statistics.median(r["pyarrow"] / r["reader"] for r in rounds)
    upload_ratio = statistics.median(r["pyarrow"] / r["upload"] for r in rounds)

    size = len(body) / 1e6
    print(f"{args.rows} rows x 20 columns, {size:.1f} MB of CSV; median of {args.repeats} rounds")
    print(f"{'pyarrow.csv.read_csv alone':<40}{medians['pyarrow'] * 1e3:>10.1f} ms")
    print(f"{'api.tables.read_csv + Frame.to_bytes':<40}{medians['reader'] * 1e3:>10.1f} ms")
    print(f"{'upload path (no database insert)':<40}{medians['upload'] * 1e3:>10.1f} ms")
    print(f"{'ratio pyarrow / reader (goal >= 0.5)':<40}{ratio:>10.2f}")
    print(f"{'ratio pyarrow / upload path':<40}{upload_ratio:>10.2f}")
    summary = {
        "rows": args.rows,
        "megabytes": round(size, 2),
        "pyarrow_ms": round(medians["pyarrow"] * 1e3, 1),
        "reader_ms": round(medians["reader"] * 1e3, 1),
        "ratio": round(ratio, 3),
        "upload_ms": round(medians["upload"] * 1e3, 1),
        "upload_ratio": round(upload_ratio, 3),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
