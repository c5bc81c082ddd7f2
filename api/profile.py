"""The profile of a stored dataset: what each column holds, as GET /datasets/<id> shows it."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from core.frame import CATEGORY, Column, Frame
from core.targets import code_text

HISTOGRAM_BINS = 10
TOP_CATEGORIES = 10
# Columns are described on threads (NumPy's sorts and reductions release the GIL)
# once the table is this large; below it, threads cost more than they save.
PARALLEL_CELLS = 2_000_000
MAX_THREADS = 4


def profile(
    frame: Frame, targets: list[str], task: str | None, ignored: dict[str, str]
) -> dict[str, Any]:
    """Counts and summary statistics of every column, as plain JSON.

    ``targets`` names the target columns (the others are features); ``task`` is
    the dataset's task, or None; ``ignored`` maps the names of columns left out
    of the frame (or to be left out of it) to the reason why.

    A number column has ``missing``, ``distinct``, ``min``, ``max``, ``mean``,
    ``std`` (the population standard deviation, ddof=0) and a ``histogram`` of
    10 equal bins (11 edges) over its observed values; a category column has
    ``missing``, ``distinct`` (categories that occur) and ``top``: at most 10
    categories by count, ties by text. Statistics of a column without observed
    values are None, and so is any that is not finite. ``class_balance`` counts
    the rows of each class (classification, in class order) or the 1s of each
    label (multilabel), and is None otherwise.
    """

    def entry(column: Column) -> dict[str, Any]:
        if column.name in ignored:
            return _ignored(column.name, ignored[column.name])
        return _describe(column, "target" if column.name in targets else "feature")

    threads = min(MAX_THREADS, os.cpu_count() or 1, len(frame))
    if threads > 1 and frame.n_rows * len(frame) >= PARALLEL_CELLS:
        with ThreadPoolExecutor(threads, thread_name_prefix="profile") as pool:
            columns = list(pool.map(entry, frame))
    else:
        columns = [entry(column) for column in frame]
    for name, reason in ignored.items():
        if name not in frame:
            columns.append(_ignored(name, reason))
    return {
        "n_rows": frame.n_rows,
        "task": task,
        "columns": columns,
        "class_balance": _class_balance(frame, targets, task),
    }


def _ignored(name: str, reason: str) -> dict[str, Any]:
    return {"name": name, "type": "ignored", "role": "ignored", "reason": reason}


def _finite(value: float) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _std(values: np.ndarray[Any, Any]) -> float:
    """Population standard deviation; where squaring overflows (values near 1e300),
    computed again on the values scaled into [-1, 1]."""
    with np.errstate(over="ignore", invalid="ignore"):
        plain = float(values.std(dtype=np.float64))
    if math.isfinite(plain):
        return plain
    largest = float(np.abs(values).max())
    if largest == 0.0 or not math.isfinite(largest):
        return plain
    return largest * float((values / largest).std(dtype=np.float64))


def _histogram(ordered: np.ndarray[Any, Any]) -> dict[str, list[Any]] | None:
    """What ``np.histogram(values, bins=10)`` counts, from the sorted values: the same
    edges (in the values' type), each bin closed on the left, the last on both sides."""
    try:
        edges = np.histogram_bin_edges(ordered, bins=HISTOGRAM_BINS)
    except ValueError:
        # A range too narrow for its magnitude (1e17 and its neighbour, a constant
        # 1e17) has no 10 distinct float edges: no histogram, as for an overflowing one.
        return None
    inner = np.searchsorted(ordered, edges[1:-1].astype(ordered.dtype), side="left")
    bounds = np.concatenate(([0], inner, [ordered.size]))
    return {
        "edges": [float(edge) for edge in edges],
        "counts": [int(count) for count in np.diff(bounds)],
    }


def _describe(column: Column, role: str) -> dict[str, Any]:
    missing = column.missing
    entry: dict[str, Any] = {
        "name": column.name,
        "type": column.kind,
        "role": role,
        "missing": int(missing.sum()),
    }
    if column.kind == CATEGORY:
        counts = np.bincount(column.values[~missing], minlength=len(column.categories))
        present = np.flatnonzero(counts)
        # categories are sorted, so a stable sort by count keeps ties in text order
        order = present[np.argsort(-counts[present], kind="stable")][:TOP_CATEGORIES]
        entry["distinct"] = int(present.size)
        entry["top"] = [
            {"value": column.categories[int(k)], "count": int(counts[k])} for k in order
        ]
        return entry
    values = column.values
    observed = values[~missing] if entry["missing"] else values
    if observed.size == 0:
        entry.update(distinct=0, min=None, max=None, mean=None, std=None, histogram=None)
        return entry
    # One sort gives the distinct values, the extremes and the histogram's counts
    # (a binary search per edge), where np.unique and np.histogram would each pass
    # over the values again.
    ordered = np.sort(observed)
    low, high = ordered[0], ordered[-1]
    entry.update(
        distinct=int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1,
        min=_finite(low),
        max=_finite(high),
        # Sums in float64 whatever the column holds.
        mean=_finite(observed.mean(dtype=np.float64)),
        std=_finite(_std(observed)),
    )
    # The reader refuses infinities, so the observed values are finite; their range
    # may still overflow (-1e308 to 1e308).
    with np.errstate(over="ignore"):
        spread = float(high - low)
    entry["histogram"] = _histogram(ordered) if math.isfinite(spread) else None
    return entry


def _class_balance(
    frame: Frame, targets: list[str], task: str | None
) -> list[dict[str, Any]] | None:
    present = [frame[name] for name in targets if name in frame]
    if task == "multilabel":
        return [
            {"class": column.name, "count": int(np.count_nonzero(column.values == 1.0))}
            for column in present
        ]
    if task != "classification" or len(present) != 1:
        return None
    column = present[0]
    observed = column.values[~column.missing]
    if column.kind == CATEGORY:
        counts = np.bincount(observed, minlength=len(column.categories))
        return [
            {"class": name, "count": int(count)}
            for name, count in zip(column.categories, counts, strict=True)
        ]
    codes, counts = np.unique(observed, return_counts=True)
    return [
        {"class": code_text(code), "count": int(count)}
        for code, count in zip(codes, counts, strict=True)
    ]
