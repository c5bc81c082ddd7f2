"""The profile of a stored dataset: what each column holds, as GET /datasets/<id> shows it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.frame import CATEGORY, Column, Frame
from core.targets import code_text

HISTOGRAM_BINS = 10
TOP_CATEGORIES = 10


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
    columns: list[dict[str, Any]] = []
    for column in frame:
        if column.name in ignored:
            columns.append(_ignored(column.name, ignored[column.name]))
            continue
        role = "target" if column.name in targets else "feature"
        columns.append(_describe(column, role))
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
        plain = float(values.std())
    largest = float(np.abs(values).max())
    if math.isfinite(plain) or largest == 0.0 or not math.isfinite(largest):
        return plain
    return largest * float((values / largest).std())


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
    observed = column.values[~missing]
    entry["distinct"] = int(np.unique(observed).size)
    if observed.size == 0:
        entry.update(min=None, max=None, mean=None, std=None, histogram=None)
        return entry
    entry.update(
        min=_finite(observed.min()),
        max=_finite(observed.max()),
        mean=_finite(observed.mean()),
        std=_finite(_std(observed)),
    )
    # The reader refuses infinities, so the observed values are finite.
    if observed.size == 0 or not math.isfinite(float(observed.max() - observed.min())):
        entry["histogram"] = None
    else:
        counts, edges = np.histogram(observed, bins=HISTOGRAM_BINS)
        entry["histogram"] = {
            "edges": [float(edge) for edge in edges],
            "counts": [int(count) for count in counts],
        }
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
